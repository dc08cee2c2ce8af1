#!/usr/bin/env bash
# The GPU check, for whoever has an NVIDIA GPU: about 5 minutes, run from anywhere.
#
#   bash benchmarks/gpu_check.sh            (PYTHON=python3.12 bash ... to choose the interpreter)
#
# 1. checks what is installed, and installs the rest from carried wheels; 2. shows
# the GPU; 3. runs the backend tests (CuPy against NumPy, the CPU stand-in, the
# layers, the flat buffers); 4. the benchmark table on CuPy; 5. times 2 epochs of
# the paper's configuration on the GPU and projects the paper's 3000 epochs.
#
# It never reaches a package index: the GPU machines it is meant for have no
# internet. What is missing comes from a folder of carried wheels,
# benchmarks/wheels/ (or WHEELS=/path), installed with pip --no-index; minirev
# itself runs from this checkout. Fill the folder on a machine with internet:
#   pip download autograd --no-deps -d benchmarks/wheels      (and cupy-cuda13x, pytest ... if needed)
# Without a wheel for something missing, it says so in one line and stops.
# Every step has a time limit: the whole check stays well within 10 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=${WHEELS:-benchmarks/wheels}
START=$(date +%s)
header() { echo; echo "=== $1 ($(( $(date +%s) - START )) s) ==="; }

header "1. what is here, and the carried wheels ($WHEELS) for what is not"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export PYTHONPATH="$PWD:$TMP/site${PYTHONPATH:+:$PYTHONPATH}"   # this checkout's minirev, and what is installed below
have() { "$PY" -c "import $1" 2>/dev/null; }
missing=()
for pair in numpy:numpy matplotlib:matplotlib pytest:pytest autograd:autograd cupy:cupy_cuda*; do
    module=${pair%%:*} dist=${pair#*:}
    if have "$module"; then continue; fi
    wheel=$(ls "$WHEELS"/$dist-*.whl 2>/dev/null | head -n 1 || true)     # the folder's wheel of it, if any
    # into a folder of this run only (--target): the environment itself is left as it was
    if [[ -n "$wheel" ]] && "$PY" -m pip install --disable-pip-version-check -q --no-index --no-deps \
            --target "$TMP/site" "$wheel" && have "$module"; then
        echo "installed $module from $wheel (no index)"
    else
        missing+=("$module")
    fi
done
if (( ${#missing[@]} )); then
    echo "gpu_check: missing ${missing[*]}: no wheel for it in $WHEELS (pip download NAME --no-deps -d $WHEELS on a machine with internet; CuPy: cupy-cuda13x for a CUDA 13 driver)" >&2
    exit 1
fi
"$PY" -c "import minirev, numpy; print('minirev from', minirev.__file__, '| numpy', numpy.__version__)"

header "2. the GPU"
if ! nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null; then
    echo "gpu_check: nvidia-smi failed: no NVIDIA GPU or driver here; this check needs one" >&2
    exit 1
fi
"$PY" -c "import cupy; n = cupy.cuda.runtime.getDeviceCount(); \
print('CuPy', cupy.__version__, 'sees', n, 'GPU(s):', cupy.cuda.runtime.getDeviceProperties(0)['name'].decode())"

header "3. backend tests: CuPy against NumPy, then the CPU stand-in"
timeout 240 "$PY" -m pytest tests/test_cupy.py tests/test_backend.py tests/test_layers.py tests/test_flat_buffer.py -v -rs \
    -p no:cacheprovider

header "4. benchmark on CuPy (quick)"
timeout 120 "$PY" benchmarks/bench.py --backend cupy --quick --skip-demo

header "5. the paper's configuration on the GPU: 2 epochs, projected to 3000"
timeout 150 "$PY" -m minirev.demo reversal --paper --backend cupy --epochs 2 --out "$TMP/figs" \
    --json "$TMP/paper.json" | grep -E "^(--paper|estimate|model|optimizer|training NLL)" || true
"$PY" - "$TMP/paper.json" <<'EOF'
import json, sys
result = json.load(open(sys.argv[1]))
seconds, epochs = result["run"]["seconds"], result["final"]["epochs"]
per_epoch = seconds / max(epochs, 1)
print(f"--paper --epochs 2 on the GPU: {seconds:.1f} s for {epochs} epochs "
      f"(training and evaluation, first-epoch warm-up included): {per_epoch:.2f} s per epoch")
minutes = 3000 * per_epoch / 60
print(f"projection for the paper's 3000 epochs: {minutes:.1f} minutes on this GPU "
      f"(target: under 15 minutes on one H100/H200: {'met' if minutes < 15 else 'MISSED'})")
EOF

header "done"
