"""A stand-in for CuPy that runs on the CPU: it proves the backend swap is complete.

CuPy's arrays live on the GPU, so they refuse to be turned into NumPy arrays
behind your back, and a CuPy array cannot be added to a NumPy array. A forward
or backward that calls ``np.something`` on a backend array, or mixes in a host
array, works on NumPy and breaks on a GPU. Without a GPU such a bug stays
hidden; this module makes it visible.

``FakeArray`` holds a NumPy array, but to NumPy it is a foreign object:

* ``np.asarray(a)`` raises TypeError, as ``cupy.ndarray.__array__`` does;
* ``np.exp(a)``, ``np.concatenate([a])`` raise TypeError
  (``__array_ufunc__ = None``, ``__array_function__`` refuses). Real CuPy would
  dispatch some of these to itself; the stand-in is stricter on purpose:
  minirev's rule is that every forward and backward speaks only to ``xp``;
* ``a + host_array`` and ``host_array + a`` raise TypeError, as CuPy does;
* ``a.get()`` copies back to the host, as ``cupy.ndarray.get`` does.

``fake_cupy`` is the matching namespace: ``fake_cupy.exp(a)``,
``fake_cupy.add.at(...)`` and so on unwrap their arguments, call NumPy and
wrap the results. Like CuPy, it accepts host data only where data is moved on
purpose (``asarray``, ``array``) and as index arrays (CuPy copies those over).
Reductions return 0-d arrays, never NumPy scalars, again as CuPy does.
"""
import operator
import types

import numpy as np

MIXED = "a host numpy.ndarray was mixed with a backend array"


class FakeArray:
    """A 'device' array: a NumPy array that NumPy itself is not allowed to touch."""

    __array_ufunc__ = None        # numpy ufuncs (np.exp(a), host + a) refuse, and say so
    __hash__ = None

    def __init__(self, host):
        self._a = np.asarray(host)

    # ---- what NumPy must not do with it --------------------------------------------------
    def __array__(self, *args, **kwargs):
        raise TypeError("Implicit conversion to a NumPy array is not allowed (stand-in for cupy.ndarray): "
                        "use xp.* functions on backend arrays, or .get() / minirev.backend.to_numpy to copy back")

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(f"numpy.{func.__name__} was called on a backend array (stand-in for cupy.ndarray): "
                        f"call xp.{func.__name__} instead")

    # ---- attributes ----------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    dtype = property(lambda self: self._a.dtype)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    T = property(lambda self: FakeArray(self._a.T))

    def get(self):
        """Copy back to the host, as cupy.ndarray.get()."""
        return self._a.copy()

    def item(self):
        return self._a.item()

    def tolist(self):
        return self._a.tolist()

    def __repr__(self):
        return f"FakeArray({self._a!r})"

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (FakeArray(row) for row in self._a)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __bool__(self):
        return bool(self._a)

    def __format__(self, spec):
        return format(self._a.item(), spec) if self._a.ndim == 0 else format(str(self), spec)

    # ---- indexing --------------------------------------------------------------------------
    def __getitem__(self, key):
        return _wrap(self._a[_index(key)])

    def __setitem__(self, key, value):
        self._a[_index(key)] = _operand(value, "setitem")


def _operand(x, where):
    """The NumPy data behind a backend operand; a host array here is the bug we look for."""
    if isinstance(x, FakeArray):
        return x._a
    if isinstance(x, np.ndarray):
        raise TypeError(f"{where}: {MIXED} (CuPy raises here too); move it with xp.asarray first")
    if isinstance(x, (list, tuple)):
        return type(x)(_operand(v, where) for v in x)
    return x                       # Python and NumPy scalars, dtypes, None, slices: allowed, as in CuPy


def _index(key):
    """Index keys: backend arrays are unwrapped; host index arrays are allowed (CuPy copies them)."""
    if isinstance(key, FakeArray):
        return key._a
    if isinstance(key, tuple):
        return tuple(_index(k) for k in key)
    return key


def _wrap(x):
    """NumPy results become backend arrays; scalars too (CuPy returns 0-d arrays)."""
    if isinstance(x, (np.ndarray, np.generic)):
        return FakeArray(x)
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def _kwargs(kwargs, where):
    return {k: _operand(v, where) for k, v in kwargs.items()}


# ---- operators: binary (and reflected), in place, unary ------------------------------------

def _binary(op, name):
    def forward(self, other):
        return _wrap(op(self._a, _operand(other, name)))

    def reflected(self, other):
        return _wrap(op(_operand(other, name), self._a))

    def in_place(self, other):      # writes into the same buffer, so views (and params) see the update
        getattr(operator, f"i{name}")(self._a, _operand(other, name))
        return self
    return forward, reflected, in_place


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor"):
    _op = getattr(operator, _name + "_" if _name in ("and", "or") else _name)
    _f, _r, _i = _binary(_op, _name)
    setattr(FakeArray, f"__{_name}__", _f)
    setattr(FakeArray, f"__r{_name}__", _r)
    if _name != "matmul":
        setattr(FakeArray, f"__i{_name}__", _i)

def _compare(op):
    return lambda self, other: _wrap(op(self._a, _operand(other, op.__name__)))


def _unary(op):
    return lambda self: _wrap(op(self._a))


for _name in ("lt", "le", "gt", "ge", "eq", "ne"):
    setattr(FakeArray, f"__{_name}__", _compare(getattr(operator, _name)))
for _name in ("neg", "pos", "abs", "invert"):
    setattr(FakeArray, f"__{_name}__", _unary(getattr(operator, _name)))


# ---- methods: the NumPy method, with arguments unwrapped and the result wrapped ---------------

def _method(name):
    def method(self, *args, **kwargs):
        return _wrap(getattr(self._a, name)(*_operand(args, name), **_kwargs(kwargs, name)))
    method.__name__ = name
    return method


for _name in ("reshape", "transpose", "swapaxes", "ravel", "flatten", "squeeze", "sum", "mean", "max", "min",
              "argmax", "argmin", "prod", "cumsum", "std", "var", "any", "all", "clip", "dot", "astype",
              "copy", "take", "repeat", "round", "nonzero", "fill", "view"):
    setattr(FakeArray, _name, _method(_name))


# ---- the namespace -------------------------------------------------------------------------------

class FakeUfunc:
    """xp.add, xp.exp, ...: callable like the ufunc, plus the in-place scatter ``at``."""

    def __init__(self, ufunc):
        self.ufunc, self.__name__ = ufunc, ufunc.__name__

    def __call__(self, *args, **kwargs):
        return _wrap(self.ufunc(*_operand(args, self.__name__), **_kwargs(kwargs, self.__name__)))

    def at(self, a, indices, b=None):
        if not isinstance(a, FakeArray):
            raise TypeError(f"xp.{self.__name__}.at: the target must be a backend array, got {type(a).__name__}")
        args = (a._a, _index(indices)) + (() if b is None else (_operand(b, self.__name__ + ".at"),))
        self.ufunc.at(*args)

    def reduce(self, *args, **kwargs):
        return _wrap(self.ufunc.reduce(*_operand(args, self.__name__), **_kwargs(kwargs, self.__name__)))


def _function(name):
    fn = getattr(np, name)
    if isinstance(fn, np.ufunc):
        return FakeUfunc(fn)

    def function(*args, **kwargs):
        return _wrap(fn(*_operand(args, name), **_kwargs(kwargs, name)))
    function.__name__ = name
    return function


def _to_device(x, dtype=None, copy=True):
    """xp.asarray / xp.array: the one door from the host to the 'device' (always a copy, as a transfer is)."""
    if isinstance(x, FakeArray):
        if not copy and (dtype is None or x.dtype == np.dtype(dtype)):
            return x                                      # cupy.asarray of a cupy array: the array itself
        return FakeArray(x._a.astype(dtype or x.dtype, copy=True))
    fake_cupy.transfers += 1
    return FakeArray(np.array(x, dtype=dtype, copy=True))


FUNCTIONS = (
    # creation
    "zeros", "zeros_like", "ones", "ones_like", "empty", "empty_like", "full", "full_like", "arange", "eye",
    "linspace", "tril", "triu",
    # elementwise (ufuncs) and selection
    "exp", "log", "log1p", "expm1", "sqrt", "square", "tanh", "sin", "cos", "abs", "sign", "power", "maximum",
    "minimum", "add", "subtract", "multiply", "divide", "true_divide", "negative", "equal", "not_equal",
    "less", "greater", "logical_and", "logical_or", "logical_not", "isfinite", "isnan", "where", "clip",
    # reductions
    "sum", "mean", "max", "min", "amax", "amin", "argmax", "argmin", "prod", "cumsum", "any", "all", "std", "var",
    # linear algebra and shapes
    "matmul", "dot", "einsum", "outer", "tensordot", "concatenate", "stack", "reshape", "transpose", "swapaxes",
    "expand_dims", "squeeze", "broadcast_to", "take", "take_along_axis", "tile", "repeat", "split", "moveaxis",
    "flip", "allclose", "isclose", "unique", "argsort", "sort",
)

fake_cupy = types.ModuleType("fake_cupy", "CuPy's interface over NumPy, refusing NumPy's implicit help.")
fake_cupy.__dict__.update({name: _function(name) for name in FUNCTIONS})
fake_cupy.__dict__.update(
    ndarray=FakeArray, asarray=lambda x, dtype=None: _to_device(x, dtype, copy=False),
    array=lambda x, dtype=None, copy=True: _to_device(x, dtype, copy=True),
    asnumpy=lambda x: x.get() if isinstance(x, FakeArray) else np.asarray(x),
    dtype=np.dtype, float16=np.float16, float32=np.float32, float64=np.float64, int32=np.int32,
    int64=np.int64, bool_=np.bool_, newaxis=None, inf=np.inf, nan=np.nan, pi=np.pi, e=np.e,
    linalg=types.SimpleNamespace(norm=lambda *a, **k: _wrap(np.linalg.norm(*_operand(a, "linalg.norm"),
                                                                           **_kwargs(k, "linalg.norm")))),
    transfers=0,                  # how many host -> 'device' copies were made (asarray / array of host data)
)


def is_backend_array(x):
    return isinstance(x, FakeArray)
