"""Items for the worker processes of tests/test_signals.py, in a module of their own: a worker imports
only this (and minirev's machinery), not the test file and what it imports."""
import os
import signal

from minirev.machinery import BLAS_VARS


def blas_threads_or_die(item, report):
    """Item 1 kills its own process, as the kernel's out-of-memory killer would; the others report their threads."""
    if item == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return {v: os.environ.get(v) for v in BLAS_VARS}


def nap_and_say(seconds, report):
    """A task of `seconds` on a Dask worker; a long one says when it starts (the test then takes a worker away)."""
    import time
    if seconds:
        report(("started", seconds))
    time.sleep(seconds)
    return seconds
