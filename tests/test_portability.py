"""Without fcntl, os.fchmod and os.O_NOFOLLOW (Windows has none of them) minirev still imports,
saves, resumes and locks its checkpoint folder.

Each case runs a fresh interpreter whose first lines hide the three (``sys.modules["fcntl"] = None``,
``del os.fchmod, os.O_NOFOLLOW``) before minirev is imported, then trains with --save, resumes with
--resume, and tries the folder's lock (files.FileLock, through RunFolder) as a second run would:

* ``create``: no fcntl and no msvcrt, so the lock is the lock file itself (O_CREAT|O_EXCL);
  a lock file naming a dead process is taken over, one naming a live process is refused.
* ``msvcrt``: Windows' way, with a stand-in for msvcrt.locking (built on flock, taken before fcntl
  is hidden) that refuses as Windows does (EACCES), given to minirev.machinery.files alone (the
  standard library takes a msvcrt module for Windows): the code path, not Windows itself.
"""
import json
import os
import stat
import subprocess
import sys

import pytest

pytestmark = pytest.mark.structure

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = r'''
import json, os, sys, types
mode, ck, out, dead, live = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
if mode == "msvcrt":
    import errno, fcntl
    def locking(fd, how, nbytes):
        try:
            fcntl.flock(fd, fcntl.LOCK_UN if how == 0 else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PermissionError(errno.EACCES, "Permission denied") from None
    stand_in = types.ModuleType("msvcrt")
    stand_in.LK_UNLCK, stand_in.LK_NBLCK, stand_in.locking = 0, 2, locking
sys.modules["fcntl"] = None                 # import fcntl now raises ImportError
del os.fchmod, os.O_NOFOLLOW

from minirev import demo
from minirev.errors import RunError
from minirev.machinery import lock as files
from minirev.machinery.checkpoint import RunFolder

if mode == "msvcrt":
    files.msvcrt = stand_in                 # for minirev only: the standard library tells Windows by msvcrt
seen = dict(how=files.FileLock(os.path.join(ck, ".lock")).how, fcntl=sys.modules["fcntl"] is not None)
ARGS = ["reversal", "--vocab", "40", "--layers", "1", "--width", "8", "--heads", "2", "--out", out]

def epoch():
    with open(os.path.join(ck, "state.json")) as f:
        return json.load(f)["epoch"]

def refusal():
    try:
        with RunFolder(ck):
            return None
    except RunError as e:
        return str(e)

seen["save"] = demo.main(ARGS + ["--epochs", "2", "--save", ck])
seen["epoch_saved"] = epoch()
seen["state_mode"] = os.stat(os.path.join(ck, "state.json")).st_mode
seen["resume"] = demo.main(ARGS + ["--epochs", "3", "--resume", ck])
seen["epoch_resumed"] = epoch()
with RunFolder(ck):
    seen["second_holder"] = refusal()
    seen["second_run"] = demo.main(ARGS + ["--epochs", "4", "--resume", ck])
seen["after_release"] = sorted(os.listdir(ck))
seen["taken_after_release"] = refusal()
with open(os.path.join(ck, ".lock"), "w") as f:
    f.write(f"minirev lock, process {dead}\n")   # left by a run that was killed
with RunFolder(ck):
    with open(os.path.join(ck, ".lock")) as f:
        seen["stale_taken_over_by"] = f.read().strip().rsplit(" ", 1)[-1]
with open(os.path.join(ck, ".lock"), "w") as f:
    f.write(f"minirev lock, process {live}\n")   # a lock file naming a process that runs
seen["live_named"] = refusal()
if os.path.exists(os.path.join(ck, ".lock")):
    os.remove(os.path.join(ck, ".lock"))
os.symlink(os.path.join(out, "elsewhere"), os.path.join(ck, ".lock"))
seen["link"] = refusal()
seen["link_target_made"] = os.path.lexists(os.path.join(out, "elsewhere"))
seen["epoch_at_end"] = epoch()
seen["pid"] = os.getpid()
print(json.dumps(seen))
'''


@pytest.fixture(scope="module")
def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()                             # reaped: its pid names no process now
    return proc.pid


@pytest.mark.parametrize("mode", ["create", "msvcrt"])
def test_save_resume_and_the_lock_work_without_fcntl_fchmod_and_o_nofollow(mode, tmp_path, dead_pid):
    ck, out = tmp_path / "ck", tmp_path / "figs"
    env = dict(os.environ, PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", SCRIPT, mode, str(ck), str(out), str(dead_pid), str(os.getpid())],
                          capture_output=True, text=True, cwd=HERE, env=env)
    assert proc.returncode == 0, f"the run without fcntl failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    pid = seen["pid"]
    assert seen["how"] == mode and not seen["fcntl"], f"the lock should work by {mode!r} there, it used {seen['how']!r}"
    assert seen["save"] == 0 and seen["epoch_saved"] == 2, (
        f"--save --epochs 2 should exit 0 with a checkpoint at epoch 2: exit {seen['save']}, epoch {seen['epoch_saved']}")
    mask = os.umask(0)
    os.umask(mask)
    bits = stat.S_IMODE(seen["state_mode"])
    assert bits == 0o666 & ~mask, (
        f"state.json has mode {bits:#o} without os.fchmod; the umask {mask:#o} asks for {0o666 & ~mask:#o}")
    assert seen["resume"] == 0 and seen["epoch_resumed"] == 3, (
        f"--resume --epochs 3 should exit 0 at epoch 3: exit {seen['resume']}, epoch {seen['epoch_resumed']}")
    assert seen["second_holder"] and f"in use by another run (process {pid})" in seen["second_holder"], (
        f"a second holder of the locked folder should be refused naming process {pid}: got {seen['second_holder']!r}")
    assert seen["second_run"] == 1, f"a second run on the locked folder should exit 1, got {seen['second_run']}"
    assert ".lock" not in seen["after_release"] and seen["taken_after_release"] is None, (
        f"a released lock leaves no .lock and can be taken again: files {seen['after_release']}, "
        f"taking it again gave {seen['taken_after_release']!r}")
    assert seen["stale_taken_over_by"] == str(pid), (
        f"a lock file naming the dead process {dead_pid} should be taken over by {pid}: "
        f"it names {seen['stale_taken_over_by']!r}")
    if mode == "create":                    # there the file is the lock; with msvcrt only the system's lock counts
        assert seen["live_named"] and f"process {os.getpid()}" in seen["live_named"], (
            f"a lock file naming the running process {os.getpid()} should be refused naming it: "
            f"got {seen['live_named']!r}")
    assert seen["link"] and "cannot use the checkpoint folder" in seen["link"] and not seen["link_target_made"], (
        f"a .lock that is a symbolic link should be refused and its target left alone: got {seen['link']!r}, "
        f"target made: {seen['link_target_made']}")
    assert seen["epoch_at_end"] == 3, f"the refused run changed the checkpoint: epoch {seen['epoch_at_end']}, want 3"
