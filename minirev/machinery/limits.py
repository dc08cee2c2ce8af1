"""How much memory a run will need, estimated before anything is allocated.

A request too large for this machine is refused at once, with the estimate and
the limit in one line, instead of a MemoryError (or minutes of swapping) later.
The limit is half the machine's physical memory.

    check_memory("the GPT's parameters and optimiser state", nbytes, "use a smaller --width")
"""
import os
from types import SimpleNamespace

from ..errors import UsageError, readable
from ..experiments import Experiment
from ..model import Model


def physical_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):           # not a POSIX system: assume 8 GiB
        return 8 * 2 ** 30


MEMORY_LIMIT = physical_memory() // 2


def check_memory(what, nbytes, fix, limit=None):
    """A one-line UsageError if `what` would need more than `limit` bytes (default MEMORY_LIMIT)."""
    limit = MEMORY_LIMIT if limit is None else limit
    if nbytes > limit:
        raise UsageError(f"{what} would need about {readable(nbytes)}, over the limit of {readable(limit)} "
                         f"(half this machine's memory): {fix}")


def check_model_memory(kind, config, itemsize, path):
    """The model a saved file describes (`config`: its constructor's arguments), estimated by its class's
    parameter_count before it is built: drawn in float64 on the host, then copied to `itemsize` bytes."""
    def size(key, default):
        value = config.get(key, default)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise UsageError(f"{path}: '{key}' in its model description should be a whole number >= 0, "
                             f"got {value!r:.40}: the file is damaged or was edited")
        return value
    vocab = size("vocab_size", 1)
    shape = SimpleNamespace(width=size("width", 0) or size("dim", vocab), layers=size("layers", 0),
                            heads=size("heads", 1), tied=bool(config.get("tied")), batch_size=1)
    params = Model.registry[kind].parameter_count(shape, vocab, size("max_len", 1))
    check_memory(f"{path}: the {kind} model it describes ({params:.3g} parameters)", (8 + itemsize) * params,
                 "the file is damaged, or was saved on a larger machine")


# --------------------------------------------------------------------------- a whole run

def check_run_memory(cfg, processes=1):
    """Refuse a configuration whose model (with gradients and optimiser moments) and one batch of
    activations would not fit; the data generators check their own tables (minirev/data.py).

    The sizes come from the experiment (its data's shape, without building it) and from the
    model class (its parameter and activation counts), so every registered model is estimated."""
    V, P, n = Experiment.registry[cfg.experiment].shape(cfg)
    model = Model.registry[cfg.model]
    itemsize = 4 if cfg.dtype == "float32" else 8
    params = model.parameter_count(cfg, V, P)
    activations = model.activation_count(cfg, min(cfg.batch_size, n), V, P)
    # parameters, gradients, AdamW's two moments, a float64 copy of the logits when evaluating
    nbytes = itemsize * (4 * params + activations) + 8 * n * V
    each = f" in each of {processes} processes" if processes > 1 else ""          # (--jobs: one model a process)
    check_memory(f"--model {cfg.model} with this configuration ({params:.3g} parameters{each})", processes * nbytes,
                 "use a smaller --vocab, --width, --layers or --batch-size" + (", or fewer --jobs" if each else ""))


def check_seed(seed, count=1):
    """NumPy's seeded generators take seeds below 2**32."""
    if seed + count - 1 >= 2 ** 32:
        raise UsageError(f"--seed {seed}" + (f" with --seeds {count}" if count > 1 else "")
                         + f" goes past the largest seed, 2**32 - 1 = {2 ** 32 - 1}: choose a smaller seed")
