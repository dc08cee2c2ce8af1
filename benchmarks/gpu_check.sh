#!/usr/bin/env bash
# The GPU check, for whoever has an NVIDIA GPU: about 5 minutes, run from anywhere.
#
#   bash benchmarks/gpu_check.sh            (PYTHON=python3.12 bash ... to choose the interpreter)
#
# 1. shows the GPU; 2. installs CuPy if it is missing (the wheel that matches the
# driver's CUDA); 3. installs minirev with its test extras; 4. runs the backend
# tests (CuPy against NumPy, and the CPU stand-in); 5. the benchmark table on
# CuPy; 6. times 2 epochs of the paper's configuration on the GPU and projects
# the paper's 3000 epochs.
#
# On a machine without internet access, put wheels (e.g. autograd's, CuPy's) in
# a folder and pass it: WHEELS=/path/to/wheels bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PIP=("$PY" -m pip install --disable-pip-version-check -q)
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
if "${PIP[@]}" -e ".[test]"; then
    echo "installed: pip install -e .[test]"
else
    echo "pip could not install (no internet?): using this checkout through PYTHONPATH instead"
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
    "$PY" -c "import autograd" 2>/dev/null || "${PIP[@]}" autograd || \
        echo "autograd is missing: the autograd column and tests/test_backend.py need it (WHEELS=folder with its wheel)"
fi
"$PY" -c "import minirev, numpy; print('minirev from', minirev.__file__, '| numpy', numpy.__version__)"

header "4. backend tests: CuPy against NumPy, then the CPU stand-in"
"$PY" -m pytest tests/test_cupy.py tests/test_backend.py -v -rs -p no:cacheprovider

header "5. benchmark on CuPy (quick)"
"$PY" benchmarks/bench.py --backend cupy --quick --skip-demo

header "6. the paper's configuration on the GPU: 2 epochs, projected to 3000"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
T0=$(date +%s.%N)
set +e
timeout 180 "$PY" -m minirev.demo reversal --paper --backend cupy --epochs 2 --out "$TMP/figs" \
    --json "$TMP/paper.json" > "$TMP/demo.log" 2>&1
CODE=$?
set -e
T1=$(date +%s.%N)
grep -E "^(--paper|estimate|model|optimizer|training NLL)" "$TMP/demo.log" || true
"$PY" - "$TMP/paper.json" "$CODE" "$T0" "$T1" <<'EOF'
import json, os, sys
path, code, t0, t1 = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
if code == 0 and os.path.exists(path):
    final = json.load(open(path))["final"]
    per_epoch = final["seconds"] / max(final["epochs"], 1)
    print(f"demo --paper --epochs 2: {t1 - t0:.1f} s in all, training {final['seconds']:.1f} s for "
          f"{final['epochs']} epochs (with evaluation): {per_epoch:.2f} s per epoch")
    print(f"projection for the paper's 3000 epochs: {3000 * per_epoch / 3600:.2f} hours on this GPU")
    sys.exit(0)
why = "timed out after 180 s (does --paper override --epochs?)" if code == 124 else f"exit {code}"
print(f"the demo run did not finish ({why}); timing 2 epochs of the same configuration directly:")
import time
from minirev.experiments import PAPER_CONFIG, make_dataset, make_model, make_optimizer
from minirev.train import Trainer
cfg = dict(PAPER_CONFIG, vocab=800, entity_len=1, seed=1234, backend="cupy", dtype="float32")
data = make_dataset("reversal", cfg)
model, opt = make_model(cfg, data, cfg["seed"]), make_optimizer(cfg)
trainer = Trainer(model, opt, data, batch_size=cfg["batch_size"], seed=cfg["seed"])
trainer.run(1)                                                    # warm-up epoch (and the first evaluation)
t = time.perf_counter()
trainer.run(3)                                                    # epochs 2 and 3, each evaluated
per_epoch = (time.perf_counter() - t) / 2
print(f"{per_epoch:.2f} s per epoch (training and evaluation) of {model.describe()}")
print(f"projection for the paper's 3000 epochs: {3000 * per_epoch / 3600:.2f} hours on this GPU")
EOF

header "done"
