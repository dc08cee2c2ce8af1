# %% [markdown]
# # Lesson 2: the bilinear model, by hand
#
# **By the end of this lesson** you will have computed, with nothing but
# NumPy, the forward pass (logits, softmax, cross-entropy) and the whole
# backward pass of the paper's simplest model of the reversal curse, the
# bilinear model of its section 3. You will derive the gradient of the
# logits and of Theta, check them against finite differences and against
# autograd (`minirev.check_model`), and see the check FAIL on a gradient
# that is transposed, doubled, of the wrong sign, or off by a factor.
#
# **Time:** about 30 minutes of reading. The code, measured on 2 cores:
# 2 s full, 2 s fast (the sizes are the same in both modes).
#
# Paper: arXiv 2405.04669, §3 (the bilinear model and its gradient);
# `docs/paper.md`, §2 "Model 1", says the same in plain words.
#
# The model: every token v of a vocabulary of m tokens
# has a FIXED embedding u_v in R^d (Gaussian N(0, I/d) here). The only trainable
# parameter is a d x d matrix Theta, unconstrained (not symmetric):
#
#     logit(y | x) = u_x^T Theta u_y        p(y | x) = softmax over y of logit(y | x)
#
# A sentence is a pair [x, y]: read x, predict y.

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

import copy  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from minirev import SGD, Bilinear, check_model, pairs_data  # noqa: E402
from minirev.layers import cross_entropy_backward, cross_entropy_forward  # noqa: E402

OUT = lesson("02_bilinear_by_hand")
print(f"{'fast' if FAST else 'full'} mode (the same sizes in both: this lesson is small); figures go to {OUT}")

# %% [markdown]
# ## 1. A tiny problem you can print
#
# m = 12 tokens, d = 6, and 4 pairs of which 1 is held out: the training set
# is x_i -> y_i for all 4 pairs plus y_i -> x_i for the 3 others, so B = 7
# sentences. Theta would start at 0 in training; here we fill it with random
# numbers, so that every term of the gradient is nonzero and a mistake cannot
# hide. Everything is float64: float32's 1e-7 resolution is too coarse to
# tell a right gradient from a slightly wrong one.

# %%
m, d = 12, 6
data = pairs_data(vocab=m, pairs=4, held_out=1, seed=0)
model = Bilinear(m, dim=d, seed=0, dtype=np.float64)
model.params["Theta"][...] = np.random.default_rng(1).standard_normal((d, d))
tokens = data.train                                     # (B, 2) sentences [x, y]
B = len(tokens)
print(f"training sentences [x, y] (B = {B}):", " ".join(data.sentence(s) for s in tokens))
print(f"held out (the reversal test): {data.sentence(data.groups['reversal'][0])}")

# %% [markdown]
# ## 2. Forward, by hand
#
# Stack the embeddings of the first tokens into `ux` (B x d). Then all logits
# of all sentences are one product: `logits[i, v] = u_{x_i}^T Theta u_v`,
# i.e. `logits = ux @ Theta @ U.T` (B x m).

# %%
U = model.U                                             # (m, d) fixed embeddings
Theta = model.params["Theta"]                           # (d, d) the trainable parameter
x, y = tokens[:, 0], tokens[:, 1]                       # (B,), (B,)
ux = U[x]                                               # (B, d) u_{x_i}
logits = ux @ Theta @ U.T                               # (B, m)
print(f"logits by hand vs model.logits: max |diff| = {np.abs(logits - model.logits(tokens)[:, 0, :]).max():.1e}")

p = np.exp(logits - logits.max(axis=1, keepdims=True))  # (B, m) subtracting the max changes nothing but overflow
p /= p.sum(axis=1, keepdims=True)                       # (B, m) p(v | x_i), rows sum to 1
loss = -np.log(p[np.arange(B), y]).mean()               # mean cross-entropy of the right answers
print(f"loss by hand {loss:.12f}   model.loss {model.loss(tokens):.12f}")

# %% [markdown]
# ## 3. Backward, step 1: the gradient of the logits
#
# Sentence i's loss is
#
#     l_i = -log p_i[y_i] = -logits_i[y_i] + log sum_v exp(logits_i[v])
#
# Differentiate with respect to `logits_i[v]`: the first term gives
# `-[v = y_i]`, the second gives `exp(logits_i[v]) / sum_w exp(logits_i[w]) = p_i[v]`.
# So `dl_i/dlogits_i = p_i - onehot(y_i)`. The loss L is the MEAN of the
# l_i over the B sentences: what does that do to `dlogits = dL/dlogits`?
#
# **Exercise A.** Write `dlogits` (B x m) from `p` (B x m) and the answers
# `y` (B,). It is checked against the package's `cross_entropy_backward`.

# %%
def my_dlogits(p, y):
    """dL/dlogits (B x m) for the mean cross-entropy, from p (B x m) and the answers y (B,)."""
    raise NotImplementedError("exercise: dlogits from p and y")


_, ce_cache = cross_entropy_forward(np, logits, y)
dlogits = cross_entropy_backward(1.0, ce_cache)         # (B, m) the package's answer, used from here on
check("dlogits", my_dlogits, dlogits, args=(p, y))

# %% [markdown]
# Once your check says OK (or after a real try), compare with the solution,
# `my_dlogits` in `minirev/lessons/solutions/02_bilinear_by_hand.py`. Read
# your formula: the right answer is pulled up by 1 - p, every other token is
# pushed down by its own probability, and each sentence counts 1/B.

# %% [markdown]
# ## 4. Backward, step 2: the gradient of Theta
#
# Write the forward with indices: `logits[i, v] = sum_{j,k} ux[i, j] Theta[j, k] U[v, k]`.
# Theta[j, k] appears in every logit, so by the chain rule
#
#     dL/dTheta[j, k] = sum_{i,v} dlogits[i, v] ux[i, j] U[v, k]
#
# Group the sum over v first: `g_i = sum_v dlogits[i, v] u_v` (that is `dlogits @ U`,
# B x d). Then `dTheta[j, k] = sum_i ux[i, j] g_i[k]`: a sum over sentences of
# outer products `u_{x_i} g_i^T`, which one matrix product computes (exercise B).
#
# With the 1/B inside dlogits,
# `g_i = (E_{v ~ p(.|x_i)} u_v - u_{y_i}) / B`: the expected answer embedding
# minus the right one, divided by B. This is the gradient formula of the
# paper's §3 (`docs/paper.md`, §2):
# `grad_Theta L = -(1/|D|) sum u_x (u_y - sum_v p(v|x) u_v)^T`, with |D| = B.
# Every lesson (and the package's trace) uses this g_i, with the 1/B in it.
#
# Look at the shape of `u_{x_i} g_i^T`: sentence i adds an outer product whose *left* factor is
# u_{x_i}, the embedding of the token it *reads*. A sentence only writes into
# Theta along the direction of its first token. Lesson 3 is about what that
# means for the reverse direction.
#
# **Exercise B.** Write `dTheta` from `ux` (B x d), `dlogits` (B x m) and `U` (m x d).
# Checked against the model's hand-written backward, `model.loss_and_grads`.

# %%
def my_dtheta(ux, dlogits, U):
    """dL/dTheta (d x d) from ux (B x d), dlogits (B x m) and the embeddings U (m x d)."""
    raise NotImplementedError("exercise: dTheta from ux, dlogits and U")


_, grads = model.loss_and_grads(tokens)
dTheta = grads["Theta"]                                 # (d, d) the package's answer, used from here on
check("dTheta", my_dtheta, dTheta, args=(ux, dlogits, U))

# %% [markdown]
# ## 5. Is the package's dTheta right? Finite differences
#
# The oldest check: nudge one entry of Theta by +-h and watch the loss,
# `(L(Theta + h E_jk) - L(Theta - h E_jk)) / 2h`, with an error of order h^2.

# %%
h = 1e-5
print(f"{'entry':<10} {'dTheta (backward)':>18} {'finite difference':>18} {'|diff|':>9}")
for j, k in [(0, 0), (1, 3), (4, 2), (5, 1)]:
    saved = Theta[j, k]
    Theta[j, k] = saved + h
    up = model.loss(tokens)
    Theta[j, k] = saved - h
    down = model.loss(tokens)
    Theta[j, k] = saved                                 # put it back
    numeric = (up - down) / (2 * h)
    print(f"({j}, {k})    {dTheta[j, k]:>18.10f} {numeric:>18.10f} {abs(dTheta[j, k] - numeric):>9.1e}")

# %% [markdown]
# ## 6. The check every lesson uses: autograd on the same forward
#
# `check_model` copies the model to float64, runs the hand-written backward,
# and asks autograd to differentiate the *same* forward function. It prints one
# line per parameter: max |diff|, the relative error
# `|hand - auto| / (|hand| + |auto|)` (Frobenius norms) and OK below 1e-7.

# %%
ok, rows = check_model(model, tokens)
right_error = rows[0]["rel_error"]

# %% [markdown]
# ## 7. A wrong gradient must FAIL
#
# A check that passes everything is worthless. Build models whose backward
# makes a classic mistake (subclasses of `Bilinear` that spoil its dTheta)
# and run the same check. The relative error tells the mistakes apart:
# a factor k gives |k - 1| / (k + 1) (1/3 for a factor 2); a wrong sign
# gives exactly 1; a transposed matrix anything from 0 (were dTheta symmetric)
# to 1, depending on how far from symmetric dTheta is.

# %%
MISTAKES = {
    "transposed": lambda g: g.T,
    "factor 2": lambda g: 2 * g,
    "wrong sign": lambda g: -g,
    f"no 1/B (x{B})": lambda g: B * g,
}


def model_with(mistake):
    class Wrong(Bilinear):
        def backward(self, cache):
            return {"Theta": mistake(super().backward(cache)["Theta"])}
    wrong = Wrong(m, dim=d, seed=0, dtype=np.float64)
    wrong.params["Theta"][...] = Theta
    return wrong


errors = {"right": right_error}
for name, mistake in MISTAKES.items():
    print(f"\nmistake: {name}")
    ok, rows = check_model(model_with(mistake), tokens)
    errors[name] = rows[0]["rel_error"]
print(f"\nexpected relative error for a factor 2: 1/3 = {1 / 3:.4f}; for a factor {B}: "
      f"{(B - 1) / (B + 1):.4f}; wrong sign: 1")

# %% [markdown]
# ## 8. One step of gradient descent, read as effective weights
#
# The theory talks about effective weights `W(a -> b) = u_a^T Theta u_b`, the
# logit of b after a. One SGD step `Theta <- Theta - lr * dTheta` changes it by
#
#     - lr * u_a^T dTheta u_b = - lr * sum_i <u_a, u_{x_i}> <g_i, u_b>
#
# one term per training sentence, and each term is *weighted by how much the
# sentence's first token x_i looks like a*. Check the formula on a real step,
# for the held-out pair's forward weight W(x -> y) and reverse weight W(y -> x).

# %%
held_y, held_x = (int(t) for t in data.groups["reversal"][0])     # the held-out test sentence is [y, x]
g = dlogits @ U                                                   # (B, d) g_i
lr = 1.0
predicted = {}
for a, b in ((held_x, held_y), (held_y, held_x)):
    terms = -lr * (ux @ U[a]) * (g @ U[b])                        # (B,) one term per sentence
    predicted[(a, b)] = (model.effective_weight(a, b), terms.sum())
stepped = copy.deepcopy(model)                                    # a copy: the exercises above keep their model
SGD(lr).step(stepped.params, grads)
for (a, b), (before, change) in predicted.items():
    after = stepped.effective_weight(a, b)
    print(f"W({a}->{b}): {before:+.6f} -> {after:+.6f}   change {after - before:+.3e}   "
          f"formula {change:+.3e}")

# %% [markdown]
# The formula predicts the step exactly. Note that both weights moved here,
# by different amounts and not in the same direction (the two lines above):
# Theta was random and the embeddings Gaussian, so every <u_a, u_{x_i}> is
# nonzero, and one step from a random start moves the reverse weight as
# readily as the forward one; nothing yet singles out the trained direction. Lesson 3 starts Theta at 0, as in training, and asks how big the
# reverse terms are, for one-hot and for Gaussian embeddings.

# %% [markdown]
# ## 9. Picture: what the backward starts from, and how loud a mistake is

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
lim = np.abs(dlogits).max()
im = ax1.imshow(dlogits, cmap="RdBu_r", vmin=-lim, vmax=lim)
ax1.scatter(y, np.arange(B), marker="o", facecolors="none", edgecolors="k", s=90, label="right answer y_i")
ax1.set(title="dlogits = (p - onehot(y)) / B", xlabel="token v", ylabel="sentence i")
ax1.legend(loc="lower right", fontsize=8)
fig.colorbar(im, ax=ax1, fraction=0.03)
names = list(errors)
ax2.bar(names, [max(errors[n], 1e-17) for n in names], color=["C2"] + ["C3"] * (len(names) - 1))
ax2.axhline(1e-7, color="k", ls="--", lw=1, label="tolerance 1e-7")
ax2.set(yscale="log", ylabel="relative error vs autograd", title="check_model: the right dTheta vs four mistakes")
ax2.legend()
save_figure(fig, os.path.join(OUT, "gradient_check.png"))

# %% [markdown]
# ## What you did
#
# * forward: `logits = ux @ Theta @ U.T`, softmax, mean cross-entropy;
# * backward: `dlogits = (p - onehot) / B`, then `dTheta = ux.T @ (dlogits @ U)`:
#   two lines, the whole backward pass of this model;
# * checked it by finite differences and against autograd, and saw the same
#   check fail loudly on four classic mistakes.
#
# The structure to remember for lesson 3: each sentence's update is an outer
# product `u_{x_i} g_i^T`, so a change of `W(a -> b)` needs a training sentence
# whose FIRST token looks like a.
