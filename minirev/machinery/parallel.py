"""Runs side by side: every core of this machine, or a Dask cluster.

    results = run_all(train_one, items, jobs=4)                       # 4 processes here
    results = run_all(train_one, items, scheduler="tcp://host:8786")  # a Dask cluster
    # == [train_one(item, report) for item in items], in order

``train_one(item, report)`` must be a module-level function (a worker finds it
by name) and return something picklable; ``report(message)`` hands a picklable
message to ``on_message`` in THIS process while the work goes on (the one
progress display of all runs).

Each run draws from its own seeded generators, so where it runs changes nothing:
the results are bit-identical to a serial run. Three engines, one interface
(``concurrent.futures``):

* serial           jobs 1: a plain loop in this process (what --trace, --save and
                   --resume use);
* processes        a spawn-context ProcessPoolExecutor. Each worker gets
                   cores // jobs BLAS threads (at least 1), so jobs x threads <= cores:
                   the thread count is an environment variable that OpenBLAS
                   reads once, when NumPy is imported, so it is set before the
                   workers start and never touched in them;
* Dask distributed ``Client(address).get_executor()``, the same interface on a
                   cluster (pip install -e ".[cluster]"). Every worker needs
                   minirev installed; Dask gives each worker process its own
                   thread settings.
"""
import concurrent.futures
import multiprocessing
import os
import threading
from contextlib import contextmanager, nullcontext

import numpy as np

from ..errors import UsageError
from . import BLAS_VARS
INSTALL_DASK = 'pip install -e ".[cluster]" (dask[distributed])'


def cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def blas_threads(jobs):
    """BLAS threads per worker so that jobs x threads <= cores."""
    return max(1, cores() // jobs)


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


def dask_client(scheduler):
    try:
        from distributed import Client
    except ImportError:
        raise UsageError(f"--scheduler needs Dask distributed, which is not installed: {INSTALL_DASK}") from None
    try:
        return Client(scheduler, timeout=10)
    except (OSError, TimeoutError) as e:
        raise UsageError(f"--scheduler {scheduler}: no Dask scheduler answered ({type(e).__name__}); start one "
                         "with 'dask scheduler' and give its address, e.g. tcp://HOST:8786") from None


def call(fn, item, report, errstate):
    """fn(item, report) in a worker, under this process's NumPy error settings (np.errstate)."""
    with np.errstate(**errstate):
        return fn(item, report)


class QueueReport:
    """report(message) for a worker: puts the message on a queue the parent drains."""

    def __init__(self, queue):
        self.queue = queue

    def __call__(self, message):
        self.queue.put(message)


STOP = "minirev: all runs done"


class DaskReport:
    """report(message) for a Dask worker: the queue travels by name and is opened where the work runs
    (a Queue object in the task would be opened by the scheduler as it reads the task, and wait on itself)."""

    def __init__(self, name):
        self.name = name

    def __call__(self, message):
        from distributed import Queue
        Queue(self.name).put(message)


def drain(queue, on_message):
    """In a thread of this process: hand every queued message to on_message until STOP arrives."""
    while True:
        message = queue.get()
        if message == STOP:
            return
        on_message(message)


def run_all(fn, items, jobs=1, scheduler=None, on_message=None, stop_when=None):
    """[fn(item, report) for item in items], in order, on `jobs` processes or a Dask scheduler.

    Serially, the loop ends early after a result for which stop_when(result) is true
    (a run stopped by Ctrl-C: the next should not start).
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
        from distributed import Queue
        client = dask_client(scheduler)
        queue, executor = Queue(client=client), client.get_executor()
        report = DaskReport(queue.name)
    else:
        spawn = multiprocessing.get_context("spawn")         # a fresh interpreter: NumPy imported after the
        manager = spawn.Manager()                            # thread variables are set (fork would inherit it)
        queue = manager.Queue()
        jobs = min(jobs, len(items))
        executor = concurrent.futures.ProcessPoolExecutor(jobs, mp_context=spawn)
        report = QueueReport(queue)
    listener = threading.Thread(target=drain, args=(queue, on_message), daemon=True)
    listener.start()
    try:
        # a spawn pool starts its workers as work is submitted, so they start inside blas_environment
        # (on a Dask cluster each worker has its own settings: nothing here reaches it)
        with executor, blas_environment(blas_threads(jobs)) if scheduler is None else nullcontext():
            futures = [executor.submit(call, fn, item, report, np.geterr()) for item in items]
            results = []
            for future in futures:
                try:
                    results.append(future.result())
                except KeyboardInterrupt:    # the workers got Ctrl-C too: each returns what it has
                    results.append(future.result())
    finally:
        queue.put(STOP)
        listener.join(timeout=10)
        if scheduler is None:
            manager.shutdown()
        else:
            client.close()
    return results
