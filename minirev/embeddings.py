"""Embeddings: tokens and positions into the model, and the output layer that turns vectors back into logits.

Forward/backward pairs written as those of minirev/layers.py (read its docstring
for the rules: one form of each pair, traced by autograd and run by the GPT;
``d<name>=None`` arguments to write parameter gradients into). layers.py imports
them all, so ``from minirev.layers import embedding_forward`` works too.

Shapes: B = batch, T = positions, C = width, V = vocabulary, N = rows (B x T),
H = heads, D = C // H (head dim), P = max_len, rows of the positional table.
"""
import numpy as np

from .backend import to_backend


# --------------------------------------------------------------------------- tokens in, logits out

def embedding_forward(xp, tokens, w):  # (B, T) int, (V, C) -> (B, T, C)
    """Row lookup: the vector of each token id."""
    out = w[tokens]                                             # (B, T, C)
    return out, (xp, tokens, w.shape)


def embedding_backward(dout, cache, dw=None):  # (B, T, C) -> dw (V, C)
    xp, tokens, w_shape = cache
    # forward: out = w[tokens], so each row of dout flows back to the row it was read from.
    # A token used twice in the batch must get both gradients: dw[tokens] += dout would
    # keep only one of them, xp.add.at accumulates.
    if dw is None:
        dw = xp.empty(w_shape, dtype=dout.dtype)                # (V, C)
    dw[...] = 0                                                 # (V, C) rows of tokens not in the batch stay 0
    xp.add.at(dw, tokens, dout)
    return dw


def position_embedding_forward(xp, x, wpe):  # (B, T, C), (P, C) -> (B, T, C)
    """Learned absolute positions: add row t of the table to position t."""
    T = x.shape[1]
    out = x + wpe[:T]                                           # (B, T, C)
    return out, (xp, T, wpe.shape)


def position_embedding_backward(dout, cache, dwpe=None):  # (B, T, C) -> dx (B, T, C), dwpe (P, C)
    xp, T, wpe_shape = cache
    # forward: out = x + wpe[:T], broadcast over the batch, so dwpe[:T] sums dout over B
    if dwpe is None:
        dwpe = xp.empty(wpe_shape, dtype=dout.dtype)            # (P, C)
    dwpe[T:] = 0                                                # rows >= T unused
    dout.sum(axis=0, out=dwpe[:T])                              # (T, C)
    return dout, dwpe


def unembedding_forward(xp, x, w):  # (N, C), (V, C) -> (N, V)
    """Tied output layer: logits are dot products with the token embeddings."""
    out = x @ w.T                                               # (N, V)
    return out, (xp, x, w)


def unembedding_backward(dout, cache, dw=None):  # (N, V) -> dx (N, C), dw (V, C)
    xp, x, w = cache
    # forward: out = x @ w.T, so dx = dout @ w and dw = dout.T @ x
    return dout @ w, xp.matmul(dout.T, x, out=dw)               # (N, C), (V, C)


# --------------------------------------------------------------------------- rotary positions

def rotary_tables(T, D, dtype, xp, base=10000.0):  # -> cos (T, D), sin (T, D)
    """cos/sin of the rotation angles, GPT-NeoX "rotate half" layout.

    Channel i of the first half and channel i of the second half form a pair,
    rotated by angle t * base**(-2i/D) at position t. Built on the host (float64)
    and moved to the backend in the model's dtype.
    """
    inv_freq = base ** (-np.arange(0, D, 2) / D)                # (D/2,)
    angles = np.outer(np.arange(T), inv_freq)                   # (T, D/2)
    angles = np.concatenate([angles, angles], axis=-1)          # (T, D) both halves of a pair
    return to_backend(xp, np.cos(angles), dtype), to_backend(xp, np.sin(angles), dtype)


def _rotate_half(xp, x):  # (..., D) -> (..., D): [x1, x2] -> [-x2, x1]
    half = x.shape[-1] // 2
    return xp.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def rotary_forward(xp, x, cos, sin):  # (B, H, T, D), (T, D), (T, D) -> (B, H, T, D)
    """Rotate each (x1_i, x2_i) pair of channels by its position's angle."""
    out = x * cos + _rotate_half(xp, x) * sin                   # (B, H, T, D)
    return out, (xp, cos, sin)


def rotary_backward(dout, cache):  # (B, H, T, D) -> dx (B, H, T, D)
    xp, cos, sin = cache
    # forward: out = x * cos + R(x) * sin, with R = rotate_half a linear map whose
    # transpose is -R ([[0, -I], [I, 0]]^T = -[[0, -I], [I, 0]]),
    # so dx = dout * cos + R^T(dout * sin) = dout * cos - R(dout * sin)
    return dout * cos - _rotate_half(xp, dout * sin)            # (B, H, T, D)
