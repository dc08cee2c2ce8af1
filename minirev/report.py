"""What a run prints: the progress line, the tables and the one-sentence verdicts.

The experiments (``minirev/experiments.py``) compute; this module only says
what they found. Every function takes an ``out`` callable for its lines
(``print`` by default, ``None`` for silence).
"""
import math
import sys
import time

import numpy as np


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


def print_report(result, runs, out=print):
    """The table of NLL and accuracy per group, and one plain sentence about what happened."""
    final, dataset = result["final"], runs[0]["dataset"]
    n = len(runs)
    say(out, "", f"{'group':<22} {'sentences':>9} {'NLL':>9} {'accuracy':>9}" + ("   (mean of %d seeds)" % n if n > 1 else ""),
         "-" * 52)
    for name, tokens in dataset.groups.items():
        say(out, f"{name:<22} {len(tokens):>9} {final[name + ' nll']:>9.3f} {100 * final[name + ' acc']:>8.1f}%")
    log_v = final["log_vocab"]
    say(out, f"{'uniform guess, log|V|':<22} {'':>9} {log_v:>9.3f}")
    train, val = final["train_nll"], final["val_nll"]
    spread = f" (+- {final['val_nll_std']:.2f} over {n} seeds)" if n > 1 else ""
    verdict = {
        "reversal": ("worse than guessing uniformly", "the reversal curse", "better than guessing uniformly", "no curse here"),
        "chain": ("worse than guessing uniformly", "the direct A ~> C was not learned", "better than guessing uniformly", "the direct A ~> C was learned"),
        "incontext": ("worse than guessing uniformly", "the in-context reversal was not learned", "far below guessing uniformly", "no curse when the fact is in the context"),
    }[dataset.name]
    worse = val > log_v
    if train > 0.5:
        say(out, "", f"training NLL {train:.2f}: the model has not learned its training sentences yet, so the "
                      f"validation NLL ({val:.2f}) says nothing about the curse; train longer (--epochs) or "
                      "adjust --lr.")
        return
    what = {"reversal": "unseen direction", "chain": "direct A ~> C on validation triples",
            "incontext": "validation"}[dataset.name]
    say(out, "", f"training NLL {train:.2f}; {what} {val:.2f}{spread}, "
                  f"{verdict[0] if worse else verdict[2]} ({log_v:.2f}): {verdict[1] if worse else verdict[3]}.")


def print_bilinear_table(results, vocab, out=print):
    log_m = math.log(vocab)
    say(out, f"\n{'embedding':<10} {'training loss':>20} {'reversal loss':>20} {'W(x->y)':>9} {'W(y->x)':>9} {'eps':>8}",
         "-" * 81)
    for r in results:
        say(out, f"{r['label']:<10} {r['train_start']:>8.3f} -> {r['train_end']:<8.4f} "
                  f"{r['reversal_start']:>8.3f} -> {r['reversal_end']:<8.3f} "
                  f"{r['forward_weight']:>9.3f} {r['reverse_weight']:>9.3f} {r['eps']:>8.4f}")
    say(out, f"log m = {log_m:.3f} is the loss of a uniform guess. W are means over the held-out pairs;",
         "eps = log(L_rev/L_rev0) / log(L/L0): near 0 means the reversal loss did not follow the training loss.")


