"""What a run shows while it runs and says when it ends: the progress line (its width, its label, its
estimate after a slow start or a resume), cures' progress, a notebook's bar, the exit status after
Ctrl-C, a resume with nothing to train or refused, where a run ran (--json), and the verdicts."""
import io
import json
import os
import re
import shutil
import sys
import types

import pytest

from minirev import demo, progress
from minirev.config import RunConfig
from minirev.cures import ROWS, print_table
from minirev.experiments.embeddings import orthogonality_verdict
from minirev.progress import Progress, TaskProgress
from minirev.report import bilinear_verdict
from minirev.running import run_experiment

pytestmark = pytest.mark.cli

TINY = ["--vocab", "40", "--layers", "1", "--width", "16", "--heads", "2"]
RECORD = dict(train_nll=1.2345, val_nll=28.91)


class Clock:
    """A fake time.perf_counter: the test says what time it is."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(progress.time, "perf_counter", fake)
    return fake


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def left_seconds(line):
    """The estimate '~3m05s left' of a progress line, in seconds (None when it shows none)."""
    found = re.search(r"~(?:(\d+)h)?(?:(\d+)m)?(?:([\d.]+)s)? left", line)
    if not found:
        return None
    h, m, s = (float(g or 0) for g in found.groups())
    return 3600 * h + 60 * m + s


def drive(display, seeds, epochs, clock, step=0.1, start_up=0.0):
    """Every seed's evaluation messages, epoch after epoch, `step` seconds apart after `start_up` seconds."""
    clock.now += start_up
    for epoch in range(1, epochs + 1):
        for seed in seeds:
            clock.now += step / len(seeds)
            display(("eval", seed, epoch, RECORD))
    for seed in seeds:
        display(("done", seed, epochs))


# ---- the width ------------------------------------------------------------------------------------

@pytest.mark.parametrize("seeds,epochs", [(1, 100), (5, 100), (1, 10 ** 6), (5, 10 ** 6), (200, 10 ** 6)],
                         ids=["1 seed", "5 seeds", "1 seed, 10^6 epochs", "5 seeds, 10^6 epochs",
                              "200 seeds, 10^6 epochs"])
@pytest.mark.parametrize("width", [30, 60, 80])
def test_the_progress_line_never_exceeds_the_width(seeds, epochs, width, clock):
    lines = []
    display = Progress(lines.append, epochs, range(seeds), label="unseen", width=width)
    display(("start", 0, 0, "val unseen"))
    for epoch in (1, 2, epochs // 2, epochs - 1, epochs):
        clock.now += 1234.5
        for seed in range(seeds):
            display(("eval", seed, epoch, RECORD))
    assert lines, "no progress line was printed"
    for line in lines:
        assert len(line) <= width, f"{seeds} seeds, {epochs} epochs: a line of {len(line)} > {width} columns: {line!r}"
    if width >= 80 and epochs == 100:
        assert "unseen" in lines[-1] and "left" in lines[-2], f"at 80 columns the whole line fits: {lines}"


def test_the_line_fits_the_terminal_it_is_written_to(monkeypatch, clock):
    """On a terminal: rewritten in place, every rewrite within the terminal's columns (get_terminal_size)."""
    class TTY(io.StringIO):
        def isatty(self):
            return True
    screen = TTY()
    monkeypatch.setattr(sys, "stdout", screen)
    monkeypatch.setattr(shutil, "get_terminal_size", lambda *a, **k: os.terminal_size((80, 24)))
    for seeds in (1, 3):
        drive(Progress(print, 100, range(seeds)), range(seeds), 100, clock, step=0.1, start_up=3.0)
    written = screen.getvalue()
    assert written.count("\n") == 2, f"one line per run of the display, rewritten in place: {written[-300:]!r}"
    for row in re.split(r"[\r\n]", written):
        assert len(row) < 80, f"a rewrite of {len(row)} columns on an 80-column terminal: {row!r}"
    assert "epoch 100/100" in written and "3 runs, epoch 100/100" in written, written[-300:]


def test_several_seeds_are_summarised_not_listed(clock):
    lines = []
    display = Progress(lines.append, 100, range(40), width=200)
    for seed in range(40):
        display.tenth = -1                              # print every update
        display(("eval", seed, 10 + seed % 3, RECORD))
    assert lines[-1].startswith("40 runs, epochs 10-12/100"), lines[-1]
    assert "(mean of 40)" in lines[-1] and len(lines[-1]) < 100, lines[-1]


# ---- what it measures -----------------------------------------------------------------------------

def test_the_label_names_the_unseen_direction_of_a_real_run():
    lines = []
    run_experiment(RunConfig(vocab=40, layers=1, width=16, heads=2, epochs=3), out=lines.append)
    shown = [line for line in lines if line.startswith("epoch ")]
    assert shown, f"no progress line: {lines}"
    assert all("unseen" in line and "train" in line for line in shown), shown


@pytest.mark.parametrize("group,label", [("val unseen", "unseen"), ("C given A (val)", "C given A (val)"),
                                         ("val", "val")])
def test_the_label_is_the_datasets_validation_group(group, label, clock):
    lines = []
    display = Progress(lines.append, 10, [0], width=100)
    display(("start", 0, 0, group))
    display(("eval", 0, 1, RECORD))
    assert f"  {label} 28.91" in lines[0], lines[0]


# ---- the estimate ---------------------------------------------------------------------------------

def test_no_estimate_before_a_rate_and_a_sane_one_after_a_slow_start(clock):
    """Two workers take 10 s to start, then train 0.1 s an epoch: the first estimate is near the truth."""
    lines = []
    display = Progress(lines.append, 100, [0, 1], width=200)
    clock.now = 10.0                                   # the start-up: two processes, the data, the first evaluation
    display(("eval", 0, 1, RECORD))
    display(("eval", 1, 1, RECORD))
    assert left_seconds(lines[-1]) is None, f"no rate yet, so no estimate: {lines[-1]!r}"
    clock.now += 0.1
    display(("eval", 0, 2, RECORD))
    display(("eval", 1, 2, RECORD))
    display.tenth = -1                                  # print this update too
    display(("eval", 1, 2, RECORD))
    truth = 98 * 0.1                                   # 98 epochs left in each run, side by side
    got = left_seconds(lines[-1])
    assert got is not None and truth / 2 <= got <= truth * 2, (
        f"want about {truth:.1f}s left, the line says {lines[-1]!r}")


def test_after_a_resume_the_estimate_counts_only_this_process_epochs(clock):
    """Resumed at epoch 20 of 60, 1 s an epoch here: at 22/60 about 38 s are left (not 0.1 s)."""
    lines = []
    display = Progress(lines.append, 60, [0], width=200)
    display(("start", 0, 20, "val unseen"))
    clock.now = 5.0                                    # loading the checkpoint, the first epoch
    display(("eval", 0, 21, RECORD))
    assert left_seconds(lines[-1]) is None, f"no rate yet, so no estimate: {lines[-1]!r}"
    display.tenth = -1
    clock.now += 1.0
    display(("eval", 0, 22, RECORD))
    assert lines[-1].startswith("epoch 22/60"), lines[-1]
    # the clock is the test's own (the fixture replaces time.perf_counter): the estimate is exact, no wall time
    assert left_seconds(lines[-1]) == 38.0, f"38 epochs at 1 s of this process each are left: {lines[-1]!r}"


# ---- cures ----------------------------------------------------------------------------------------

def test_cures_prints_a_progress_line_per_task(workdir, capsys):
    code = demo.main(["cures", "--quick", "--rows", "combined", "--seeds", "2", "--jobs", "1", "--out", "figs"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    for k, seed in ((1, 1234), (2, 1235)):
        assert f"cures {k}/2: combined, seed {seed}  train " in printed, f"no line for task {k}:\n{printed}"


def test_the_cures_table_fits_100_columns():
    runs = [dict(seed=1), dict(seed=2)]
    verdicts = ["cursed", "broken", "not learned (training NLL up to 12.34 > 0.5)",
                "mixed (3/5 seeds below log a; 3/5 rank it first for most questions)"]
    summary = [dict(intervention=r.label, model=r.model, train_nll=12.345, val_nll=123.45, val_nll_min=100.12,
                    val_nll_max=140.55, val_acc=1.0, val_rank=199.5, log_vocab=10.5, log_alphabet=10.2,
                    verdict=verdicts[i % 4], runs=runs) for i, r in enumerate(ROWS)]
    lines = []
    print_table(summary, 5, lines.append)
    for line in lines:
        assert len(line) <= 100, f"a line of {len(line)} columns: {line!r}"
    text = "\n".join(lines)
    assert all(r.label in text for r in ROWS) and "3/5 seeds below log a" in text and "12.34" in text, text


def test_task_progress_estimates_from_the_second_task(clock):
    lines = []
    display = TaskProgress(lines.append, 10, width=100)
    clock.now = 30.0
    display(("task", "baseline", 1234, 0.1, 20.0))
    assert left_seconds(lines[-1]) is None, lines[-1]
    clock.now += 2.0
    display(("task", "baseline", 1235, 0.1, 20.0))
    assert left_seconds(lines[-1]) == pytest.approx(16, abs=1), lines[-1]


# ---- a notebook -----------------------------------------------------------------------------------

def test_a_notebook_with_tqdm_gets_its_bar_and_without_tqdm_the_lines(monkeypatch, clock, capsys):
    bars = []

    class Bar:
        def __init__(self, total, **kwargs):
            self.total, self.n, self.postfix, self.closed = total, 0, "", False
            bars.append(self)

        def update(self, n):
            self.n += n

        def set_postfix_str(self, text):
            self.postfix = text

        def close(self):
            self.closed = True
    tqdm = types.ModuleType("tqdm")
    tqdm.auto = types.ModuleType("tqdm.auto")
    tqdm.auto.tqdm = Bar
    ipython = types.ModuleType("IPython")                          # a Jupyter kernel's shell has a kernel
    ipython.get_ipython = lambda: types.SimpleNamespace(kernel=object())
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "tqdm", tqdm)
    monkeypatch.setitem(sys.modules, "tqdm.auto", tqdm.auto)
    drive(Progress(print, 10, [0]), [0], 10, clock)
    assert len(bars) == 1 and bars[0].n == bars[0].total == 10 and bars[0].closed, vars(bars[0]) if bars else bars
    assert "unseen" not in capsys.readouterr().out, "with a bar, no progress lines"
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)              # tqdm not installed: import fails
    drive(Progress(print, 10, [0], label="unseen"), [0], 10, clock)
    assert "epoch 10/10  train" in capsys.readouterr().out and len(bars) == 1
    monkeypatch.setitem(sys.modules, "tqdm.auto", tqdm.auto)
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    ipython.get_ipython = lambda: None                              # ipykernel imported, but no kernel runs
    drive(Progress(print, 10, [0], label="unseen"), [0], 10, clock)
    assert "epoch 10/10  train" in capsys.readouterr().out and len(bars) == 1, "a script is not a notebook"


# ---- exits and resumes ----------------------------------------------------------------------------

def test_a_resume_past_the_epochs_reports_the_checkpoint_and_says_so(workdir, capsys):
    assert demo.main(["reversal", *TINY, "--epochs", "4", "--save", "ck", "--out", "figs"]) == 0
    capsys.readouterr()
    code = demo.main(["reversal", *TINY, "--epochs", "2", "--resume", "ck", "--out", "figs", "--json", "r.json"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "the checkpoint in ck is at epoch 4, past --epochs 2: nothing to train; reporting it as saved" in printed, \
        printed
    assert json.loads((workdir / "r.json").read_text())["final"]["epochs"] == 4


def test_a_refused_resume_prints_nothing_but_its_error(workdir, capsys):
    assert demo.main(["reversal", *TINY, "--epochs", "2", "--save", "ck", "--out", "figs"]) == 0
    capsys.readouterr()
    code = demo.main(["reversal", *TINY[:-4], "--heads", "2", "--width", "32", "--epochs", "3", "--resume", "ck",
                      "--out", "figs"])
    printed = capsys.readouterr()
    assert code == 2, printed
    assert printed.out == "", f"nothing before the refusal, got:\n{printed.out}"
    assert printed.err.count("\n") == 1 and "--width 16" in printed.err, printed.err


# ---- where it ran, the keys -----------------------------------------------------------------------

def test_the_results_say_where_they_ran_and_use_one_key_style():
    result, _ = run_experiment(RunConfig(vocab=40, layers=1, width=16, heads=2, epochs=2), out=None)
    where = result["run"]["environment"]
    for key in ("minirev", "python", "numpy", "blas", "machine", "processor", "blas_threads", "cores"):
        assert key in where, f"the run block should say {key}: {where}"
    assert list(result)[-1] == "run", "the run block comes last"
    for block in (result["final"], result["history"][-1], result["runs"][0]["final"], result["runs"][0]["history"][0]):
        odd = [k for k in block if not re.fullmatch(r"[a-z0-9_]+", k)]
        assert not odd, f"keys not in snake_case: {odd}"
    assert "val_seen_nll" in result["final"], f"the seen direction's NLL under its snake_case key: {result['final']}"
    assert "val seen nll" not in json.dumps(result), "the history's spelling is not in the results"


# ---- the verdicts ---------------------------------------------------------------------------------

@pytest.mark.parametrize("learned,initial,random,holds", [(0.209, 0.100, 0.100, "holds only loosely"),
                                                          (0.101, 0.100, 0.100, "'nearly orthogonal' holds."),
                                                          (0.7, 0.100, 0.100, "does not hold")])
def test_the_embeddings_verdict_follows_the_numbers(learned, initial, random, holds):
    text = orthogonality_verdict(learned, initial, random)
    assert holds in text and f"{learned:.3f}" in text and f"{initial:.3f}" in text, text


def sweep_row(label, dim, train_end, reversal_end, eps, reverse_weights=(0.1,)):
    return dict(label=label, dim=dim, train_start=5.298, train_end=train_end, reversal_start=5.298,
                reversal_end=reversal_end, eps=eps, reverse_weights=list(reverse_weights))


def test_the_bilinear_verdict_rests_on_the_table():
    cursed = [sweep_row("d=16", 16, 3.739, 8.091, -1.2), sweep_row("d=64", 64, 0.004, 7.48, -0.05),
              sweep_row("one-hot", None, 0.0015, 5.298317366548036, -0.0, [0.0, 0.0])]
    text = bilinear_verdict(cursed, 200)
    for part in ("fell at every dimension", "d=16 only to 3.739", "at or above log m = 5.298", "eps <= 0",
                 "not learned at any dimension", "exactly 0"):
        assert part in text, f"{part!r} not in: {text}"
    text = bilinear_verdict([sweep_row("d=16", 16, 0.01, 2.0, 0.3), sweep_row("one-hot", None, 0.0, 5.3, 0.0, [0.5])],
                            200)
    assert "fell below log m = 5.298 at d=16" in text and "not all 0" in text and "not learned" not in text, text
