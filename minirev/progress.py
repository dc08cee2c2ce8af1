"""The progress line of a run: one line rewritten in place on a terminal, a tqdm bar in a notebook,
plain lines elsewhere (minirev/running.py and minirev/cures.py show it; minirev/report.py prints
the results)."""
import shutil
import sys
import time

import numpy as np

from .report import say

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
