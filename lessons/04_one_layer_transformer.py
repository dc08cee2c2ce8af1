# %% [markdown]
# # Lesson 4: the paper's one-layer transformer
#
# **By the end of this lesson** you will know the model of the paper's §4
# (after Tian et al. 2023, "Scan and Snap"): a one-layer transformer
# rewritten with two M x M matrices, Y (the decoder) and Z (the attention).
# You will derive Y and Z yourself from the usual W_Q, W_K, W_V, W_O, derive
# and write the backward pass through the softmax and the l2 normalisation,
# check everything against autograd, and then run the paper's reversal
# experiment and ask where the held-out reverse answer ends up.
#
# **Time:** about 50 minutes of reading. The code, measured on 2 cores:
# 12 s full, 4 s fast (`MINIREV_FAST=1`: 100 training steps
# instead of 1000).
#
# Paper: arXiv 2405.04669, §4 (the one-layer transformer, its reversal and
# chain-of-thought results); Tian et al. 2023, arXiv 2305.16380, for the
# Y/Z form. `docs/paper.md`, §3 ("Model 2"), explains both in plain words.

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
    from minirev.lessons import FAST, check, check_prediction, lesson, save_figure  # (first: it also asks for one BLAS thread)
except ModuleNotFoundError as error:
    raise SystemExit(f"{error}: install the package first: pip install -e \".[lessons]\" in the repository") from None

import math  # noqa: E402
import time  # noqa: E402

import autograd  # noqa: E402
import autograd.numpy as anp  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from minirev import SGD, OneLayer, Trace, Trainer, check_model  # noqa: E402
from minirev.data import relation_pairs_data  # noqa: E402
from minirev.layers import softmax_backward, softmax_forward  # noqa: E402

OUT = lesson("04_one_layer_transformer")
STEPS = 100 if FAST else 1000
print(f"{'fast' if FAST else 'full'} mode: {STEPS} training steps; figures go to {OUT}")

# %% [markdown]
# ## 1. From W_Q, W_K, W_V, W_O to Y and Z
#
# Start from an ordinary one-layer, one-head attention model over M tokens,
# with the assumptions of the paper's §4 (after Scan and Snap):
#
# * **one-hot embeddings**: token x is the vector $e_x \in \mathbb{R}^M$;
# * **no positional encoding**;
# * the prediction is read at the **last context token** $x_q$ (the query),
#   which attends to every context token $x_1 \dots x_K$;
# * the attended mixture of one-hot vectors is **normalised to unit l2
#   length** (the analysis's stand-in for LayerNorm) before the value and
#   output maps; no MLP, no residual.
#
# With a head dimension d and matrices $W_Q, W_K, W_V \in \mathbb{R}^{M\times d}$,
# $W_O \in \mathbb{R}^{d\times M}$, the usual forward is
#
# $$q = W_Q^\top e_{x_q},\quad k_t = W_K^\top e_{x_t},\quad
#   s_t = \frac{q^\top k_t}{\sqrt d},\quad b = \mathrm{softmax}(s),\quad
#   c = \sum_t b_t e_{x_t},\quad f = \frac{c}{\|c\|},\quad
#   \mathrm{logits} = W_O^\top W_V^\top f .$$
#
# **Derive Y and Z.** The claim of §4: the whole model depends on its four
# matrices only through two $M \times M$ matrices, Z for the attention and Y
# for the output, with
#
# $$s_t = Z[x_q, x_t] \qquad\text{and}\qquad \mathrm{logits} = Y^\top f .$$
#
# Find them, on paper first. Two facts are all you need: for any matrix A,
# $e_a^\top A\, e_b$ is its entry $A[a, b]$; and $(A^\top u)^\top (B^\top w) =
# u^\top A B^\top w$. Write $s_t$ as a product with $e_{x_q}$ on the left and
# $e_{x_t}$ on the right, and read off Z (mind the $\sqrt d$). Then write
# the logits as some matrix, transposed, times f, and read off Y (mind
# which index is the context token u and which the next token v).
#
# **Exercise (Y/Z).** Write `yz_from_attention(W_Q, W_K, W_V, W_O)`
# returning `(Y, Z)`. Two numerical checks, one per step: the attention
# scores `Z[x_q, x_t]` must equal the scores $s_t$ of the ordinary model on
# some sentences, and the `OneLayer` model with your Y and Z must give the
# ordinary model's logits.

# %%
def attention_model_logits(tokens, W_Q, W_K, W_V, W_O):  # (B, T) -> scores (B, K), logits (B, M)
    """The ordinary one-layer attention model, written the usual way (no Y, no Z)."""
    M, d = W_Q.shape
    X = np.eye(M)[tokens[:, :-1]]                                      # (B, K, M) one-hot context
    q = X[:, -1] @ W_Q                                                 # (B, d) the query: last context token
    k = X @ W_K                                                        # (B, K, d) keys; W_V is applied after the mix
    s = np.einsum("bd,bkd->bk", q, k) / math.sqrt(d)                  # (B, K) scores
    b = np.exp(s - s.max(1, keepdims=True))
    b /= b.sum(1, keepdims=True)                                       # (B, K) attention
    c = np.einsum("bk,bkm->bm", b, X)                                  # (B, M) attended one-hot mix
    f = c / np.linalg.norm(c, axis=1, keepdims=True)                   # (B, M) unit length
    return s, (f @ W_V) @ W_O                                          # (B, K), (B, M)


def yz_from_attention(W_Q, W_K, W_V, W_O):
    """(Y, Z), both M x M, such that the Y/Z model computes the same logits."""
    raise NotImplementedError("exercise: Y and Z from the four matrices")


M_yz, d_yz = 7, 3
rng_yz = np.random.default_rng(5)
W_Q, W_K, W_V = (rng_yz.standard_normal((M_yz, d_yz)) for _ in range(3))   # (M, d) each
W_O = rng_yz.standard_normal((d_yz, M_yz))                                # (d, M)
yz_tokens = rng_yz.integers(0, M_yz, size=(8, 4))                         # (B, T), tokens repeat
scores, qkv_logits = attention_model_logits(yz_tokens, W_Q, W_K, W_V, W_O)


def scores_from_z(yz):
    """Step 1: the Y/Z model's attention scores Z[x_q, x_t] on the same sentences."""
    Z = np.asarray(yz[1])
    context = yz_tokens[:, :-1]
    return Z[context[:, -1:], context]                                 # (B, K)


def logits_from_yz(yz):
    """Step 2: the logits of minirev's OneLayer with your Y and Z."""
    twin = OneLayer(M_yz, dtype=np.float64)
    twin.params["Y"][...], twin.params["Z"][...] = yz
    return twin.logits(yz_tokens)[:, 0, :]                             # (B, M)


check("Y/Z step 1, the scores Z[x_q, x_t]", yz_from_attention, scores, args=(W_Q, W_K, W_V, W_O),
      then=scores_from_z)
check("Y/Z step 2, the same logits", yz_from_attention, qkv_logits, args=(W_Q, W_K, W_V, W_O),
      then=logits_from_yz)

# %% [markdown]
# What the reparameterisation keeps, and what it changes (the paper's §4
# states its exact assumptions; `docs/paper.md`, §3):
#
# * **The same functions, at a matching setting.** Any $(W_Q, W_K, W_V, W_O)$
#   gives a $(Y, Z)$ with the same logits, as just checked. The converse
#   needs $d \ge M$: with $d < M$ the products have rank at most d, while Y
#   and Z are free $M \times M$ matrices. The Y/Z model is the ordinary one
#   with a head as wide as the vocabulary.
# * **Not the same training.** The analysis runs gradient descent on Y and
#   Z themselves, as free matrices started at 0, with the decoder learning
#   much faster than the attention ($\eta_Y \gg \eta_Z$). Gradient descent on
#   $W_V$ and $W_O$ moves their product differently (each factor's step
#   depends on the other factor), so the Y/Z dynamics are a model of the
#   ordinary ones, not the same thing.
# * **What makes it analysable.** One-hot embeddings make every entry of Y
#   and Z belong to one pair of tokens, so "which sentences move Y[u, v]"
#   has a one-line answer. That is what the rest of this lesson uses.

# %% [markdown]
# ## 2. The forward pass, by hand
#
# A small model with random Y and Z (so every path carries a gradient) and
# sentences of T = 4 tokens over M = 7 tokens, so tokens repeat inside a
# context. Compute b, c, f and the logits, and compare with the model.

# %%
M_small = 7
small = OneLayer(M_small, seed=0, init_scale=0.5, dtype=np.float64)
tokens = np.random.default_rng(3).integers(0, M_small, size=(6, 4))   # (B, T)
Y, Z = small.params["Y"], small.params["Z"]                            # (M, M) each
context = tokens[:, :-1]                                               # (B, K)
query = context[:, -1]                                                 # (B,)  x_q
s = Z[query[:, None], context]                                         # (B, K) attention logits
b = np.exp(s - s.max(1, keepdims=True))
b /= b.sum(1, keepdims=True)                                           # (B, K) b_t
c = (b[:, :, None] * np.eye(M_small)[context]).sum(1)                  # (B, M) sum_t b_t e_{x_t}
norm = np.sqrt((c * c).sum(1, keepdims=True))                          # (B, 1) ||c||
f = c / norm                                                           # (B, M)
logits = f @ Y                                                         # (B, M)
print("sentences:", tokens.tolist())
print(f"attention by hand vs model.attention: max |diff| = {np.abs(b - small.attention(tokens)).max():.1e}")
print(f"logits by hand vs model.logits:       max |diff| = {np.abs(logits - small.logits(tokens)[:, 0, :]).max():.1e}")

# %% [markdown]
# ## 3. The backward pass, derived
#
# Undo the forward one line at a time, last line first (L is the mean
# cross-entropy over the B sentences):
#
# 1. `dlogits = (p - onehot(target)) / B`, exactly as in lesson 2.
# 2. `logits = f @ Y`, so `dY = f^T @ dlogits`, i.e. `dY[u, v] = sum_i f_i[u] dlogits_i[v]`,
#    and `df = dlogits @ Y^T`.
#    **The curse in one line:** Y[u, v] only gets a gradient from sentences
#    with f_i[u] != 0, i.e. whose *context contains u*.
# 3. `f = c / ||c||`: the l2-normalisation backward, exercise A below.
# 4. `c = sum_t b_t e_{x_t}`, so `db_t = dc[x_t]` (a gather).
# 5. `b = softmax(s)`: the softmax backward, exercise B below.
# 6. `s_t = Z[x_q, x_t]` (a gather), so `ds_t` is scatter-added into
#    `dZ[x_q, x_t]`; a pair (x_q, x_t) that occurs twice gets both gradients
#    (lesson 5 makes you write such a scatter-add).
#
# ### Exercise A: the l2-normalisation backward
#
# One row: $f = c / r$ with $r = \|c\| = \sqrt{\sum_k c_k^2}$. Since
# $\partial r / \partial c_k = c_k / r = f_k$, the quotient rule gives the Jacobian
#
# $$\frac{\partial f_j}{\partial c_k} = \frac{\delta_{jk}}{r} - \frac{c_j f_k}{r^2}
#   = \frac{\delta_{jk} - f_j f_k}{r}, \qquad J = \frac{I - f f^\top}{r}.$$
#
# Step 1, checked below: this J against finite differences. Step 2 is
# yours: the backward is $dc_k = \sum_j df_j\,\partial f_j/\partial c_k$, i.e.
# $dc = J^\top df$. Write it for a batch of rows **without building J**
# (each row is one sentence; `df` and `c` are both B x M). What does
# $I - f f^\top$ do to a vector, geometrically?

# %%
rng = np.random.default_rng(0)
c1 = rng.standard_normal(M_small)                                      # one row
r1 = np.linalg.norm(c1)
f1 = c1 / r1
J = (np.eye(M_small) - np.outer(f1, f1)) / r1                          # (M, M) the formula
h = 1e-6
J_numeric = np.stack([((c1 + h * e) / np.linalg.norm(c1 + h * e) - (c1 - h * e) / np.linalg.norm(c1 - h * e))
                      / (2 * h) for e in np.eye(M_small)], axis=1)     # column k: d f / d c_k
print(f"step 1: Jacobian of c/||c||, formula vs finite differences: max |diff| = {np.abs(J - J_numeric).max():.1e}")


def my_l2norm_backward(df, c):
    """dc (B x M) for f = c / ||c|| (norm over each row), given df (B x M) and c (B x M)."""
    raise NotImplementedError("exercise: dc = J^T df, row by row, without building J")


c_test, df_test = rng.standard_normal((5, M_small)), rng.standard_normal((5, M_small))
fake_loss = lambda c: anp.sum(c / anp.sqrt(anp.sum(c * c, axis=1, keepdims=True)) * df_test)  # noqa: E731
dc_autograd = autograd.grad(fake_loss)(c_test)       # llm.c's trick: d/dc of sum(f(c) * df) is dc
print(f"step 2 by J: J^T df of row 0 vs autograd: max |diff| = "
      f"{np.abs(((np.eye(M_small) - np.outer(*(2 * [c_test[0] / np.linalg.norm(c_test[0])]))) / np.linalg.norm(c_test[0])) @ df_test[0] - dc_autograd[0]).max():.1e}")
check("l2-normalisation backward", my_l2norm_backward, dc_autograd, args=(df_test, c_test))

# %% [markdown]
# The check compares with autograd, which differentiates the "fake loss"
# `sum(f(c) * df)`: its gradient with respect to c is exactly the dc we
# want, whatever df is (llm.c's trick: llm.c is Andrej Karpathy's GPT-2
# training in plain C, https://github.com/karpathy/llm.c, whose LayerNorm
# tutorial checks each hand-written backward this way). The package's version is
# `minirev.layers.l2norm_backward`; the model uses that one.
#
# ### Exercise B: the softmax backward
#
# One row: $b_k = e^{s_k} / \sum_j e^{s_j}$. Differentiate:
#
# $$\frac{\partial b_k}{\partial s_j} = \frac{\delta_{kj} e^{s_k}}{\sum e^{s}}
#   - \frac{e^{s_k} e^{s_j}}{(\sum e^{s})^2} = b_k (\delta_{kj} - b_j),
#   \qquad J = \mathrm{diag}(b) - b b^\top .$$
#
# Step 1, checked below: this J against finite differences. Step 2 is
# yours: $ds_j = \sum_k db_k\, \partial b_k / \partial s_j$, for a batch of
# rows, without building J. (It needs only the output b, not the input s:
# llm.c's observation.)

# %%
s1 = rng.standard_normal(4)
softmax = lambda s: np.exp(s - s.max()) / np.exp(s - s.max()).sum()  # noqa: E731
b1 = softmax(s1)
J = np.diag(b1) - np.outer(b1, b1)                                     # (K, K) the formula
J_numeric = np.stack([(softmax(s1 + h * e) - softmax(s1 - h * e)) / (2 * h) for e in np.eye(4)], axis=1)
print(f"step 1: Jacobian of the softmax, formula vs finite differences: max |diff| = {np.abs(J - J_numeric).max():.1e}")


def my_softmax_backward(db, b):
    """ds (B x K) for b = softmax(s) over each row, given db (B x K) and the output b (B x K)."""
    raise NotImplementedError("exercise: ds = J^T db, row by row, from b alone")


s_test, db_test = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
b_test, soft_cache = softmax_forward(np, s_test)
print(f"step 2 by J: J^T db of row 0 vs the package: max |diff| = "
      f"{np.abs((np.diag(b_test[0]) - np.outer(b_test[0], b_test[0])) @ db_test[0] - softmax_backward(db_test, soft_cache)[0]).max():.1e}")
check("softmax backward", my_softmax_backward, softmax_backward(db_test, soft_cache), args=(db_test, b_test))

# %% [markdown]
# ## 4. The whole backward against autograd
#
# `OneLayer.backward` chains steps 1 to 6. `check_model` differentiates the
# same forward with autograd, in float64:

# %%
ok, rows = check_model(small, tokens)
print(f"tokens repeated inside a context (the scatter-add must accumulate): "
      f"{sum(len(set(r)) < len(r) for r in context.tolist())} of {len(context)} sentences")

# %% [markdown]
# ## 5. The reversal experiment of the paper's §4
#
# N = 100 pairs (A_i, B_i), M = 202 tokens: `->` is token 0, `<-` token 1,
# A_i = 2 + i, B_i = 102 + i. Training: `[A_i -> B_i]` for all 100 pairs and
# `[B_i <- A_i]` for the first 70: 170 sentences. Held out: `[B_i <- A_i]`
# for the last 30. Y and Z start at 0; Z stays frozen at 0 (uniform
# attention: b = (1/2, 1/2) on the context [first token, relation]); Y is
# trained by full-batch SGD, 100 steps in fast mode, 1000 in full mode.
#
# **The learning rate.** We take steps of eta_Y = 1 on the SUM of the 170
# sentence losses. minirev's loss is the MEAN, whose gradient is the sum's
# divided by 170. The same step on the mean therefore needs lr = 170 (the
# number of training sentences).
#
# **Exercise (predict before you look).** After training, the trained
# sentences are answered well. What probability does the model give the
# right answer A of a held-out `[B <- ?]`: clearly more than the uniform
# guess 1/M (return +1), about 1/M (return 0), or clearly less (return -1)?
# Reason from the backward of section 3: which entries of Y can a held-out
# B's question read, and which sentences move them? Your prediction is
# checked after the run.

# %%
def predicted_heldout_vs_uniform():
    """+1, 0 or -1: is p(A | B <-) of a held-out pair above, at, or below 1/M after training?"""
    raise NotImplementedError("exercise: your prediction, +1, 0 or -1")


N, N_BOTH = 100, 70
data = relation_pairs_data(pairs=N, both=N_BOTH)                           # the paper's §4 data
M, FWD, BWD = data.vocab_size, 0, 1
A_tok, B_tok = data.info["A"], data.info["B"]                              # A_i = 2 + i, B_i = 102 + i
train = data.train                                                         # (170, 3)
backward = np.stack([B_tok, np.full(N, BWD), A_tok], axis=1)                # [B <- A], all 100
held = np.arange(N_BOTH, N)                                                # pairs 70..99
LR = float(len(train))
print(data.summary())
print(f"lr = {LR:.0f} on the mean loss = the paper's eta_Y = 1 on the summed loss;  1/M = {1 / M:.3e}")

model = OneLayer(M)
print("attention on the first training contexts (Z = 0):", model.attention(train[:3]).tolist())

# %% [markdown]
# We watch the first held-out pair (a, b) = (A_70, B_70) with a `Trace`:
# Y[a, b] (forward weight), Y[b, a] (reverse weight), Y[<-, a] and the
# attention on a. The trace records every step and explains each change
# sentence by sentence; we print the first two steps.

# %%
a, bb = int(A_tok[held[0]]), int(B_tok[held[0]])
WATCHED = [(np.array([a, FWD, bb]), np.array([bb, BWD, a]))]                # (trained, never trained)
sgd = SGD(LR, lrs={"Z": 0.0})
trace = Trace(model, lambda: model.watch(WATCHED),
              lambda batch: model.trace_terms(batch, WATCHED, sgd, name=data.sentence),
              steps=STEPS, top=3, out=None)
curves = {"step": [], "Y[A,B]": [], "Y[<-,A]": [], "max |Y[B,A]|": [], "p train": [], "p held-out": []}


def p_answer(sentences):
    """p(last token | context) for each sentence."""
    lg = model.logits(sentences)[:, 0, :].astype(np.float64)
    p = np.exp(lg - lg.max(1, keepdims=True))
    return (p / p.sum(1, keepdims=True))[np.arange(len(sentences)), sentences[:, -1]]


def record(trainer, _):
    Yh = model.host_params()["Y"].astype(np.float64)
    curves["step"].append(trainer.step)
    curves["Y[A,B]"].append(Yh[A_tok[held], B_tok[held]].mean())
    curves["Y[<-,A]"].append(Yh[BWD, A_tok[held]].mean())
    curves["max |Y[B,A]|"].append(np.abs(Yh[B_tok[held], A_tok[held]]).max())
    curves["p train"].append(p_answer(train).mean())
    curves["p held-out"].append(p_answer(backward[held]).mean())
    if trainer.step == 100:
        print("after 100 steps:")
        print(f"  train p(correct)           {curves['p train'][-1]:.3f}")
        print(f"  held-out p(A | B <-)       {curves['p held-out'][-1]:.2e}   1/M = {1 / M:.2e}   "
              f"below 1/M for all 30: {bool((p_answer(backward[held]) < 1 / M).all())}")
        print(f"  Y[A,B]  (held-out mean)    {curves['Y[A,B]'][-1]:.2f}")
        print(f"  Y[B,A]  (held-out max |.|) {float(curves['max |Y[B,A]|'][-1])!r}")
        print(f"  Y[<-,A] (held-out mean)    {curves['Y[<-,A]'][-1]:.3f}")


trainer = Trainer(model, sgd, data, trace=trace)
record(trainer, None)
start = time.perf_counter()
trainer.run(STEPS, on_eval=record)
print(f"{STEPS} steps in {time.perf_counter() - start:.1f} s")
held_p = p_answer(backward[held])
observed = int(np.sign(np.round(np.log(held_p.mean() * M))))           # +1, 0, -1 at the scale of a factor e
print(f"held-out p(A | B <-): mean {held_p.mean():.2e}, 1/M = {1 / M:.2e}; each of the 30 "
      f"{'above' if (held_p > 1 / M).all() else 'below' if (held_p < 1 / M).all() else 'on both sides of'} 1/M")
check_prediction("held-out answer vs the uniform guess", predicted_heldout_vs_uniform, observed)

# %% [markdown]
# ## 6. Who moved what: the trace of the first two steps
#
# Read each block: the watched quantity, its change, the sum of the
# sentences' terms (equal to the change up to float32 rounding: the printed
# residual, of the order of 1e-7; in exact arithmetic the Y terms add up to
# the change exactly), and the
# largest terms with the sentence that made them.

# %%
trace.out = print                      # it recorded silently; now print two of its records
for rec in trace.records[:2]:
    trace.print_record(rec)

# %% [markdown]
# * Y[a, b] is pushed up by one sentence, `[a -> b]` itself: its context
#   contains a, and b is its answer.
# * Y[b, a] has no term at all: b is never in a context (the only sentence
#   with b in its context would be the held-out `[b <- a]`).
# * Y[<-, a] is pushed DOWN by the backward training sentences `[B_j <- A_j]`:
#   their context contains `<-`, and each of them lowers the probability of
#   every wrong answer, a included. Nothing ever pushes it up, because a is
#   never the right answer after `<-` in training.
#
# Over the whole run, add up the terms by the kind of sentence that made them:

# %%
key_rel = f"Y[<-,{a}]"
by_kind = {"->": 0.0, "<-": 0.0}
pushers, all_negative = set(), True
for rec in trace.records:
    for label, value in rec["quantities"][key_rel]["terms"]:
        by_kind["<-" if "<-" in label else "->"] += value
        pushers.add(label)
        all_negative &= value < 0
change = sum(rec["quantities"][key_rel]["change"] for rec in trace.records)
print(f"{key_rel} over {len(trace.records)} steps: total change {change:+.4f}; "
      f"from [B <- A] sentences {by_kind['<-']:+.4f}, from [A -> B] sentences {by_kind['->']:+.4f}")
print(f"distinct sentences that moved it: {len(pushers)}, all of the form [B_j <- A_j]: "
      f"{all('<-' in label for label in pushers)};  every single term negative: {all_negative}")
steps_without = sum(not rec["quantities"][f"Y[{bb},{a}]"]["terms"] for rec in trace.records)
print(f"steps in which Y[{bb},{a}] got any term at all: {len(trace.records) - steps_without} of {len(trace.records)}")

# %% [markdown]
# ## 7. Where the held-out answer ends up
#
# After `[b <-]` the context is (b, <-) with uniform attention, so
# f = (e_b + e_<-)/sqrt(2) and `logit[v] = (Y[b, v] + Y[<-, v]) / sqrt(2)`.
# Row b of Y never moved: it is all zeros. So the answer distribution is
# `softmax(Y[<-, :] / sqrt(2))`, the model's guess of "what follows `<-`",
# which favours the 70 A_j it was trained to say there and disfavours a.

# %%
Yh = model.host_params()["Y"].astype(np.float64)
row = Yh[BWD] / math.sqrt(2)
p_from_row = np.exp(row - row.max()) / np.exp(row - row.max()).sum()
print(f"max |Y[b, :]| over the whole row b = {bb}: {float(np.abs(Yh[bb]).max())!r}")
print(f"Y[<-, a] = {Yh[BWD, a]:.3f};  Y[<-, A_j] for trained A_j: mean {Yh[BWD, A_tok[:N_BOTH]].mean():.3f}")
print(f"p(a | b <-) from softmax(Y[<-,:]/sqrt 2): {p_from_row[a]:.3e};  from the model: "
      f"{p_answer(backward[held[:1]])[0]:.3e};  1/M = {1 / M:.3e}")
print(f"after {STEPS} steps: held-out p(A | B <-) mean {curves['p held-out'][-1]:.2e}, "
      f"train p(correct) mean {curves['p train'][-1]:.3f}, Y[A,B] mean {curves['Y[A,B]'][-1]:.2f}")

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.3))
steps = np.array(curves["step"])
ax1.plot(steps + 1, curves["Y[A,B]"], label="Y[A,B] (forward weight)")
ax1.plot(steps + 1, curves["Y[<-,A]"], label="Y[<-,A] (what follows <-)")
ax1.plot(steps + 1, curves["max |Y[B,A]|"], "--", label="max |Y[B,A]| (reverse weight)")
ax1.axhline(0, color="gray", lw=0.8)
ax1.set(xscale="log", xlim=(1, steps.max() + 1), xlabel="SGD step + 1 (log scale: step 0 at 1)", ylabel="entry of Y (held-out pairs: mean)",
        title="Held-out pairs: Y[B,A] never moves, Y[<-,A] goes down")
ax1.legend(fontsize=8)
ax2.plot(steps + 1, curves["p train"], label="training sentences: p(correct)")
ax2.plot(steps + 1, curves["p held-out"], label="held-out [B <- ?]: p(A)")
ax2.axhline(1 / M, color="gray", ls="--", lw=1, label=f"uniform guess 1/M = {1 / M:.2e}")
ax2.set(xscale="log", xlim=(1, steps.max() + 1), yscale="log", xlabel="SGD step + 1 (log scale: step 0 at 1)", ylabel="probability (mean)",
        title="p(A | B <-) falls below the uniform guess")
ax2.legend(fontsize=8)
save_figure(fig, os.path.join(OUT, "one_layer_reversal.png"))

# %% [markdown]
# ## What you saw
#
# * Y and Z are the products W_V W_O and W_Q W_K^T / sqrt(d) of an ordinary
#   one-layer attention model with one-hot embeddings: the same logits, but
#   not the same training dynamics.
# * The backward pass of the one-layer model: `dY = f^T dlogits`, then through
#   the l2 normalisation (`(df - f (f.df)) / ||c||`), the attention softmax and
#   a scatter-add into Z; checked against autograd.
# * In the reversal experiment, Y[B, A] of a held-out pair gets no gradient at
#   all (B is never in a context), while Y[<-, A] is pushed down by the other
#   backward sentences. So the model is not merely ignorant of B <- A: it
#   answers A with *less* than the uniform probability 1/M.
# * In full mode, Y[A, B] keeps growing over the 1000 steps (compare its
#   values printed at step 100 and at the end; the left panel's step axis is
#   logarithmic past 1), while Y[B, A] of the held-out pairs stays exactly 0.
#
# Lessons 5 to 9 take the same question to a multi-layer GPT, where there is
# no Y to print, and ask what, if anything, breaks the curse.
