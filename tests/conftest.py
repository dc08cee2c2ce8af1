"""Loaded by pytest before any test file: one BLAS thread, as `import minirev` asks for.

The test files import NumPy before minirev, so minirev's own setting comes too late
for this process; without this line the serial runs here would use every core's BLAS
threads and the worker processes one each, and float32 sums in another order differ
in their last bits (tests/test_parallel.py and tests/test_cures.py compare bits).
"""
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
