# %% [markdown]
# # Lesson 6: the curse in a GPT
#
# **By the end of this lesson** you will have run the paper's main experiment
# (a GPT trained on the reversal data, AdamW, the paper's data generator
# draw for draw), read its table and its logit heatmaps (with the relation
# token, and the public code's way without it), looked closely at *how
# unlearned* the unseen direction really is in this small model, and
# accounted for the first updates of a trained and an unseen logit tensor by
# tensor, exactly: each tensor's share of a change is `<d logit / d tensor,
# averaged along the update, update>`.
#
# **Time:** about 45 minutes of reading. The code, measured on 2 cores:
# 22 s full, 9 s fast (`MINIREV_FAST=1`: a smaller vocabulary
# and fewer epochs).
#
# Paper: arXiv 2405.04669, §5 (the reversal experiment on a GPT, its logit
# heatmaps); `docs/paper.md`, §4 (the public code's settings, and why its
# output layer is untied), §5 (the data) and §6 (what the paper reports).
#
# Lesson 1 showed the curse; lesson 5 built the GPT's backward. Here the two
# meet: the backward of lesson 5 is used not for the loss, but for one logit.

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

from minirev import GPT, AdamW, RunConfig, Trace, Trainer, reversal_data, run_experiment  # noqa: E402
from minirev.measures import held_out_pairs, logit_matrix  # noqa: E402
from minirev.report import print_report  # noqa: E402
from minirev.plots import plot_heatmaps, plot_nll_curves  # noqa: E402

OUT = lesson("06_the_curse_in_a_gpt")
VOCAB, EPOCHS = (400, 60) if FAST else (800, 150)
TRACE_STEPS = 12 if FAST else 30
CFG = RunConfig(experiment="reversal", model="gpt", layers=2, width=64, heads=4, epochs=EPOCHS, eval_every=5,
                vocab=VOCAB, seed=1234)                   # the rest: the defaults (untied, dropout 0.1)
print(f"{'fast' if FAST else 'full'} mode: vocabulary {VOCAB} entities, {EPOCHS} epochs, "
      f"{TRACE_STEPS} traced steps; figures go to {OUT}")

# %% [markdown]
# ## 1. The experiment
#
# The model and optimiser are those of `python -m minirev.demo reversal`: a
# 2-layer GPT of width 64 with 4 heads, learned absolute positions, and,
# as the paper's public code runs (`docs/paper.md`, §4), an **untied**
# output layer (its own matrix `w_out`, not the input embedding `wte`) and
# dropout 0.1; AdamW with the paper's settings (lr 0.01, betas (0.9, 0.999),
# weight decay 0.01, batch 64). The paper's own network is GPT-2 with 24
# layers of width 768 for 3000 epochs: hours on a GPU. Lesson 9 comes back
# to size, to dropout and to the output layer.
#
# `run_experiment` builds the data (`reversal_data(vocab, seed=1234)`: in full
# mode the paper's 340 training and 60 validation sentences), the model and
# the optimiser, trains, and returns a JSON-ready `result` plus the `runs`
# (model, dataset, trainer). `print_report` prints the table.

# %%
result, runs = run_experiment(CFG)
model, data, trainer = runs[0]["model"], runs[0]["dataset"], runs[0]["trainer"]
print_report(result, runs)
final = result["final"]
LOG_V = final["log_vocab"]
print(f"\ntrained {trainer.step} steps in {result['run']['seconds']:.1f} s")
path = plot_nll_curves([trainer.history], LOG_V, os.path.join(OUT, "nll_curves.png"),
                       f"reversal: 2-layer GPT, {len(data.train)} training sentences",
                       val_label="validation (val unseen)")
figure(path)

# %% [markdown]
# Read the table as the paper does: every group the model was trained on
# ends with an NLL near 0; the held-out direction, "val unseen", ends
# *above* log|V|, the cost of a uniform guess. By this measure, the curse.
#
# ## 2. The logit heatmaps
#
# A heatmap asks a sharper question than the NLL. Take the n sentences of
# a group, e.g. "val unseen" `[y_i <- x_i]`. Entry (i, j) is
# `logit(answer_j | prefix_i)`: how much the model likes sentence j's answer
# after sentence i's prefix. If the model knows the facts, each row's
# largest entry is on the diagonal. `logit_matrix(model, group)` computes it
# from the prefix `[entity, relation]`, the position the loss trains.
#
# The paper's public code read these logits differently: from the entity
# *alone* (`with_relation=False`, the sequence `[entity]`), a position the loss
# never trains, so the model was never told what to predict there. We draw
# both: top row with the relation token, bottom row without it.
#
# To put numbers on what the eye sees, for each matrix we print the mean
# diagonal entry, the mean off-diagonal entry, and the fraction of rows
# whose largest entry is the diagonal one (chance: 1/n).

# %%
def diagonal_summary(M):
    """(mean diagonal, mean off-diagonal, fraction of rows whose max is on the diagonal)."""
    n = len(M)
    off = (M.sum() - np.trace(M)) / (n * n - n)
    return float(np.trace(M) / n), float(off), float((M.argmax(1) == np.arange(n)).mean())


matrices, summary = {}, {}
print(f"{'group':<16} {'reading':<16} {'n':>3} {'diagonal':>9} {'off-diag':>9} {'row max on diag':>16} {'chance':>7}")
for with_rel, reading in ((True, "with relation"), (False, "entity alone")):
    for name, group in data.groups.items():
        M = logit_matrix(model, group, with_relation=with_rel)          # (n, n), up to 60 sentences
        matrices[f"{name} ({'with' if with_rel else 'no'} relation)"] = M
        summary[name, with_rel] = diagonal_summary(M)
        d, o, hit = summary[name, with_rel]
        print(f"{name:<16} {reading:<16} {len(M):>3} {d:>9.2f} {o:>9.2f} {100 * hit:>15.0f}% {100 / len(M):>6.1f}%")
path = plot_heatmaps(matrices, os.path.join(OUT, "heatmaps.png"),
                     "logit(answer j | prefix i): top row with the relation token, bottom row the entity alone",
                     ncols=4)
figure(path)

# %% [markdown]
# What to look at:
#
# * **Trained groups, with the relation token** (top row, first three
#   panels): a sharp diagonal; the right answer is the row maximum in every
#   row (printed: 100%).
# * **Without the relation token** (bottom row): the diagonal is still
#   there for the trained groups, with lower entries. Compare the "diagonal"
#   column of the two readings, for train forward: `19.12` (fast mode) with
#   the relation token against `15.63` (fast mode) without it, and `33.50`
#   (full mode) against `31.99` (full mode). The drop is larger in fast mode,
#   where the row maxima also miss the diagonal more often. The model was never trained to predict
#   right after the entity, so these logits say less about what it learned;
#   that is why we read them with the relation token too.
# * **Val unseen** (last column): compare its diagonal entries with the
#   trained groups', and its "row max on diag" with the chance column next
#   to it. The paper's figure for its 24-layer model shows no diagonal
#   there. The next section measures this more closely.
#
# ## 3. How unlearned is the unseen direction?
#
# Two facts can both be true: a model can assign the right answer a small
# probability (high NLL) and still rank it above most other tokens. The NLL
# is dominated by the model's confidence in *wrong* answers; the rank is
# not. Rank every token by its logit after each prefix and find the right
# answer: rank 1 is the top guess, and a model that knows nothing puts it
# around |V|/2 on average.

# %%
def answer_ranks(model, group):
    """Rank (1 = top) of the right answer among all |V| tokens, for each sentence of the group."""
    logits = np.asarray(model.logits(group))[:, 0, :].astype(np.float64)    # (n, V)
    right = logits[np.arange(len(group)), group[:, -1]]                       # (n,)
    return 1 + (logits > right[:, None]).sum(axis=1)                          # (n,)


print(f"rank of the right answer among all {data.vocab_size} tokens (a uniform guess: about {data.vocab_size // 2})")
for name, group in data.groups.items():
    r = answer_ranks(model, group)
    print(f"  {name:<16} median rank {np.median(r):6.0f}   top-10 in {100 * np.mean(r <= 10):5.1f}% of sentences"
          f"   NLL {final[name.replace(' ', '_') + '_nll']:6.2f}")
unseen_ranks = answer_ranks(model, data.groups["val unseen"])

# %% [markdown]
# Two yardsticks, printed side by side: the NLL (above log|V| for "val
# unseen", accuracy 0: the paper's measure of the curse) and the rank. A
# model that had picked up *something* about the reverse direction, while
# betting heavily on wrong answers, would show a high NLL and yet a median
# rank far better than a uniform guess's. Read the printed median rank of
# "val unseen" against the uniform guess's (the line below says which it
# is). Keep both measures in mind: a high NLL alone does not prove that
# nothing was learned. Lesson 9 asks whether the answer depends on how the
# output layer is built.

# %%
median_unseen = float(np.median(unseen_ranks))
print(f"val unseen: median rank {median_unseen:.0f} of {data.vocab_size}; a uniform guess: about "
      f"{data.vocab_size // 2}; within 25% of it: {abs(median_unseen - data.vocab_size / 2) < data.vocab_size / 8}")

# %% [markdown]
# ## 4. The per-tensor account of the first updates
#
# Now the dynamics. Take two held-out pairs that were trained forward,
# `[x -> y]`, and watch three logits of each:
#
# * **trained**: `logit(y | x ->)`, the direction in the training data;
# * **unseen**: `logit(x | y <-)`, the same fact reversed;
# * **control**: `logit(x' | y <-)`, the same prefix with the *other* pair's
#   x as the answer. x and x' are the same kind of token (both from the x
#   alphabet, neither ever a training answer), so anything that moves both
#   alike is a shift shared by all such answers. Only the **gap**
#   unseen - control is knowledge of this particular pair.
#
# A step changes all parameters at once; to first order the change of a
# logit is a sum over tensors,
#
#     change of logit  ~  sum over tensors W of  < d logit / d W , update of W >
#
# where `<A, B>` is the sum of the elementwise products. `d logit / d W` is
# lesson 5's backward, seeded with a 1 at that one logit instead of with
# `dloss`. This first-order account is exact only for small steps. The
# package's trace makes it exact for any step: the change of a logit f is
# the integral of its gradient along the straight line of the update,
#
#     change of f  =  integral over t from 0 to 1 of  < grad f(theta + t dtheta), dtheta > dt,
#
# a sum over tensors again, with the gradient *averaged along the update*
# instead of taken at its start. The integral is computed with Gauss-Legendre
# quadrature (the integral replaced by a weighted sum of the integrand at a few
# well-chosen points t, exact for polynomials up to degree 2n - 1 with n points;
# each point costs one forward and one backward), so the shares add up
# to the change up to a printed residual; the first-order sum is printed beside it.
#
# Two choices make the account easy to read. **Full-batch** steps, so every
# step contains the trained sentences. And a **smaller learning rate**,
# AdamW with lr 0.001: Adam moves every weight by about lr per step, and at
# the paper's lr 0.01 that is half the 0.02 scale of the fresh weights. The
# model is float64 so the exercise below can be checked to many digits.

# %%
trace_data = reversal_data(VOCAB, seed=1234)
gpt_args = dict(layers=2, width=64, heads=4, pos="absolute", max_len=3, seed=1234, dtype=np.float64,
                dropout=0.0)                                      # no dropout: an account of the same steps
traced = GPT(trace_data.vocab_size, **gpt_args)
(seen_a, unseen_a), (seen_b, unseen_b) = held_out_pairs(trace_data, count=2)
control_a = np.array([unseen_a[0], unseen_a[1], unseen_b[2]])      # [y_a <- x_b]
control_b = np.array([unseen_b[0], unseen_b[1], unseen_a[2]])      # [y_b <- x_a]
watched = {}
for tag, (seen, unseen, control) in (("A", (seen_a, unseen_a, control_a)), ("B", (seen_b, unseen_b, control_b))):
    for kind, s in (("trained", seen), ("unseen", unseen), ("control", control)):
        watched[f"{tag} {kind}"] = s
        print(f"{tag} {kind:<8} logit({s[2]} | {s[0]} {trace_data.token_name(s[1])})   "
              f"from the sentence {trace_data.sentence(s)}")
labels = list(watched)

# %% [markdown]
# **Exercise.** Compute one share by hand: the first-order share of tensor
# `name` in the change of the answer logit of `sentence`, for one update
# from `old_params` to `new_params`. You need `d logit / d W` at the *old*
# parameters: run `model.forward_logits(old_params, tokens, np)` on the
# sentence alone (`tokens` of shape (1, T); it returns logits (1, T, V) and a
# cache), seed the backward with a one-hot array that picks out the one
# logit (which position predicts the answer?), and call
# `model.backward_logits(seed, cache)` (a dict of gradients, one per tensor).
# The share is the sum of `gradient * (new - old)` for that tensor.
#
# Your function is checked on one full-batch AdamW step of a fresh model
# against the package's first-order account of that step
# (`model.trace_terms(..., exact=False)`; `python -m minirev.demo reversal
# --trace` prints the exact one, with the first-order sum beside it).

# %%
def tensor_share(model, old_params, new_params, sentence, name):
    """First-order share of tensor `name` in the change of the answer logit of `sentence` (T,)."""
    raise NotImplementedError("exercise: d logit / d W at the old parameters, dotted with the update")


twin = GPT(trace_data.vocab_size, **gpt_args)                 # a fresh model, as the one traced below
old = {k: v.copy() for k, v in twin.params.items()}
twin_opt = AdamW(lr=0.001, weight_decay=0.01)
account = twin.trace_terms(trace_data.train, [(seen_a, unseen_a, control_a)], twin_opt, trace_data.sentence,
                           exact=False)                        # called before the step
_, grads = twin.loss_and_grads(trace_data.train)              # the full batch
twin_opt.step(twin.params, grads)
label, q = list(account(old, None).items())[1]                 # [trained, unseen, control]: the unseen logit
expected = dict(q["terms"])["wte"]
print(f"the package's account of {label}: share of wte {expected:+.6e}")
check("share of wte", tensor_share, expected, args=(twin, old, twin.params, unseen_a, "wte"), rtol=1e-6)

# %% [markdown]
# The exact account, for all six watched logits and over many steps: the
# model's `watch` and `trace_terms` (the ones the command line's `--trace`
# uses), handed to a `Trace`, which the `Trainer` calls around every step.

# %%
pairs = [(seen_a, unseen_a, control_a), (seen_b, unseen_b, control_b)]        # in the order of `labels`
optimizer = AdamW(lr=0.001, weight_decay=0.01)
trace = Trace(traced, lambda: traced.watch(pairs, trace_data.sentence),
              lambda batch: traced.trace_terms(batch, pairs, optimizer, trace_data.sentence),
              steps=TRACE_STEPS, out=None, pairs=pairs)
tracer = Trainer(traced, optimizer, trace_data, batch_size=None, seed=1234, eval_every=TRACE_STEPS, trace=trace)
tracer.run(TRACE_STEPS)                       # full batch: one step per epoch
short = dict(zip(traced.watch(pairs, trace_data.sentence), labels))          # the package's labels -> "A trained", ...
for record in trace.records:
    record["quantities"] = {short[k]: q for k, q in record["quantities"].items()}
print("\nthe account of step 1 (each logit: before -> after, its change, the sum of all tensors'")
print("exact shares, what is left (residual), the first-order sum, and the largest shares):")
trace.print_record(trace.records[0])

# %% [markdown]
# Now pair A step by step: each logit's actual change and, in brackets,
# the sum of its first-order shares (the exact shares add up to the change:
# the largest residual is printed below).

# %%
print(f"{'step':>4}" + "".join(f"{lab:>22}" for lab in labels[:3]))
for record in trace.records:
    q = record["quantities"]
    print(f"{record['step']:>4}" + "".join(f"   {q[lab]['change']:+8.4f} ({q[lab]['first_order']:+8.4f})"
                                           for lab in labels[:3]))
worst = max(abs(q["residual"]) / max(abs(q["change"]), 1e-300) for r in trace.records for q in r["quantities"].values())
print(f"largest |residual| / |change| of the exact account over all steps and logits: {worst:.1e}")
for lab in labels:
    late = trace.records[2:]
    print(f"{lab:<10} steps 3-{TRACE_STEPS}: change {sum(r['quantities'][lab]['change'] for r in late):+.3f}, "
          f"sum of first-order shares {sum(r['quantities'][lab]['first_order'] for r in late):+.3f}")

# %% [markdown]
# The exact shares add up to every change (the residual line). The
# first-order sums in brackets do not: compare the columns in the first
# steps, which move the freshly initialised weights the most relative to
# their size, and the sums for steps 3 onward. A first-order account can
# even get the sign of a change wrong; the exact one cannot. (The traced
# model runs without dropout, `dropout=0.0`, so that every step sees the
# same network.) Now the totals over all traced steps, and the per-tensor
# sums of the exact shares.

# %%
def summed_shares(label):
    shares = {}
    for record in trace.records:
        for name, value in record["quantities"][label]["terms"]:
            shares[name] = shares.get(name, 0.0) + value
    return shares


def total_change(label):
    return trace.records[-1]["quantities"][label]["after"] - trace.records[0]["quantities"][label]["before"]


totals = {lab: summed_shares(lab) for lab in labels}
for lab in labels:
    ups = sum(r["quantities"][lab]["change"] > 0 for r in trace.records)
    top = sorted(totals[lab].items(), key=lambda kv: -abs(kv[1]))[:3]
    print(f"{lab:<10} change {total_change(lab):+.3f} (up in {ups:>2} of {len(trace.records)} steps); "
          "largest summed shares: " + ", ".join(f"{n} {v:+.3f}" for n, v in top))
print()
gaps = {}
for tag in "AB":
    gap = total_change(f"{tag} unseen") - total_change(f"{tag} control")
    gaps[tag] = {n: totals[f"{tag} unseen"].get(n, 0.0) - totals[f"{tag} control"].get(n, 0.0)
                 for n in totals[f"{tag} unseen"]}
    top = sorted(gaps[tag].items(), key=lambda kv: -abs(kv[1]))[:3]
    print(f"pair {tag}: trained logit {total_change(f'{tag} trained'):+.3f};  gap unseen - control {gap:+.3f};  "
          "largest shares of the gap: " + ", ".join(f"{n} {v:+.3f}" for n, v in top))
    shares = totals[f"{tag} trained"]
    print(f"        share of the output layer w_out in the trained logit's summed change: "
          f"{shares['w_out'] / sum(shares.values()):.0%}; the largest: "
          f"{max(shares, key=lambda n: abs(shares[n]))}")

# %% [markdown]
# Read the totals:
#
# * The **trained** logits climb in most steps (the "up in" counts), and the
#   largest single share is the output layer's, `w_out`: the answer's
#   output vector moves toward the hidden state that predicts it.
# * The **unseen** logits move much less than the trained ones, up or
#   down. Is that knowledge of the pair, or a drift common to every answer
#   of that kind? The **control** answers it.
# * The **gap** unseen - control is the part that knows the pair. Read its
#   printed size next to the trained logit's rise, and the shares of `w_out`
#   in the unseen and control logits (printed below): an x token is never a
#   training answer after `<-`, so every backward training sentence pushes
#   its output vector down as a wrong answer, for the unseen and the control
#   answer alike. Those two pushes nearly cancel in the gap; what is left is
#   a sum of small shares of several tensors, whose sign the two pairs need
#   not agree on. Nothing here credits the gap to one route.

# %%
for tag in "AB":
    w_u, w_c = totals[f"{tag} unseen"]["w_out"], totals[f"{tag} control"]["w_out"]
    gap = total_change(f"{tag} unseen") - total_change(f"{tag} control")
    print(f"pair {tag}: share of w_out in unseen {w_u:+.3f}, in control {w_c:+.3f}, in the gap {w_u - w_c:+.3f};  "
          f"gap {gap:+.3f} = {abs(gap) / total_change(f'{tag} trained'):.0%} of the trained logit's rise")

# %% [markdown]
# ## 5. The figure of the account
#
# Left: the six watched logits over the traced steps (solid: trained,
# dashed: unseen, dotted: control; one colour per pair). Right: the summed
# exact shares of the tensors that matter most, for pair A's trained
# logit and for its gap unseen - control.

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
steps = [0] + [r["step"] for r in trace.records]
styles = {"trained": "-", "unseen": "--", "control": ":"}
for lab in labels:
    tag, kind = lab.split()
    values = [trace.records[0]["quantities"][lab]["before"]] + [r["quantities"][lab]["after"] for r in trace.records]
    ax1.plot(steps, values, color="C0" if tag == "A" else "C1", ls=styles[kind], label=lab)
ax1.axhline(0, color="gray", lw=0.8)
ax1.set(xlabel="full-batch AdamW step (lr 0.001)", ylabel="logit",
        title="trained logits climb; unseen vs control: the pair-specific part")
ax1.legend(fontsize=8, ncol=2)
bars = {"A trained": totals["A trained"], "A gap unseen - control": gaps["A"]}
names = sorted(totals["A trained"], key=lambda n: -max(abs(b.get(n, 0.0)) for b in bars.values()))[:8]
ypos = np.arange(len(names))
for k, ((lab, shares), color) in enumerate(zip(bars.items(), ("C0", "C3"))):
    ax2.barh(ypos + 0.4 * k - 0.2, [shares.get(n, 0.0) for n in names], height=0.4, color=color, label=lab)
ax2.set_yticks(ypos)
ax2.set_yticklabels(names, fontsize=8)
ax2.invert_yaxis()
ax2.axvline(0, color="gray", lw=0.8)
ax2.set(xlabel=f"summed exact share over {TRACE_STEPS} steps", title="who moved it: per-tensor shares")
ax2.legend(fontsize=8)
save_figure(fig, os.path.join(OUT, "trace.png"))

# %% [markdown]
# ## What to remember
#
# * By the paper's measure (NLL of the unseen direction above log|V|), the
#   GPT shows the curse, while every trained group is learned.
# * Heatmaps read with the relation token show what the trained positions
#   learned; the public code's reading without it shows less. Report the
#   rank of the right answer next to the NLL: they answer different
#   questions.
# * A logit's change splits exactly into per-tensor shares
#   `<d logit / d W averaged along the update, update of W>` (to first order,
#   the gradient at the start); the trained logit's largest share is the
#   output layer's. To see whether the reverse direction learns the *pair*,
#   compare it with a control answer of the same kind. In the bilinear model
#   with one-hot embeddings the reverse weight gets exactly nothing
#   (lesson 3); with Gaussian embeddings, or in this GPT, shared parameters
#   move both logits, and only the gap between them is about the pair.
#
# Next, lesson 7: the same question for two-step reasoning.
