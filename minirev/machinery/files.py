"""Files a run writes: the output folder, the JSON results, atomic writes.

A file is written into a temporary file in the same folder and then renamed
over its target, so a reader (or a crash) never sees half a file. Every path
a run will write is checked before any training: it must be a new path or a
regular file we may write (never a device, a folder or a read-only file),
with a name the file system accepts.
"""
import contextlib
import json
import math
import os
import re
import stat
import tempfile
import time

import numpy as np

from ..errors import RunError, UsageError

TMP_PREFIX = ".minirev-tmp-"
TMP_NAME = re.compile(re.escape(TMP_PREFIX) + r"[a-z0-9_]{8}\Z")      # what mkstemp makes of the prefix


def umask():
    mask = os.umask(0)                   # the only way to read the umask is to set it
    os.umask(mask)
    return mask


_staged = None        # inside staged_writes(): the (temporary file, target) pairs awaiting their rename


@contextlib.contextmanager
def staged_writes():
    """Inside, atomic_write leaves each file under its temporary name; all are renamed at the end.

    A failure part way (a full disk on the third figure) then leaves none of the
    new files and every old one: renames need no space, writes do.
    """
    global _staged
    _staged = []
    try:
        yield
        for tmp, path in _staged:
            os.replace(tmp, path)
    finally:
        for tmp, _ in _staged:
            _remove_quietly(tmp)
        _staged = None


def atomic_write(path, write):
    """write(file_object) into a temporary file next to `path`, then rename it over `path`.

    The file gets the mode a plain open() would give it (0666 less the umask),
    not mkstemp's private 0600.
    """
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=TMP_PREFIX)
    except OSError as e:
        raise RunError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        os.fchmod(fd, 0o666 & ~umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
        if _staged is None:
            os.replace(tmp, path)
        else:
            _staged.append((tmp, path))
    except OSError as e:
        _remove_quietly(tmp)
        raise RunError(f"cannot write {path}: {e.strerror or e}") from None
    except BaseException:
        _remove_quietly(tmp)
        raise


def _remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass


def remove_stale_temporaries(folder, older_than=0.0):
    """Remove the temporary files a killed minirev left in `folder` (only names mkstemp gave us).

    In a folder no lock protects, older_than (seconds) spares the files of a run writing there now.
    """
    for name in os.listdir(folder):
        full = os.path.join(folder, name)
        if TMP_NAME.match(name) and os.path.isfile(full) and not os.path.islink(full) \
                and time.time() - os.lstat(full).st_mtime >= older_than:
            _remove_quietly(full)


def check_name(path, flag):
    """A path the file system can take: not empty, no control characters, no over-long name."""
    if path == "":
        raise UsageError(f"{flag} was given an empty path: name a file or folder, or leave {flag} out")
    if any(ord(c) < 32 for c in path):
        raise UsageError(f"{flag} {path!r}: the path contains a control character (a newline?); "
                         "choose a plain name")
    too_long = [part for part in path.split(os.sep) if len(part.encode()) > 255]
    if too_long:
        raise UsageError(f"{flag}: the name {too_long[0][:40]}... is {len(too_long[0].encode())} bytes long, "
                         "over the file system's 255; choose a shorter name")


def check_out_dir(path, flag="--out"):
    """Fail early (before any work) if the output folder cannot be created or written."""
    check_name(path, flag)
    path = os.path.abspath(path)
    probe = path
    while not os.path.lexists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path} cannot be written ({probe} is not a writable folder): "
                         f"choose another with {flag}")
    return path


def check_file_path(path, flag):
    """A path we may write a file to: a new name in an existing folder, or a writable regular file."""
    if path is None:
        return None
    check_name(path, flag)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"{flag} {path}: the folder {folder} does not exist; create it or choose another path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: the folder {folder} is not writable; choose another path")
    if os.path.lexists(path):
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            what = "a folder" if stat.S_ISDIR(st.st_mode) else "a link" if stat.S_ISLNK(st.st_mode) \
                else "a device or other special file"
            raise UsageError(f"{flag} {path} is {what}, not a regular file: choose another path")
        if not st.st_mode & 0o222:              # os.access says yes to root, whatever the mode
            raise UsageError(f"{flag} {path} is read-only (mode {stat.S_IMODE(st.st_mode):o}): "
                             "choose another path or make it writable")
    return path


def check_json_path(path):
    return check_file_path(path, "--json")


def write_json(path, data):
    """Write JSON atomically: a temporary file in the same folder, then a rename."""
    def clean(x):
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        if isinstance(x, (np.floating, float)):
            return float(x) if math.isfinite(x) else None
        if isinstance(x, np.integer):
            return int(x)
        if isinstance(x, np.ndarray):
            return clean(x.tolist())
        return x
    atomic_write(path, lambda f: f.write(json.dumps(clean(data), indent=1).encode()))
    return path
