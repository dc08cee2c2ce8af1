"""The two kinds of error minirev raises on purpose.

Both carry one line that names the problem and the fix. The command line
prints that line (no traceback) and exits with the error's ``exit_code``:
2 for a usage error (the request itself is wrong), 1 for a runtime error
(the request was fine, but running it failed, e.g. the loss became NaN).
"""
import numbers


class MinirevError(Exception):
    exit_code = 1


class UsageError(MinirevError, ValueError):
    """The request is wrong: a bad option, size, name or file."""
    exit_code = 2


class RunError(MinirevError, RuntimeError):
    """The request was fine but running it failed (divergence, NaN, I/O)."""
    exit_code = 1


def readable(nbytes):
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if nbytes >= size:
            return f"{nbytes / size:.3g} {unit}" if nbytes < 1e15 else f"{nbytes:.2g} bytes"
    return f"{nbytes:.0f} bytes"


def whole(owner, name, value, minimum=0):
    """`value` as an int, or a one-line UsageError naming `owner` (e.g. "gpt") and `name` (e.g. "seed")."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise UsageError(f"{owner}: {name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)
