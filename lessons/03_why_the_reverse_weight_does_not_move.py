# %% [markdown]
# # Lesson 3: why the reverse weight does not move
#
# **By the end of this lesson** you will be able to read a training run of the
# bilinear model update by update, sentence by sentence, and say why the
# weight from x to y grows while the weight from y to x stays put:
#
# * with one-hot embeddings the reverse weight gets *no term at all*: it stays
#   exactly 0, and p(x | y) stays exactly 1/m while the training loss goes to 0;
# * with Gaussian embeddings it only gets cross terms, whose size is set by the
#   overlap <u_y, u_{x_i}> ~ 1/sqrt(d);
# * over a whole run, the reversal loss does not follow the training loss down
#   while the training loss falls by orders of magnitude; you will read the
#   exponent eps of the paper's theorem off a whole run, at its end and as the
#   smallest eps that holds at every step, and see what its sign means;
# * train the effective weights W = U Theta U^T directly, at the cost of m
#   whatever d is, and see the reverse weight's change made of overlaps alone.
#
# **Time:** about 30 minutes of reading. The code, measured on 2 cores:
# 14 s full, 5 s fast (`MINIREV_FAST=1`: a tenth of the steps).
#
# Paper: arXiv 2405.04669, §3 (the bilinear model, its theorem on
# `L_rev / L_rev(0)` and the one-hot limit); `docs/paper.md`, §2.
#
# Needs lesson 2: one SGD step changes the effective weight
# `W(a -> b) = u_a^T Theta u_b` by
#
#     sum over training sentences i of   -lr <u_a, u_{x_i}> <g_i, u_b>,
#     g_i = dlogits_i @ U = (sum_v p(v | x_i) u_v - u_{y_i}) / B
#
# with the 1/B of the mean inside g_i, as in lesson 2. Each term is weighted
# by how much the sentence's FIRST token x_i looks like a.

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
    from minirev.lessons import FAST, check, figure, lesson, save_figure  # (first: it also asks for one BLAS thread)
except ModuleNotFoundError as error:
    raise SystemExit(f"{error}: install the package first: pip install -e \".[lessons]\" in the repository") from None

import copy  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from minirev import SGD, Bilinear, RunConfig, Trace, Trainer, pairs_data  # noqa: E402
from minirev.bilinear_sweep import bilinear_sweep  # noqa: E402
from minirev.report import print_bilinear_table  # noqa: E402
from minirev.plots import plot_bilinear  # noqa: E402
from minirev.theory_bilinear import descend, overlaps  # noqa: E402

OUT = lesson("03_why_the_reverse_weight_does_not_move")
STEPS = 300 if FAST else 3000
M, PAIRS, HELD_OUT, LR = 200, 50, 10, 20.0
print(f"{'fast' if FAST else 'full'} mode: {STEPS} gradient steps per run; figures go to {OUT}")

# %% [markdown]
# ## 1. The data and the pair we watch
#
# The setting: m = 200 tokens, n = 50 pairs, 10 of them held out.
# Training: x_i -> y_i for all 50 pairs, y_i -> x_i for the 40 others
# (B = 90 sentences). Test: y -> x for the 10 held-out pairs. Full-batch
# gradient descent, lr 20, Theta starts at 0.

# %%
data = pairs_data(vocab=M, pairs=PAIRS, held_out=HELD_OUT, seed=0)
B = len(data.train)
y, x = (int(t) for t in data.groups["reversal"][0])          # the test sentence is [y, x]
print(data.summary())
print(f"watched held-out pair: x = {x}, y = {y}.  [{x} -> {y}] is trained; [{y} -> {x}] never is.")
print(f"training sentences that START with y = {y}: {int((data.train[:, 0] == y).sum())}")
WATCHED = [(np.array([x, y]), np.array([y, x]))]             # (trained sentence, never-trained reverse)

# %% [markdown]
# ## 2. One-hot embeddings: the reverse weight gets no term at all
#
# With one-hot embeddings (d = m) `<u_a, u_{x_i}> = 1` if x_i = a and 0
# otherwise, and `W(a -> b) = Theta[a, b]`. A term of the change of W(y -> x)
# needs a training sentence that starts with y: there is none (printed above).
#
# A `Trace` watches the two weights and prints, for the first updates, the
# change of each and every sentence's term (largest first), with their sum.

# %%
onehot = Bilinear(M, dim=None, dtype=np.float64)
sgd = SGD(LR)
trace = Trace(onehot, lambda: onehot.watch(WATCHED),
              lambda batch: onehot.trace_terms(batch, WATCHED, sgd), steps=2, top=3)
trainer = Trainer(onehot, sgd, data, eval_every=STEPS, trace=trace)
start = time.perf_counter()
records = trainer.run(STEPS)
print(f"\n... {STEPS} steps in {time.perf_counter() - start:.1f} s")

# %%
rev = onehot.effective_weight(y, x)
logits = onehot.logits(np.array([[y, x]]))[0, 0]                  # (m,) logits of every token after y
p_rev = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
final = trainer.history[-1]
print(f"after {STEPS} steps (one-hot):")
print(f"  W({x}->{y}) = {onehot.effective_weight(x, y):.3f}   (the trained direction)")
print(f"  W({y}->{x}) = {rev!r}   exactly zero: {rev == 0.0}")
print(f"  p({x} | {y}) = {float(p_rev[x])!r}   1/m = {1 / M!r}   equal: {p_rev[x] == 1 / M}")
print(f"  training loss {final['train_nll']:.4f}   reversal loss {final['val_nll']:.12f}   log m = {math.log(M):.12f}")

# %% [markdown]
# The whole row of logits after y is still 0: the model is exactly as
# ignorant of y -> x as before training, however low the training loss.

# %% [markdown]
# ## 3. Gaussian embeddings: only cross terms, of size ~1/sqrt(d)
#
# With u_v ~ N(0, I/d), `|u|^2 ~ 1` but `<u_y, u_{x_i}> ~ N(0, 1/d)` for
# different tokens. Now every sentence has a term in the change of W(y -> x),
# but each is weighted by that small overlap. Here is the first step of a
# d = 64 run, traced:

# %%
gauss = Bilinear(M, dim=64, seed=0, dtype=np.float64)
sgd = SGD(LR)
trace = Trace(gauss, lambda: gauss.watch(WATCHED),
              lambda batch: gauss.trace_terms(batch, WATCHED, sgd), steps=1, top=3)
_ = Trainer(gauss, sgd, data, trace=trace).run(1)                  # one step, traced

# %% [markdown]
# The forward weight gets one big term, from the sentence [x -> y] itself.
# The reverse weight gets many small ones of both signs. How small, as d
# grows? For the first step (Theta = 0) and several d, print:
#
# * the overlap that carries every reverse term, the RMS over training
#   sentences of `<u_y, u_{x_i}>`, next to 1/sqrt(d);
# * the forward push (the term of [x -> y] in the change of W(x -> y));
# * the largest reverse term and the net change of W(y -> x), both relative to
#   the forward push.

# %%
DIMS = (16, 64, 256, 1024)
scale = []
print(f"{'d':>5} {'1/sqrt(d)':>10} {'rms <u_y,u_xi>':>15} {'forward push':>13} "
      f"{'largest reverse / push':>23} {'net reverse / push':>19}")
for dim in DIMS:
    model = Bilinear(M, dim=dim, seed=0, dtype=np.float64)
    terms = model.trace_terms(data.train, WATCHED, SGD(LR), name=lambda row: (int(row[0]), int(row[-1])))
    push = dict(terms[f"W({x}->{y})"])[(x, y)]
    reverse = np.array([v for _, v in terms[f"W({y}->{x})"]])
    overlap = model.U[data.train[:, 0]] @ model.U[y]                # (B,) <u_y, u_{x_i}>
    row = dict(d=dim, overlap=np.sqrt((overlap ** 2).mean()), largest=np.abs(reverse).max() / push,
               net=reverse.sum() / push)
    scale.append(row)
    print(f"{dim:>5} {1 / math.sqrt(dim):>10.4f} {row['overlap']:>15.4f} {push:>13.4f} "
          f"{row['largest']:>23.4f} {row['net']:>19.4f}")

# %% [markdown]
# The overlap column follows 1/sqrt(d). Each reverse term is that overlap
# times a second factor `<g_i, u_x>`. Read the "largest reverse / push"
# column: it falls steeply from d = 16 to d = 256, then only a little from
# d = 256 to d = 1024, far less than the factor 2 of 1/sqrt(d) there. One
# draw of 90 sentences is a small sample: the largest of 90 random terms is
# a noisy number. The net change (their sum) need not be smaller than the
# largest term: the terms do not cancel out, and at d = 16 and d = 64 the
# net change is larger in size than the largest single term (compare the
# last two columns). It changes sign from one d to the next. What does not vary: the forward push has no
# small factor, since `<u_x, u_x> = |u_x|^2 ~ 1`.

# %% [markdown]
# ## 4. Exercise: one sentence's term, from the formula
#
# Take a d = 64 model after a few steps, so that p(. | x_i) is no longer
# uniform. The trace says which sentence contributes most to the next change
# of W(y -> x), and how much. Compute that term yourself from the formula at
# the top of this lesson: the logits of the sentence's first token, its
# softmax p, `g_i = (sum_v p(v | x_i) u_v - u_{y_i}) / B`, and then the term
# `-lr <u_a, u_{x_i}> <g_i, u_b>`.

# %%
moved = copy.deepcopy(gauss)                                     # a copy: re-running this cell gives the same
_ = Trainer(moved, SGD(LR), data).run(5)                          # 5 more steps: p no longer uniform
terms = moved.trace_terms(data.train, WATCHED, SGD(LR), name=lambda row: (int(row[0]), int(row[-1])))
(sentence, trace_value) = terms[f"W({y}->{x})"][0]              # the largest term
print(f"largest term in the change of W({y}->{x}): sentence [{sentence[0]} -> {sentence[1]}], "
      f"term {trace_value:+.4e}")


def my_term(U, Theta, sentence, a, b, lr, B):
    """Sentence (x_i, y_i)'s term in the change of W(a -> b), one SGD step of rate lr on B sentences."""
    raise NotImplementedError("exercise: logits, p, g_i (with its 1/B), then the term")


check("one term of the change of W(y->x)", my_term, trace_value,
      args=(moved.U, moved.params["Theta"], sentence, y, x, LR, B), rtol=1e-8)

# %% [markdown]
# ## 5. The whole run: the dimension sweep and the exponent eps
#
# `bilinear_sweep` trains one model per embedding dimension (and one-hot) and
# records the training loss L, the reversal loss L_rev (held-out y -> x) and
# the mean forward and reverse weights of the held-out pairs.
#
# The paper's theorem (§3; `docs/paper.md`, §2, for its conditions): with
# high probability, at all times, `L_rev(t)/L_rev(0) >= (L(t)/L(0))^eps` with
# a small exponent eps. Read it: if the training loss is divided by 10^4, the
# reversal loss is divided by at most 10^(4 eps), close to 1 when eps is
# small.
#
# What the table's eps measures: `eps = log(L_rev/L_rev0) / log(L/L0)` is
# the exponent that turns that bound into an equality at the end of the run.
# The denominator is negative (the training loss fell), so the sign of eps
# is the opposite of the reversal loss's move:
#
# * eps > 0: the reversal loss FELL, and eps says how much of the training
#   loss's fall it followed (eps = 1: all of it, in ratio);
# * eps = 0: the reversal loss did not move at all;
# * eps < 0: the reversal loss ROSE above its start log m. The model is then
#   worse than a uniform guess on the reverse questions, and the theorem's
#   lower bound holds trivially, for every eps >= 0: the left side is above 1,
#   the right side below 1.

# %%
start = time.perf_counter()
sweep = RunConfig(model="bilinear", vocab=M, lr=LR, epochs=STEPS, seed=0)     # full batch: a step an epoch
data_sweep, results = bilinear_sweep(sweep, dims=(16, 64, 256, None), pairs=PAIRS, held_out=HELD_OUT, out=None)
print(f"sweep: {len(results)} runs of {STEPS} steps in {time.perf_counter() - start:.1f} s")
print_bilinear_table(results, M)

# %%
by = {r["label"]: r for r in results}
others = ", ".join(f"{r['train_end']:.4f}" for r in results[1:])
print(f"d=16 cannot fit its training set: training loss {by['d=16']['train_end']:.2f} (the others: {others})")
fits = results[1:]                                               # d=64, d=256, one-hot
for r in results:
    move = r["reversal_end"] - r["reversal_start"]
    what = "ROSE above log m" if move > 1e-9 else "FELL below log m" if move < -1e-9 else "did not move"
    print(f"{r['label']:<8} eps {r['eps']:+.4f}: the reversal loss {what} ({move:+.4f} nats)")
rises = [r["reversal_end"] - r["reversal_start"] for r in fits]
print("among the runs that fit, the rise of the reversal loss shrinks as d grows: "
      + " > ".join(f"{v:.4f} ({r['label']})" for v, r in zip(rises, fits))
      + f":  {all(a > b for a, b in zip(rises, rises[1:]))}")
print(f"one-hot: reversal loss {by['one-hot']['reversal_end']:.6f} = log m = {math.log(M):.6f}; "
      f"reverse weights of the held-out pairs: {sorted(set(by['one-hot']['reverse_weights']))}")

# %% [markdown]
# What to read in the table, and in the lines under it: the training loss
# of every run except d = 16 falls far below log m; the reversal loss does
# not follow it down (its eps is not positive), and with Gaussian embeddings
# it rises above log m, the less the larger d. With d = 16 the 200
# embeddings overlap too much to fit even the training set (a lesson about
# capacity, not about the curse). The forward weights W(x->y) grow large; the
# reverse weights W(y->x) stay small next to them (exactly 0 one-hot).

# %% [markdown]
# The theorem says *at all times*, and the end of the run is one time. The
# exponent the bound needs over the whole run is `eps_min`, the smallest eps
# with `L_rev(t)/L_rev(0) >= (L(t)/L(0))^eps` at every step t: since
# log(L(t)/L(0)) < 0 once the training loss has fallen, that is the largest
# of `log(L_rev(t)/L_rev(0)) / log(L(t)/L(0))` over those steps (here over
# the 100 evaluations of each run). When it is larger than the end value,
# the end value would claim a bound that some earlier step breaks: the
# reversal loss had fallen further, for a while, than it ends. At d = 256,
# for example, the end value is `-0.0020` (full mode), as if the reversal
# loss had only risen, while eps_min is `+0.0021` (full mode): for a while
# it fell, a little. In fast mode the two are `-0.0009` (fast mode) and
# `+0.0116` (fast mode).

# %%
def eps_min(history):
    """The smallest eps with L_rev(t)/L_rev(0) >= (L(t)/L(0))^eps at every evaluated step t."""
    L0, R0 = history[0]["train_nll"], history[0]["val_nll"]
    return max(math.log(h["val_nll"] / R0) / math.log(h["train_nll"] / L0)
               for h in history[1:] if h["train_nll"] < L0)


for r in results:
    e_min, e_end = eps_min(r["history"]), r["eps"]
    L0, R0 = r["history"][0]["train_nll"], r["history"][0]["val_nll"]
    broken = sum(h["val_nll"] / R0 < (h["train_nll"] / L0) ** e_end for h in r["history"][1:])
    print(f"{r['label']:<8} eps at the end {e_end:+.4f}, eps_min over the run {e_min:+.4f}: with the end "
          f"value the bound fails at {broken} of {len(r['history']) - 1} evaluations")

# %%
path = plot_bilinear(results, math.log(M), os.path.join(OUT, "bilinear_sweep.png"))
figure(path)

fig, ax = plt.subplots(figsize=(6.5, 4.5))
ds = np.array([r["d"] for r in scale])
ax.loglog(ds, 1 / np.sqrt(ds), "k--", lw=1, label="1/sqrt(d)")
ax.loglog(ds, [r["overlap"] for r in scale], "o-", label="rms overlap <u_y, u_{x_i}>")
ax.loglog(ds, [r["largest"] for r in scale], "s-", label="largest reverse term / forward push")
ax.loglog(ds, [abs(r["net"]) for r in scale], "^-", label="|net reverse change| / forward push")
ax.set_xticks(ds, [str(d) for d in ds])
ax.minorticks_off()
ax.set(xlabel="embedding dimension d", ylabel="size (first step, Theta = 0)",
       title="What reaches the reverse weight W(y -> x)")
ax.legend(fontsize=8)
save_figure(fig, os.path.join(OUT, "reverse_terms_vs_d.png"))

# %% [markdown]
# ## 6. Any d at the cost of m: training the effective weights themselves
#
# Everything above happens in `W = U Theta U^T`, the (m, m) matrix of
# effective weights, `W[a, b] = u_a^T Theta u_b`. The gradient of the loss
# with respect to Theta is `U^T S U`, where row a of S (m, m) is the sum of
# the logit gradients `(p(. | x_i) - onehot(y_i)) / B` of the sentences that
# start with a. So one step `Theta <- Theta - lr U^T S U` moves W by
#
#     W <- W - lr K S K,        K = U U^T, K[a, b] = <u_a, u_b>: the overlaps.
#
# Two things follow. The embedding dimension d enters only through K, so a
# step costs the same (m x m products) for d = 16 as for d = 4096: this is
# how `python -m minirev.demo theory` measures eps_min up to d = 4096. And
# the reverse weight's change is `-lr sum_a K[y, a] (S K)[a, x]`, where row a
# of S is zero unless a starts a training sentence: y starts none, so every
# K[y, a] in the sum is the overlap of y with ANOTHER token (exactly 0
# one-hot). Check that the two forms are the same training, step for step:
# 20 steps of minirev's Bilinear model (Theta, d x d) against 20 steps of
# `W - lr K S K` (minirev/theory_bilinear.py, rows of W that some sentence
# reads).

# %%
print(f"y = {y} starts a training sentence: {y in data.train[:, 0]}")
for dim in (16, 256):
    by_theta = Bilinear(M, dim=dim, seed=0, dtype=np.float64)
    Trainer(by_theta, SGD(LR), data).run(20)                       # Theta (d, d), minirev's update
    rows, W, train_k, reversal_k = descend(overlaps(M, [dim], [0])[1], data, LR, 20)   # W (1, R, m)
    U = by_theta.U_host
    expected = U[rows] @ by_theta.params["Theta"] @ U.T             # (R, m) u_a^T Theta u_b
    K = U @ U.T                                                      # (m, m)
    others = K[y, np.unique(data.train[:, 0])]                      # K[y, a] for every a that starts a sentence
    print(f"d = {dim:>3}: after 20 steps, largest |W - U Theta U^T| = {np.abs(W[0] - expected).max():.1e}")
    print(f"         the reverse weight's K[y, a]: rms {np.sqrt((others ** 2).mean()):.3f}, "
          f"1/sqrt(d) = {1 / math.sqrt(dim):.3f}")

# %% [markdown]
# The two forms agree to rounding (a few times 1e-15), and the overlaps
# K[y, a] that carry every reverse term are of size about 1/sqrt(d): the
# 1/sqrt(d) of section 3, now read off K itself.

# %% [markdown]
# ## What you saw
#
# * The update of Theta from a sentence [x_i -> y_i] is an outer product
#   `u_{x_i} g_i^T`; it moves W(a -> b) in proportion to `<u_a, u_{x_i}>`.
# * For the reverse of a held-out pair, a = y is never the first token of a
#   training sentence: with one-hot embeddings nothing moves W(y -> x), ever;
#   with Gaussian ones only overlaps of order 1/sqrt(d) do.
# * So the training loss goes to 0 while the reversal loss stays at log m
#   (or rises above it): the reversal curse, with nothing but gradient descent
#   on an unconstrained (non-symmetric) Theta.
# * Trained in the effective weights, `W <- W - lr K S K`, the same run costs
#   the same at any d, and the reverse weight's change is a sum over
#   overlaps K[y, a] of y with other tokens: nothing else reaches it.
#
# Lesson 4 looks for the same mechanism in the paper's one-layer transformer,
# where Theta is replaced by the attention's two matrices Y and Z.
