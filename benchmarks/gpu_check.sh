#!/usr/bin/env bash
# The GPU check, for whoever has an NVIDIA GPU: about 5 minutes, run from anywhere.
#
#   bash benchmarks/gpu_check.sh            (PYTHON=python3.12 bash ... to choose the interpreter)
#
# 1. shows the GPU; 2. installs CuPy if it is missing (the wheel that matches the
# driver's CUDA); 3. installs minirev with its test extras; 4. runs the backend
# tests (CuPy against NumPy, the CPU stand-in, the layers, the flat buffers); 5. the benchmark table on
# CuPy; 6. times 2 epochs of the paper's configuration on the GPU and projects
# the paper's 3000 epochs.
#
# On a machine without internet access, put wheels (e.g. autograd's, CuPy's) in
# a folder and pass it: WHEELS=/path/to/wheels bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PIP=("$PY" -m pip install --disable-pip-version-check -q --retries 1 --timeout 20)   # fail fast when offline
if [[ -n "${WHEELS:-}" ]]; then PIP+=(--find-links "$WHEELS"); fi
START=$(date +%s)
header() { echo; echo "=== $1 ($(( $(date +%s) - START )) s) ==="; }

header "1. the GPU"
if ! nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; then
    echo "nvidia-smi failed: no NVIDIA GPU or driver here; this check needs one." >&2
    exit 1
fi
CUDA_MAJOR=$(nvidia-smi | sed -n 's/.*CUDA Version: *\([0-9][0-9]*\)\..*/\1/p' | head -n 1)
echo "the driver supports CUDA ${CUDA_MAJOR:-?}; Python: $($PY -c 'import sys; print(sys.executable, sys.version.split()[0])')"

header "2. CuPy"
if "$PY" -c "import cupy" 2>/dev/null; then
    echo "CuPy is already installed"
else
    case "${CUDA_MAJOR:-12}" in
        11) WHEEL=cupy-cuda11x ;;
        12) WHEEL=cupy-cuda12x ;;
        *)  WHEEL=cupy-cuda13x ;;           # CUDA 13 drivers and later
    esac
    echo "installing $WHEEL"
    "${PIP[@]}" "$WHEEL"
fi
"$PY" -c "import cupy; n = cupy.cuda.runtime.getDeviceCount(); \
print('CuPy', cupy.__version__, 'sees', n, 'GPU(s):', cupy.cuda.runtime.getDeviceProperties(0)['name'].decode())"

header "3. minirev with its test extras"
if ! "$PY" -c "import autograd" 2>/dev/null && ! "${PIP[@]}" autograd; then
    echo "minirev needs autograd (pure Python) and pip could not get it. On a machine with internet:" >&2
    echo "  pip download autograd -d wheels   then here:  WHEELS=wheels bash $0" >&2
    exit 1
fi
NO_ISOLATION=()
if "$PY" -c "import matplotlib, pytest, setuptools" 2>/dev/null; then
    NO_ISOLATION=(--no-build-isolation)          # every requirement is here: nothing to download
fi
if "${PIP[@]}" ${NO_ISOLATION[@]+"${NO_ISOLATION[@]}"} -e ".[test]"; then
    echo "installed: pip install -e .[test]"
else
    echo "pip could not install minirev (no internet?): using this checkout through PYTHONPATH instead"
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PY" -c "import minirev, numpy; print('minirev from', minirev.__file__, '| numpy', numpy.__version__)"

header "4. backend tests: CuPy against NumPy, then the CPU stand-in"
"$PY" -m pytest tests/test_cupy.py tests/test_backend.py tests/test_layers.py tests/test_flat_buffer.py -v -rs \
    -p no:cacheprovider

header "5. benchmark on CuPy (quick)"
"$PY" benchmarks/bench.py --backend cupy --quick --skip-demo

header "6. the paper's configuration on the GPU: 2 epochs, projected to 3000"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
timeout 240 "$PY" -m minirev.demo reversal --paper --backend cupy --epochs 2 --out "$TMP/figs" \
    --json "$TMP/paper.json" | grep -E "^(--paper|estimate|model|optimizer|training NLL)" || true
"$PY" - "$TMP/paper.json" <<'EOF'
import json, sys
final = json.load(open(sys.argv[1]))["final"]
per_epoch = final["seconds"] / max(final["epochs"], 1)
print(f"--paper --epochs 2 on the GPU: {final['seconds']:.1f} s for {final['epochs']} epochs "
      f"(training and evaluation, first-epoch warm-up included): {per_epoch:.2f} s per epoch")
minutes = 3000 * per_epoch / 60
print(f"projection for the paper's 3000 epochs: {minutes:.1f} minutes on this GPU "
      f"(target: under 15 minutes on one H100/H200: {'met' if minutes < 15 else 'MISSED'})")
EOF

header "done"
