# %% [markdown]
# # Lesson 7: chain of thought
#
# **By the end of this lesson** you will have seen the paper's second
# consequence of the same training dynamics. Train a GPT on `A -> B` and
# `B -> C` for every triple, and on the direct `A ~> C` for most triples.
# For the other triples the model knows both steps, yet cannot answer
# `A ~> ?` in one go: the direct answer is never trained for them, and a
# gradient step on the other triples' `A ~> C` does not write it. Asked to
# go step by step (predict B, then feed B back and predict C) the same model
# gets them right. You will decode the two steps yourself.
#
# **Time:** about 30 minutes of reading. The code, measured on 2 cores:
# 10 s full, 6.5 s fast (`MINIREV_FAST=1`: a smaller vocabulary).
#
# Paper: arXiv 2405.04669, §4.2 (chain of thought, in the one-layer model)
# and §5 (the chain experiment on a GPT); `docs/paper.md`, §3 and §5, for the
# argument and the data generator.

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

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from minirev import RunConfig, run_experiment  # noqa: E402
from minirev.measures import chain_step_by_step, logit_matrix  # noqa: E402
from minirev.report import print_report  # noqa: E402
from minirev.plots import plot_heatmaps  # noqa: E402

OUT = lesson("07_chain_of_thought")
VOCAB, EPOCHS = (200, 150) if FAST else (800, 100)
CFG = RunConfig(experiment="chain", model="gpt", layers=2, width=64, heads=4, epochs=EPOCHS, eval_every=5,
                vocab=VOCAB, seed=1234, dropout=0.0)      # untied (the default); no dropout: fits sooner
print(f"{'fast' if FAST else 'full'} mode: vocabulary {VOCAB} entities, {EPOCHS} epochs; figures go to {OUT}")

# %% [markdown]
# ## 1. The data
#
# Three disjoint alphabets (vocab/4 tokens each) give the triples (a, b, c);
# in full mode 200 of them. Three kinds of sentence, with two relation
# tokens, `->` (id 0) and `~>` (id 1):
#
# * `[a -> b]`: the first step;
# * `[b -> c]`: the second step;
# * `[a ~> c]`: the direct answer, two steps in one.
#
# 70% of the triples train all three sentences. The other 30% train only the
# two steps; their direct `[a ~> c]` is the validation set. Every validation
# fact is implied by two trained facts. `run_experiment("chain", ...)` builds
# the data with `chain_data`, the paper's generator (seed 1234), and trains
# the same 2-layer GPT as lesson 6 (untied output layer), here without
# dropout so that it fits its training set in fewer epochs.

# %%
result, runs = run_experiment(CFG)
model, data, trainer = runs[0]["model"], runs[0]["dataset"], runs[0]["trainer"]
print()
for name in ("B given A (val)", "C given B (val)", "C given A (val)"):
    print(f"  {name:<17} e.g. {data.sentence(data.groups[name][0])}")
print_report(result, runs)
final = result["final"]
LOG_V = final["log_vocab"]

# %% [markdown]
# The table reads like lesson 6's. In full mode every trained group ends
# near NLL 0 (in fast mode, with a fifth of the data and few epochs, some
# training groups are not fit yet: the report's last line says so),
# including both steps of the validation triples ("B given A (val)" and "C
# given B (val)": those sentences *are* trained). The direct question on the
# validation triples, "C given A (val)", ends far above log|V|: the model
# puts less probability on the right C than a uniform guess would.
#
# ## 2. Step by step
#
# Now let the model write out the intermediate answer. For each validation
# triple: read `[a ->]`, take the most likely next token as `b_hat`; then read
# `[b_hat ->]` and take the most likely next token as `c_hat`.
# `chain_step_by_step` does exactly this and also scores the direct `[a ~>]`
# by its argmax.

# %%
steps = chain_step_by_step(model, data)
print(f"validation triples ({len(data.groups['C given A (val)'])}):")
print(f"  step 1, [a -> ?]  right: {100 * steps['b_acc']:5.1f}%")
print(f"  step 2, [b_hat -> ?] right: {100 * steps['step_by_step_acc']:5.1f}%   (two steps, chained)")
print(f"  direct, [a ~> ?]  right: {100 * steps['direct_acc']:5.1f}%")

# %% [markdown]
# Two steps: right. One step: wrong. The model holds both facts, and can use
# them in sequence, but did not learn the composed map for these triples.
#
# **Exercise.** Write the two-step decoding yourself. `model.next_logits(prefix)`
# takes prefixes of shape (n, T) and returns the next-token logits (n, V).
# Given the validation prompts `[a ->]` (shape (n, 2)), return `b_hat` and
# `c_hat` (each of shape (n,)): the argmax after `[a ->]`, then the argmax
# after `[b_hat ->]` (the same relation token `->`: the second step is a
# `B -> C` sentence). Checked token by token against the package's decoding.

# %%
def two_step_decode(model, prompts):
    """(b_hat, c_hat), each (n,): the argmax after [a ->], then the argmax after [b_hat ->]."""
    raise NotImplementedError("exercise: decode b, feed it back, decode c")


first = data.groups["B given A (val)"]                               # [a -> b]
second = data.groups["C given B (val)"]                              # [b -> c], same triples, same order
prompts = first[:, :2]                                               # (n, 2) [a ->]


def tokens_of(decoded):
    """Your (b_hat, c_hat) as one (2, n) array of token ids."""
    return np.stack([np.asarray(d).ravel() for d in decoded])


def wrong_token(yours, expected):
    """None, or which decoded token is wrong first: the step, the prompt, yours and the expected one."""
    if yours.shape != expected.shape:
        return f"(b_hat, c_hat) of shape {yours.shape}, expected {expected.shape}: one token per prompt, each step"
    for step, what in enumerate(("b_hat (the answer to [a ->])", "c_hat (the answer to [b_hat ->])")):
        bad = np.flatnonzero(yours[step] != expected[step])
        if bad.size:
            i = bad[0]
            return (f"{what} is wrong for {bad.size} of {expected.shape[1]} prompts; the first is prompt {i}, "
                    f"[{prompts[i, 0]} ->]: yours {yours[step, i]}, expected {expected[step, i]}")
    return None


# the expected tokens, decoded the way minirev.measures.chain_step_by_step does (its accuracies are above)
b_ref = np.asarray(model.logits(first)).argmax(-1)[:, 0]                       # (n,) teacher-forced [a -> .]
c_ref = np.asarray(model.logits(np.stack([b_ref, second[:, 1], second[:, 2]], 1))).argmax(-1)[:, 0]
check("two-step decoding", two_step_decode, np.stack([b_ref, c_ref]), args=(model, prompts), then=tokens_of,
      problem_of=wrong_token)

# %% [markdown]
# ## After the exercise: some triples, decoded both ways
#
# Try the exercise before reading on: the next cell decodes with the
# package's own code (so it runs whatever your exercise says). What *does* the model answer to the direct
# `[a ~> ?]`? We sort its guesses: the right c; the b of the same triple
# (the one fact it does know about a); some other C, i.e. a token of the
# third alphabet, the kind of answer that follows `~>` in training; or
# anything else.

# %%
b_hat = model.next_logits(prompts).argmax(-1)
c_hat = model.next_logits(np.stack([b_hat, prompts[:, 1]], axis=1)).argmax(-1)
direct = data.groups["C given A (val)"]                              # [a ~> c]
direct_guess = model.next_logits(direct[:, :2]).argmax(-1)
c_tokens = set(data.train[data.train[:, 1] == 1, 2].tolist()) | set(direct[:, 2].tolist())   # all the Cs


def kind_of(guess, b, c):
    return "the right c" if guess == c else "its own b" if guess == b else \
        "another C" if int(guess) in c_tokens else "something else"


kinds = [kind_of(g, b, c) for g, b, c in zip(direct_guess, first[:, 2], second[:, 2])]
for i in range(4):
    a, b, c = first[i, 0], first[i, 2], second[i, 2]
    print(f"triple a={a} b={b} c={c}:  [{a} ->] -> {b_hat[i]}, [{b_hat[i]} ->] -> {c_hat[i]}   "
          f"|  direct [{a} ~>] -> {direct_guess[i]} ({kinds[i]})")
print(f"\nthe direct guess on the {len(direct)} validation triples: " +
      ", ".join(f"{k} {kinds.count(k)}" for k in ("the right c", "its own b", "another C", "something else")))

# %% [markdown]
# The direct guess is never the right c, but it is not random either: it
# is mostly a token the model has learned to say after a or after `~>`
# (its own b, or another triple's C: the printed counts). Which of the two
# wins differs between full and fast mode. What the model cannot do is get
# from this a to its own c in one step.
#
# ## 3. The heatmaps
#
# As in lesson 6, entry (i, j) of a group's matrix is
# `logit(answer_j | prefix_i)`, with the relation token. We print the same
# diagonal summary, and the median rank of the right answer among all |V|
# tokens (a uniform guess: about |V|/2).

# %%
matrices = {}
print(f"{'group':<18} {'n':>3} {'diagonal':>9} {'off-diag':>9} {'row max on diag':>16} {'chance':>7} "
      f"{'median rank':>12}")
for name, group in data.groups.items():
    M = logit_matrix(model, group)                                   # (n, n), up to 60 sentences
    matrices[name] = M
    n = len(M)
    logits = np.asarray(model.logits(group))[:, 0, :].astype(np.float64)          # (N, V)
    ranks = 1 + (logits > logits[np.arange(len(group)), group[:, -1]][:, None]).sum(1)
    print(f"{name:<18} {n:>3} {np.trace(M) / n:>9.2f} {(M.sum() - np.trace(M)) / (n * n - n):>9.2f} "
          f"{100 * np.mean(M.argmax(1) == np.arange(n)):>15.0f}% {100 / n:>6.1f}% {np.median(ranks):>12.0f}")
print(f"(a uniform guess ranks the right answer about |V|/2 = {data.vocab_size // 2} on average)")
path = plot_heatmaps(matrices, os.path.join(OUT, "heatmaps.png"),
                     "logit(answer j | prefix i): train (top row) and validation triples (bottom row)", ncols=3)
figure(path)

# %% [markdown]
# Five panels have a bright diagonal; "C given A (val)" does not stand out
# the same way: its diagonal entries are far lower than the others'. In
# full mode its row maxima fall on the diagonal close to the rate of chance.
# And the right C's median rank is no better than a uniform guess's (the
# line under the table): the direct map for these triples was simply not
# learned.
# Like the unseen direction of lesson 6, the direct question is not answered
# by rank either.
#
# ## 4. The curves
#
# The NLL of each group over training: both steps of the validation triples
# are learned like any trained sentence, while the direct question climbs
# away from log|V|.

# %%
history = trainer.history
epochs = [r["epoch"] for r in history]
fig, ax = plt.subplots(figsize=(8, 4.8))
for k, name in enumerate(data.groups):
    ax.plot(epochs, [r[f"{name} nll"] for r in history], color=f"C{k}", lw=2 if "val" in name else 1,
            ls="-" if "val" in name else ":", label=name)
ax.axhline(LOG_V, color="gray", ls="--", lw=1, label=f"uniform guess, log|V| = {LOG_V:.2f}")
ax.set(xlabel="epoch", ylabel="NLL of the answer (nats)",
       title=f"chain: 2-layer GPT, {len(data.train)} training sentences")
ax.legend(fontsize=8)
save_figure(fig, os.path.join(OUT, "nll_curves.png"))

# %% [markdown]
# ## Why, in the paper's terms
#
# In the one-layer model of lesson 4 the answer to `[a ~> ?]` is read from
# the decoder rows of the context tokens a and `~>`. A gradient step on a
# trained `[a' ~> c']` writes into the rows of a' and of `~>`; the row of a
# validation a is written only by `[a -> b]`, toward b, never toward c. So the
# logit of c after `[a ~>]` is never raised, while the row of `~>` learns to
# push down every C it has not been asked for. The two steps, by contrast,
# are each a trained sentence. This is the reversal curse's mechanism with
# "reverse" replaced by "compose": a model learns the maps it is shown, in
# the direction and at the depth it is shown them.
#
# ## What to remember
#
# * Trained on A -> B and B -> C, the GPT answers A ~> C only for the
#   triples where A ~> C itself was trained. On the others its NLL is above
#   the uniform guess.
# * Chained, the two learned steps give the right answer: writing out the
#   intermediate B (chain of thought) works where the one-step answer fails.
#
# Next, lessons 8 and 9: what breaks the curse, on the data side and on the
# model side.
