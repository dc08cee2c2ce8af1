"""The version of minirev, written here and nowhere else.

pyproject.toml reads it (statically, without importing the package), `minirev --version` prints
it, and `minirev.__version__` is this. CITATION.cff repeats it (CFF is plain YAML); a test checks
that the two agree. tests/test_packaging.py checks that no other file holds the version.
"""
__version__ = "0.1.0"
