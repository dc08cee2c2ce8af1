"""Ctrl-C anywhere resumes bit for bit; the checkpoint folder is locked and keeps the user's files;
the Python API refuses bad input with a clear exception."""
import errno
import json
import os
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
from matplotlib.figure import Figure

from minirev import demo
from minirev.bilinear import Bilinear
from minirev.machinery.checkpoint import RunFolder, load_model, save_model
from minirev.config import RunConfig
from minirev.data import pairs_data
from minirev.errors import RunError, UsageError
from minirev.running import run_experiment
from minirev.machinery.files import atomic_write
from minirev.gpt import GPT
from minirev.optim import SGD, AdamW
from minirev.train import Trainer
from records import first_difference

pytestmark = pytest.mark.train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT)        # a child process imports this checkout's minirev

# 17 training sentences in batches of 4: 5 steps an epoch, 15 in 3 epochs
SMALL = RunConfig(layers=1, width=16, heads=2, batch_size=4, vocab=40, seed=3, eval_every=2, epochs=3)
STEPS = 15


def checkpoint(folder):
    """(state.json without its timing and hash, {array name: array}) of a checkpoint folder.

    (The hash covers the zip's timestamps too; the arrays are compared one by one.)"""
    state = json.loads((folder / "state.json").read_text())
    state.pop("seconds"), state.pop("sha256")
    with np.load(folder / state["arrays"]) as z:
        return state, {k: z[k] for k in z.files}


def assert_same_checkpoint(a, b):
    (state_a, arrays_a), (state_b, arrays_b) = checkpoint(a), checkpoint(b)
    assert state_a == state_b, "state.json differs after the resume: " + "; ".join(
        f"{k}: {state_a.get(k)!r:.200} vs {state_b.get(k)!r:.200}"
        for k in sorted(state_a.keys() | state_b.keys()) if state_a.get(k) != state_b.get(k))
    assert arrays_a.keys() == arrays_b.keys(), (
        f"the checkpoints hold other arrays: only in {a.name}'s: {sorted(arrays_a.keys() - arrays_b.keys())}, "
        f"only in {b.name}'s: {sorted(arrays_b.keys() - arrays_a.keys())}")
    for name in arrays_a:
        assert np.array_equal(arrays_a[name], arrays_b[name]), f"{name} differs after the resume"


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The uninterrupted run's final checkpoint."""
    folder = tmp_path_factory.mktemp("whole") / "ck"
    run_experiment(SMALL.replace(save=str(folder)), out=None)
    return folder


def ctrl_c():
    os.kill(os.getpid(), signal.SIGINT)          # the real signal, caught by the run's handler


def interrupted_then_resumed(tmp_path, monkeypatch, cls, method, when):
    """Send SIGINT from inside cls.method when when(self) is true; then resume to the end."""
    real = getattr(cls, method)

    def patched(self, *args, **kwargs):
        value = real(self, *args, **kwargs)
        trainer = self if isinstance(self, Trainer) else args[0]
        if when(trainer):
            ctrl_c()
        return value
    monkeypatch.setattr(cls, method, patched)
    folder = tmp_path / "ck"
    result, _ = run_experiment(SMALL.replace(save=str(folder), save_every=1), out=None)
    monkeypatch.undo()
    run_experiment(SMALL.replace(resume=str(folder)), out=None)
    return result, folder


@pytest.mark.parametrize("step", range(1, STEPS + 1), ids=[f"after step {s}" for s in range(1, STEPS + 1)])
def test_ctrl_c_after_any_step_resumes_bit_identically(step, whole, tmp_path, monkeypatch):
    result, folder = interrupted_then_resumed(tmp_path, monkeypatch, Trainer, "train_step",
                                              lambda t: t.step == step)
    assert result["interrupted"] == (step < STEPS), (
        f"Ctrl-C after step {step} of {STEPS}: want interrupted={step < STEPS} (after the last step nothing is "
        f"left to interrupt), got {result['interrupted']}")
    assert_same_checkpoint(folder, whole)


def test_ctrl_c_during_an_evaluation_keeps_its_record(whole, tmp_path, monkeypatch):
    result, folder = interrupted_then_resumed(tmp_path, monkeypatch, Trainer, "evaluate", lambda t: t.epoch == 2)
    assert [r["epoch"] for r in result["history"]] == [0, 2], (
        f"the evaluation under way completes: evaluated at epochs {[r['epoch'] for r in result['history']]}, "
        "want [0, 2]")
    assert_same_checkpoint(folder, whole)


def test_ctrl_c_during_a_save_finishes_the_save(whole, tmp_path, monkeypatch):
    result, folder = interrupted_then_resumed(tmp_path, monkeypatch, RunFolder, "save", lambda t: t.epoch == 1)
    assert result["interrupted"] and result["final"]["epochs"] == 0, (
        f"Ctrl-C during the save of epoch 1 should stop the run there: interrupted={result['interrupted']}, "
        f"last evaluated epoch {result['final']['epochs']} (want 0)")
    assert_same_checkpoint(folder, whole)


# The child of the SIGINT test: `python -m minirev.demo ...` with one gate. After step GATE_STEP, the run's
# last but one, training waits until the parent has sent its SIGINT and closed the child's stdin. However
# late the parent's signal comes, it comes before the last step: the run cannot finish uninterrupted.
# (A signal that lands while the gate waits is handled there: Python runs the handler and reads on.)
GATED_DEMO = r"""
import runpy, sys
from minirev.train import Trainer
gate, real_step = int(sys.argv.pop(1)), Trainer.train_step

def train_step(self, batch):
    loss = real_step(self, batch)
    if self.step == gate:
        sys.stdin.read()          # returns once the parent has signalled and closed our stdin
    return loss

Trainer.train_step = train_step
runpy.run_module("minirev.demo", run_name="__main__", alter_sys=True)
"""
CLI_EPOCHS, CLI_STEPS = 100, 100 * 5      # 17 sentences in batches of 4: 5 steps an epoch
GATE_STEP = CLI_STEPS - 1


def test_sigint_sent_to_a_real_process_mid_training_resumes_exactly(tmp_path):
    """The signal from outside, as a terminal sends it, at a seeded moment while the run trains;
    the run reports, saves and resumes exactly."""
    tiny = ["--vocab", "40", "--layers", "1", "--width", "16", "--heads", "2", "--batch-size", "4",
            "--seed", "3", "--eval-every", "3", "--epochs", str(CLI_EPOCHS)]
    cmd = [sys.executable, "-u", "-c", GATED_DEMO, str(GATE_STEP), "reversal", *tiny, "--save", "ck",
           "--json", "r.json", "--out", "figs"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:                                      # the first progress line: training
        if line.startswith("epoch"):
            break
    time.sleep(np.random.default_rng(20240507).uniform(0, 0.2))   # seeded: the same moment every run
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate()              # closes the child's stdin (after the signal): the gate opens
    assert proc.returncode == 130 and "Traceback" not in err, (
        f"the interrupted run should exit with 130 (SIGINT) after writing its results, got {proc.returncode}:\n{err}")
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["config"]["epochs"] == CLI_EPOCHS, (
        f"the JSON should record --epochs {CLI_EPOCHS} as asked, got {result['config']['epochs']}")
    assert result["interrupted"] is True, (
        f"SIGINT was sent before step {CLI_STEPS} could run, yet the JSON says interrupted={result['interrupted']!r}")
    state, _ = checkpoint(tmp_path / "ck")
    assert state["step"] < CLI_STEPS and state["epoch"] < CLI_EPOCHS, (
        f"the interrupted run's checkpoint should stop short of step {CLI_STEPS} (epoch {CLI_EPOCHS}): "
        f"it is at step {state['step']}, epoch {state['epoch']}")
    figures = os.listdir(tmp_path / "figs")
    assert len(figures) == 3, f"an interrupted run still draws its 3 figures, got {figures}"
    cfg = RunConfig(layers=1, width=16, heads=2, batch_size=4, vocab=40, seed=3, eval_every=3, epochs=CLI_EPOCHS)
    run_experiment(cfg.replace(resume=str(tmp_path / "ck")), out=None)
    run_experiment(cfg.replace(save=str(tmp_path / "whole")), out=None)
    assert_same_checkpoint(tmp_path / "ck", tmp_path / "whole")


# ---- the checkpoint folder ------------------------------------------------------------------

def test_a_second_run_on_a_locked_folder_is_refused_naming_the_holder(tmp_path, capsys):
    with RunFolder(str(tmp_path / "ck")):
        code = demo.main(["reversal", "--vocab", "40", "--epochs", "1", "--save", str(tmp_path / "ck"),
                          "--out", str(tmp_path / "figs")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and f"in use by another run (process {os.getpid()})" in err[0], (
        f"want exit 1 and one line naming process {os.getpid()} as the holder: exit {code}, stderr {err}")
    assert not (tmp_path / "figs").exists() and not (tmp_path / "ck").exists(), (
        f"a refused run may create nothing: figs exists {(tmp_path / 'figs').exists()}, "
        f"ck exists {(tmp_path / 'ck').exists()}")


def test_saving_keeps_every_file_the_user_put_in_the_folder(tmp_path):
    folder = tmp_path / "ck"
    folder.mkdir()
    (folder / "arrays-notes.txt").write_text("mine")
    (folder / "arrays-keep").mkdir()
    (folder / ".tmp-notes").write_text("mine too")
    (folder / ".minirev-tmp-abcd1234").write_text("left by a killed run")
    run_experiment(SMALL.replace(save=str(folder), save_every=1), out=None)
    run_experiment(SMALL.replace(epochs=4, resume=str(folder)), out=None)
    expected = [".tmp-notes", "arrays-000000020.npz", "arrays-keep", "arrays-notes.txt", "state.json"]
    assert sorted(os.listdir(folder)) == expected, (
        f"the user's files stay, the run's stale temporary and old arrays go: {sorted(os.listdir(folder))}, "
        f"want {expected}")
    assert (folder / "arrays-notes.txt").read_text() == "mine", (
        f"arrays-notes.txt was rewritten: {(folder / 'arrays-notes.txt').read_text()!r}")


def test_save_over_another_run_needs_overwrite(tmp_path):
    run_experiment(SMALL.replace(epochs=1, save=str(tmp_path / "ck")), out=None)
    with pytest.raises(UsageError, match="already holds the checkpoint of a gpt run at epoch 1.*--overwrite"):
        run_experiment(SMALL.replace(seed=4, save=str(tmp_path / "ck")), out=None)
    run_experiment(SMALL.replace(seed=4, epochs=2, save=str(tmp_path / "ck"), overwrite=True), out=None)
    state, _ = checkpoint(tmp_path / "ck")
    assert state["config"]["seed"] == 4 and sorted(os.listdir(tmp_path / "ck")) == ["arrays-000000010.npz",
                                                                                      "state.json"], (
        f"--overwrite should leave only the new run's checkpoint (seed 4, epoch 2): seed {state['config']['seed']}, "
        f"files {sorted(os.listdir(tmp_path / 'ck'))}")


def test_checkpoints_follow_save_every_not_the_evaluations(tmp_path, monkeypatch):
    saved, real = [], RunFolder.save
    monkeypatch.setattr(RunFolder, "save", lambda self, t, c: (saved.append(t.epoch), real(self, t, c))[1])
    run_experiment(SMALL.replace(epochs=7, eval_every=3, save=str(tmp_path / "ck"), save_every=2), out=None)
    assert saved == [2, 4, 6, 7], f"--save-every 2 over 7 epochs saves after epochs 2, 4, 6 and 7, got {saved}"


def test_a_resumed_run_keeps_the_evaluation_grid(tmp_path):
    run_experiment(SMALL.replace(save=str(tmp_path / "ck")), out=None)
    result, _ = run_experiment(SMALL.replace(epochs=6, resume=str(tmp_path / "ck")), out=None)
    whole, _ = run_experiment(SMALL.replace(epochs=6), out=None)
    assert [r["epoch"] for r in result["history"]] == [0, 2, 4, 6], (
        f"--eval-every 2: the resumed run evaluates at epochs {[r['epoch'] for r in result['history']]}, "
        "want [0, 2, 4, 6]")
    assert result["history"] == whole["history"], (
        f"the resumed run's history differs: {first_difference(result['history'], whole['history'])}")


def test_written_files_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        run_experiment(SMALL.replace(epochs=1, save=str(tmp_path / "ck")), out=None)
    finally:
        os.umask(old)
    for name in os.listdir(tmp_path / "ck"):
        mode = stat.S_IMODE(os.stat(tmp_path / "ck" / name).st_mode)
        assert mode == 0o640, f"{name} has mode {mode:#o}; under umask 027 it should be 0o640"


def test_a_run_with_stdout_closed_still_writes_its_results(tmp_path, monkeypatch, capsys):
    """As `>&-` leaves it: Python starts with sys.stdout = None."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdout", None)
    code = demo.main(["reversal", "--vocab", "40", "--layers", "1", "--width", "16", "--heads", "2",
                      "--epochs", "1", "--json", "r.json", "--out", "figs"])
    err = capsys.readouterr().err
    assert code == 0, f"with stdout closed the run exited with {code}:\n{err}"
    assert err == "", f"with stdout closed the run should write nothing to stderr, wrote:\n{err}"
    epochs = json.loads((tmp_path / "r.json").read_text())["final"]["epochs"]
    assert epochs == 1, f"r.json should hold the 1 epoch run, its final says {epochs} epochs"


def test_temporaries_of_killed_runs_are_removed_once_an_hour_old(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    old, fresh, mine = tmp_path / ".minirev-tmp-old12345", tmp_path / ".minirev-tmp-new12345", tmp_path / ".tmp-x"
    for path in (old, fresh, mine):
        path.write_text("")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    code = demo.main(["bilinear", "--dims", "4", "--vocab", "20", "--pairs", "5", "--held-out", "2",
                      "--steps", "3", "--out", ".", "--json", "r.json"])
    assert code == 0, f"the bilinear command exited with {code}"
    assert not old.exists() and fresh.exists() and mine.exists(), (
        f"only the hour-old temporary goes: {old.name} exists {old.exists()} (want False), "
        f"{fresh.name} {fresh.exists()}, {mine.name} {mine.exists()} (want True)")


def test_a_full_disk_names_the_file_and_keeps_the_previous_one(tmp_path):
    target = tmp_path / "r.json"
    target.write_text("previous")

    def disk_full(f):
        f.write(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    with pytest.raises(RunError, match=f"cannot write {target}: No space left on device"):
        atomic_write(str(target), disk_full)
    assert os.listdir(tmp_path) == ["r.json"] and target.read_text() == "previous", (
        f"a failed write should leave the previous r.json alone and no temporary: files {os.listdir(tmp_path)}, "
        f"r.json holds {target.read_text()!r}")


def test_a_disk_full_on_the_third_figure_leaves_no_new_figure_and_no_json(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "figs").mkdir()
    (tmp_path / "figs" / "reversal_nll.png").write_text("the previous run's figure")
    real, calls = Figure.savefig, []

    def third_fails(self, f, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(self, f, **kwargs)
    monkeypatch.setattr(Figure, "savefig", third_fails)
    code = demo.main(["reversal", "--vocab", "40", "--layers", "1", "--width", "16", "--heads", "2",
                      "--epochs", "1", "--json", "r.json", "--out", "figs"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "No space left on device" in err[0] and "reversal_heatmaps" in err[0], (
        f"want exit 1 and one line naming the full disk and reversal_heatmaps: exit {code}, stderr {err}")
    assert sorted(os.listdir(tmp_path)) == ["figs"] and os.listdir(tmp_path / "figs") == ["reversal_nll.png"], (
        f"all the run's files or none: the folder holds {sorted(os.listdir(tmp_path))}, figs holds "
        f"{os.listdir(tmp_path / 'figs')} (want ['figs'] and the previous ['reversal_nll.png'])")
    assert (tmp_path / "figs" / "reversal_nll.png").read_text() == "the previous run's figure", (
        "the previous run's reversal_nll.png was replaced")


def test_a_diverging_run_is_stopped_even_when_its_loss_stays_finite():
    with pytest.raises(RunError, match=r"above 100 x log\|V\| = \d+: training diverged"):
        run_experiment(RunConfig(model="one-layer", vocab=40, epochs=3, lr=1e30, dtype="float64"), out=None)


# ---- the Python API: a clear exception for each misuse -----------------------------------------

def model_file(tmp_path, **replace):
    """A saved bilinear model, with some of its arrays replaced."""
    path = str(tmp_path / "m.npz")
    save_model(Bilinear(10, 4), path)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(replace)
    np.savez(path, **arrays)
    return path


API = [  # (the test's id, what to do, exception, message)
    ("load_model of a plain .npy",
     lambda p: load_model(str(p / "x.npy")) if np.save(p / "x.npy", np.zeros(3)) is None else 0,
     UsageError, "not a readable minirev file"),
    ("load_model, meta not JSON",
     lambda p: load_model(model_file(p, meta=np.array("{not json"))), UsageError, "damaged or was edited"),
    ("load_model, meta config incomplete",
     lambda p: load_model(model_file(p, meta=np.array(json.dumps(dict(format=2, kind="bilinear", dtype="float32",
                                                                     config=dict(vocab=3)))))),
     UsageError, "damaged or was edited"),
    ("load_model, format a string",
     lambda p: load_model(model_file(p, meta=np.array(json.dumps(dict(format="2", kind="bilinear",
                                                                     dtype="float32", config={}))))),
     UsageError, "'format' should be a whole number"),
    ("load_model, Theta int8",
     lambda p: load_model(model_file(p, **{"param.Theta": np.zeros((4, 4), np.int8)})), UsageError,
     "should be floats"),
    ("load_model, Theta complex",
     lambda p: load_model(model_file(p, **{"param.Theta": np.zeros((4, 4), complex)})), UsageError,
     "should be floats"),
    ("load_model, Theta strings",
     lambda p: load_model(model_file(p, **{"param.Theta": np.array([["a"] * 4] * 4)})), UsageError,
     "should be floats"),
    ("save_model into a missing folder",
     lambda p: save_model(Bilinear(10, 4), str(p / "missing" / "m.npz")), UsageError, "does not exist"),
    ("copy to int32",
     lambda p: Bilinear(10, 4).copy(dtype="int32"), UsageError, "dtype must be float32 or float64"),
    ("GPT in np.int32",
     lambda p: GPT(13, layers=1, width=8, heads=2, dtype=np.int32), UsageError, "dtype must be float32 or float64"),
    ("GPT in complex128",
     lambda p: GPT(13, layers=1, width=8, heads=2, dtype="complex128"), UsageError, "dtype must be float32"),
    ("loss of an empty batch",
     lambda p: Bilinear(10, 4).loss(np.zeros((0, 2), int)), UsageError, "the batch is empty"),
    ("loss_and_grads of an empty batch",
     lambda p: Bilinear(10, 4).loss_and_grads(np.zeros((0, 2), int)), UsageError, "the batch is empty"),
    ("loss of 1-token sentences",
     lambda p: Bilinear(10, 4).loss(np.array([[1], [2]])), UsageError, "leave no context"),
    ("Trainer batch_size -1",
     lambda p: Trainer(Bilinear(60, 4), SGD(1), pairs_data(60, 20, 5), batch_size=-1), UsageError,
     "batch_size must be a whole number >= 1"),
    ("Trainer eval_every 0",
     lambda p: Trainer(Bilinear(60, 4), SGD(1), pairs_data(60, 20, 5), eval_every=0), UsageError,
     "eval_every must be a whole number >= 1"),
    ("AdamW beta2 1.5",
     lambda p: AdamW(0.01, betas=(0.9, 1.5)), UsageError, "betas must be two numbers in"),
    ("AdamW eps 0",
     lambda p: AdamW(0.01, eps=0), UsageError, "eps must be a finite number > 0"),
    ("SGD lr True",
     lambda p: SGD(True), UsageError, "learning rate must be a finite number > 0"),
    ("SGD lrs a list",
     lambda p: SGD(1, lrs=[1]), UsageError, "lrs must be a dict"),
    ("run_experiment seeds past 2**32-1",
     lambda p: run_experiment(SMALL.replace(seed=2 ** 32 - 1, seeds=2)), UsageError, "goes past the largest seed"),
    ("run_experiment epochs 10**7",
     lambda p: run_experiment(SMALL.replace(epochs=10 ** 7)), UsageError, "--epochs must be at most"),
    ("run_experiment save_every without save",
     lambda p: run_experiment(SMALL.replace(save_every=2)), UsageError, "no folder was given"),
]


@pytest.mark.parametrize("action, error, message", [pytest.param(action, error, message, id=name)
                                                    for name, action, error, message in API])
def test_the_api_refuses_misuse_with_a_clear_exception(action, error, message, tmp_path):
    with pytest.raises(error, match=message) as info:
        action(tmp_path)
    assert "\n" not in str(info.value), f"the exception should be one line, got:\n{info.value}"
