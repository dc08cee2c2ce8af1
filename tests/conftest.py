"""Loaded by pytest before any test file: one BLAS thread, as `import minirev` asks for.

The test files import NumPy before minirev, so minirev's own setting would come too late
for this process. Importing minirev here, first, sets it (minirev/__init__.py): without
it the serial runs here would use every core's BLAS threads and the worker processes one
each, and float32 sums in another order differ in their last bits (tests/test_parallel.py
and tests/test_cures.py compare bits).
"""
import os
import sys

assert "numpy" not in sys.modules, "something imported NumPy before tests/conftest.py: its BLAS threads are set"
import minirev  # noqa: E402,F401

from minirev.machinery import BLAS_VARS  # noqa: E402

for _var in BLAS_VARS:
    assert os.environ.get(_var), f"{_var} is not set: minirev sets it when imported before NumPy"
