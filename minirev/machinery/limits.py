"""How much memory a run will need, estimated before anything is allocated.

A request too large for this machine is refused at once, with the estimate and
the limit in one line, instead of a MemoryError (or minutes of swapping) later.
The limit is half the machine's physical memory.

    check_memory("the GPT's parameters and optimiser state", nbytes, "use a smaller --width")
"""
import os

from ..errors import UsageError, readable


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


# --------------------------------------------------------------------------- a whole run

# Parameters of each model kind, from its constructor: V = vocabulary (special tokens included),
# C = --width, P = sentence length. A kind missing here is not estimated.
PARAMETERS = {
    "gpt": lambda cfg, V, P: V * cfg.width * (1 if cfg.tied else 2) + P * cfg.width
    + cfg.layers * (12 * cfg.width ** 2 + 13 * cfg.width) + 2 * cfg.width,
    "bilinear": lambda cfg, V, P: V * cfg.width + cfg.width ** 2,               # U (fixed) and Theta
    "one-layer": lambda cfg, V, P: 2 * V * V,                                    # Y and Z
    "one-layer-factorized": lambda cfg, V, P: 3 * V * V,                         # W_V, W_O, Z
}


def run_shape(cfg):
    """(vocabulary with special tokens, sentence length, sentences) of cfg's data, without building it."""
    if cfg.experiment == "incontext":
        return cfg.vocab + 3, 7, 1000
    alphabet = cfg.vocab // 4
    pairs = min(alphabet ** min(cfg.entity_len, 64), 2 * alphabet)        # as reversal_data and chain_data
    return cfg.vocab + 2, 2 * cfg.entity_len + 1, 3 * pairs


def check_run_memory(cfg):
    """Refuse a configuration whose model (with gradients and optimiser moments) and one batch of
    activations would not fit; the data generators check their own tables (minirev/data.py)."""
    V, P, n = run_shape(cfg)
    if cfg.model not in PARAMETERS:
        return
    itemsize = 4 if cfg.dtype == "float32" else 8
    params = PARAMETERS[cfg.model](cfg, V, P)
    B = min(cfg.batch_size, n)
    if cfg.model == "gpt":           # per block ~16 (B, T, C) tensors and 3 (B, H, T, T); logits (B, T, V) x 3
        activations = cfg.layers * B * P * (16 * cfg.width + 3 * cfg.heads * P) + 3 * B * P * V
    else:
        activations = 3 * B * V
    # parameters, gradients, AdamW's two moments, a float64 copy of the logits when evaluating
    nbytes = itemsize * (4 * params + activations) + 8 * n * V
    check_memory(f"--model {cfg.model} with this configuration ({params:.3g} parameters)", nbytes,
                 "use a smaller --vocab, --width, --layers or --batch-size")


def check_seed(seed, count=1):
    """NumPy's seeded generators take seeds below 2**32."""
    if seed + count - 1 >= 2 ** 32:
        raise UsageError(f"--seed {seed}" + (f" with --seeds {count}" if count > 1 else "")
                         + f" goes past the largest seed, 2**32 - 1 = {2 ** 32 - 1}: choose a smaller seed")
