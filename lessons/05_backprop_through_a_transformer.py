# %% [markdown]
# # Lesson 5: backprop through a transformer, one layer at a time
#
# **By the end of this lesson** you will be able to write, and check, the
# backward pass of every layer of the GPT that the paper's experiments train:
# the token embedding (where a repeated token must *add* its gradients: the
# scatter-add), LayerNorm, the linear layers and GELU of the MLP, causal
# self-attention, the residual stream, and the tied output layer that reuses
# the token embeddings. Each layer is a forward/backward pair from
# `minirev.layers`; each is checked against autograd with
# `minirev.gradcheck.check_layer` *before* it is used to build anything larger.
# At the end the whole GPT is checked with `minirev.check_model`.
#
# **Time:** about 60 minutes of reading. The code, measured on 2 cores:
# 2 s full, 2.5 s fast (the sizes are tiny in both modes: a
# gradient check needs no big network).
#
# Paper: arXiv 2405.04669, §5 trains a GPT-2 (`docs/paper.md`, §4, lists its
# settings as the public code runs them); this lesson builds that network's
# backward pass, layer by layer.
#
# The pattern (cs231n's `layers.py`; cs231n is Stanford's course on neural
# networks for vision, https://cs231n.github.io, whose assignments write each
# layer as a forward/backward pair in NumPy): every operation is a pair
#
#     out, cache = <op>_forward(xp, inputs..., params...)
#     d<inputs>..., d<params>... = <op>_backward(dout, cache)
#
# where `dout` is dL/d(out) for whatever scalar loss L sits downstream, and
# every `d<name>` has the shape of `<name>`. A model's backward calls the layer
# backwards in the reverse order of its forward.

# %%
# In Colab this first installs minirev (the repository is set once in lessons/colab.py);
# elsewhere: pip install -e ".[lessons]" in the repository (lessons/README.md).
import os
import sys

if "google.colab" in sys.modules:
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "minirev @ git+https://github.com/OWNER/minirev"], check=True)
try:
    from minirev.lessons import FAST, check, lesson, save_figure  # (first: it also asks for one BLAS thread)
except ModuleNotFoundError as error:
    raise SystemExit(f"{error}: install the package first: pip install -e \".[lessons]\" in the repository") from None

import autograd  # noqa: E402
import autograd.numpy as anp  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from minirev import GPT, check_layer, check_model, reversal_data  # noqa: E402
from minirev.layers import (attention_backward, attention_forward, embedding_backward,  # noqa: E402
                            embedding_forward, gelu_backward, gelu_forward, layernorm_backward,
                            layernorm_forward, linear_backward, linear_forward,
                            position_embedding_backward, position_embedding_forward,
                            residual_backward, residual_forward, softmax_backward, softmax_forward,
                            unembedding_backward, unembedding_forward)

OUT = lesson("05_backprop_through_a_transformer")
rng = np.random.default_rng(0)
B, T, C, V, H = 2, 4, 8, 11, 2          # batch, positions, width, vocabulary, heads: tiny on purpose
print(f"{'fast' if FAST else 'full'} mode (the same tiny sizes in both); figures go to {OUT}")
print(f"sizes: B={B} sentences, T={T} positions, C={C} channels, V={V} tokens, H={H} heads")

# %% [markdown]
# ## 1. The tool: a "fake loss" and autograd
#
# To check `<op>_backward` we need *some* scalar loss downstream of the layer.
# `check_layer` uses llm.c's trick: draw a random `dout` of the output's shape
# and take `L = sum(out * dout)`. Then dL/d(out) is exactly `dout`, so the
# hand-written backward, fed `dout`, must return dL/d(input) for every input.
# autograd differentiates the *same forward function* (run with
# `xp = autograd.numpy`), and the two are compared in float64, one line per
# input, by relative error `|hand - auto| / (|hand| + |auto|)`: 0 for a
# perfect match, about 1/3 for a missing factor 2, about 1 for a wrong sign.
# The bound is 1e-7; right gradients land near 1e-16 (rounding), wrong ones
# far above.

# %% [markdown]
# ## 2. The token embedding, and a token used twice
#
# Forward: `out[b, t] = w[tokens[b, t]]`, a row lookup (V x C table -> B x T x C).
#
# Backward, derived. Write the lookup with a one-hot matrix:
# $out_{bt} = \sum_v [\,tokens_{bt} = v\,]\, w_v$. So
#
# $$\frac{\partial L}{\partial w_v} = \sum_{b,t}\, [\,tokens_{bt} = v\,]\; dout_{bt}:$$
#
# row v of `dw` is the **sum** of the gradients of every position that read
# token v, and 0 for a token nobody read. In the batch below token 3 is
# read three times and token 5 twice. Step 1, checked: that sum for token 3,
# written out, against autograd's gradient of the layer.

# %%
tokens = np.array([[3, 0, 3, 5],
                   [7, 3, 1, 5]])                                  # (B, T): 3 three times, 5 twice
w = rng.standard_normal((V, C))                                    # (V, C)
dout = rng.standard_normal((B, T, C))                              # (B, T, C) a gradient from above
dw_right = embedding_backward(dout, embedding_forward(np, tokens, w)[1])   # (V, C) the package's answer
row3 = dout[0, 0] + dout[0, 2] + dout[1, 1]                        # the three positions that read token 3
print(f"step 1: row 3 of dw as a sum of three gradients vs the package: max |diff| = "
      f"{np.abs(row3 - dw_right[3]).max():.1e}")
_ = check_layer(embedding_forward, embedding_backward, dict(tokens=tokens, w=w), wrt=["w"],
                title="token embedding: out = w[tokens]  (the package, against autograd)")

# %% [markdown]
# The token ids are inputs too, but integers have no gradient: `wrt=["w"]`
# names the only input the backward differentiates.
#
# **Exercise A (the scatter-add).** Write the embedding backward: given
# `dout` (B x T x C), the token ids (B x T) and the vocabulary size V, return
# `dw` (V x C), for ANY batch, repeated tokens included. NumPy has several
# ways to write "add these rows into those rows"; not all of them add when
# an index repeats. Try yours on this batch.

# %%
def my_embedding_backward(dout, tokens, vocab_size):
    """dw (V x C) of the lookup out = w[tokens], given dout (B x T x C)."""
    raise NotImplementedError("exercise: scatter-add each position's gradient into its token's row")


check("embedding backward", my_embedding_backward, embedding_backward(dout, embedding_forward(np, tokens, w)[1]),
      args=(dout, tokens, V))                                        # expected from the same inputs, here

# %% [markdown]
# The classic trap: `dw[tokens] += dout` looks right, and is wrong with
# repeated tokens. NumPy evaluates it as `dw[tokens] = dw[tokens] + dout`:
# the right side has one row per position, and the assignment writes a
# repeated row several times, each write replacing the last. Only one of the
# gradients of token 3 survives. `np.add.at(dw, tokens, dout)` is the
# unbuffered scatter-add that accumulates them all (the package uses it).

# %%
dw_wrong = np.zeros((V, C))
dw_wrong[tokens] += dout                                           # each repeated row keeps ONE term
for tok in (3, 5, 7):
    uses = int((tokens == tok).sum())
    lost = np.abs(dw_right[tok] - dw_wrong[tok]).max()
    print(f"token {tok}: used {uses}x; max |right - (+= by index)| on its row = {lost:.3f}")
_ = check_layer(position_embedding_forward, position_embedding_backward,
                dict(x=rng.standard_normal((B, T, C)), wpe=rng.standard_normal((6, C))), wrt=["x", "wpe"],
                title="learned positions: out = x + wpe[:T]  (rows T.. of the table get no gradient)")

# %% [markdown]
# ## 3. LayerNorm
#
# Forward, at each position separately, over its C channels:
#
#     mu = mean(x)    r = 1 / sqrt(var(x) + eps)    xhat = (x - mu) r    out = g * xhat + b
#
# Backward. `dg = sum of dout * xhat` and `db = sum of dout` over all positions
# (g and b are shared by every position). For x, write `dxhat = dout * g`;
# the hard part is that mu and r depend on *every* channel of x. Differentiate
# `xhat_j = (x_j - mu) r` by `x_i`: `d mu / d x_i = 1/C` and
# `d r / d x_i = -r^3 (x_i - mu) / C`, so
#
#     d xhat_j / d x_i = r (delta_ij - 1/C - xhat_i xhat_j / C)
#
# Step 1, checked below: this Jacobian against finite differences, at one
# position. The last step, `dx_i = sum_j dxhat_j d xhat_j / d x_i` written
# with whole arrays, is exercise B. (What do the -1/C term and the
# -xhat_i xhat_j / C term each do to dxhat?)

# %%
x = rng.standard_normal((B, T, C)) * 3 + 1                         # (B, T, C) not normalised yet
g, b = rng.standard_normal(C), rng.standard_normal(C)              # (C,), (C,)
x1 = x[0, 0]                                                       # (C,) one position
xhat_of = lambda z: (z - z.mean()) / np.sqrt(((z - z.mean()) ** 2).mean() + 1e-5)  # noqa: E731
r1 = 1 / np.sqrt(((x1 - x1.mean()) ** 2).mean() + 1e-5)
xh1 = xhat_of(x1)
J = r1 * (np.eye(C) - 1 / C - np.outer(xh1, xh1) / C)              # J[i, j] = d xhat_j / d x_i (symmetric)
J_numeric = np.stack([(xhat_of(x1 + 1e-6 * e) - xhat_of(x1 - 1e-6 * e)) / 2e-6 for e in np.eye(C)])
print(f"step 1: d xhat / d x, formula vs finite differences: max |diff| = {np.abs(J - J_numeric).max():.1e}")
_ = check_layer(layernorm_forward, layernorm_backward, dict(x=x, g=g, b=b), wrt=["x", "g", "b"],
                title="LayerNorm: out = g * (x - mean) / std + b  (the package, against autograd)")

# %% [markdown]
# **Exercise B.** Write the LayerNorm input gradient `dx` from `dout`, `x`
# and `g` (recompute `xhat` and `r` from x; eps = 1e-5, the variance is the
# plain mean of squares, no Bessel correction), without building J. Checked
# against the package's `layernorm_backward`.

# %%
def my_layernorm_dx(dout, x, g, eps=1e-5):
    """dx (same shape as x) of LayerNorm over the last axis, given dout, x and the gain g."""
    raise NotImplementedError("exercise: recompute xhat and r, then dx from the Jacobian above")


dout_ln = rng.standard_normal((B, T, C))                           # its own name: exercise A's dout stays
dx_package, _, _ = layernorm_backward(dout_ln, layernorm_forward(np, x, g, b)[1])
check("layernorm dx", my_layernorm_dx, dx_package, args=(dout_ln, x, g))

# %% [markdown]
# Once your check says OK (or after a real try), compare with `my_layernorm_dx`
# in `minirev/lessons/solutions/05_backprop_through_a_transformer.py`. Read
# your formula: the gradient loses its mean (shifting x does nothing after centring) and its component
# along xhat (scaling x does nothing after normalising).

# %% [markdown]
# ## 4. The MLP: linear, GELU, linear
#
# Linear, `out = x @ w + b` with w stored (in, out) as in GPT-2:
# `dx = dout @ w.T`, `dw = x.T @ dout` (with the B x T positions flattened into
# rows, so the sum over positions is inside the matrix product),
# `db = sum of dout over rows`.
#
# GELU (GPT-2's tanh form), `out = 0.5 x (1 + tanh(u))` with
# `u = sqrt(2/pi) (x + 0.044715 x^3)`: elementwise, so `dx = dout * out'(x)`,
# `out'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) du/dx` with `t = tanh(u)`.

# %%
_ = check_layer(linear_forward, linear_backward,
                dict(x=rng.standard_normal((B, T, C)), w=rng.standard_normal((C, 4 * C)), b=rng.standard_normal(4 * C)),
                wrt=["x", "w", "b"], title="linear: out = x @ w + b")
_ = check_layer(gelu_forward, gelu_backward, dict(x=rng.standard_normal((B, T, 4 * C)) * 2), wrt=["x"],
                title="GELU (tanh form)")

# %% [markdown]
# ## 5. The residual stream: two paths, so two gradients that add
#
# A GPT block does `x = x + mlp(layernorm(x))`. The forward of a sum passes
# `dout` unchanged to both summands (`residual_backward` returns it twice).
# But x fed *both* summands: once directly, once through the MLP branch. So
# its gradient is the sum of the two paths: `dx = dout + (dout sent back
# through the branch)`. Here is that block, written from the checked layers,
# each backward undoing a forward line in reverse order.

# %%
def mlp_block_forward(xp, x, g, b, w_fc, b_fc, w_proj, b_proj):  # (B, T, C) -> (B, T, C)
    h, c_ln = layernorm_forward(xp, x, g, b)                       # (B, T, C)
    h, c_fc = linear_forward(xp, h, w_fc, b_fc)                    # (B, T, 4C)
    h, c_gelu = gelu_forward(xp, h)                                # (B, T, 4C)
    h, c_proj = linear_forward(xp, h, w_proj, b_proj)              # (B, T, C)
    out, c_res = residual_forward(xp, x, h)                        # (B, T, C) x + mlp(ln(x))
    return out, (c_ln, c_fc, c_gelu, c_proj, c_res)


def mlp_block_backward(dout, cache, forget_skip=False):
    # -> dx, dg, db, dw_fc, db_fc, dw_proj, db_proj
    c_ln, c_fc, c_gelu, c_proj, c_res = cache
    dx, dh = residual_backward(dout, c_res)                        # forward: out = x + h
    dh, dw_proj, db_proj = linear_backward(dh, c_proj)             # forward: h = h @ w_proj + b_proj
    dh = gelu_backward(dh, c_gelu)                                 # forward: h = gelu(h)
    dh, dw_fc, db_fc = linear_backward(dh, c_fc)                   # forward: h = h @ w_fc + b_fc
    dh, dg, db = layernorm_backward(dh, c_ln)                      # forward: h = ln(x)
    dx = dh if forget_skip else dx + dh                            # x fed both paths: they add
    return dx, dg, db, dw_fc, db_fc, dw_proj, db_proj


block_inputs = dict(x=rng.standard_normal((B, T, C)), g=1 + 0.1 * rng.standard_normal(C),
                    b=0.1 * rng.standard_normal(C), w_fc=0.3 * rng.standard_normal((C, 4 * C)),
                    b_fc=0.1 * rng.standard_normal(4 * C), w_proj=0.3 * rng.standard_normal((4 * C, C)),
                    b_proj=0.1 * rng.standard_normal(C))
block_wrt = ["x", "g", "b", "w_fc", "b_fc", "w_proj", "b_proj"]
_ = check_layer(mlp_block_forward, mlp_block_backward, block_inputs, wrt=block_wrt,
                title="pre-LN MLP block: x + mlp(ln(x))")
_ = check_layer(mlp_block_forward, lambda d, c: mlp_block_backward(d, c, forget_skip=True), block_inputs,
                wrt=block_wrt, title="the same block, with the skip path's gradient FORGOTTEN (expect FAIL on x)")

# %% [markdown]
# Only `x` fails when the skip path is forgotten: the parameters sit on the
# branch alone, so their gradients are untouched. A check per input tells
# you *where* a backward is wrong.
#
# ## 6. Causal self-attention
#
# Forward, per head (head dim D = C/H): `q, k, v = x @ w_qkv + b_qkv`, split;
# scores `att = q k^T / sqrt(D)` (T x T: query position t, key position s);
# entries with s > t set to -1e9 (no peeking at later tokens);
# `p = softmax over s`; `y = p v`; heads side by side; `out = y @ w_proj + b_proj`.
# The projections are linear layers (section 4). The new part is one head's
# core, from q, k, v (each T x D) to y (T x D):
#
# $$a = \frac{q k^\top}{\sqrt D},\qquad \tilde a_{ts} = \begin{cases} a_{ts} & s \le t\\ -10^9 & s > t\end{cases},
#   \qquad p = \mathrm{softmax}_s(\tilde a),\qquad y = p\, v .$$
#
# Backward, one line of the forward at a time, last line first:
#
# 1. $y = p v$: a matrix product, so $dp = dy\, v^\top$ and $dv = p^\top dy$.
# 2. $p = \mathrm{softmax}(\tilde a)$, row by row: lesson 4's softmax
#    backward, $d\tilde a = p \odot (dp - \sum_s p\, dp)$.
# 3. The mask: $\tilde a_{ts}$ is a copy of $a_{ts}$ where $s \le t$ and a
#    constant elsewhere, so $da = d\tilde a$ on and below the diagonal and 0
#    above it. (There $p_{ts} = e^{-10^9}/\ldots = 0$, so step 2 already gave 0.)
# 4. $a = q k^\top / \sqrt D$, i.e. $a_{ts} = \sum_d q_{td} k_{sd} / \sqrt D$:
#    differentiate by $q_{td}$ and by $k_{sd}$, and write $dq$ and $dk$ as
#    matrix products. This step is yours.
#
# **Exercise C (attention backward).** Write `my_attention_core_backward(dy, q, k, v)`
# returning `(dq, dk, dv)` for one head (recompute p from q and k). Each
# output is checked on its own against autograd on the forward below; steps
# 1 to 3 are checked first, one printed comparison each.

# %%
def attention_core_forward(xp, q, k, v):  # (T, D) x 3 -> (T, D)
    """One head's causal attention, from q, k, v to y."""
    T, D = q.shape
    a = q @ k.T / np.sqrt(D)                                       # (T, T) scores
    a = xp.where(np.tril(np.ones((T, T), dtype=bool)), a, -1e9)    # (T, T) causal mask
    p = xp.exp(a - a.max(axis=1, keepdims=True))
    p = p / p.sum(axis=1, keepdims=True)                           # (T, T) softmax over keys s
    return p @ v                                                   # (T, D)


def my_attention_core_backward(dy, q, k, v):
    """(dq, dk, dv), each T x D, for y = attention_core_forward(np, q, k, v)."""
    raise NotImplementedError("exercise: the four steps above, in reverse order of the forward")


Ta, Da = 5, 4
q_t, k_t, v_t, dy_t = (rng.standard_normal((Ta, Da)) for _ in range(4))
auto = [autograd.grad(lambda z, i=i: anp.sum(attention_core_forward(
    anp, *[z if j == i else (q_t, k_t, v_t)[j] for j in range(3)]) * dy_t))((q_t, k_t, v_t)[i]) for i in range(3)]
a_t = np.where(np.tril(np.ones((Ta, Ta), dtype=bool)), q_t @ k_t.T / np.sqrt(Da), -1e9)   # masked scores
p_t, soft_cache = softmax_forward(np, a_t)
print(f"step 1: dv = p^T dy vs autograd: max |diff| = {np.abs(p_t.T @ dy_t - auto[2]).max():.1e}")
da_t = softmax_backward(dy_t @ v_t.T, soft_cache)                  # step 2, with the package's softmax backward
softmax_rows = lambda a: anp.exp(a - a.max(1, keepdims=True)) / anp.exp(a - a.max(1, keepdims=True)).sum(1, keepdims=True)  # noqa: E731
da_auto = autograd.grad(lambda a: anp.sum((softmax_rows(a) @ v_t) * dy_t))(a_t)
print(f"step 2: the softmax backward of dp = dy v^T vs autograd on the masked scores: "
      f"max |diff| = {np.abs(da_t - da_auto).max():.1e}")
print(f"step 3: the gradient above the diagonal (masked scores) is exactly 0: {np.abs(np.triu(da_t, 1)).max() == 0}")
for i, name in enumerate(("dq", "dk", "dv")):
    check(f"attention backward {name}", my_attention_core_backward, auto[i], args=(dy_t, q_t, k_t, v_t),
          then=lambda grads, i=i: grads[i])

# %% [markdown]
# Once your three checks say OK, compare with `my_attention_core_backward` in
# the solutions file: in step 4, row t of `da` belongs to query t and column
# s to key s, which says which side of `da` each of dq and dk reads. The package's
# `attention_backward` does the same for all heads at once, plus the two
# linear layers around the core. Checked against autograd:

# %%
attn_inputs = dict(x=rng.standard_normal((B, T, C)), w_qkv=0.5 * rng.standard_normal((C, 3 * C)),
                   b_qkv=0.1 * rng.standard_normal(3 * C), w_proj=0.5 * rng.standard_normal((C, C)),
                   b_proj=0.1 * rng.standard_normal(C), n_head=H)
_ = check_layer(attention_forward, attention_backward, attn_inputs,
                wrt=["x", "w_qkv", "b_qkv", "w_proj", "b_proj"], title=f"causal self-attention, {H} heads")

# %% [markdown]
# The mask has a visible consequence for the gradient: the output at
# position t depends only on inputs at positions s <= t. Send a gradient
# into one output position at a time and measure how much reaches each
# input position: the matrix must be lower-triangular, with exact zeros above
# the diagonal (the figure's left panel).

# %%
Tc = 6
attn_inputs_c = dict(attn_inputs, x=rng.standard_normal((1, Tc, C)))
_, attn_cache = attention_forward(np, **attn_inputs_c)
reach = np.zeros((Tc, Tc))                                         # (output t, input s)
for t in range(Tc):
    d = np.zeros((1, Tc, C))
    d[0, t] = rng.standard_normal(C)                               # gradient into output position t only
    dx = attention_backward(d, attn_cache)[0]                      # (1, Tc, C)
    reach[t] = np.linalg.norm(dx[0], axis=-1)                      # |dL/dx_s| for each input s
print("gradient reaching input position s (columns) from output position t (rows):")
print(np.array2string(reach, precision=2, suppress_small=True))
print(f"largest entry above the diagonal (a later input): {np.triu(reach, 1).max():.1e}")

# %% [markdown]
# ## 7. The tied output layer: one matrix, two uses
#
# GPT-2 has no separate output matrix: the logits are dot products of the
# final hidden state with the token embeddings, `logits = h @ wte.T`
# (`unembedding_forward`), so `dh = dlogits @ wte` and `dwte = dlogits.T @ h`.
# The same `wte` was also read by the embedding at the input. A parameter
# used twice gets the **sum** of its two gradients, exactly like the residual
# stream's x. Here is the smallest language model that shows it: embed,
# LayerNorm, unembed with the same table.

# %%
def tiny_lm_forward(xp, tokens, wte, g, b):  # (B, T) int, (V, C), (C,), (C,) -> (B*T, V)
    x, c_emb = embedding_forward(xp, tokens, wte)                  # (B, T, C) first use of wte
    h, c_ln = layernorm_forward(xp, x, g, b)                       # (B, T, C)
    logits, c_out = unembedding_forward(xp, h.reshape(-1, wte.shape[1]), wte)  # (B*T, V) second use
    return logits, (x.shape, c_emb, c_ln, c_out)


def tiny_lm_backward(dlogits, cache, input_use_only=False):  # -> dwte, dg, db
    x_shape, c_emb, c_ln, c_out = cache
    dh, dwte_out = unembedding_backward(dlogits, c_out)            # (B*T, C), (V, C)
    dx, dg, db = layernorm_backward(dh.reshape(x_shape), c_ln)     # (B, T, C)
    dwte_in = embedding_backward(dx, c_emb)                        # (V, C) scatter-add again
    return (dwte_in if input_use_only else dwte_in + dwte_out), dg, db


lm_inputs = dict(tokens=tokens, wte=rng.standard_normal((V, C)), g=1 + 0.1 * rng.standard_normal(C),
                 b=0.1 * rng.standard_normal(C))
_ = check_layer(unembedding_forward, unembedding_backward,
                dict(x=rng.standard_normal((B * T, C)), w=rng.standard_normal((V, C))), wrt=["x", "w"],
                title="tied output layer alone: logits = h @ wte.T")
_ = check_layer(tiny_lm_forward, tiny_lm_backward, lm_inputs, wrt=["wte", "g", "b"],
                title="embed -> LayerNorm -> unembed, wte used twice")
_ = check_layer(tiny_lm_forward, lambda d, c: tiny_lm_backward(d, c, input_use_only=True), lm_inputs,
                wrt=["wte", "g", "b"], title="the same, keeping only the input use of wte (expect FAIL on wte)")

# %% [markdown]
# Why this matters for the rest of the course: with tied embeddings, training
# the sentence `[x -> y]` moves `wte[y]` *as an output* (toward the hidden
# state that predicts it) and `wte[x]` *as an input*. The paper's public
# code, as it runs, does NOT tie: its output layer is a separate matrix
# (`docs/paper.md`, §4), and so is minirev's by default (`w_out`); `tied=True`
# gives GPT-2's tying. Lessons 6 and 9 come back to what the coupling does to
# the unseen direction.
#
# ## 8. The whole GPT
#
# `minirev.GPT` composes exactly these layers: token and position embedding,
# then per block `x = x + attn(ln1(x))` and `x = x + mlp(ln2(x))`, a final
# LayerNorm, and the output layer (its own matrix `w_out` by default, `wte`
# with `tied=True`); its backward calls the layer backwards in
# reverse order and scores only the answer tokens. `check_model` copies the
# model to float64 and compares every parameter's gradient with autograd on
# the model's own forward. The sentences are the reversal data with
# two-token entities (so the loss covers two answer positions), and dropout
# is on (both passes draw the same masks from one seed). Two GPTs: absolute
# positions with the default untied output layer, and rotary positions
# (RoPE: no position table; each query and key is rotated by an angle that
# grows with its position, so attention scores depend on relative positions;
# arXiv 2104.09864) with the tied one.

# %%
data = reversal_data(vocab=40, entity_len=2, seed=1234)
sentences = data.train[:12]                                        # (12, 5): [x1 x2 -> y1 y2] or [y1 y2 <- x1 x2]
print("sentences:", " ".join(data.sentence(s) for s in sentences[:3]), "...")
results = {}
for pos, tied in (("absolute", False), ("rotary", True)):     # the default output layer, and GPT-2's tying
    gpt = GPT(data.vocab_size, layers=2, width=16, heads=4, pos=pos, max_len=5, dropout=0.1,
              entity_len=2, seed=0, tied=tied)
    ok, rows = check_model(gpt, sentences)
    results[pos] = rows
    print(f"positions {pos}, {'tied' if tied else 'untied'}: {'every gradient matches autograd' if ok else 'SOME GRADIENTS DO NOT MATCH'} "
          f"({len(rows)} tensors, largest relative error {max(r['rel_error'] for r in rows):.1e})\n")

# %% [markdown]
# ## 9. The figure
#
# Left: the causal reach of section 6 (zero above the diagonal). Right: the
# relative error of every parameter tensor of the two GPTs, against the
# 1e-7 bound: all of them sit many orders of magnitude below it.

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw=dict(width_ratios=[1, 1.6]))
future = np.triu(np.ones(reach.shape, dtype=bool), 1)               # s > t: the causal mask, no path at all
im = ax1.imshow(np.ma.masked_where(future, reach), cmap="viridis")   # masked cells are left blank
ax1.set(title="attention: |gradient| from output t to input s\n(blank: s > t, masked)",
        xlabel="input position s", ylabel="output position t")
fig.colorbar(im, ax=ax1, fraction=0.046)
names = [r["name"] for r in results["absolute"]]               # rotary, tied: the same tensors less wpe, w_out
for (pos, rows), marker in zip(results.items(), ("o", "x")):
    where = [names.index(r["name"]) for r in rows]
    errs = [max(r["rel_error"], 1e-18) for r in rows]            # an exact 0 would vanish on a log axis
    ax2.semilogy(where, errs, marker, label=f"GPT, {pos} positions")
ax2.set_xticks(range(len(names)))
ax2.set_xticklabels(names, rotation=90, fontsize=6)
ax2.axhline(1e-7, color="C3", ls="--", label="tolerance 1e-7")
ax2.set(ylabel="relative error, hand vs autograd", title="check_model: every parameter of a 2-layer GPT")
ax2.legend(fontsize=8)
save_figure(fig, os.path.join(OUT, "gradcheck.png"))

# %% [markdown]
# ## What to remember
#
# * A backward undoes its forward line by line, in reverse order; each line's
#   gradient has the shape of the tensor it belongs to.
# * Wherever one value is used twice (a repeated token, the residual stream's
#   x, the tied `wte`), its gradients **add**. Forgetting one path is the most
#   common backprop bug, and a per-tensor check points right at it.
# * Check every layer before building on it, in float64, against a trusted
#   reference on the *same* forward code.
# * The network built here is GPT-2, not only GPT-2-like: with the `hf`
#   extra installed (`pip install -e ".[hf]"`, PyTorch and HuggingFace
#   transformers), `pytest -m slow tests/test_hf_gpt2.py` copies a minirev
#   GPT's weights into HuggingFace's `GPT2LMHeadModel`, the model the paper's
#   code trains, and finds the same logits and the same gradient for every
#   parameter in float64 (within 1e-10), untied and tied, with and without
#   position embeddings. So the backward you just checked layer by layer is
#   the backward of the model in the paper.
#
# Next, lesson 6 trains this GPT on the reversal data and uses its backward
# for something new: not the gradient of the loss, but the gradient of one
# *logit*, to account for how each update moves the unseen direction.
