"""What a run prints: the progress line, the tables and the one-sentence verdicts.

The experiments (``minirev/experiments/``, ``minirev/running.py``) compute; this module only says
what they found. Every function takes an ``out`` callable for its lines
(``print`` by default, ``None`` for silence).
"""
import math
import sys
import time

import numpy as np

from .experiments import Experiment


def say(out, *lines):
    """Print lines through `out` (print by default in the callers); out=None keeps quiet."""
    if out is not None:
        for line in lines:
            out(line)


def progress(out, total_epochs, seeds):
    """One display for all runs: on_message(message) for the messages of experiments.train_seed.

    ("say", lines) prints the lines; ("eval", seed, epoch, record) updates one line
    with every run's epoch and the mean NLLs of their latest evaluations (in place on
    a terminal, else a line per 10% of all the epochs); ("done", seed, epochs) ends a run.
    """
    tty = out is print and sys.stdout.isatty()
    start = time.perf_counter()
    epoch, latest, running = {s: 0 for s in seeds}, {}, set(seeds)
    state = {"last_printed": -1}

    def line():
        done = sum(epoch.values())
        elapsed = time.perf_counter() - start
        remaining = elapsed / max(done, 1) * (total_epochs * len(seeds) - done)
        where = f"epoch {min(epoch.values()):>5}/{total_epochs}" if len(seeds) == 1 else \
            f"{len(seeds)} runs at epochs {','.join(str(epoch[s]) for s in seeds)} of {total_epochs}"
        mean = f" (mean of {len(latest)})" if len(latest) > 1 else ""
        return (f"{where}  training NLL {np.mean([r['train_nll'] for r in latest.values()]):7.4f}{mean}  "
                f"validation NLL {np.mean([r['val_nll'] for r in latest.values()]):7.3f}  "
                f"elapsed {elapsed:6.1f}s  remaining ~{remaining:5.1f}s"), done

    def on_message(message):
        if message[0] == "say":
            say(out, *message[1])
            return
        if message[0] == "done":
            running.discard(message[1])
            if tty and not running:
                sys.stdout.write("\n")
            return
        _, seed, epoch[seed], latest[seed] = message
        text, done = line()
        if tty:
            sys.stdout.write("\r" + text)
            sys.stdout.flush()
        elif out is not None and (10 * done) // (total_epochs * len(seeds)) > state["last_printed"]:
            state["last_printed"] = (10 * done) // (total_epochs * len(seeds))
            out(text)
    return on_message


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
    say(out, "", f"{'group':<22} {'sentences':>9} {'NLL':>9} {'accuracy':>9}" + ("   (mean of %d seeds)" % n if n > 1 else ""),
         "-" * 52)
    for name, tokens in dataset.groups.items():
        say(out, f"{name:<22} {len(tokens):>9} {final[name + ' nll']:>9.3f} {100 * final[name + ' acc']:>8.1f}%")
    log_v, log_a = final["log_vocab"], final["log_alphabet"]
    say(out, f"{'uniform guess, log|V|':<22} {'':>9} {log_v:>9.3f}",
        f"{'uniform in alphabet':<22} {'':>9} {log_a:>9.3f}   (log of the {math.exp(log_a):.0f} tokens an answer "
        "is drawn from)")
    ranks = [r["final"]["val_rank"] for r in result["runs"]]
    size = round(math.exp(log_a))
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


