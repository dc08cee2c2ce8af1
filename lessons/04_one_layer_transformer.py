# %% [markdown]
# # Lesson 4: the paper's one-layer transformer
#
# **By the end of this lesson** you will know the model of the paper's
# section 4 (after Tian et al. 2023): a one-layer transformer rewritten with
# two M x M matrices, Y (the decoder) and Z (the attention). You will derive
# its backward pass through the output layer, the l2 normalisation and the
# attention softmax, write the l2-normalisation backward yourself, check
# everything against autograd, and then run the paper's reversal experiment.
# You will see *why* the reverse answer ends *below* a uniform guess:
# Y[B, A] never moves, while Y[<-, A] is pushed down by every other
# backward sentence, and the trace names them.
#
# **Time:** about 40 minutes. The code runs in under 10 seconds
# (`MINIREV_FAST=1`: 100 training steps instead of 1000).
#
# The model (PAPER.md, "Model 2"): one-hot embeddings of M tokens, no
# positions. A sentence x_1 .. x_T is scored on its last token, predicted from
# the context x_1 .. x_{T-1}, whose last token x_q is the query:
#
#     b_t    = softmax_t Z[x_q, x_t]        attention over the context    (K = T-1 weights)
#     c      = sum_t b_t e_{x_t}            the attended one-hot vectors  (M)
#     f      = c / ||c||                    l2 normalisation (the paper's "LN")
#     logits = Y^T f                        logits[v] = sum_u f[u] Y[u, v]
#
# Z[q, t] is the attention logit from query q to context token t; Y[u, v] is
# the weight from a context token u to a next token v.

# %%
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
if not os.path.isfile(os.path.join(HERE, "exercise.py")):  # a kernel started in the repository root
    HERE = os.path.join(HERE, "lessons")
sys.path.insert(0, HERE)  # the lessons folder, for exercise.py (in Jupyter: the notebook's folder)
from exercise import FAST, check, lesson, save_figure  # noqa: E402  (first: it also asks for one BLAS thread)

import math  # noqa: E402
import time  # noqa: E402

import autograd  # noqa: E402
import autograd.numpy as anp  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from minirev import SGD, OneLayer, Trace, Trainer, check_model  # noqa: E402
from minirev.data import Dataset  # noqa: E402

OUT = lesson("04_one_layer_transformer")
STEPS = 100 if FAST else 1000
print(f"{'fast' if FAST else 'full'} mode: {STEPS} training steps; figures go to {OUT}")

# %% [markdown]
# ## 1. The forward pass, by hand
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
# ## 2. The backward pass, derived
#
# Undo the forward one line at a time, last line first (L is the mean
# cross-entropy over the B sentences):
#
# 1. `dlogits = (p - onehot(target)) / B`, exactly as in lesson 2.
# 2. `logits = f @ Y`, so `dY = f^T @ dlogits`, i.e. `dY[u, v] = sum_i f_i[u] dlogits_i[v]`,
#    and `df = dlogits @ Y^T`.
#    **The curse in one line:** Y[u, v] only gets a gradient from sentences
#    with f_i[u] != 0, i.e. whose *context contains u*.
# 3. `f = c / r` with `r = ||c||`. Then `df_j/dc_k = delta_jk / r - c_j c_k / r^3
#    = (delta_jk - f_j f_k) / r`. The Jacobian is symmetric, so
#
#        dc = (df - f (f . df)) / ||c||
#
#    the gradient with its component along f removed (moving c along itself
#    does not change c / ||c||), scaled by 1/||c||.
# 4. `c = sum_t b_t e_{x_t}`, so `db_t = dc[x_t]` (a gather).
# 5. `b = softmax(s)`, so `ds_t = b_t (db_t - sum_t' b_t' db_t')`.
# 6. `s_t = Z[x_q, x_t]` (a gather), so `ds_t` is scatter-added into
#    `dZ[x_q, x_t]`; a pair (x_q, x_t) that occurs twice gets both gradients.
#
# **Exercise.** Write step 3: the l2-normalisation backward, `dc` from `df`
# and `c` (both B x M). It is checked against autograd, which differentiates
# the "fake loss" `sum(f(c) * df)`: its gradient with respect to c is exactly
# the dc we want (llm.c's trick).

# %%
def my_l2norm_backward(df, c):
    """dc for f = c / ||c|| (norm over each row)."""
    # --- your code below ---
    norm = np.sqrt((c * c).sum(axis=1, keepdims=True))              # (B, 1)  # SOLUTION
    f = c / norm                                                    # (B, M)  # SOLUTION
    return (df - f * (f * df).sum(axis=1, keepdims=True)) / norm    # (B, M)  # SOLUTION
    # --- your code above ---


rng = np.random.default_rng(0)
c_test, df_test = rng.standard_normal((5, M_small)), rng.standard_normal((5, M_small))
fake_loss = lambda c: anp.sum(c / anp.sqrt(anp.sum(c * c, axis=1, keepdims=True)) * df_test)  # noqa: E731
dc_autograd = autograd.grad(fake_loss)(c_test)
check("l2-normalisation backward", my_l2norm_backward, dc_autograd, args=(df_test, c_test))

# %% [markdown]
# ## 3. The whole backward against autograd
#
# `OneLayer.backward` chains steps 1 to 6. `check_model` differentiates the
# same forward with autograd, in float64:

# %%
ok, rows = check_model(small, tokens)
print(f"tokens repeated inside a context (the scatter-add must accumulate): "
      f"{sum(len(set(r)) < len(r) for r in context.tolist())} of {len(context)} sentences")

# %% [markdown]
# ## 4. The reversal experiment of PAPER.md, Model 2
#
# N = 100 pairs (A_i, B_i), M = 202 tokens: `->` is token 0, `<-` token 1,
# A_i = 2 + i, B_i = 102 + i. Training: `[A_i -> B_i]` for all 100 pairs and
# `[B_i <- A_i]` for the first 70: 170 sentences. Held out: `[B_i <- A_i]`
# for the last 30. Y and Z start at 0; Z stays frozen at 0 (uniform
# attention: b = (1/2, 1/2) on the context [first token, relation]); Y is
# trained by full-batch SGD for the paper's 100 steps (more in full mode).
#
# **The learning rate.** The paper takes steps of eta_Y = 1 on the SUM of the
# 170 sentence losses. minirev's loss is the MEAN, whose gradient is the sum's
# divided by 170. The same step on the mean therefore needs lr = 170 (the
# number of training sentences).

# %%
N, N_BOTH, M = 100, 70, 202
FWD, BWD = 0, 1
A_tok, B_tok = 2 + np.arange(N), 102 + np.arange(N)
forward = np.stack([A_tok, np.full(N, FWD), B_tok], axis=1)                 # [A -> B], all 100
backward = np.stack([B_tok, np.full(N, BWD), A_tok], axis=1)                # [B <- A], all 100
train = np.concatenate([forward, backward[:N_BOTH]])                       # (170, 3)
held = np.arange(N_BOTH, N)                                                # pairs 70..99
data = Dataset("reversal", train, {"train": train, "held-out reverse": backward[held]},
               vocab_size=M, val_group="held-out reverse")
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
trace = Trace(model, lambda: model.watch([(a, bb)], FWD, BWD),
              lambda batch: model.trace_terms(batch, [(a, bb)], FWD, BWD, {"Y": LR, "Z": 0.0}),
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
        print("after 100 steps (PAPER.md: train p 0.978, held-out p 6.4e-4, Y[A,B] 11.8, Y[B,A] 0 exactly):")
        print(f"  train p(correct)           {curves['p train'][-1]:.3f}")
        print(f"  held-out p(A | B <-)       {curves['p held-out'][-1]:.2e}   1/M = {1 / M:.2e}   "
              f"below 1/M for all 30: {bool((p_answer(backward[held]) < 1 / M).all())}")
        print(f"  Y[A,B]  (held-out mean)    {curves['Y[A,B]'][-1]:.2f}")
        print(f"  Y[B,A]  (held-out max |.|) {float(curves['max |Y[B,A]|'][-1])!r}")
        print(f"  Y[<-,A] (held-out mean)    {curves['Y[<-,A]'][-1]:.3f}")


trainer = Trainer(model, SGD(LR, lrs={"Z": 0.0}), data, trace=trace)
record(trainer, None)
start = time.perf_counter()
trainer.run(STEPS, on_eval=record)
print(f"{STEPS} steps in {time.perf_counter() - start:.1f} s")

# %% [markdown]
# ## 5. Who moved what: the trace of the first two steps
#
# Read each block: the watched quantity, its change, the sum of the
# sentences' terms (equal to the change: the Y terms are exact), and the
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
# ## 6. Why below 1/M
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
ax1.plot(steps, curves["Y[A,B]"], label="Y[A,B] (forward weight)")
ax1.plot(steps, curves["Y[<-,A]"], label="Y[<-,A] (what follows <-)")
ax1.plot(steps, curves["max |Y[B,A]|"], "--", label="max |Y[B,A]| (reverse weight)")
ax1.axhline(0, color="gray", lw=0.8)
ax1.set(xscale="symlog", xlim=(0, steps.max()), xlabel="SGD step", ylabel="entry of Y (held-out pairs: mean)",
        title="Held-out pairs: Y[B,A] never moves, Y[<-,A] goes down")
ax1.legend(fontsize=8)
ax2.plot(steps, curves["p train"], label="training sentences: p(correct)")
ax2.plot(steps, curves["p held-out"], label="held-out [B <- ?]: p(A)")
ax2.axhline(1 / M, color="gray", ls="--", lw=1, label=f"uniform guess 1/M = {1 / M:.2e}")
ax2.set(xscale="symlog", xlim=(0, steps.max()), yscale="log", xlabel="SGD step", ylabel="probability (mean)",
        title="p(A | B <-) falls below the uniform guess")
ax2.legend(fontsize=8)
save_figure(fig, os.path.join(OUT, "one_layer_reversal.png"))

# %% [markdown]
# ## What you saw
#
# * The backward pass of the one-layer model: `dY = f^T dlogits`, then through
#   the l2 normalisation (`(df - f (f.df)) / ||c||`), the attention softmax and
#   a scatter-add into Z; checked against autograd.
# * In the reversal experiment, Y[B, A] of a held-out pair gets no gradient at
#   all (B is never in a context), while Y[<-, A] is pushed down by the other
#   backward sentences. So the model is not merely ignorant of B <- A: it
#   answers A with *less* than the uniform probability 1/M.
# * In full mode, Y[A, B] keeps growing over the 1000 steps (compare its
#   values printed at step 100 and at the end; the paper says roughly like
#   log t: see the left panel, whose step axis is logarithmic past 1), while
#   Y[B, A] of the held-out pairs stays exactly 0.
#
# Lessons 5 to 8 take the same question to a multi-layer GPT, where there is
# no Y to print, and ask what, if anything, breaks the curse.
