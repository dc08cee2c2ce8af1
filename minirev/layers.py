"""Layers as forward/backward pairs, in the style of cs231n's ``layers.py``.

Every operation is a pair::

    out, cache = <op>_forward(xp, inputs..., params...)
    dinputs..., dparams... = <op>_backward(dout, cache[, dparams...])

* ``xp`` is the array namespace (numpy, cupy, or autograd.numpy for the
  gradient checks); see ``minirev/backend.py``. Each pair exists once: the GPT
  trains with it and the gradient checks hand autograd the very same forward.
  The embeddings, rotary positions and the output layer are written in
  minirev/embeddings.py and imported here with the rest.
* At minirev's sizes a new array for every intermediate costs as much as the
  arithmetic, so a forward writes in place (``out += b``, ``t *= x``), but only
  into an array it has just made itself and needs nowhere else: on NumPy and
  CuPy that is in place; on autograd's traced values ``+=`` falls back to a new
  array, so autograd still traces the code. Never ``out=`` in a forward (autograd
  cannot trace it); ``out=`` and scatter-adds (``xp.add.at``) live in backwards.
* A backward with parameters takes the arrays to write their gradients into
  (``dw=None, db=None``...; None: new arrays) and returns them: the GPT passes
  the views of its flat gradient buffer, so no gradient is copied.
* Every gradient is named ``d<name>`` and has the shape of ``<name>``.

A backward returns one array when its layer has one gradient, else a tuple in
the order named by the comment on its ``def`` line.

Shapes (picoGPT-style comments on every line that makes a tensor):
    N = rows (examples x positions)   B = batch (sentences)   T = positions
    C = width (channels)              H = heads               D = C // H, head dim
    V = vocabulary size               P = max_len, rows of the positional table
    M = the one-layer model's vocabulary, K = its context positions
"""
import math

import numpy as np

from .backend import to_backend
# the pairs that bring tokens and positions in and turn vectors into logits live in
# minirev/embeddings.py; they are imported here, so every pair can be imported from layers
from .embeddings import (embedding_backward, embedding_forward, position_embedding_backward,  # noqa: F401
                         position_embedding_forward, rotary_backward, rotary_forward, rotary_tables,
                         unembedding_backward, unembedding_forward)


# --------------------------------------------------------------------------- softmax, cross-entropy

def softmax_forward(xp, x):  # (..., K) -> (..., K)
    """p = exp(x) / sum exp(x) over the last axis; every softmax of every model is this one."""
    p = xp.exp(x - x.max(axis=-1, keepdims=True))               # (..., K) shifted: same p, no overflow
    p /= p.sum(axis=-1, keepdims=True)                          # (..., K) rows sum to 1
    return p, (xp, p)


def softmax_backward(dp, cache):  # (..., K) -> dx (..., K)
    xp, p = cache
    # forward: p_k = exp(x_k) / sum_j exp(x_j), so dp_k/dx_j = p_k ([k = j] - p_j) and
    # dx = p * (dp - sum_k p_k dp_k). It needs only the output p, not the input (llm.c).
    return p * (dp - (p * dp).sum(axis=-1, keepdims=True))      # (..., K)


def cross_entropy_forward(xp, logits, targets):  # (N, V), (N,) int -> scalar
    """Mean of -log softmax(logits)[target] over the N rows, via log sum exp (not log of
    softmax_forward), so a probability that underflows to 0 still gives a finite loss."""
    shifted = logits - logits.max(axis=-1, keepdims=True)      # (N, V) same softmax, no overflow
    logz = xp.log(xp.exp(shifted).sum(axis=-1))                 # (N,)   log partition function
    picked = shifted[xp.arange(len(targets)), targets]          # (N,)   logit of the right answer
    loss = (logz - picked).mean()
    return loss, (xp, shifted, logz, targets)


def cross_entropy_backward(dloss, cache):  # scalar -> (N, V)
    xp, shifted, logz, targets = cache
    # forward: loss = mean(logz - shifted[target]);  d logz / d shifted = softmax, which
    # the forward's logz gives without a second sum: p = exp(shifted - logz)
    dlogits = xp.exp(shifted - logz[:, None])                   # (N, V) p(v | context)
    dlogits[xp.arange(len(targets)), targets] -= 1              # (N, V) p - onehot(target)
    dlogits *= dloss / len(targets)
    return dlogits


# --------------------------------------------------------------------------- the one-layer model's pieces

def l2norm_forward(xp, c):  # (B, M) -> (B, M)
    """f = c / ||c||_2 per row: the paper's "LN" of the one-layer model (no mean, no gain)."""
    norm = xp.sqrt((c * c).sum(axis=1, keepdims=True))          # (B, 1)
    f = c / norm                                                # (B, M) unit rows
    return f, (xp, f, norm)


def l2norm_backward(df, cache):  # (B, M) -> dc (B, M)
    xp, f, norm = cache
    # forward: f = c / ||c||, whose Jacobian is (I - f f^T) / ||c||: the part of df along f
    # is removed (scaling c does not change f), the rest is divided by the norm
    return (df - f * (f * df).sum(axis=1, keepdims=True)) / norm  # (B, M)


def token_attention_forward(xp, Z, context):  # (M, M), (B, K) int -> (B, K)
    """The one-layer model's attention b_t = softmax_t Z[x_q, x_t], query x_q = x_K: with one-hot
    embeddings, Z holds one logit per (query token, context token) pair in place of W_Q W_K^T."""
    s = Z[context[:, -1:], context]                             # (B, K) Z[x_q, x_t], a gather
    b, c_soft = softmax_forward(xp, s)                          # (B, K) rows sum to 1
    return b, (xp, context, Z.shape, c_soft)


def token_attention_backward(db, cache):  # (B, K) -> dZ (M, M)
    xp, context, Z_shape, c_soft = cache
    ds = softmax_backward(db, c_soft)                           # (B, K)
    # forward: s = Z[x_q, x_t] (a gather), so scatter ds back; a repeated (x_q, x_t) adds up
    dZ = xp.zeros(Z_shape, dtype=ds.dtype)                      # (M, M)
    xp.add.at(dZ, (context[:, -1:], context), ds)
    return dZ


# --------------------------------------------------------------------------- layer norm, linear, GELU

def layernorm_forward(xp, x, g, b, eps=1e-5):  # (..., C), (C,), (C,) -> (..., C)
    """Normalise each position's C channels to mean 0, variance 1, then scale and shift.

    Means are written sum / C (the variance's as sum * (1/C)): at these sizes
    np.mean's Python wrapper costs more than its arithmetic.
    """
    C = x.shape[-1]
    xhat = x - x.sum(axis=-1, keepdims=True) / C                # (..., C) centred; normalised below, in place
    var = (xhat * xhat).sum(axis=-1, keepdims=True)             # (..., 1) sum of squares
    var *= 1.0 / C                                              # (..., 1) the variance
    var += eps
    rstd = 1.0 / xp.sqrt(var)                                   # (..., 1)
    xhat *= rstd                                                # (..., C) normalised
    out = xhat * g
    out += b                                                    # (..., C) xhat * g + b
    return out, (xp, xhat, rstd, g)


def layernorm_backward(dout, cache, dg=None, db=None):  # (..., C) -> dx (..., C), dg (C,), db (C,)
    xp, xhat, rstd, g = cache
    C = g.shape[0]
    # forward: out = xhat * g + b, so dg = sum(dout * xhat), db = sum(dout) over positions
    tmp = dout * xhat                                           # (..., C) scratch, reused below
    dg = tmp.reshape(-1, C).sum(axis=0, out=dg)                 # (C,)
    db = dout.reshape(-1, C).sum(axis=0, out=db)                # (C,)
    dx = dout * g                                               # (..., C) dxhat; becomes dx in place
    # forward: xhat = (x - mean(x)) * rstd; the mean and rstd depend on x too, which
    # removes the mean of dxhat and its component along xhat (llm.c doc/layernorm):
    # dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
    xp.multiply(dx, xhat, out=tmp)
    along = tmp.sum(axis=-1, keepdims=True)                     # (..., 1) sum(dxhat * xhat)
    along *= 1.0 / C
    dx -= dx.sum(axis=-1, keepdims=True) / C                    # minus the mean of dxhat
    xp.multiply(xhat, along, out=tmp)
    dx -= tmp                                                   # minus its component along xhat
    dx *= rstd
    return dx, dg, db


def linear_forward(xp, x, w, b):  # (..., I), (I, O), (O,) -> (..., O)
    """Affine map x @ w + b with w stored (in, out), as GPT-2's Conv1D."""
    x2 = x.reshape(-1, w.shape[0])                              # (N, I) one matmul, not B small ones
    out = x2 @ w                                                # (N, O)
    out += b                                                    # the bias in place: no second (N, O) array
    return out.reshape(x.shape[:-1] + (w.shape[1],)), (xp, x2, w, x.shape)  # (..., O)


def linear_backward(dout, cache, dw=None, db=None):  # (..., O) -> dx (..., I), dw (I, O), db (O,)
    xp, x2, w, x_shape = cache
    dout2 = dout.reshape(-1, w.shape[1])                        # (N, O)
    # forward: out = x @ w + b, so dx = dout @ w.T, dw = x.T @ dout, db = sum of dout rows
    dx = (dout2 @ w.T).reshape(x_shape)                         # (..., I)
    return dx, xp.matmul(x2.T, dout2, out=dw), dout2.sum(axis=0, out=db)  # (..., I), (I, O), (O,)


GELU_C = math.sqrt(2.0 / math.pi)  # a Python float: keeps float32 arrays float32


def gelu_forward(xp, x):  # (...) -> (...)
    """GPT-2's "gelu_new": 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    # u = c (x + 0.044715 x^3) = c x (1 + 0.044715 x^2), built in place, then t = tanh(u)
    t = x * x
    t *= 0.044715
    t += 1.0
    t *= x
    t *= GELU_C                                                 # (...) u
    t = xp.tanh(t)                                              # (...) t
    out = t + 1.0
    out *= x
    out *= 0.5                                                  # (...) 0.5 x (1 + t)
    return out, (xp, x, t)


def gelu_backward(dout, cache):  # (...) -> dx (...)
    xp, x, t = cache
    # forward: out = 0.5 x (1 + t), t = tanh(u), u = c (x + 0.044715 x^3), so
    # dout/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) du/dx = 0.5 (1 + t + x (1 - t^2) du/dx)
    # Written with in-place operations: at this size every temporary array costs time.
    dx = x * x                                                  # (...) x^2
    dx *= GELU_C * 3 * 0.044715
    dx += GELU_C                                                # du/dx = c (1 + 3 * 0.044715 x^2)
    dx *= x                                                     # x du/dx
    one_minus_t2 = t * t
    one_minus_t2 *= -1.0
    one_minus_t2 += 1.0                                         # 1 - t^2
    dx *= one_minus_t2                                          # x (1 - t^2) du/dx
    dx += t
    dx += 1.0
    dx *= 0.5                                                   # 0.5 (1 + t + x (1 - t^2) du/dx)
    dx *= dout                                                  # (...) chain rule
    return dx


# --------------------------------------------------------------------------- dropout, residual

def dropout_mask(rng, shape, p, xp, dtype):  # -> (shape) on the backend, or None
    """Inverted-dropout mask drawn on the HOST from ``rng``: 0 or 1/(1-p).

    None (no dropout) when rng is None (evaluation) or p == 0. Drawing always in
    float32 makes the masks identical for float32 and float64 copies of a model.
    """
    if rng is None or p == 0:
        return None
    keep = (rng.random(shape, dtype=np.float32) >= p).astype(dtype)  # (shape) 0 or 1
    keep *= 1.0 / (1.0 - p)                                     # kept units are scaled up
    return to_backend(xp, keep)


def dropout_forward(xp, x, mask):  # (...), (...) or None -> (...)
    """Zero the dropped units; the mask already carries the 1/(1-p) scale."""
    out = x if mask is None else x * mask                       # (...)
    return out, (xp, mask)


def dropout_backward(dout, cache):  # (...) -> dx (...)
    xp, mask = cache
    # forward: out = x * mask, so dx = dout * mask
    return dout if mask is None else dout * mask


def residual_forward(xp, x, fx):  # (B, T, C), (B, T, C) -> (B, T, C)
    """The residual stream: x + f(x)."""
    return x + fx, (xp,)


def residual_backward(dout, cache):  # (B, T, C) -> dx, dfx (B, T, C)
    # forward: out = x + fx, so the gradient reaches both summands unchanged
    return dout, dout


# --------------------------------------------------------------------------- causal self-attention

def attention_forward(xp, x, w_qkv, b_qkv, w_proj, b_proj, n_head, rope=None, drop_mask=None, causal=True):
    # (B, T, C), (C, 3C), (3C,), (C, C), (C,) -> (B, T, C)
    """Multi-head self-attention, GPT-2 style, all heads at once; causal=False: every query sees every key.

    rope: (cos, sin) tables of shape (T, D) that rotate q and k (rotary
    positions), or None. drop_mask: (B, H, T, T) dropout mask for the attention
    probabilities, or None.
    """
    B, T, C = x.shape
    H, D = n_head, C // n_head
    qkv, c_qkv = linear_forward(xp, x, w_qkv, b_qkv)            # (B, T, 3C) one fused matmul
    qkv = qkv.reshape(B, T, 3, H, D).transpose((2, 0, 3, 1, 4))   # (3, B, H, T, D)
    q, k, v = qkv[0], qkv[1], qkv[2]                            # (B, H, T, D) each
    c_rot = None
    if rope is not None:
        q, c_rot = rotary_forward(xp, q, *rope)                 # (B, H, T, D)
        k, _ = rotary_forward(xp, k, *rope)                     # (B, H, T, D) same tables
    att = q @ k.swapaxes(-1, -2)                                # (B, H, T, T) query t, key s
    att *= 1.0 / math.sqrt(D)
    if causal:  # the mask: -1e9 added where s > t (no peeking ahead), which softmax's exp turns into 0
        att += xp.triu(xp.full((T, T), -1e9, dtype=att.dtype), 1)  # (B, H, T, T)
    p, c_soft = softmax_forward(xp, att)                        # (B, H, T, T) attention weights
    pd, c_drop = dropout_forward(xp, p, drop_mask)              # (B, H, T, T)
    y = pd @ v                                                  # (B, H, T, D) weighted values
    y = y.transpose((0, 2, 1, 3)).reshape(B, T, C)                # (B, T, C) heads side by side
    out, c_proj = linear_forward(xp, y, w_proj, b_proj)         # (B, T, C)
    return out, (xp, c_qkv, c_rot, q, k, v, c_soft, pd, c_drop, c_proj)


def attention_backward(dout, cache, dw_qkv=None, db_qkv=None, dw_proj=None, db_proj=None):
    # (B, T, C) -> dx (B, T, C), dw_qkv (C, 3C), db_qkv (3C,), dw_proj (C, C), db_proj (C,)
    xp, c_qkv, c_rot, q, k, v, c_soft, pd, c_drop, c_proj = cache
    B, H, T, D = q.shape
    # the layers of the forward, undone in reverse order
    # forward: out = y @ w_proj + b_proj
    dy, dw_proj, db_proj = linear_backward(dout, c_proj, dw_proj, db_proj)  # (B, T, C)
    # forward: y = y.transpose((0, 2, 1, 3)).reshape(B, T, C), so split the heads again
    dy = dy.reshape(B, T, H, D).transpose((0, 2, 1, 3))           # (B, H, T, D)
    # forward: qkv.reshape(B, T, 3, H, D).transpose((2, 0, 3, 1, 4)), so dq, dk and dv go
    # straight into their places in one (B, T, 3, H, D) buffer, the inverse: no stack, no copy
    dqkv = xp.empty((B, T, 3, H, D), dtype=dy.dtype)            # (B, T, 3, H, D)
    dq, dk, dv = dqkv.transpose((2, 0, 3, 1, 4))                # (B, H, T, D) views
    # forward: y = pd @ v, so dpd = dy @ v.T and dv = pd.T @ dy
    dpd = dy @ v.swapaxes(-1, -2)                               # (B, H, T, T)
    xp.matmul(pd.swapaxes(-1, -2), dy, out=dv)
    dp = dropout_backward(dpd, c_drop)                          # (B, H, T, T)
    # forward: p = softmax(att) over the keys. Masked entries (causal) have p = 0, so the
    # added -1e9 passes them no gradient; unmasked (causal=False): the same line.
    datt = softmax_backward(dp, c_soft)                         # (B, H, T, T)
    # forward: att = (q @ k.T) / sqrt(D)
    datt *= 1.0 / math.sqrt(D)
    if c_rot is None:
        xp.matmul(datt, k, out=dq)                              # dq = datt @ k
        xp.matmul(datt.swapaxes(-1, -2), q, out=dk)             # dk = datt.T @ q
    else:
        # forward: q = rotary(q), k = rotary(k) (datt @ k, datt.T @ q are for the rotated q, k)
        dq[...] = rotary_backward(datt @ k, c_rot)              # (B, H, T, D)
        dk[...] = rotary_backward(datt.swapaxes(-1, -2) @ q, c_rot)
    dx, dw_qkv, db_qkv = linear_backward(dqkv.reshape(B, T, 3 * H * D), c_qkv, dw_qkv, db_qkv)  # (B, T, C)
    return dx, dw_qkv, db_qkv, dw_proj, db_proj
