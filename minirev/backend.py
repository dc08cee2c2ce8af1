"""The array namespace ``xp`` that every forward and backward is written against.

minirev never writes ``import cupy as np``. Each model holds ``self.xp``, the
module that runs its arithmetic, and passes it to every layer:

* ``numpy``            the default, on the CPU;
* ``cupy``             the same code on a GPU (optional dependency);
* ``autograd.numpy``   used only by the gradient checks, to differentiate the
                       very same forward functions automatically.

Parameters are always created on the host with NumPy from an explicit seed and
then moved with :func:`to_backend`, so NumPy and CuPy runs start from identical
numbers. Results come back with :func:`to_numpy` for printing, saving, plotting.
"""
import numpy as np

from .errors import UsageError

BACKENDS = ("numpy", "cupy")
INSTALL_CUPY = 'pip install -e ".[gpu]" (or the cupy-cudaXXx wheel matching your CUDA)'


def get_xp(backend="numpy"):
    """Return the array module for a backend name, or a one-line UsageError."""
    if backend == "numpy":
        return np
    if backend == "cupy":
        try:
            import cupy
        except ImportError:
            raise UsageError(f"backend 'cupy' needs CuPy, which is not installed: {INSTALL_CUPY}, "
                             "or use --backend numpy") from None
        try:
            if cupy.cuda.runtime.getDeviceCount() < 1:
                raise RuntimeError("no device")
        except Exception:  # CuPy raises its own CUDA errors when no driver or GPU exists
            raise UsageError("backend 'cupy': CuPy is installed but no usable GPU was found; "
                             "use --backend numpy") from None
        return cupy
    raise UsageError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")


def to_backend(xp, host_array, dtype=None):
    """Move a host (NumPy) array to the backend, optionally casting it."""
    return xp.asarray(host_array, dtype=dtype)


def to_numpy(array):
    """Bring a backend array (or a scalar) back to the host as NumPy."""
    if hasattr(array, "get"):          # cupy.ndarray (and the test stand-in) copy back with .get()
        return array.get()
    return np.asarray(array)
