"""What every minirev model shares: parameters, the loss interface, copies.

A model is a functional ``forward(params, tokens, xp, rng) -> (loss, cache)``
plus a hand-written ``backward(cache) -> grads`` (or ``backward_into(cache,
grads)``, which writes them into arrays already there). Keeping the forward a pure
function of ``params`` is what lets the gradient check hand the very same
function to autograd (``minirev/gradcheck.py``).

Every model scores the last ``n_target`` tokens of each sentence (the answer
entity): the loss is the mean cross-entropy over those tokens.

Each model class registers itself under its ``kind`` (the name used on the
command line), so the run configuration, the checkpoints and the command line
find every model through ``Model.registry`` without importing any of them.
A model class carries what a run needs of it: ``default_lr``,
``default_optimizer``, ``options`` (the model options of RunConfig it reads),
``from_config(cfg, dataset, seed)``, ``make_optimizer(cfg)``, ``parameter_count``
and ``activation_count`` (the memory check before a run), a small
``gradcheck_example(seed)`` shared by the tests and ``demo gradcheck``, and
the trace's ``watch(pairs, name)``, ``trace_title(pairs, name)`` and
``trace_terms(tokens, pairs, optimizer, name)``, where ``pairs`` is a list of
(trained sentence, never-trained reverse sentence) and ``name`` labels a sentence.
"""
import os

import numpy as np

from .backend import get_xp, to_backend, to_numpy
from .errors import UsageError, readable

DTYPES = {"float32": np.float32, "float64": np.float64}


def float_dtype(dtype, kind):
    """np.float32 or np.float64 (by name or type); anything else is a one-line UsageError."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        dtype = None
    if dtype is None or dtype.name not in DTYPES:
        raise UsageError(f"{kind}: dtype must be float32 or float64, got {dtype!r}")
    return dtype


def check_size(kind, numbers, fix):
    """Refuse, before allocating, a model whose parameters would not fit in half this machine's memory.

    A number costs 24 bytes: float64 on the host, where it is drawn, then the training copy and its gradient."""
    try:
        limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):           # not a POSIX system: assume 8 GiB
        limit = 4 * 2 ** 30
    if 24 * numbers > limit:
        raise UsageError(f"{kind}: {numbers:.3g} parameters would need about {readable(24 * numbers)}, over half "
                         f"this machine's memory ({readable(limit)}): {fix}")


class FlatParams(dict):
    """Named arrays that are views into ONE flat buffer, ``self.flat`` (1-d, in dict order).

    Still a plain dict ``{name: array}`` to every reader; the optimiser may update
    ``self.flat`` in a few whole-buffer calls instead of a loop over the tensors
    (minirev/optim.py). ``params[name] = array`` copies the numbers INTO the existing
    view, so the buffer stays whole.
    """

    def __init__(self, arrays, xp, dtype):
        sizes = [int(np.prod(a.shape)) for a in arrays.values()]
        self.xp = xp
        self.flat = xp.zeros(sum(sizes), dtype=dtype)               # (total,)
        start = 0
        for (name, a), size in zip(arrays.items(), sizes):
            dict.__setitem__(self, name, self.flat[start:start + size].reshape(a.shape))   # a view
            start += size
        for name, a in arrays.items():
            self[name] = to_backend(xp, a, dtype)

    def __reduce__(self):  # pickled as its named arrays (the module xp cannot be); one buffer again on load
        return (_rebuild_flat, (dict(self), self.xp.__name__, self.flat.dtype))

    def __setitem__(self, name, value):
        if value is dict.get(self, name):                            # written in place already (gpt.py)
            return
        if name not in self or tuple(value.shape) != tuple(self[name].shape):
            raise UsageError(f"parameter {name!r} of shape {tuple(value.shape)} does not fit the model "
                             f"(its parameters: {', '.join(self)}); build a new model for new shapes")
        self[name][...] = value


def _rebuild_flat(arrays, backend, dtype):
    return FlatParams(arrays, get_xp(backend), dtype)


class Model:
    kind = "model"        # the name used on the command line
    n_target = 1          # how many final tokens of a sentence are scored
    default_lr = None     # the learning rate a run uses unless --lr says otherwise
    default_optimizer = "sgd"   # the optimiser a run uses unless --optimizer says otherwise
    options = ()          # the RunConfig fields of the model group it reads (--layers, --width, ...): others are refused
    registry = {}         # kind -> class, filled as each model class is defined

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            Model.registry[cls.kind] = cls

    def __init__(self, host_params, vocab_size, dtype=np.float32, backend="numpy", config=None):
        self.xp = get_xp(backend)
        self.backend = backend
        self.dtype = float_dtype(dtype, self.kind)
        self.vocab_size = int(vocab_size)
        self.config = dict(config or {})
        for name, value in host_params.items():
            if np.asarray(value).dtype.kind not in "fiu":
                raise UsageError(f"{self.kind}: parameter {name} must hold real numbers, got {np.asarray(value).dtype}")
        self.params = host_params

    # ---- to be written by each model -------------------------------------------------
    def forward(self, params, tokens, xp, rng=None):        # -> (loss, cache)
        raise NotImplementedError

    def backward(self, cache):                                # -> dict like params
        """The gradients of the forward's loss, new arrays; a model that writes them in place
        (the GPT) defines backward_into instead, and this base method calls it."""
        grads = {}
        self.backward_into(cache, grads)
        return {name: grads[name] for name in self.params}

    def backward_into(self, cache, grads):                    # fills grads[name] for every parameter
        """Like backward, but the gradients go into ``grads`` (in training, the model's flat
        gradient buffer): a model that can write into the arrays already there (the GPT, whose
        layer backwards in minirev/layers.py take them) saves a copy of every gradient."""
        if type(self).backward is Model.backward:
            raise NotImplementedError(f"{type(self).__name__} defines neither backward nor backward_into")
        for name, g in self.backward(cache).items():
            grads[name] = g

    def logits(self, tokens):                                 # (B, T) -> (B, n_target, V)
        raise NotImplementedError

    @classmethod
    def from_config(cls, cfg, dataset, seed):                 # a RunConfig -> a model for the dataset
        raise NotImplementedError

    @staticmethod
    def make_optimizer(cfg):                                  # a RunConfig -> SGD or AdamW
        raise NotImplementedError

    @classmethod
    def gradcheck_example(cls, seed=0):                       # -> (model, tokens) that exercise every path
        raise NotImplementedError

    @classmethod
    def parameter_count(cls, cfg, V, P):                      # -> parameters of from_config's model, not built
        """For the memory check before a run: V = vocabulary (special tokens included), P = sentence length."""
        raise NotImplementedError(f"{cls.__name__} must define parameter_count(cfg, V, P) for the memory check")

    @classmethod
    def activation_count(cls, cfg, B, V, P):                  # -> numbers one training step of B sentences holds
        return 3 * B * V                                      # logits, probabilities, their gradient

    @classmethod
    def single_token_answers(cls, dataset):
        if dataset.entity_len != 1:
            raise UsageError(f"--model {cls.kind} scores single-token answers: use --entity-len 1 (or --model gpt)")

    # ---- shared -----------------------------------------------------------------------
    def describe(self):
        sizes = ", ".join(f"{k}{tuple(v.shape)}" for k, v in self.params.items())
        return f"{self.kind} [{self.dtype.name}, {self.backend}]: {sizes}" if len(sizes) < 70 \
            else f"{self.kind} [{self.dtype.name}, {self.backend}]: {len(self.params)} tensors, " \
                 f"{self.num_params():,} parameters"

    def num_params(self):
        return int(sum(v.size for v in self.params.values()))

    def check_tokens(self, tokens):
        """Token ids as a host int array, each inside the vocabulary."""
        try:
            tokens = np.asarray(tokens)
        except ValueError:                 # NumPy refuses lists of different lengths
            raise UsageError(f"{self.kind}: tokens must be a 2-d integer array (sentences x positions), got "
                             "sentences of different lengths: pad or group them by length") from None
        if tokens.ndim != 2 or not np.issubdtype(tokens.dtype, np.integer):
            raise UsageError(f"{self.kind}: tokens must be a 2-d integer array (sentences x positions), "
                             f"got shape {tokens.shape} of {tokens.dtype}")
        if tokens.shape[0] == 0:
            raise UsageError(f"{self.kind}: the batch is empty (0 sentences): a mean loss needs at least one")
        if tokens.shape[1] <= self.n_target:
            raise UsageError(f"{self.kind}: sentences of {tokens.shape[1]} token(s) leave no context before the "
                             f"{self.n_target}-token answer: give at least {self.n_target + 1} tokens")
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.vocab_size):
            raise UsageError(f"{self.kind}: token id {int(tokens.max()) if tokens.max() >= self.vocab_size else int(tokens.min())} "
                             f"is outside the vocabulary 0..{self.vocab_size - 1}; build the model with a larger vocabulary")
        return tokens

    # ---- parameters and gradients: each a FlatParams, one flat buffer of views ---------------
    @property
    def params(self):
        return self._params

    @params.setter
    def params(self, arrays):  # {name: array} -> copied into a new flat buffer, and a gradient buffer like it
        self._params = FlatParams(arrays, self.xp, self.dtype)
        self._grads = FlatParams({k: self.xp.zeros(v.shape, self.dtype) for k, v in self._params.items()},
                                 self.xp, self.dtype)

    def loss_and_grads(self, tokens, rng=None):
        """Mean cross-entropy of the answer tokens, and its gradient for every parameter.

        The gradients are written into the model's gradient buffer (a FlatParams, so the
        optimiser can update all parameters in a few calls) and overwritten by the next
        call: copy them (``{k: g.copy() ...}``) to keep them.
        """
        tokens = self.check_tokens(tokens)
        loss, cache = self.forward(self.params, to_backend(self.xp, tokens), self.xp, rng)
        self.backward_into(cache, self._grads)
        return float(loss), self._grads

    def loss(self, tokens):
        loss, _ = self.forward(self.params, to_backend(self.xp, self.check_tokens(tokens)), self.xp)
        return float(loss)

    def host_params(self):
        return {k: to_numpy(v) for k, v in self.params.items()}

    def __getstate__(self):  # for another process: the array module travels as its name
        return {k: v for k, v in self.__dict__.items() if k != "xp"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.xp = get_xp(self.backend)

    def copy(self, dtype=None, backend=None):
        """The same model (same numbers) in another dtype or on another backend."""
        twin = object.__new__(type(self))
        twin.__dict__.update(self.__dict__)
        twin.xp = get_xp(backend or self.backend)
        twin.backend = backend or self.backend
        twin.dtype = float_dtype(dtype or self.dtype, self.kind)
        twin.params = self.host_params()            # a new flat buffer: never shares memory with the original
        twin._moved()
        return twin

    def _moved(self):
        """Hook: move fixed (non-trainable) arrays after a copy to another dtype/backend."""
