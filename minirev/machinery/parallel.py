"""Runs side by side: processes of this machine, or a Dask cluster.

    results = run_all(train_one, items, jobs=4)                       # 4 processes here
    results = run_all(train_one, items, scheduler="tcp://host:8786")  # a Dask cluster
    # == [train_one(item, report) for item in items], in order

``train_one(item, report)`` must be a module-level function (a worker finds it
by name) and return something picklable; ``report(message)`` hands a picklable
message to ``on_message`` in THIS process while the work goes on (the one
progress display of all runs).

Each run draws from its own seeded generators, so where it runs changes nothing:
the results are bit-identical to a serial run in a process with one BLAS thread
(minirev's default, see minirev/__init__.py). Three engines:

* serial     jobs 1: a plain loop in this process (what --trace, --save and --resume use);
* processes  `jobs` spawned workers, each with ONE BLAS thread (a BLAS on several threads
             may add in another order, and change the last bits), each sent one item at a
             time through its own pipe. A worker that dies loses only its item: the others
             go on, and the item comes back as a Lost naming it and the signal. Ctrl-C,
             SIGTERM or SIGHUP to this process is passed on to every worker, which stops
             between two steps and returns what it has; a worker whose parent is gone exits;
* Dask       ``Client(address).get_executor()`` on a cluster (pip install "minirev[cluster]").
             Every worker needs minirev installed. Every wait is bounded (TIMEOUT seconds): a
             silent or foreign endpoint, a cluster without workers, a lost worker or scheduler
             each end the run in one line, keeping the runs already finished.
"""
import concurrent.futures
import importlib.util
import multiprocessing
import os
import signal
import socket
import struct
import threading
import time
import urllib.parse
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import wait

import numpy as np

from ..errors import RunError, UsageError
from ..train import STOP_SIGNALS, Interrupts, Stopped
from . import BLAS_VARS

INSTALL_DASK = 'pip install "minirev[cluster]" (from a checkout: pip install -e ".[cluster]")'
TIMEOUT = 30          # seconds the cluster may stay silent, or without a worker, before the run gives up
clock = time.monotonic    # how run_dask times an absence (a test advances its own clock instead of waiting)


def cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def blas_threads(jobs):
    """BLAS threads per worker process: one, whatever the cores, so that a worker adds as a serial run does."""
    return 1


def check_jobs(processes, per_core=2):
    """Refuse more worker processes than `per_core` x the cores: they would only wait for each other."""
    if processes > per_core * cores():
        raise UsageError(f"--jobs {processes} is more than {per_core} x the {cores()} cores of this machine: "
                         f"use --jobs {per_core * cores()} or fewer")


@contextmanager
def blas_environment(threads):
    """The BLAS thread variables set to `threads` while the block runs (workers started in it inherit them)."""
    saved = {v: os.environ.get(v) for v in BLAS_VARS}
    os.environ.update({v: str(threads) for v in BLAS_VARS})
    try:
        yield
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


@dataclass
class Lost:
    """An item whose run did not come back (its process was killed, its worker lost): why, in one line."""
    index: int
    why: str


def lost_line(lost, items, name=None):
    """One line for the Lost runs: "seed 3: its worker process was killed by SIGKILL; ..." (name(item): "seed 3")."""
    return "; ".join(f"{name(items[r.index]) if name else f'item {r.index}'}: {r.why}" for r in lost)


# --------------------------------------------------------------------------- processes

def serve(conn, fn, errstate, parent):
    """A worker process: run the items the parent sends, one at a time, until it sends None.

    A stop signal only sets a flag here (it never lands inside a send): the run under way sees it
    between two steps (minirev/train.py), and returns what it has."""
    for signum in STOP_SIGNALS:        # ignored while this process started; the parent repeats a stop
        signal.signal(signum, lambda signum, frame: None)
    threading.Thread(target=watch_parent, args=(parent,), daemon=True).start()
    with Interrupts():
        try:
            for index, item in iter(conn.recv, None):
                try:
                    with np.errstate(**errstate):
                        value = fn(item, lambda message: conn.send(("message", message)))
                    conn.send(("done", value))
                except Exception as e:                          # a UsageError, a diverged run: the parent's
                    conn.send(("error", e))
        except (EOFError, BrokenPipeError):                     # the parent is gone
            pass


def watch_parent(parent, every=0.5):
    """In a worker: exit as soon as the parent process is gone, so that no worker outlives its run."""
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)


def died(process):
    process.join()
    code = process.exitcode
    return f"its worker process {f'was killed by {signal.Signals(-code).name}' if code < 0 else f'exited with {code}'}"


def run_processes(fn, items, jobs, on_message, partial):
    """The process engine: results by index; a dead worker's item is a Lost. A stop signal is passed on
    to every worker (partial: each returns what it has) or ends them (not partial: Stopped is raised)."""
    spawn = multiprocessing.get_context("spawn")     # a fresh interpreter: NumPy imported after the thread
    todo, results, busy = list(enumerate(items)), {}, {}   # variables are set (fork would inherit it)
    errors = []

    def start():
        here, there = spawn.Pipe()
        process = spawn.Process(target=serve, args=(there, fn, np.geterr(), os.getpid()), daemon=True)
        # the stop signals ignored while it starts (a child inherits that): none of them ends it half-started
        handlers = {signum: signal.signal(signum, signal.SIG_IGN) for signum in STOP_SIGNALS}
        try:
            with blas_environment(1):
                process.start()
        finally:
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
        there.close()
        busy[here] = [process, None]
        give(here)

    def give(conn):
        busy[conn][1] = todo.pop(0) if todo and not stop.requested and not errors else None
        conn.send(busy[conn][1])

    with Interrupts() as stop:
        try:
            for _ in range(min(jobs, len(todo))):
                start()
            while any(job is not None for _, job in busy.values()):
                if stop.requested:            # every worker hears it (again: one still starting ignores it)
                    for process, job in busy.values():
                        if job is not None and process.is_alive():
                            os.kill(process.pid, stop.requested if partial else signal.SIGKILL)
                    if not partial:
                        break
                for conn in wait([c for c, (_, job) in busy.items() if job is not None], timeout=0.2):
                    process, (index, _) = busy[conn]
                    try:
                        kind, value = conn.recv()
                    except (EOFError, OSError):                      # the worker died with this item
                        results[index] = Lost(index, died(process))
                        del busy[conn]
                        if todo and not stop.requested and not errors:
                            start()
                        continue
                    if kind == "message":
                        on_message(value)
                        continue
                    if kind == "done":
                        results[index] = value
                    else:
                        errors.append(value)
                    give(conn)
        finally:
            for conn, (process, _) in busy.items():
                try:
                    conn.send(None)
                except OSError:
                    pass
                process.join(timeout=5)
                if process.is_alive():
                    process.kill()
                    process.join()
    if errors:
        raise errors[0]
    if stop.requested and not (partial and results):
        raise Stopped(stop.requested)
    return results


# --------------------------------------------------------------------------- a Dask cluster

def probe(address, timeout=TIMEOUT):
    """Refuse in one line an address where no Dask scheduler answers: nothing listening, an endpoint
    that accepts and says nothing within `timeout` seconds, or one that says something else (HTTP).
    A Dask scheduler greets every connection first: 8 bytes, the length of its greeting."""
    url = urllib.parse.urlsplit(address)
    fix = "start one with 'dask scheduler' and give the address it prints"
    try:
        with socket.create_connection((url.hostname, url.port), timeout=timeout) as sock:
            head = sock.recv(8, socket.MSG_WAITALL)             # all 8, unless it hangs up first
    except socket.timeout:
        raise RunError(f"--scheduler {address}: no Dask scheduler answered within {timeout:g} s (something "
                       f"accepts connections there but says nothing); {fix}") from None
    except OSError as e:
        raise RunError(f"--scheduler {address}: nothing answers there ({e.strerror or e}); {fix}") from None
    if len(head) < 8 or not 0 < struct.unpack("<Q", head)[0] < 2 ** 26:
        raise RunError(f"--scheduler {address}: what answers is not a Dask scheduler (it began with {head!r}); "
                       f"{fix}")


def dask_client(scheduler, timeout=TIMEOUT, connect=TIMEOUT):
    """A Dask client of a scheduler that answers within `connect` seconds and has a worker within `timeout`."""
    if importlib.util.find_spec("distributed") is None:          # looked up, not imported
        raise UsageError(f"--scheduler needs Dask distributed, which is not installed: {INSTALL_DASK}")
    probe(scheduler, connect)
    from distributed import Client
    try:
        client = Client(scheduler, timeout=connect)
    except (OSError, TimeoutError) as e:
        raise RunError(f"--scheduler {scheduler}: the Dask scheduler did not answer ({type(e).__name__}); start "
                       "one with 'dask scheduler' and give its address, e.g. tcp://HOST:8786") from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (OSError, TimeoutError):
        client.close()
        raise RunError(f"--scheduler {scheduler}: the cluster has no worker after {timeout:g} s: start one "
                       f"with 'dask worker {scheduler}'") from None
    return client


class DaskReport:
    """report(message) for a Dask worker: the queue travels by name and is opened where the work runs
    (a Queue object in the task would be opened by the scheduler as it reads the task, and wait on itself)."""

    def __init__(self, name):
        self.name = name

    def __call__(self, message):
        from distributed import Queue
        Queue(self.name).put(message)


def call(fn, item, report, errstate):
    """fn(item, report) on a Dask worker, under this process's NumPy error settings (np.errstate)."""
    with np.errstate(**errstate):
        return fn(item, report)


STOP = "minirev: all runs done"


def drain(queue, on_message):
    """In a thread of this process: hand every queued message to on_message until STOP arrives."""
    while True:
        try:
            message = queue.get()
        except Exception:              # the scheduler is gone (CommClosedError): the run's loop says so
            return
        if message == STOP:
            return
        on_message(message)


def run_dask(fn, items, scheduler, on_message, timeout):
    """The Dask engine: results by index; when the scheduler or every worker is gone for `timeout` seconds
    (or no worker comes within them), the unfinished items are Lost. A stop signal leaves them out."""
    client = dask_client(scheduler, timeout)              # (connecting: the default TIMEOUT, however short `timeout`)
    from distributed import Queue
    queue, executor = Queue(client=client), client.get_executor()
    report, results = DaskReport(queue.name), {}
    listener = threading.Thread(target=drain, args=(queue, on_message), daemon=True)
    listener.start()
    with Interrupts() as stop:
        try:
            futures = {executor.submit(call, fn, item, report, np.geterr()): i for i, item in enumerate(items)}
            alone_since = None
            while futures and not stop.requested:
                done, _ = concurrent.futures.wait(futures, timeout=0.5, return_when="FIRST_COMPLETED")
                for future in done:
                    index = futures.pop(future)
                    try:
                        results[index] = future.result()
                    except concurrent.futures.CancelledError:
                        results[index] = Lost(index, "the Dask scheduler cancelled it (scheduler lost?)")
                try:
                    alone = client.status != "running" or not client.scheduler_info().get("workers")
                except (OSError, TimeoutError):
                    alone = True
                alone_since = (alone_since or clock()) if alone else None
                if alone_since is not None and clock() - alone_since > timeout:
                    why = f"no Dask worker or scheduler for {timeout:g} s (lost mid-run)"
                    results.update({i: Lost(i, why) for i in futures.values()})
                    break
        finally:
            try:
                queue.put(STOP, timeout=timeout)
            except (OSError, TimeoutError):
                pass
            listener.join(timeout=timeout)
            client.close(timeout=timeout)
    return results


# --------------------------------------------------------------------------- all of them

def run_all(fn, items, jobs=1, scheduler=None, on_message=None, stop_when=None, name=None, partial=False,
            timeout=TIMEOUT):
    """[fn(item, report) for item in items], in order, on `jobs` processes or a Dask scheduler.

    Serially, the loop ends early after a result for which stop_when(result) is true (a run stopped by
    Ctrl-C: the next should not start); side by side, a stop signal leaves out the items not started.
    An item whose process died or whose cluster was lost is a Lost in the results if `partial`, else a
    one-line RunError names it (name(item), e.g. "seed 3") and why, once the other items are done.
    """
    on_message = on_message or (lambda message: None)
    items = list(items)
    if scheduler is None and (jobs == 1 or len(items) <= 1):
        results = []
        for item in items:
            results.append(fn(item, on_message))
            if stop_when is not None and stop_when(results[-1]):
                break
        return results
    if scheduler is not None:
        found = run_dask(fn, items, scheduler, on_message, timeout)
    else:
        found = run_processes(fn, items, jobs, on_message, partial)
    results = [found[i] for i in sorted(found)]
    lost = [r for r in results if isinstance(r, Lost)]
    if lost and not partial:
        raise RunError(lost_line(lost, items, name))
    return results
