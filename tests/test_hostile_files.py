"""Nothing of the user's is opened for writing: a .lock minirev did not make, links, read-only files,
folders and devices at output paths, folders swapped during a run, odd paths and crafted archives.

Each refusal is checked as the BAD table of test_cli.py checks it (one line, its exit status) and
against a snapshot of every byte and mode under the test's folder, taken before and after."""
import hashlib
import json
import os
import re
import stat
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from matplotlib.figure import Figure

from minirev import commands, demo, running
from minirev.bilinear import Bilinear
from minirev.config import RunConfig
from minirev.errors import RunError, UsageError
from minirev.gpt import GPT
from minirev.machinery import limits
from minirev.machinery.checkpoint import RunFolder, load_model, save_model
from minirev.machinery.lock import FileLock, NotALock
from minirev.running import run_experiment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--vocab", "40", "--layers", "1", "--width", "16", "--heads", "2", "--epochs", "1"]
SMALL = RunConfig(layers=1, width=16, heads=2, batch_size=4, vocab=40, seed=3, eval_every=2, epochs=2)
BILINEAR = ["bilinear", "--dims", "4", "--vocab", "20", "--pairs", "5", "--held-out", "2", "--steps", "3"]


def snapshot(root):
    """{relative path: (mode, bytes or link target)} of everything under root, links not followed."""
    seen = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            content = os.readlink(path) if stat.S_ISLNK(st.st_mode) else \
                open(path, "rb").read() if stat.S_ISREG(st.st_mode) else None
            seen[os.path.relpath(path, root)] = (st.st_mode, content)
    return seen


def changes(before, after):
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def refused(capsys, argv, status, words):
    """Run the command line in-process; it must exit `status` with one line holding `words`."""
    code = demo.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == status and len(err) == 1 and words in err[0], (
        f"{' '.join(argv)}: want exit {status} and one line saying {words!r}; got exit {code}, stderr {err}")


# ---- refused before training: the table ----------------------------------------------------------

def lock_text(t):
    (t / "ck").mkdir()
    (t / "ck" / ".lock").write_text("my own lock notes\n")


def lock_hard_link(t):
    (t / "thesis.txt").write_text("three years of work\n")
    (t / "ck").mkdir()
    os.link(t / "thesis.txt", t / "ck" / ".lock")


def lock_symlink(t):
    (t / "thesis.txt").write_text("three years of work\n")
    (t / "ck").mkdir()
    os.symlink(t / "thesis.txt", t / "ck" / ".lock")


def lock_folder(t):
    (t / "ck" / ".lock").mkdir(parents=True)
    (t / "ck" / ".lock" / "mine.txt").write_text("mine")


def figure_link(t):
    (t / "thesis.txt").write_text("three years of work\n")
    (t / "figs").mkdir()
    os.symlink(t / "thesis.txt", t / "figs" / "reversal_nll.png")


def figure_read_only(t):
    (t / "figs").mkdir()
    (t / "figs" / "reversal_nll.png").write_text("an old figure")
    os.chmod(t / "figs" / "reversal_nll.png", 0o444)


def figure_folder(t):
    (t / "figs" / "reversal_nll.png").mkdir(parents=True)
    (t / "figs" / "reversal_nll.png" / "mine.txt").write_text("mine")


def out_link(t):
    (t / "victim").mkdir()
    os.symlink(t / "victim", t / "figs")


BAD = [  # (id, setup, extra arguments, exit status, words of the one line)
    ("a .lock holding the user's text", lock_text, ["--save", "ck"], 1, "its .lock is a file minirev did not write"),
    ("a .lock hard-linked to the user's file", lock_hard_link, ["--save", "ck"], 1, "a hard link"),
    ("a .lock that is a symbolic link", lock_symlink, ["--save", "ck"], 1, "its .lock is a symbolic link"),
    ("a .lock that is a folder", lock_folder, ["--save", "ck"], 1, "its .lock is a folder"),
    ("a .lock that is a FIFO", lambda t: (t / "ck").mkdir() or os.mkfifo(t / "ck" / ".lock"), ["--save", "ck"], 1,
     "its .lock is a device or other special file"),
    ("a figure's path a symbolic link", figure_link, [], 2, "reversal_nll.png there is a link"),
    ("a figure's path read-only", figure_read_only, [], 2, "reversal_nll.png there is read-only (mode 444)"),
    ("a figure's path a folder", figure_folder, [], 2, "reversal_nll.png there is a folder"),
    ("--json onto a figure", lambda t: (t / "figs").mkdir(), ["--json", "figs/reversal_nll.png"], 2,
     "is the path of one of the figures"),
    ("--out a symbolic link", out_link, [], 2, "is a symbolic link: give the folder itself"),
    ("--out not UTF-8", None, ["--out", "figs\udcff"], 2, "--out 'figs\\udcff': the path is not valid"),
    ("--json not UTF-8", None, ["--json", "r\udcff.json"], 2, "--json 'r\\udcff.json': the path is not valid"),
    ("--save not UTF-8", None, ["--save", "ck\udcff"], 2, "--save 'ck\\udcff': the path is not valid"),
    ("--resume not UTF-8", None, ["--resume", "ck\udcfe"], 2, "--resume 'ck\\udcfe': the path is not valid"),
]


@pytest.mark.parametrize("setup, extra, status, words", [pytest.param(*case[1:], id=case[0]) for case in BAD])
def test_a_hostile_path_is_refused_before_training_and_nothing_changes(setup, extra, status, words, tmp_path,
                                                                       monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    if setup:
        setup(tmp_path)
    trained = []
    monkeypatch.setattr(running.Trainer, "run", lambda *a, **k: trained.append(1))
    before = snapshot(tmp_path)
    refused(capsys, ["reversal", *TINY, "--out", "figs", *extra], status, words)
    assert not trained, "the run trained before refusing: every path is checked before training"
    assert changes(before, snapshot(tmp_path)) == [], (
        f"a refused run may change nothing: these changed {changes(before, snapshot(tmp_path))}")


def test_a_lock_minirev_left_is_taken_over_and_a_foreign_one_never_touched(tmp_path):
    path = str(tmp_path / ".lock")
    with open(path, "w") as f:
        f.write("minirev lock, process 999999999\n")     # as a killed run leaves it: nobody holds it
    lock = FileLock(path).acquire()
    with open(path) as f:
        assert f.read() == f"minirev lock, process {os.getpid()}\n", "a stale minirev lock should name its new holder"
    lock.release()
    assert not os.path.lexists(path), "a released lock leaves no .lock"
    with open(path, "w") as f:
        f.write("123\n")                                  # a number, but not minirev's line
    with pytest.raises(NotALock, match="did not write"):
        FileLock(path).acquire()
    assert open(path).read() == "123\n", "a .lock minirev did not write must stay as it was"


def test_a_hard_linked_lock_is_refused_on_resume_and_the_linked_file_kept(tmp_path):
    run_experiment(SMALL.replace(epochs=1, save=str(tmp_path / "ck")), out=None)
    (tmp_path / "thesis.txt").write_text("three years of work\n")
    os.link(tmp_path / "thesis.txt", tmp_path / "ck" / ".lock")
    before = snapshot(tmp_path)
    with pytest.raises(RunError, match="its .lock is a file with 2 names .a hard link"):
        run_experiment(SMALL.replace(resume=str(tmp_path / "ck")), out=None)
    assert changes(before, snapshot(tmp_path)) == [], (
        f"the refused resume changed {changes(before, snapshot(tmp_path))}")


def test_without_hard_links_the_lock_is_made_in_place(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise PermissionError(1, "Operation not permitted")   # as on a file system without hard links
    monkeypatch.setattr(os, "link", no_links)
    path = str(tmp_path / ".lock")
    lock = FileLock(path).acquire()
    assert open(path).read() == f"minirev lock, process {os.getpid()}\n" and os.listdir(tmp_path) == [".lock"], (
        f"the lock file should hold minirev's line and leave no temporary: {os.listdir(tmp_path)}")
    lock.release()
    assert os.listdir(tmp_path) == [], f"a released lock leaves nothing: {os.listdir(tmp_path)}"


def test_a_name_the_locale_cannot_write_is_refused_in_one_line(tmp_path):
    """Under LC_ALL=C without Python's UTF-8 mode, a non-ASCII argument arrives as undecodable bytes."""
    env = dict(os.environ, LC_ALL="C", PYTHONUTF8="0", PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-m", "minirev.demo", "reversal", *TINY, "--out", "fig\u00e9"],
                          cwd=tmp_path, env=env, capture_output=True)
    err = proc.stderr.decode(errors="replace").strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1 and "--out 'fig\\udcc3\\udca9': the path is not valid" in err[0], (
        f"want exit 2 and one line naming --out; got exit {proc.returncode}, stderr {err}")
    assert os.listdir(tmp_path) == [], f"the refused run created {os.listdir(tmp_path)}"


# ---- save_model onto what is not a plain file ------------------------------------------------------

def read_only_file(t):
    (t / "m.npz").write_text("mine")
    os.chmod(t / "m.npz", 0o444)
    return str(t / "m.npz")


def link_to_mine(t):
    (t / "mine").write_text("mine")
    os.symlink(t / "mine", t / "m.npz")
    return str(t / "m.npz")


def fifo(t):
    os.mkfifo(t / "m.npz")
    return str(t / "m.npz")


def folder(t):
    (t / "m.npz").mkdir()
    return str(t / "m.npz")


SAVE_ONTO = [  # (id, setup returning the path, words)
    ("/dev/null", lambda t: "/dev/null", "is a device or other special file"),
    ("a FIFO", fifo, "is a device or other special file"),
    ("a read-only file", read_only_file, "is read-only (mode 444)"),
    ("a symbolic link", link_to_mine, "is a link"),
    ("a folder", folder, "is a folder"),
    ("None", lambda t: None, "takes a path (a string), got NoneType"),
    ("bytes", lambda t: b"m.npz", "takes a path (a string), got bytes"),
    ("a NUL inside", lambda t: "m\0.npz", "contains a control character"),
]


@pytest.mark.parametrize("setup, words", [pytest.param(*case[1:], id=case[0]) for case in SAVE_ONTO])
def test_save_model_refuses_what_is_not_a_plain_file(setup, words, tmp_path):
    path = setup(tmp_path)
    before = snapshot(tmp_path)
    device = os.stat("/dev/null").st_mode
    with pytest.raises(UsageError, match=re.escape(words)) as info:
        save_model(Bilinear(10, 4), path)
    assert "\n" not in str(info.value), f"the error should be one line, got:\n{info.value}"
    assert changes(before, snapshot(tmp_path)) == [] and os.stat("/dev/null").st_mode == device, (
        f"save_model refused, yet these changed: {changes(before, snapshot(tmp_path))}")


def test_save_model_refuses_what_is_not_a_model(tmp_path):
    with pytest.raises(UsageError, match="saves a minirev model .Model., got str"):
        save_model("x", str(tmp_path / "m.npz"))


# ---- crafted archives ------------------------------------------------------------------------------

def patch_zip(path, **fields):
    """Set fields of every member's zip headers, local and central: flag, method, size (uncompressed, central)."""
    data = bytearray(open(path, "rb").read())
    for at in range(len(data) - 4):
        if data[at:at + 4] == b"PK\x03\x04":                 # a local header: flag at 6, method at 8
            offsets = dict(flag=6, method=8)
        elif data[at:at + 4] == b"PK\x01\x02":               # a central one: flag at 8, method at 10, size at 24
            offsets = dict(flag=8, method=10, size=24)
        else:
            continue
        for name, value in fields.items():
            if name in offsets:
                fmt = "<I" if name == "size" else "<H"
                data[at + offsets[name]:at + offsets[name] + struct.calcsize(fmt)] = struct.pack(fmt, value)
    open(path, "wb").write(bytes(data))


def saved_model(tmp_path):
    path = str(tmp_path / "m.npz")
    save_model(Bilinear(10, 4), path)
    return path


def test_an_encrypted_member_is_refused_from_its_header(tmp_path):
    path = saved_model(tmp_path)
    patch_zip(path, flag=1)
    with pytest.raises(UsageError, match="is encrypted; minirev files never are"):
        load_model(path)


def test_an_unknown_compression_method_is_refused_from_its_header(tmp_path):
    path = saved_model(tmp_path)
    patch_zip(path, method=99)
    with pytest.raises(UsageError, match="uses compression method 99"):
        load_model(path)


def test_a_member_claiming_more_than_the_file_holds_is_refused_before_allocating(tmp_path):
    path = saved_model(tmp_path)
    patch_zip(path, size=3_800_000_000)                     # 3.8 GB claimed by a file of a few KB
    with pytest.raises(UsageError, match="claims 3.8 GB from .* stored in a file of"):
        load_model(path)


def test_a_member_no_one_asked_for_is_never_decompressed(tmp_path, monkeypatch):
    path = saved_model(tmp_path)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("junk.npy", bytes(20_000_000))          # 20 MB of zeros in about 20 KB
    opened, real = [], zipfile.ZipFile.open
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, name, *a, **k: (
        opened.append(getattr(name, "filename", name)), real(self, name, *a, **k))[1])
    with pytest.raises(UsageError, match="has unexpected junk"):
        load_model(path)
    assert "junk.npy" not in opened, "the unknown member was decompressed; it should be refused from its name"


def test_a_model_too_large_for_memory_is_refused_before_it_is_built(tmp_path, monkeypatch):
    path = str(tmp_path / "m.npz")
    meta = dict(format=3, kind="gpt", dtype="float32", config=dict(
        vocab_size=40, layers=400, width=1024, heads=8, pos="absolute", max_len=4, dropout=0.0, entity_len=1,
        seed=0, tied=False))
    np.savez(path, meta=np.array(json.dumps(meta)))
    monkeypatch.setattr(limits, "MEMORY_LIMIT", 10 ** 9)      # this test's machine: 1 GB
    monkeypatch.setattr(GPT, "__init__", lambda *a, **k: pytest.fail("the model was built before the check"))
    with pytest.raises(UsageError, match=r"the gpt model it describes \(5.0\de\+09 parameters\) would need about"):
        load_model(path)


def test_a_resume_refuses_an_encrypted_arrays_file(tmp_path, capsys):
    run_experiment(SMALL.replace(epochs=1, save=str(tmp_path / "ck")), out=None)
    state = json.loads((tmp_path / "ck" / "state.json").read_text())
    arrays = tmp_path / "ck" / state["arrays"]
    patch_zip(str(arrays), flag=1)
    state["sha256"] = hashlib.sha256(arrays.read_bytes()).hexdigest()
    (tmp_path / "ck" / "state.json").write_text(json.dumps(state))
    with pytest.raises(UsageError, match="is encrypted"):
        run_experiment(SMALL.replace(resume=str(tmp_path / "ck")), out=None)


# ---- swaps during a run: detected and refused, never followed --------------------------------------

def figures_and_victim(tmp_path, monkeypatch):
    """In tmp_path: figs/, where the run draws, and victim/, another folder holding a figure of its own."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "figs").mkdir()
    (tmp_path / "victim").mkdir()
    (tmp_path / "victim" / "bilinear.png").write_text("the victim's figure")


def swap_figures_for_link(tmp_path):
    """figs/ moved aside to figs.old/, and a link to victim/ put in its place."""
    os.rename("figs", "figs.old")
    os.symlink(tmp_path / "victim", "figs")


def test_the_figures_folder_swapped_for_a_link_while_drawing_writes_nothing(tmp_path, monkeypatch, capsys):
    figures_and_victim(tmp_path, monkeypatch)
    real = Figure.savefig

    def swap_then_draw(self, f, **kwargs):
        if not os.path.islink("figs"):
            swap_figures_for_link(tmp_path)
        real(self, f, **kwargs)
    monkeypatch.setattr(Figure, "savefig", swap_then_draw)
    before = snapshot(tmp_path / "victim")
    refused(capsys, [*BILINEAR, "--out", "figs", "--json", "r.json"], 1, "was replaced during the run")
    assert changes(before, snapshot(tmp_path / "victim")) == [], "the folder the link points to was written"
    assert os.listdir("figs.old") == [] and not os.path.exists("r.json"), (
        f"nothing is renamed into place: figs.old holds {os.listdir('figs.old')}, r.json exists "
        f"{os.path.exists('r.json')}")


def test_the_figures_folder_swapped_for_a_link_while_training_is_refused(tmp_path, monkeypatch, capsys):
    figures_and_victim(tmp_path, monkeypatch)
    real = commands.bilinear_sweep

    def train_then_swap(*args):
        found = real(*args)
        swap_figures_for_link(tmp_path)
        return found
    monkeypatch.setattr(commands, "bilinear_sweep", train_then_swap)
    before = snapshot(tmp_path / "victim")
    refused(capsys, [*BILINEAR, "--out", "figs"], 1, "was replaced during the run (now a link)")
    assert changes(before, snapshot(tmp_path / "victim")) == [], "the folder the link points to was written"


def test_json_made_a_folder_while_drawing_leaves_no_figure(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    real = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda self, f, **k: (os.makedirs("r.json", exist_ok=True),
                                                                   real(self, f, **k))[1])
    refused(capsys, [*BILINEAR, "--out", "figs", "--json", "r.json"], 1, "r.json is a folder: refusing to replace")
    assert os.listdir("figs") == [], f"the figure was renamed into place though the JSON failed: {os.listdir('figs')}"


def test_a_checkpoint_folder_swapped_for_a_link_mid_run_leaves_the_other_run_alone(tmp_path, monkeypatch):
    other = tmp_path / "other"
    run_experiment(SMALL.replace(epochs=1, save=str(other)), out=None)
    before = snapshot(other)
    real = RunFolder.save

    def save_then_swap(self, trainer, config):
        real(self, trainer, config)
        if trainer.epoch == 1:
            os.rename(tmp_path / "ck", tmp_path / "ck.old")
            os.symlink(other, tmp_path / "ck")
    monkeypatch.setattr(RunFolder, "save", save_then_swap)
    with pytest.raises(RunError, match="was replaced during the run .now a link."):
        run_experiment(SMALL.replace(save=str(tmp_path / "ck"), save_every=1), out=None)
    assert changes(before, snapshot(other)) == [], (
        f"the other run's checkpoint changed: {changes(before, snapshot(other))}")


# ---- the order: locked before the data is built ------------------------------------------------------

def test_a_run_that_finished_since_the_checks_is_not_replaced(tmp_path, monkeypatch):
    """The race of two `--save ck` runs, made deterministic: the first one runs whole between the second's
    checks and its lock."""
    ck, real = tmp_path / "ck", running.check_run

    def checks_then_another_run(cfg):
        real(cfg)
        monkeypatch.setattr(running, "check_run", real)
        run_experiment(SMALL.replace(epochs=1, save=str(ck)), out=None)
    monkeypatch.setattr(running, "check_run", checks_then_another_run)
    built = []
    real_data = running.make_dataset
    monkeypatch.setattr(running, "make_dataset", lambda *a: (built.append(1), real_data(*a))[1])
    with pytest.raises(UsageError, match="now holds the checkpoint of a gpt run at epoch 1, saved by another run"):
        run_experiment(SMALL.replace(epochs=3, save=str(ck)), out=None)
    assert json.loads((ck / "state.json").read_text())["epoch"] == 1, "the first run's checkpoint was replaced"
    assert len(built) == 1, f"the refused run built its data ({len(built) - 1} times): the lock comes first"


def test_a_save_that_fails_early_removes_the_folders_it_made(tmp_path, monkeypatch):
    seen = []

    def no_data(cfg, seed):
        seen.append(os.path.exists(tmp_path / "a" / "b" / "c" / ".lock"))
        raise RunError("the data could not be built")
    monkeypatch.setattr(running, "make_dataset", no_data)
    (tmp_path / "a").mkdir()
    with pytest.raises(RunError, match="could not be built"):
        run_experiment(SMALL.replace(save=str(tmp_path / "a" / "b" / "c")), out=None)
    assert seen == [True], "the checkpoint folder should be locked before the data is built"
    assert os.listdir(tmp_path / "a") == [], f"a/ should be left as it was (empty): {os.listdir(tmp_path / 'a')}"


def test_a_resume_accepts_the_default_optimizer_spelled_out(tmp_path):
    run_experiment(SMALL.replace(epochs=1, save=str(tmp_path / "ck")), out=None)
    result, _ = run_experiment(SMALL.replace(optimizer="adamw", weight_decay=0.01, resume=str(tmp_path / "ck")),
                               out=None)
    assert result["final"]["epochs"] == 2, f"the resume should reach epoch 2, got {result['final']['epochs']}"


def test_an_os_error_without_a_file_name_ends_with_its_cause(monkeypatch, capsys):
    def broken_pipe(args):
        raise BrokenPipeError(32, "Broken pipe")
    monkeypatch.setattr(demo, "dispatch", broken_pipe)
    code, err = demo.main(["gradcheck"]), capsys.readouterr().err
    assert code == 1 and err == "minirev: error: Broken pipe\n", (
        f"want exit 1 and the cause alone, no empty file name after it: exit {code}, stderr {err!r}")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads a file of mode 000")
def test_an_unreadable_state_json_is_named_unreadable(tmp_path, capsys):
    run_experiment(SMALL.replace(epochs=1, save=str(tmp_path / "ck")), out=None)
    os.chmod(tmp_path / "ck" / "state.json", 0)
    try:
        refused(capsys, ["reversal", *TINY, "--resume", str(tmp_path / "ck")], 2, "its state.json cannot be read")
    finally:
        os.chmod(tmp_path / "ck" / "state.json", 0o644)


API = [  # (id, what to do, message)
    ("load_model(None)", lambda p: load_model(None), "load_model's path takes a path (a string), got NoneType"),
    ("load_model(bytes)", lambda p: load_model(b"m.npz"), "load_model's path takes a path (a string), got bytes"),
    ("run_experiment out=123", lambda p: run_experiment(SMALL, out=123), "out takes a function of the printed lines"),
    ("AdamW decay past 1 / lr", lambda p: run_experiment(SMALL.replace(weight_decay=1e3), out=None),
     "--weight-decay 1000 with --lr 0.01: AdamW multiplies every weight by 1 - lr x weight decay = -9"),
]


@pytest.mark.parametrize("action, message", [pytest.param(*case[1:], id=case[0]) for case in API])
def test_the_api_refuses_a_bad_path_or_setting_in_one_line(action, message, tmp_path):
    with pytest.raises(UsageError, match=re.escape(message)) as info:
        action(tmp_path)
    assert "\n" not in str(info.value), f"the exception should be one line, got:\n{info.value}"


def test_a_deleted_working_folder_is_named(tmp_path, monkeypatch, capsys):
    (tmp_path / "gone").mkdir()
    monkeypatch.chdir(tmp_path / "gone")
    os.rmdir(tmp_path / "gone")
    refused(capsys, ["reversal", *TINY], 1, "No such file or directory: the working folder no longer exists")
