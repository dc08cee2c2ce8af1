"""Signals, pipes, worker processes and the cluster: a run stops cleanly, keeps what it can, and says why in one line.

SIGTERM and SIGHUP stop training as Ctrl-C does (exit 128 + the signal); a stop before training ends in
one line; a closed stdout still saves; a killed worker loses only its seed; no process outlives its run;
a bad or silent --scheduler is refused in one line. Loopback only. No test waits for a timeout to run out:
a silent endpoint and a cluster without workers run out at once (stand-ins for the socket's read and Dask's
wait), and a lost cluster is timed by a clock of the test's own (parallel.clock).

Run only these with: pytest tests/test_signals.py
"""
import json
import os
import signal
import socket
import subprocess
import sys
import threading

import pytest

import minirev.running
from minirev import demo
from minirev.config import RunConfig
from minirev.errors import RunError, UsageError
from minirev.machinery import limits, parallel
from minirev.machinery.parallel import Lost, lost_line, probe, run_all
from minirev.running import run_experiment
from minirev.train import Trainer
from worker_items import blas_threads_or_die, nap_and_say

pytestmark = pytest.mark.cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT)        # a child process imports this checkout's minirev
TINY = ["--vocab", "40", "--layers", "1", "--width", "16", "--heads", "2", "--batch-size", "4"]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def signal_at_step(monkeypatch, signum, step):
    """Send this process `signum` (the real signal, caught by the run's handler) right after step `step`."""
    real = Trainer.train_step

    def train_step(self, batch):
        loss = real(self, batch)
        if self.step == step:
            os.kill(os.getpid(), signum)
        return loss
    monkeypatch.setattr(Trainer, "train_step", train_step)


# ---- one process: SIGTERM, SIGHUP, a stop before training, a closed stdout ----------------

def test_sigterm_stops_between_steps_and_keeps_everything(workdir, monkeypatch, capsys):
    signum = signal.SIGTERM
    signal_at_step(monkeypatch, signum, 3)
    code = demo.main(["reversal", *TINY, "--epochs", "1", "--save", "ck", "--json", "r.json", "--out", "figs"])
    err = capsys.readouterr().err
    assert code == 128 + signum, f"a run stopped by {signum.name} should exit {128 + signum}, got {code}: {err}"
    result = json.loads((workdir / "r.json").read_text())
    assert result["interrupted"] is True and result["run"]["stopped_by"] == signum.name, (
        f"the JSON should say interrupted by {signum.name}: interrupted={result['interrupted']}, "
        f"stopped_by={result['run']['stopped_by']!r}")
    state = json.loads((workdir / "ck" / "state.json").read_text())
    assert state["step"] == 3, f"the checkpoint should hold the 3 steps done before {signum.name}, it holds {state['step']}"
    assert len(os.listdir(workdir / "figs")) == 3, f"the 3 figures are drawn, found {os.listdir(workdir / 'figs')}"


@pytest.fixture
def sighup(request):
    """SIGHUP's disposition set for the test (a terminal's process has the default; nohup's, SIG_IGN), then put back."""
    previous = signal.signal(signal.SIGHUP, request.param)
    yield request.param
    signal.signal(signal.SIGHUP, previous)


@pytest.mark.parametrize("sighup", [signal.SIG_IGN], indirect=True, ids=["under nohup"])
def test_a_signal_the_process_was_started_ignoring_stays_ignored(sighup, monkeypatch):
    signal_at_step(monkeypatch, signal.SIGHUP, 2)
    result, runs = run_experiment(RunConfig(layers=1, width=16, heads=2, vocab=40, batch_size=4, epochs=1), out=None)
    assert not result["interrupted"] and runs[0]["trainer"].step > 2, (
        "a run started under nohup (SIGHUP ignored) should go on through a SIGHUP: "
        f"interrupted={result['interrupted']} after {runs[0]['trainer'].step} steps")


@pytest.mark.parametrize("sighup", [signal.SIG_DFL], indirect=True, ids=["from a terminal"])
def test_sighup_stops_a_run_from_python_as_ctrl_c_does(sighup, monkeypatch):
    signal_at_step(monkeypatch, signal.SIGHUP, 2)
    result, runs = run_experiment(RunConfig(layers=1, width=16, heads=2, vocab=40, batch_size=4, epochs=1), out=None)
    assert result["interrupted"] and result["run"]["stopped_by"] == "SIGHUP", (
        f"SIGHUP after step 2: want interrupted by SIGHUP, got interrupted={result['interrupted']}, "
        f"stopped_by={result['run']['stopped_by']!r}")
    assert runs[0]["trainer"].step == 2, f"the run stops between steps: 2 done, got {runs[0]['trainer'].step}"


def test_a_stop_before_training_ends_in_one_line(workdir, monkeypatch, capsys):
    real = minirev.running.make_dataset

    def make_dataset(*args, **kwargs):         # SIGTERM while the data is built: before any training
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)
    monkeypatch.setattr(minirev.running, "make_dataset", make_dataset)
    code = demo.main(["reversal", *TINY, "--epochs", "3", "--json", "r.json", "--out", "figs"])
    err = capsys.readouterr().err
    assert code == 143, f"SIGTERM before training: exit 143 (128 + 15), got {code}"
    assert err.strip() == "minirev: interrupted by SIGTERM", f"one line, no traceback, got:\n{err}"
    assert not (workdir / "r.json").exists(), "nothing was trained: no JSON should be written"


def test_a_closed_stdout_still_saves_the_checkpoint_and_the_json(workdir, monkeypatch):
    read, write = os.pipe()
    os.close(read)                               # the reader has gone, as `| head -3` leaves
    stdout = open(write, "w")
    monkeypatch.setattr(sys, "stdout", stdout)
    try:
        code = demo.main(["reversal", *TINY, "--epochs", "1", "--save", "ck", "--json", "r.json", "--out", "figs"])
    finally:
        monkeypatch.undo()
        stdout.close()
    assert code == 0, f"the reader left, but every file was written: exit 0, got {code}"
    assert json.loads((workdir / "r.json").read_text())["final"]["epochs"] == 1, "the JSON holds the whole run"
    assert (workdir / "ck" / "state.json").exists(), "the checkpoint is saved though nobody reads the lines"


# ---- worker processes ----------------------------------------------------------------------

def test_a_killed_worker_loses_only_its_item_and_every_worker_runs_one_blas_thread(monkeypatch):
    """Three items on two workers, with the core count patched to 4: once each worker got 2 BLAS threads
    there, and its float64 sums differed from the serial run's; one thread each keeps them bit-identical."""
    monkeypatch.setattr(parallel, "cores", lambda: 4)
    found = run_all(blas_threads_or_die, [0, 1, 2], jobs=2, partial=True)
    assert isinstance(found[1], Lost) and not isinstance(found[0], Lost) and not isinstance(found[2], Lost), (
        f"items 0 and 2 come back, item 1 is lost: got {found}")
    for item in (0, 2):
        assert set(found[item].values()) == {"1"}, f"worker of item {item}: want 1 BLAS thread, got {found[item]}"
    line = lost_line([found[1]], [("cfg", 1234), ("cfg", 1235)], lambda job: f"seed {job[1]}")
    assert line == "seed 1235: its worker process was killed by SIGKILL", f"one line naming seed and signal: {line!r}"


@pytest.mark.slow
def test_two_workers_on_four_cores_give_the_serial_float64_bits(monkeypatch):
    """The case that once differed: 4 cores (patched), 2 workers, float64, 2 seeds; now bit for bit."""
    monkeypatch.setattr(parallel, "cores", lambda: 4)
    cfg = RunConfig(epochs=2, seeds=2, dtype="float64")        # the default sizes: large enough for a BLAS to split
    (serial, serial_runs), (side, side_runs) = (run_experiment(cfg.replace(jobs=j), out=None) for j in (1, 2))
    assert serial["runs"] == side["runs"], "the per-seed histories of --jobs 2 differ from --jobs 1"
    for a, b in zip(serial_runs, side_runs):
        for name in a["model"].params:
            assert (a["model"].params[name] == b["model"].params[name]).all(), (
                f"seed {a['seed']}: parameter {name} differs between --jobs 1 and --jobs 2")


def child_processes(pid):
    """The processes whose parent is `pid` (Linux's /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if entry.isdigit() and int(fields[1]) == pid and fields[0] != "Z" and not tracker(entry):
            found.append(int(entry))
    return found


def tracker(pid):
    """multiprocessing's resource tracker: one per process that ever spawned, it lives as long as its parent."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"resource_tracker" in f.read()
    except OSError:
        return False


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="counts processes through Linux's /proc")
def test_sigterm_to_the_parent_stops_every_worker_and_keeps_the_results():
    """SIGTERM to this process alone (as a batch system sends it) reaches both workers, which stop between
    steps and send back what they have; once the run returns, none of its processes is left."""
    before = set(child_processes(os.getpid()))
    workers = []

    def progress(line):
        if line.startswith("2 runs, epoch") and not workers:    # both workers train
            workers.extend(set(child_processes(os.getpid())) - before)
            os.kill(os.getpid(), signal.SIGTERM)
    cfg = RunConfig(layers=1, width=16, heads=2, vocab=40, batch_size=4, epochs=3000, seeds=2, jobs=2)
    result, runs = run_experiment(cfg, out=progress)
    assert result["interrupted"] and result["run"]["stopped_by"] == "SIGTERM", (
        f"want interrupted by SIGTERM, got interrupted={result['interrupted']}, by {result['run']['stopped_by']!r}")
    assert [r["seed"] for r in result["runs"]] == [1234, 1235], (
        f"both seeds stop and are reported, got {[r['seed'] for r in result['runs']]}")
    assert all(r["trainer"].epoch < 3000 for r in runs), "each worker stopped before its last epoch"
    assert len(workers) >= 2, f"the run should have had 2 worker processes, found {workers}"
    left = [pid for pid in workers if alive(pid)]
    assert not left, f"worker processes outlived the run: {left}"


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="counts processes through Linux's /proc")
def test_sigterm_to_a_real_jobs_parent_leaves_no_process(tmp_path):
    """The same from outside, on the command line: exit 143, the JSON written, and none of its processes left."""
    cmd = [sys.executable, "-m", "minirev.demo", "reversal", *TINY, "--epochs", "3000", "--seeds", "2",
           "--jobs", "2", "--json", "r.json", "--out", "figs"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:                                  # both workers train: their progress is shown
        if line.startswith("2 runs, epoch"):
            break
    workers = child_processes(proc.pid)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate()
    assert proc.returncode == 143 and "Traceback" not in err, (
        f"SIGTERM to the parent: exit 143 after writing the results, got {proc.returncode}:\n{err}")
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["interrupted"] is True and [r["seed"] for r in result["runs"]] == [1234, 1235], (
        f"both seeds stop and are reported: interrupted={result['interrupted']}, "
        f"seeds {[r['seed'] for r in result['runs']]}")
    assert len(workers) >= 2, f"the run should have had 2 worker processes, found {workers}"
    left = [pid for pid in workers if alive(pid)]
    assert not left, f"processes of the run outlived it: {left}"


def start_jobs_run(tmp_path, seeds):
    """A real `--seeds N --jobs 2` run in its own process group, once both workers train: (process, workers)."""
    cmd = [sys.executable, "-m", "minirev.demo", "reversal", *TINY, "--epochs", "3000", "--seeds", str(seeds),
           "--jobs", "2", "--json", "r.json", "--out", "figs"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    for line in proc.stdout:
        if line.startswith(f"{seeds} runs, epoch"):
            break
    return proc, child_processes(proc.pid)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the workers through Linux's /proc")
def test_ctrl_c_to_the_process_group_ends_every_process_without_a_traceback(tmp_path):
    proc, workers = start_jobs_run(tmp_path, seeds=3)
    os.killpg(proc.pid, signal.SIGINT)                        # what a terminal's Ctrl-C does
    _, err = proc.communicate()
    assert proc.returncode == 130 and "Traceback" not in err, f"want exit 130, no traceback; got {proc.returncode}:\n{err}"
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["interrupted"] is True, "the JSON says the run was interrupted"
    assert not [pid for pid in workers if alive(pid)], "a worker outlived the run"


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the workers through Linux's /proc")
def test_a_killed_worker_is_one_line_and_the_other_seed_is_written(tmp_path):
    proc, workers = start_jobs_run(tmp_path, seeds=2)
    os.kill(max(workers), signal.SIGKILL)                     # the second worker started: seed 1235's
    proc.send_signal(signal.SIGTERM)                          # and the other stops early, as it would finish
    _, err = proc.communicate()
    assert proc.returncode == 1 and err.count("\n") == 1 and "killed by SIGKILL" in err, (
        f"one line naming the seed and the signal, exit 1; got {proc.returncode}:\n{err}")
    result = json.loads((tmp_path / "r.json").read_text())
    assert [r["seed"] for r in result["runs"]] == [1234] and result["lost"][0]["seed"] == 1235, (
        f"seed 1234 is written, 1235 listed as lost: runs {[r['seed'] for r in result['runs']]}, "
        f"lost {result.get('lost')}")


# ---- the cluster ----------------------------------------------------------------------------

BAD_ADDRESSES = ["foo://127.0.0.1:1", "tcp://", "", "inproc://x", "ucx://127.0.0.1:1", "tls://127.0.0.1:1",
                 "tcp://127.0.0.1:notaport", "127.0.0.1", "tcp://[::1", "tcp://127.0.0.1:70000", "tcp://h:1/path"]


@pytest.mark.parametrize("address", BAD_ADDRESSES)
def test_a_bad_scheduler_address_is_one_line_before_anything_runs(address, workdir, monkeypatch, capsys):
    monkeypatch.setattr(minirev.running, "make_dataset", lambda *a, **k: pytest.fail("the data was built"))
    code = demo.main(["reversal", *TINY, "--scheduler", address, "--out", "figs"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"minirev: error: --scheduler {address!r}") and err.count("\n") == 1, (
        f"--scheduler {address!r}: one line naming the address, exit 2; got {code}:\n{err}")


def test_dask_missing_says_how_to_install_it(workdir, monkeypatch, capsys):
    monkeypatch.setattr(parallel.importlib.util, "find_spec", lambda name: None)
    code = demo.main(["reversal", *TINY, "--seeds", "2", "--scheduler", "tcp://127.0.0.1:1", "--out", "figs"])
    err = capsys.readouterr().err
    assert code == 2 and 'pip install "minirev[cluster]"' in err and err.count("\n") == 1, (
        f"without Dask: one line saying how to install it, exit 2; got {code}:\n{err}")


def serve_once(greeting):
    """A loopback server for one connection: it sends `greeting` (b"" says nothing), waits until the client
    hangs up, and closes. Returns its tcp:// address."""
    server = socket.create_server(("127.0.0.1", 0))

    def answer():
        with server, server.accept()[0] as conn:
            conn.sendall(greeting)
            try:
                conn.recv(1)                      # returns when the client closes
            except ConnectionResetError:          # (or resets: what it read was enough)
                pass
    threading.Thread(target=answer, daemon=True).start()
    return f"tcp://127.0.0.1:{server.getsockname()[1]}"


class SilentSocket:
    """A connection to an endpoint that accepts and never speaks: its read runs out of time at once."""
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def recv(self, *args):
        raise socket.timeout("timed out")


def test_a_silent_or_foreign_endpoint_is_refused_in_one_line(monkeypatch):
    # no clock in this test: the silent endpoint's read times out by itself (a stand-in socket), and the
    # others answer (or refuse) at once
    with monkeypatch.context() as m:
        m.setattr(parallel.socket, "create_connection", lambda address, timeout: SilentSocket())
        with pytest.raises(RunError, match=f"no Dask scheduler answered within {parallel.TIMEOUT} s"):
            probe("tcp://127.0.0.1:8786")
    with pytest.raises(RunError, match="not a Dask scheduler .*HTTP/1.0"):
        probe(serve_once(b"HTTP/1.0 400 Bad Request\r\n\r\n"))
    closed = socket.create_server(("127.0.0.1", 0))
    address = f"tcp://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()                                # nothing listens there now
    with pytest.raises(RunError, match="nothing answers there"):
        probe(address)


def test_an_http_server_as_scheduler_fails_in_one_line_from_the_command_line(workdir, capsys):
    pytest.importorskip("distributed")
    address = serve_once(b"HTTP/1.0 400 Bad Request\r\n\r\n")
    code = demo.main(["reversal", *TINY, "--seeds", "2", "--scheduler", address, "--out", "figs"])
    err = capsys.readouterr().err
    assert code == 1 and "not a Dask scheduler" in err and err.count("\n") == 1, (
        f"an HTTP endpoint: one line, exit 1; got {code}:\n{err}")


def test_a_cluster_without_workers_fails_in_a_bounded_time(monkeypatch):
    distributed = pytest.importorskip("distributed")
    waited = []

    def wait_for_workers(self, n, timeout=None):      # Dask's own wait, run out at once: no clock in this test
        waited.append(timeout)
        raise TimeoutError(f"only 0 workers after {timeout} s")
    monkeypatch.setattr(distributed.Client, "wait_for_workers", wait_for_workers)
    with distributed.LocalCluster(n_workers=0, processes=False, protocol="tcp", dashboard_address=None,
                                  silence_logs=50) as cluster:
        with pytest.raises(RunError, match=f"the cluster has no worker after {parallel.TIMEOUT} s"):
            parallel.dask_client(cluster.scheduler_address)
    assert waited == [parallel.TIMEOUT], f"the wait for a worker is bounded by the timeout, got {waited}"


@pytest.mark.slow                    # (a few seconds of CPU, but the cluster takes about 20 s to shut down)
@pytest.mark.parametrize("lose", ["worker", "scheduler"])
def test_a_worker_or_scheduler_lost_mid_run_ends_the_run_in_one_line(lose, monkeypatch):
    """One worker, one task: the worker (or the scheduler) goes away while it runs. The run does not wait for
    it: the task comes back as a Lost saying why, once the cluster has been gone for the timeout. (A result
    still on a lost worker is lost with it: Dask keeps results where they were computed until fetched.)"""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, processes=False, protocol="tcp", dashboard_address=None,
                                  silence_logs=50) as cluster:
        def take_away(message):                   # the long task has started: now lose the worker or scheduler
            cluster.sync(cluster.workers[0].close if lose == "worker" else cluster.scheduler.close)
        ticks = iter(range(0, 10 ** 6, 10))           # run_dask's clock: 10 s a look, so no wait is real
        monkeypatch.setattr(parallel, "clock", lambda: next(ticks))
        found = run_all(nap_and_say, [5], scheduler=cluster.scheduler_address, on_message=take_away,
                        partial=True)
    assert len(found) == 1 and isinstance(found[0], Lost), f"the task should come back as a Lost, got {found}"
    assert "scheduler" in found[0].why and "\n" not in found[0].why, f"one line saying what went: {found[0].why!r}"
    assert lost_line(found, [5]) == f"item 0: {found[0].why}", f"one line naming the item: {lost_line(found, [5])!r}"


# ---- how many processes -----------------------------------------------------------------------

def test_jobs_are_capped_by_the_cores_and_memory_is_counted_per_process(monkeypatch):
    too_many = 2 * parallel.cores() + 1
    with pytest.raises(UsageError, match=f"--jobs {too_many} is more than 2 x the {parallel.cores()} cores"):
        run_experiment(RunConfig(layers=1, width=16, heads=2, vocab=40, seeds=too_many, jobs=too_many), out=None)
    asked = []
    monkeypatch.setattr(limits, "check_memory", lambda what, nbytes, fix: asked.append(nbytes))
    cfg = RunConfig(layers=1, width=16, heads=2, vocab=40).resolved()
    limits.check_run_memory(cfg)
    limits.check_run_memory(cfg, processes=2)
    assert asked[1] == 2 * asked[0], f"two processes hold two models: {asked[1]} bytes, want 2 x {asked[0]}"


def test_bilinear_steps_are_capped_like_epochs(capsys):
    with pytest.raises(SystemExit) as exited:             # argparse refuses it, before anything runs
        demo.main(["bilinear", "--steps", "99999999999999999999"])
    code, err = exited.value.code, capsys.readouterr().err
    assert code == 2 and "--steps: must be at most 1000000" in err, f"want one line, exit 2; got {code}: {err}"


@pytest.mark.parametrize("argv, orig_argv, ours", [
    (["-m"], ["python", "-m", "minirev.demo", "reversal"], True),
    (["-m"], ["python", "-mminirev", "reversal"], True),
    (["-m"], ["python", "-m", "mytool"], False),                 # another program that imports minirev
    (["/usr/bin/mytool"], ["python", "/usr/bin/mytool"], False),
])
def test_only_python_m_minirev_takes_the_signals_while_loading(monkeypatch, argv, orig_argv, ours):
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(sys, "orig_argv", orig_argv, raising=False)
    assert minirev._started_as_command() is ours, (
        f"argv {argv}, orig_argv {orig_argv}: minirev should {'' if ours else 'not '}install its loading-time "
        "signal handlers (a library leaves another program's signals alone)")
