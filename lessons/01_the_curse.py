# %% [markdown]
# # Lesson 1: the reversal curse, seen
#
# **By the end of this lesson** you will have trained a small GPT on the
# paper's reversal data and seen the curse with your own eyes: every sentence
# it was trained on is answered right, and the *same facts read backwards*
# are answered worse than a uniform guess. You will know the data (340
# training and 60 validation sentences over a vocabulary of 802 tokens), the
# four groups it is evaluated on, and why log|V| is the line to compare with.
#
# **Time:** about 20 minutes of reading. The code, measured on 2 cores:
# 10 s full, 3 s fast (`MINIREV_FAST=1`: fewer epochs).
#
# Paper: Zhu et al., *Towards a Theoretical Understanding of the "Reversal
# Curse" via Training Dynamics*, NeurIPS 2024, arXiv 2405.04669: §1 (the
# phenomenon), §5 (the GPT experiment), Figure 1. The repository's
# `docs/paper.md` explains the paper in plain words (its §1, §5 and §6 here).
# The later lessons explain *why* this happens, one gradient at a time; this
# one only shows *that* it happens.

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

import math  # noqa: E402
import time  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from minirev import GPT, AdamW, Trainer, evaluate, reversal_data  # noqa: E402

OUT = lesson("01_the_curse")
EPOCHS = 60 if FAST else 300
print(f"{'fast' if FAST else 'full'} mode: {EPOCHS} epochs; figures go to {OUT}")

# %% [markdown]
# ## 1. The data
#
# The paper's generator (seed 1234, reproduced draw for draw by
# `reversal_data`): 800 entity tokens (ids 2..801) plus two relation tokens,
# `->` (id 0) and `<-` (id 1), so the model's vocabulary has |V| = 802
# tokens. Two disjoint alphabets of 200 tokens each give 200 pairs (x, y),
# so only 400 of the 800 entity tokens ever appear in a sentence: the other
# 400 are in the vocabulary (the paper's generator reserves them) but unused.
# Each pair is one fact, which can be written two ways:
#
# * forward: `[x -> y]`  ("x is the parent of y")
# * backward: `[y <- x]` ("y is the child of x")
#
# The model reads the first two tokens and must predict the third.
# 70% of the pairs are trained in **both** directions. For the other 30%, one
# random direction is trained ("val seen") and the other one is held out
# ("val unseen"): the model has been told the fact, just never in that order.

# %%
data = reversal_data(vocab=800, entity_len=1, seed=1234)
print(data.summary())
print(f"pairs: {data.info['pairs']};  training sentences: {len(data.train)};  "
      f"validation (unseen direction) sentences: {len(data.groups[data.val_group])};  "
      f"vocabulary |V| = {data.vocab_size}")

print("\na pair trained in both directions:")
print(f"  {data.sentence(data.groups['train forward'][0])}   and   {data.sentence(data.groups['train backward'][0])}")
print("held-out pairs (left: trained; right: never seen in this direction):")
for seen, unseen in zip(data.groups["val seen"][:3], data.groups["val unseen"][:3]):
    print(f"  {data.sentence(seen)}   but not   {data.sentence(unseen)}")

# %% [markdown]
# Check the counts against the sizes just printed: 140 pairs trained both
# ways give 280 sentences, plus one direction of each of the 60 held-out
# pairs: 340 training sentences. The 60 other directions are the validation
# set. Every validation sentence is a fact the model *was* taught, just
# written the other way round.

# %% [markdown]
# ## 2. Before training: what is a uniform guess worth?
#
# The loss we report is the negative log-likelihood (NLL) of the right answer,
# `-log p(answer | first two tokens)`, averaged over sentences, in nats.
# A freshly initialised GPT has small random weights, so its next-token
# distribution is nearly uniform over the |V| tokens.
#
# **Exercise (predict before you look).** What NLL does a model that gives
# every token the same probability get, on any sentence? Write it as a
# formula of `vocab_size` in the function below, then run the cell: your
# number is checked, and then the untrained model's actual NLL is printed.

# %%
def predicted_uniform_nll(vocab_size):
    """The NLL (in nats) of a model that gives each of vocab_size tokens the same probability."""
    raise NotImplementedError("exercise: the uniform guess's NLL, a formula of vocab_size")


check("uniform guess", predicted_uniform_nll, math.log(data.vocab_size), args=(data.vocab_size,))

# %%
model = GPT(data.vocab_size, layers=1, width=32, heads=4, pos="absolute", max_len=3, seed=0)
print(model.describe())
LOG_V = math.log(data.vocab_size)
print(f"\nuntrained model, NLL per group (uniform guess log|V| = log {data.vocab_size} = {LOG_V:.3f}):")
for name, tokens in data.groups.items():
    nll, acc = evaluate(model, tokens)
    print(f"  {name:<15} NLL {nll:.3f}")

# %% [markdown]
# The numbers sit right at log|V|: before training, the model knows nothing,
# in either direction. Keep that line in mind. It is what "no information"
# costs. A model that *knew nothing* about the reversed facts would stay there;
# we will see that the trained one does worse.

# %% [markdown]
# ## 3. Train
#
# A 1-layer GPT of width 32 with AdamW (lr 0.01, weight decay 0.01, batch 64),
# the paper's optimiser settings on a much smaller network, and the public
# code's other defaults as it runs them: an output layer of its own (not tied
# to the input embedding) and dropout 0.1 (`docs/paper.md`, §4). (The
# paper's appendix reports the same curse for much smaller models than its
# 24 layers, down to a single layer: `docs/paper.md`, §6.) The loss is the
# cross-entropy of the third token only.

# %%
trainer = Trainer(model, AdamW(lr=0.01, weight_decay=0.01), data, batch_size=64, seed=0, eval_every=5)
start = time.perf_counter()


def progress(trainer, record):
    if trainer.epoch % (EPOCHS // 5) == 0:
        print(f"epoch {trainer.epoch:>4}  training NLL {record['train_nll']:.4f}  "
              f"val unseen NLL {record['val unseen nll']:.3f}")


history = trainer.run(EPOCHS, on_eval=progress)
print(f"trained {EPOCHS} epochs ({trainer.step} AdamW steps) in {time.perf_counter() - start:.1f} s")

# %% [markdown]
# ## 4. The table: each group against the uniform guess
#
# Look at the last column of each row. "train forward", "train backward" and
# "val seen" are sentences the model was trained on. "val unseen" holds the
# same facts, read in the direction it never saw.

# %%
final = trainer.evaluate()
print(f"{'group':<16} {'sentences':>9} {'NLL':>8} {'accuracy':>9}   vs log|V| = {LOG_V:.3f}")
print("-" * 66)
for name, tokens in data.groups.items():
    nll, acc = final[f"{name} nll"], final[f"{name} acc"]
    print(f"{name:<16} {len(tokens):>9} {nll:>8.3f} {100 * acc:>8.1f}%   "
          f"{'BELOW' if nll < LOG_V else 'ABOVE'} the uniform guess")
unseen_nll = final["val unseen nll"]
print(f"\nval unseen: NLL {unseen_nll:.2f} is {unseen_nll - LOG_V:+.2f} nats from log|V| = {LOG_V:.2f}, "
      f"i.e. the geometric mean of p(right answer) is exp(-NLL) = {math.exp(-unseen_nll):.1e}, "
      f"against 1/|V| = {1 / data.vocab_size:.1e} for a uniform guess")

# %% [markdown]
# The trained groups have NLL far below log|V| and near-perfect accuracy.
# The unseen direction is not merely unlearned: its NLL is *above* log|V|.
# The model is more sure of a wrong answer than a model that knows nothing.
# The paper reports the same for a 24-layer GPT (validation NLL at or above
# log|V| over all 3000 epochs, 10 seeds).

# %% [markdown]
# ## 5. Concrete answers
#
# Ask the model directly. For a held-out pair, give it the prefix of the
# trained direction and of the unseen direction, and look at its top three
# guesses and at where the right answer ranks among all 802 tokens.

# %%
def answers(sentence, top=3):
    """p of the right answer, its rank (1 = top), and the model's top guesses."""
    logits = model.logits(sentence[None])[0, 0].astype(np.float64)     # (V,) scores of the 3rd token
    p = np.exp(logits - logits.max())
    p /= p.sum()
    order = np.argsort(-p)
    rank = int(np.nonzero(order == sentence[-1])[0][0]) + 1
    return p[sentence[-1]], rank, [(int(t), p[t]) for t in order[:top]]


for seen, unseen in zip(data.groups["val seen"][:2], data.groups["val unseen"][:2]):
    for what, s in (("trained", seen), ("unseen ", unseen)):
        p_right, rank, top = answers(s)
        guesses = ", ".join(f"{t} ({q:.2g})" for t, q in top)
        print(f"{what} {data.sentence(s[:2])[:-1]} ?]  right answer {s[-1]}: p = {p_right:.2g}, "
              f"rank {rank} of {data.vocab_size};  top 3: {guesses}")
    print()

# %% [markdown]
# What *does* it answer in the unseen direction? Count how often its top guess
# is a token that, in training, was an answer after the same relation token:
# the right *kind* of entity, but the wrong one.

# %%
unseen = data.groups["val unseen"]
top_guess = model.logits(unseen)[:, 0, :].argmax(-1)
answers_after = {rel: set(data.train[data.train[:, 1] == rel, -1].tolist()) for rel in (0, 1)}
same_kind = sum(int(g) in answers_after[int(s[1])] for g, s in zip(top_guess, unseen))
print(f"unseen direction: top guess right in {int((top_guess == unseen[:, -1]).sum())} of {len(unseen)} sentences; "
      f"a trained answer of the same relation in {same_kind} of {len(unseen)}")

# %% [markdown]
# ## 6. The curves
#
# NLL of each group over training, with the uniform guess as a dashed line.

# %%
epochs = [r["epoch"] for r in history]
fig, ax = plt.subplots(figsize=(7.5, 4.5))
styles = (("train forward", "C0", "-", 3.5), ("train backward", "C1", "-", 2), ("val seen", "C2", "--", 1.5),
          ("val unseen", "C3", "-", 1.5))                # three curves fall to near 0: widths and dashes tell them apart
for name, color, ls, lw in styles:
    ax.plot(epochs, [r[f"{name} nll"] for r in history], color=color, ls=ls, lw=lw, label=name)
ax.axhline(LOG_V, color="gray", ls="--", lw=1, label=f"uniform guess, log|V| = {LOG_V:.2f}")
ax.set(xlabel="epoch", ylabel="NLL of the answer (nats, log scale)", yscale="log",
       title=f"The reversal curse: 1-layer GPT, {len(data.train)} training sentences")
ax.legend()
save_figure(fig, os.path.join(OUT, "nll_curves.png"))

# %% [markdown]
# ## What you saw, and what comes next
#
# * The trained facts are learned in both directions when both are in the
#   data ("train forward" and "train backward"), and in the one trained
#   direction of the held-out pairs ("val seen").
# * The same facts in the untrained direction ("val unseen") score worse than
#   a uniform guess: the model does not infer "y <- x" from "x -> y".
#
# Why? The paper's answer is about the *updates*: a gradient step on
# `[x -> y]` raises the weight from x to y and does nothing (or almost
# nothing) for the weight from y to x. Lesson 2 writes that gradient by hand
# for the simplest model that has the curse; lesson 3 watches the two weights
# update by update.
