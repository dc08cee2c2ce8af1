"""Solutions of lesson 5. Try the exercises first: the lesson checks your own answers."""
import numpy as np


def my_embedding_backward(dout, tokens, vocab_size):
    dw = np.zeros((vocab_size, dout.shape[-1]))          # (V, C)
    np.add.at(dw, tokens, dout)                          # row tokens[b, t] += dout[b, t], repeats add up
    return dw


def my_layernorm_dx(dout, x, g, eps=1e-5):
    xc = x - x.mean(axis=-1, keepdims=True)                             # (..., C) centred
    r = 1.0 / np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + eps)    # (..., 1)
    xhat = xc * r                                                       # (..., C)
    dxhat = dout * g                                                    # (..., C)
    return r * (dxhat - dxhat.mean(-1, keepdims=True) - xhat * (dxhat * xhat).mean(-1, keepdims=True))


def _ln_bessel(dout, x, g, eps=1e-5):
    """The same dx with the variance divided by C - 1 (numpy's ddof=1) instead of C."""
    xc = x - x.mean(axis=-1, keepdims=True)
    r = 1.0 / np.sqrt(xc.var(axis=-1, ddof=1, keepdims=True) + eps)
    xhat, dxhat = xc * r, dout * g
    return r * (dxhat - dxhat.mean(-1, keepdims=True) - xhat * (dxhat * xhat).mean(-1, keepdims=True))


def _p(q, k):
    T, D = q.shape
    a = np.where(np.tril(np.ones((T, T), dtype=bool)), q @ k.T / np.sqrt(D), -1e9)
    p = np.exp(a - a.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def my_attention_core_backward(dy, q, k, v):
    D = q.shape[1]
    p = _p(q, k)                                         # (T, T) recomputed
    dp, dv = dy @ v.T, p.T @ dy                          # step 1: y = p v
    da = p * (dp - (p * dp).sum(axis=1, keepdims=True))  # step 2: softmax; step 3: 0 above the diagonal
    return da @ k / np.sqrt(D), da.T @ q / np.sqrt(D), dv   # step 4: a = q k^T / sqrt(D)


def _wrong_attention(dy, q, k, v, scale=True, transpose_dk=False, full_softmax=True, transpose_dv=False):
    D = q.shape[1]
    p = _p(q, k)
    dp, dv = dy @ v.T, (p @ dy if transpose_dv else p.T @ dy)
    da = p * (dp - (p * dp).sum(axis=1, keepdims=True)) if full_softmax else p * dp
    s = 1 / np.sqrt(D) if scale else 1.0
    return da @ k * s, (da @ q if transpose_dk else da.T @ q) * s, dv


def _layernorm_parts(dout, x, g, eps=1e-5):
    xc = x - x.mean(axis=-1, keepdims=True)
    r = 1.0 / np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + eps)
    return xc * r, r, dout * g


def _ln_no_xhat(dout, x, g):
    xhat, r, dxhat = _layernorm_parts(dout, x, g)
    return r * (dxhat - dxhat.mean(-1, keepdims=True))


def _ln_no_mean(dout, x, g):
    xhat, r, dxhat = _layernorm_parts(dout, x, g)
    return r * (dxhat - xhat * (dxhat * xhat).mean(-1, keepdims=True))


def _ln_no_gain(dout, x, g):
    xhat, r, _ = _layernorm_parts(dout, x, g)
    return r * (dout - dout.mean(-1, keepdims=True) - xhat * (dout * xhat).mean(-1, keepdims=True))


def _ln_no_r(dout, x, g):
    xhat, r, dxhat = _layernorm_parts(dout, x, g)
    return dxhat - dxhat.mean(-1, keepdims=True) - xhat * (dxhat * xhat).mean(-1, keepdims=True)


def _embedding_plus_equals(dout, tokens, V):
    dw = np.zeros((V, dout.shape[-1]))
    dw[tokens] += dout                                   # a repeated row keeps only one of its terms
    return dw


def _embedding_assign(dout, tokens, V):
    dw = np.zeros((V, dout.shape[-1]))
    dw[tokens] = dout
    return dw


# Common wrong answers, and the hint the check gives when yours matches one.
MISTAKES = {
    "embedding backward": [
        ("dw[tokens] += dout (or = dout) keeps only ONE gradient of a repeated token (NumPy buffers fancy-index "
         "updates): use np.add.at(dw, tokens, dout), which accumulates", _embedding_plus_equals),
    ],
    "layernorm dx": [
        ("the xhat term is missing: r depends on x too, which removes dxhat's component along xhat",
         _ln_no_xhat),
        ("the mean term is missing: mu depends on every channel, which removes the mean of dxhat",
         _ln_no_mean),
        ("start from dxhat = dout * g: the gain g multiplies xhat in the forward", _ln_no_gain),
        ("the whole bracket is multiplied by r = 1/sqrt(var + eps)", _ln_no_r),
        ("LayerNorm's variance is the plain mean of squares (divide by C): no Bessel correction, no ddof=1",
         _ln_bessel),
    ],
    "attention backward dq": [
        ("the scores are divided by sqrt(D): so are dq and dk",
         lambda dy, q, k, v: _wrong_attention(dy, q, k, v, scale=False)),
        ("the softmax backward needs its second term: p * (dp - sum_s p dp), not p * dp",
         lambda dy, q, k, v: _wrong_attention(dy, q, k, v, full_softmax=False)),
    ],
    "attention backward dk": [
        ("a = q k^T, so dk = da^T q: transpose da (row t of da belongs to query t, not key t)",
         lambda dy, q, k, v: _wrong_attention(dy, q, k, v, transpose_dk=True)),
    ],
    "attention backward dv": [
        ("y = p v, so dv = p^T dy: transpose p", lambda dy, q, k, v: _wrong_attention(dy, q, k, v, transpose_dv=True)),
    ],
}
