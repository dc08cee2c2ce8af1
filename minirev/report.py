"""What a run prints: the progress line, the tables and the one-sentence verdicts.

The experiments (``minirev/experiments/``, ``minirev/running.py``) compute; this module only says
what they found. Every function takes an ``out`` callable for its lines
(``print`` by default, ``None`` for silence).
"""
import math
import shutil
import sys
import time

import numpy as np

from .experiments import Experiment


def say(out, *lines):
    """Print lines through `out` (print by default in the callers); out=None keeps quiet."""
    if out is not None:
        for line in lines:
            out(line)


# --------------------------------------------------------------------------- the progress line

def duration(seconds):
    """'2.1s', '42s', '3m05s', '2h07m': short, for the progress line."""
    if seconds < 59.5:
        return f"{max(seconds, 0):.1f}s" if seconds < 9.95 else f"{seconds:.0f}s"
    if seconds < 3570:
        m, s = divmod(round(seconds), 60)
        return f"{m}m{s:02d}s"
    h, m = divmod(round(seconds / 60), 60)
    return f"{h}h{m:02d}m"


def group_label(val_group):
    """The progress line's name for the validation NLL: the dataset's val_group, less a leading 'val '
    ("val unseen" -> "unseen", "C given A (val)" and "val" as they are)."""
    return val_group[4:] if val_group.startswith("val ") else val_group


def notebook_bar():
    """tqdm's notebook-aware bar (tqdm.auto) when tqdm is installed, else None: tqdm is never required."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


def in_kernel():
    """Whether a Jupyter kernel runs here (its IPython shell has a kernel; importing ipykernel is not enough)."""
    shell = sys.modules["IPython"].get_ipython() if "IPython" in sys.modules else None
    return getattr(shell, "kernel", None) is not None


def output_mode(out):
    """Where the progress goes: "terminal" (one line, rewritten in place), "notebook" (a tqdm bar, in a
    Jupyter kernel with tqdm installed), "lines" (plain lines, now and then), or None (out=None: quiet)."""
    if out is None:
        return None
    if out is print and sys.stdout is not None:
        if sys.stdout.isatty():
            return "terminal"
        if in_kernel() and notebook_bar() is not None:
            return "notebook"
    return "lines"


class Line:
    """One progress display: a line rewritten in place on a terminal, never wider than it (the least
    important parts go first: the time left, then the elapsed time); a tqdm bar in a notebook; plain
    lines elsewhere (each update the caller asks to print). width: the columns (default: the terminal's,
    read at every update)."""

    def __init__(self, out, width=None):
        self.out, self.width, self.mode = out, width, output_mode(out)
        self.shown, self.bar = 0, None

    def columns(self):
        if self.width is not None:
            return self.width
        # one column short on a terminal: a line that fills the last column makes some terminals wrap
        return max(shutil.get_terminal_size().columns - (self.mode == "terminal"), 1)

    @staticmethod
    def fit(where, numbers, elapsed, left, width):
        """The most complete line that fits: where, numbers[0], 'elapsed, ~left left'; then without the time
        left, the elapsed time, then shorter numbers (numbers[1:]), then where alone, then cut to width."""
        candidates = [f"{where}  {numbers[0]}  {elapsed}" + (f", ~{left} left" if left else ""),
                      f"{where}  {numbers[0]}  {elapsed}", *(f"{where}  {n}" for n in numbers), where]
        return next((c for c in candidates if len(c) <= width), where[:width])

    def show(self, where, numbers, elapsed, left=None, done=0, total=1, plain=True):
        """Update the display; plain: whether plain-lines output prints this update."""
        if self.mode == "terminal":
            text = self.fit(where, numbers, elapsed, left, self.columns())
            sys.stdout.write("\r" + text + " " * max(self.shown - len(text), 0))
            sys.stdout.flush()
            self.shown = len(text)
        elif self.mode == "notebook":
            if self.bar is None:
                self.bar = notebook_bar()(total=total, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} {postfix}")
            self.bar.update(done - self.bar.n)
            self.bar.set_postfix_str(", ".join([where, numbers[0]] + ([f"~{left} left"] if left else [])))
        elif self.mode == "lines" and plain:
            self.out(self.fit(where, numbers, elapsed, left, self.columns()))

    def clear(self):
        """Take the line off the terminal (before other lines are printed)."""
        if self.mode == "terminal" and self.shown:
            sys.stdout.write("\r" + " " * self.shown + "\r")
            sys.stdout.flush()
            self.shown = 0

    def close(self):
        """End the display: the terminal's line stays, and the cursor goes to the next."""
        if self.mode == "terminal" and self.shown:
            sys.stdout.write("\n")
            sys.stdout.flush()
            self.shown = 0
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class Display:
    """What the displays share: ("say", lines) prints the lines (the progress line cleared first), close() ends it."""

    def __init__(self, out, width):
        self.out, self.line, self.began = out, Line(out, width), time.perf_counter()

    def __call__(self, message):
        if message[0] == "say":
            self.line.clear()
            say(self.out, *message[1])
        else:
            getattr(self, message[0], lambda *args: None)(*message[1:])      # an unknown message: ignored

    def close(self):
        self.line.close()


class Progress(Display):
    """One display for all the seeds of a run: progress(message) for the messages of running.train_seed.

    ("say", lines) prints the lines; ("start", seed, epoch, val_group) says where a run starts (a resumed
    one past epoch 0) and what its validation NLL measures; ("eval", seed, epoch, record) updates the
    line: the runs' epochs, the mean training NLL and validation NLL of their latest evaluations, the
    time so far and, once there is a rate, the time left; ("done", seed, epochs) ends a run. On a
    terminal the line is rewritten in place, elsewhere a line is printed per 10% of all the epochs.

    The rate of a run counts the epochs since its first evaluation message in this process: the
    start-up (a worker process starting, the data, the first evaluation) and the epochs a resumed
    run trained before are left out, and there is no estimate until a run has a rate.
    """

    def __init__(self, out, total_epochs, seeds, label=None, width=None):
        super().__init__(out, width)
        self.total, self.seeds, self.label = total_epochs, list(seeds), label
        self.epoch = {s: 0 for s in self.seeds}
        self.latest, self.first, self.last, self.finished = {}, {}, {}, set()
        self.at_once = 0                  # the most runs seen training at the same time
        self.tenth = -1                   # the last tenth of the epochs a plain line was printed for

    def start(self, seed, epoch, val_group):
        self.epoch[seed] = epoch
        self.label = self.label or group_label(val_group)

    def done(self, seed, epochs):
        self.finished.add(seed)
        if self.finished >= set(self.seeds):
            self.close()

    def eval(self, seed, epoch, record):
        now = time.perf_counter()
        self.epoch[seed], self.latest[seed], self.last[seed] = epoch, record, (epoch, now)
        self.first.setdefault(seed, (epoch, now))
        self.at_once = max(self.at_once, len(set(self.first) - self.finished))
        done, total = sum(self.epoch.values()), self.total * len(self.seeds)
        tenth = 10 * done // total
        plain, self.tenth = tenth > self.tenth, max(tenth, self.tenth)
        left = self.seconds_left()
        self.line.show(self.where(), self.numbers(), duration(now - self.began),
                       None if left is None else duration(left), done, total, plain)

    def seconds_left(self):
        """The epochs still to train over the mean rate of the runs that have one, times the runs at once."""
        rates = [(self.last[s][0] - e0) / (self.last[s][1] - t0) for s, (e0, t0) in self.first.items()
                 if self.last[s][0] > e0 and self.last[s][1] > t0]
        remaining = sum(max(self.total - self.epoch[s], 0) for s in self.seeds)
        if not rates or not remaining:
            return None
        at_once = max(1, min(self.at_once, len(self.seeds) - len(self.finished)))
        return remaining / (float(np.mean(rates)) * at_once)

    def where(self):
        if len(self.seeds) == 1:
            return f"epoch {self.epoch[self.seeds[0]]}/{self.total}"
        lo, hi = min(self.epoch.values()), max(self.epoch.values())
        return f"{len(self.seeds)} runs, " + (f"epoch {lo}" if lo == hi else f"epochs {lo}-{hi}") + f"/{self.total}"

    def numbers(self):
        """The NLLs, most complete first: with '(mean of n)' for several runs, without, the validation alone."""
        train = float(np.mean([r["train_nll"] for r in self.latest.values()]))
        val = float(np.mean([r["val_nll"] for r in self.latest.values()]))
        label = self.label or "val"
        both = f"train {train:.3f}  {label} {val:.2f}"
        mean = [f"{both} (mean of {len(self.latest)})"] if len(self.latest) > 1 else []
        return [*mean, both, f"{label} {val:.2f}"]


progress = Progress          # the display of running.run_experiment


class TaskProgress(Display):
    """A display of independent tasks (the (row, seed) runs of cures): ("task", name, seed, train_nll,
    val_nll) for each finished task, a line per task (rewritten in place on a terminal). The rate counts
    the tasks since the first finished one (the start-up left out): no estimate before the second."""

    def __init__(self, out, total, what="cures", label="unseen", width=None):
        super().__init__(out, width)
        self.total, self.what, self.label, self.count, self.first = total, what, label, 0, None

    def task(self, name, seed, train, val):
        now = time.perf_counter()
        self.count += 1
        self.first = self.first or now
        left = None
        if 1 < self.count < self.total and now > self.first:
            left = duration((self.total - self.count) * (now - self.first) / (self.count - 1))
        both = f"train {train:.3f}  {self.label} {val:.2f}"
        self.line.show(f"{self.what} {self.count}/{self.total}: {name}, seed {seed}", [both, f"{self.label} {val:.2f}"],
                       duration(now - self.began), left, self.count, self.total)
        if self.count >= self.total:
            self.close()


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
