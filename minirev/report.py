"""What a run prints: the tables and the one-sentence verdicts (the progress line: minirev/progress.py).

The experiments (``minirev/experiments/``, ``minirev/running.py``) compute; this module only says
what they found. Every function takes an ``out`` callable for its lines
(``print`` by default, ``None`` for silence).
"""
import math

import numpy as np

from .experiments import Experiment


def say(out, *lines):
    """Print lines through `out` (print by default in the callers); out=None keeps quiet."""
    if out is not None:
        for line in lines:
            out(line)


def spread(values, fmt=".2f", unit=""):
    """'4.1' for one value; 'mean 4.1 (min 3.2, max 5.0)' for several."""
    f = lambda v: format(v, fmt) + unit                                            # noqa: E731
    if len(values) == 1:
        return f(values[0])
    return f"mean {f(np.mean(values))} (min {f(min(values))}, max {f(max(values))})"


def verdict(name, train, vals, log_v, log_a):
    """One sentence about the validation NLL of experiment `name`, resting only on what holds for EVERY seed."""
    experiment = Experiment.registry[name]
    n = len(vals)
    every = "" if n == 1 else f" for every one of the {n} seeds"
    if max(train) > 0.5:
        return (f"training NLL {spread(train)}: the model has not learned its training sentences yet, so the "
                f"validation NLL ({spread(vals)}) says nothing about the curse; train longer (--epochs) or "
                "adjust --lr.")
    head = f"training NLL {spread(train)}; {experiment.measures} NLL {spread(vals)}: "
    if min(vals) > log_v:
        return head + (f"worse than a uniform guess over the vocabulary (log|V| = {log_v:.2f}){every}: "
                       f"{experiment.failed}.")
    if min(vals) > log_a:
        return head + (f"worse than a uniform guess within the answer's alphabet (log {math.exp(log_a):.0f} = "
                       f"{log_a:.2f}){every}, though not always worse than log|V| = {log_v:.2f}: "
                       f"{experiment.failed} (the model knows which alphabet answers come from, not the pair).")
    if max(vals) < log_a:
        return head + (f"better than a uniform guess within the answer's alphabet ({log_a:.2f}){every}: "
                       f"{experiment.learned}.")
    return head + (f"below the alphabet's guess ({log_a:.2f}) for some seeds and above it for others: "
                   "no verdict holds for every seed; run more epochs or seeds.")


def rank_note(ranks, size):
    """What the rank within the alphabet adds to the NLL, when it holds for every seed."""
    chance, every = (size + 1) / 2, "" if len(ranks) == 1 else " for every seed"
    if min(ranks) >= chance:
        return f" The right answer ranks no better than chance within its alphabet{every}."
    if max(ranks) < chance / 2:
        return (f" Yet the right answer ranks near the top of its alphabet{every} (mean rank at most "
                f"{max(ranks):.1f} of {size}, chance {chance:.1f}): part of the pair leaks through.")
    return ""


def print_report(result, runs, out=print):
    """The table of NLL and accuracy per group, the two yardsticks, and one plain sentence."""
    final, dataset = result["final"], runs[0]["dataset"]
    n = len(runs)
    several = dataset.entity_len > 1                     # then the first answer token's NLL beside the mean
    say(out, "", f"{'group':<22} {'sentences':>9} {'NLL':>9} {'accuracy':>9}" + (f" {'1st token':>9}" if several else "")
        + ("   (mean of %d seeds)" % n if n > 1 else ""), "-" * (62 if several else 52))
    from .running import snake_case                      # the results' keys ("val seen nll" -> "val_seen_nll")
    for name, tokens in dataset.groups.items():
        nll, acc = final[snake_case(name + " nll")], final[snake_case(name + " acc")]
        first = f" {final[snake_case(name + ' first nll')]:>9.3f}" if several else ""
        say(out, f"{name:<22} {len(tokens):>9} {nll:>9.3f} {100 * acc:>8.1f}%{first}")
    log_v, log_a = final["log_vocab"], final["log_alphabet"]
    say(out, f"{'uniform guess, log|V|':<22} {'':>9} {log_v:>9.3f}",
        f"{'uniform in alphabet':<22} {'':>9} {log_a:>9.3f}   ("
        + dataset.info.get("alphabet_note", f"log of the {math.exp(log_a):.0f} tokens an answer is drawn from") + ")")
    if several:
        say(out, f"NLL: the mean over the {dataset.entity_len} answer tokens; 1st token: the first answer token's "
                 "alone, the number the paper's code plots for entities of several tokens")
    ranks = [r["final"]["val_rank"] for r in result["runs"]]
    size = len(dataset.info["alphabets"][0])
    say(out, f"rank of the right answer within its alphabet of {size} ({dataset.val_group}): "
             f"{spread(ranks, '.1f')}, chance {(size + 1) / 2:.1f}; ranked first "
             f"{spread([100 * r['final']['val_top1'] for r in result['runs']], '.0f', '%')}")
    train = [r["final"]["train_nll"] for r in result["runs"]]
    vals = [r["final"]["val_nll"] for r in result["runs"]]
    learned = max(vals) < log_a and max(train) <= 0.5         # then the rank has nothing to add
    say(out, "", verdict(result["experiment"], train, vals, log_v, log_a) + ("" if learned else rank_note(ranks, size)))


def print_bilinear_table(results, vocab, out=print):
    log_m = math.log(vocab)
    say(out, f"\n{'embedding':<10} {'training loss':>20} {'reversal loss':>20} {'W(x->y)':>9} {'W(y->x)':>9} {'eps':>8}",
         "-" * 81)
    for r in results:
        say(out, f"{r['label']:<10} {r['train_start']:>8.3f} -> {r['train_end']:<8.4f} "
                  f"{r['reversal_start']:>8.3f} -> {r['reversal_end']:<8.3f} "
                  f"{r['forward_weight']:>9.3f} {r['reverse_weight']:>9.3f} {r['eps']:>8.4f}")
    say(out, f"log m = {log_m:.3f} is the loss of a uniform guess. W are means over the held-out pairs;",
         "eps = log(L_rev/L_rev0) / log(L/L0), the exponent in the theorem's bound L_rev/L_rev0 >= (L/L0)^eps:",
         "near 0, the reversal loss did not follow the training loss down; below 0, it went UP while the training",
         "loss fell (the bound then holds with room to spare).")




def bilinear_verdict(results, vocab):
    """One sentence on the sweep, resting on its table: per dimension, whether the training loss fell, whether
    the reversal loss stayed at or above log m (eps <= 0, or near 0), and whether the one-hot reverse weight is 0."""
    log_m, dims = math.log(vocab), ", ".join
    every = len(results) > 1
    fell = [r["label"] for r in results if r["train_end"] < r["train_start"]]
    short = [(f"{r['label']} " if every else "") + f"only to {r['train_end']:.3f}" for r in results
             if 0.5 < r["train_end"] < r["train_start"]]
    held = [r["label"] for r in results if r["reversal_end"] >= log_m * (1 - 1e-9)]
    eps = max((r["eps"] for r in results if math.isfinite(r["eps"])), default=float("nan"))
    text = "the training loss " + ("fell" + (" at every dimension" if every else "") if len(fell) == len(results)
                                   else f"fell at {dims(fell) or 'no dimension'}")
    text += f" ({dims(short)})" if short else ""
    if len(held) == len(results):
        text += (f", while the reversal loss ended at or above log m = {log_m:.3f}, a uniform guess"
                 + (" (eps <= 0)" if eps <= 0 else f" (eps at most {eps:.3f}, near 0)" if eps < 0.1 else "")
                 + ": the reverse direction was not learned" + (" at any dimension" if every else ""))
    else:
        below = [f"{r['label']} ({r['reversal_end']:.3f}, eps {r['eps']:.3f})" for r in results
                 if r["label"] not in held]
        text += f"; the reversal loss fell below log m = {log_m:.3f} at {dims(below)}"
    for r in (r for r in results if r["dim"] is None):
        zero = all(w == 0 for w in r["reverse_weights"])
        text += ("; with one-hot embeddings the reverse weight of every held-out pair is exactly 0: there the curse "
                 "is exact" if zero else f"; one-hot, the reverse weights are not all 0 (up to "
                 f"{max(abs(w) for w in r['reverse_weights']):.3g})")
    return "Verdict: " + text + "."
