"""Faster twins of some layer pairs of minirev/layers.py, for training on NumPy or CuPy.

Read the plain forms in layers.py first: these compute the same thing. Each twin
takes the same arguments and returns the same cache as its plain pair, so a twin's
forward feeds the plain backward and the other way round; tests/test_speed.py
checks that the two agree. What differs is only where the numbers go: at
minirev's sizes a new array for every intermediate costs as much as the arithmetic,
so the twins write in place and pass ``out=``. The backward twins also take the
arrays to write their parameter gradients into (``dw=``, ``db=``...; None: new
arrays), so the GPT's backward fills the views of its flat gradient buffer
directly, with no copy. The GPT trains with the twins (``gpt.ops_for``); the
gradient checks hand autograd the plain forms, which it can trace (it cannot
follow in-place writes).
"""
import math

from .layers import GELU_C, dropout_backward, dropout_forward, rotary_backward, rotary_forward, softmax_backward


def linear_forward(xp, x, w, b):  # (..., I), (I, O), (O,) -> (..., O)
    x2 = x.reshape(-1, w.shape[0])                              # (N, I)
    out = x2 @ w                                                # (N, O)
    out += b                                                    # the bias in place: no second (N, O) array
    return out.reshape(x.shape[:-1] + (w.shape[1],)), (xp, x2, w, x.shape)


def linear_backward(dout, cache, dw=None, db=None):  # (..., O) -> dx (..., I), dw (I, O), db (O,)
    xp, x2, w, x_shape = cache
    dout2 = dout.reshape(-1, w.shape[1])                        # (N, O)
    dx = (dout2 @ w.T).reshape(x_shape)                         # (..., I)
    return dx, xp.matmul(x2.T, dout2, out=dw), dout2.sum(axis=0, out=db)  # (..., I), (I, O), (O,)


def unembedding_backward(dout, cache, dw=None):  # (N, V) -> dx (N, C), dw (V, C)
    xp, x, w = cache
    return dout @ w, xp.matmul(dout.T, x, out=dw)               # (N, C), (V, C)


def embedding_backward(dout, cache, dw=None):  # (B, T, C) -> dw (V, C)
    xp, tokens, w_shape = cache
    if dw is None:
        dw = xp.zeros(w_shape, dtype=dout.dtype)                # (V, C)
    else:
        dw[...] = 0
    xp.add.at(dw, tokens, dout)
    return dw


def position_embedding_backward(dout, cache, dwpe=None):  # (B, T, C) -> dx (B, T, C), dwpe (P, C)
    xp, T, wpe_shape = cache
    if dwpe is None:
        dwpe = xp.zeros(wpe_shape, dtype=dout.dtype)            # (P, C) rows >= T unused
    else:
        dwpe[T:] = 0
    dout.sum(axis=0, out=dwpe[:T])
    return dout, dwpe


def gelu_forward(xp, x):  # (...) -> (...)
    # u = c (x + 0.044715 x^3) = c x (1 + 0.044715 x^2), then t = tanh(u), all in one buffer
    t = x * x
    t *= 0.044715
    t += 1.0
    t *= x
    t *= GELU_C
    xp.tanh(t, out=t)                                           # (...) t
    out = t + 1.0
    out *= x
    out *= 0.5                                                  # (...) 0.5 x (1 + t)
    return out, (xp, x, t)


def layernorm_forward(xp, x, g, b, eps=1e-5):  # (..., C), (C,), (C,) -> (..., C)
    C = x.shape[-1]
    xhat = x - x.sum(axis=-1, keepdims=True) / C                # (..., C) centred; normalised below, in place
    out = xhat * xhat                                           # (..., C) squares now, the output later
    rstd = out.sum(axis=-1, keepdims=True)                      # (..., 1)
    rstd *= 1.0 / C
    rstd += eps
    xp.sqrt(rstd, out=rstd)
    xp.divide(1.0, rstd, out=rstd)                              # (..., 1) 1 / sqrt(var + eps)
    xhat *= rstd                                                # (..., C) normalised
    xp.multiply(xhat, g, out=out)
    out += b                                                    # (..., C) xhat * g + b
    return out, (xp, xhat, rstd, g)


def layernorm_backward(dout, cache, dg=None, db=None):  # (..., C) -> dx (..., C), dg (C,), db (C,)
    xp, xhat, rstd, g = cache
    C = g.shape[0]
    tmp = dout * xhat                                           # (..., C)
    dg = tmp.reshape(-1, C).sum(axis=0, out=dg)                 # (C,)
    db = dout.reshape(-1, C).sum(axis=0, out=db)                # (C,)
    dx = dout * g                                               # (..., C) dxhat; becomes dx in place
    xp.multiply(dx, xhat, out=tmp)
    along = tmp.sum(axis=-1, keepdims=True)                     # (..., 1) sum(dxhat * xhat)
    along *= 1.0 / C
    dx -= dx.sum(axis=-1, keepdims=True) / C                    # minus the mean of dxhat
    xp.multiply(xhat, along, out=tmp)
    dx -= tmp                                                   # minus its component along xhat
    dx *= rstd
    return dx, dg, db


def softmax_forward(xp, x):  # (..., K) -> (..., K)
    p = x - x.max(axis=-1, keepdims=True)                       # (..., K) shifted, then exp, then p in place
    xp.exp(p, out=p)
    p /= p.sum(axis=-1, keepdims=True)
    return p, (xp, p)


def attention_forward(xp, x, w_qkv, b_qkv, w_proj, b_proj, n_head, rope=None, drop_mask=None, causal=True):
    # (B, T, C), (C, 3C), (3C,), (C, C), (C,) -> (B, T, C)
    B, T, C = x.shape
    H, D = n_head, C // n_head
    qkv, c_qkv = linear_forward(xp, x, w_qkv, b_qkv)            # (B, T, 3C)
    qkv = qkv.reshape(B, T, 3, H, D).transpose((2, 0, 3, 1, 4))   # (3, B, H, T, D)
    q, k, v = qkv[0], qkv[1], qkv[2]                            # (B, H, T, D) each
    c_rot = None
    if rope is not None:
        q, c_rot = rotary_forward(xp, q, *rope)                 # (B, H, T, D)
        k, _ = rotary_forward(xp, k, *rope)                     # (B, H, T, D)
    att = q @ k.swapaxes(-1, -2)                                # (B, H, T, T)
    att *= 1.0 / math.sqrt(D)
    # the causal mask as an added -1e9 above the diagonal (exp gives 0 there, as xp.where's -1e9 does)
    if causal:                                                  # causal=False (minirev/mlm.py): no mask
        att += xp.triu(xp.full((T, T), -1e9, dtype=att.dtype), 1)  # (B, H, T, T)
    p, c_soft = softmax_forward(xp, att)                        # (B, H, T, T) p is att's buffer
    pd, c_drop = dropout_forward(xp, p, drop_mask)              # (B, H, T, T)
    y = (pd @ v).transpose((0, 2, 1, 3)).reshape(B, T, C)       # (B, T, C)
    out, c_proj = linear_forward(xp, y, w_proj, b_proj)         # (B, T, C)
    return out, (xp, c_qkv, c_rot, q, k, v, c_soft, pd, c_drop, c_proj)


def attention_backward(dout, cache, dw_qkv=None, db_qkv=None, dw_proj=None, db_proj=None):
    # (B, T, C) -> dx (B, T, C), dw_qkv (C, 3C), db_qkv (3C,), dw_proj (C, C), db_proj (C,)
    # the steps of layers.attention_backward (read its comments there), in the same order
    xp, c_qkv, c_rot, q, k, v, c_soft, pd, c_drop, c_proj = cache
    B, H, T, D = q.shape
    dy, dw_proj, db_proj = linear_backward(dout, c_proj, dw_proj, db_proj)  # (B, T, C)
    dy = dy.reshape(B, T, H, D).transpose((0, 2, 1, 3))           # (B, H, T, D)
    # dq, dk and dv go straight into their places in one (B, T, 3, H, D) buffer: no stack, no copy
    dqkv = xp.empty((B, T, 3, H, D), dtype=dy.dtype)            # (B, T, 3, H, D)
    dq, dk, dv = dqkv.transpose((2, 0, 3, 1, 4))                # (B, H, T, D) views
    dpd = dy @ v.swapaxes(-1, -2)                               # (B, H, T, T)
    xp.matmul(pd.swapaxes(-1, -2), dy, out=dv)
    datt = softmax_backward(dropout_backward(dpd, c_drop), c_soft)  # (B, H, T, T)
    datt *= 1.0 / math.sqrt(D)
    if c_rot is None:
        xp.matmul(datt, k, out=dq)
        xp.matmul(datt.swapaxes(-1, -2), q, out=dk)
    else:
        dq[...] = rotary_backward(datt @ k, c_rot)
        dk[...] = rotary_backward(datt.swapaxes(-1, -2) @ q, c_rot)
    dx, dw_qkv, db_qkv = linear_backward(dqkv.reshape(B, T, 3 * H * D), c_qkv, dw_qkv, db_qkv)  # (B, T, C)
    return dx, dw_qkv, db_qkv, dw_proj, db_proj
