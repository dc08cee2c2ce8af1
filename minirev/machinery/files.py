"""Files a run writes: the output folder, the JSON results, atomic writes.

A file is written into a temporary file in the same folder and then renamed
over its target, so a reader (or a crash) never sees half a file. Every path
a run will write is checked before any training: it must be a new path or a
regular file we may write (never a device, a folder or a read-only file),
with a name the file system accepts.

:class:`FileLock` is the lock of a checkpoint folder (its ``.lock`` file):
fcntl's flock where there is fcntl, msvcrt's on Windows, otherwise the lock
file itself, made with ``O_CREAT|O_EXCL``.
"""
import contextlib
import errno
import json
import math
import os
import re
import stat
import tempfile
import time

import numpy as np

from ..errors import RunError, UsageError

try:
    import fcntl                     # POSIX (Linux, macOS)
except ImportError:
    fcntl = None
try:
    import msvcrt                    # Windows
except ImportError:
    msvcrt = None

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)      # missing on Windows: open_no_link checks with lstat instead
BINARY = getattr(os, "O_BINARY", 0)          # Windows: no newline translation in the pid we write
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
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o666 & ~umask())
        else:                       # Windows before Python 3.13: by the path, mkstemp's new file (there
            os.chmod(tmp, 0o666 & ~umask())   # only the read-only bit counts, and this leaves it unset)
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


def open_no_link(path, flags):
    """os.open(path, flags) that never follows a symbolic link at `path`: O_NOFOLLOW, or where the
    platform lacks it an lstat first (a link put there after the lstat is caught by FileLock's check
    that the file it opened is still the one the path names)."""
    if not NOFOLLOW and os.path.islink(path):
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
    return os.open(path, flags | NOFOLLOW | BINARY, 0o666 & ~umask())


class LockHeld(Exception):
    """Raised by FileLock.acquire: another holds the lock; .holder is the pid its file names (or "unknown")."""

    def __init__(self, holder):
        super().__init__(holder)
        self.holder = holder


class FileLock:
    """An exclusive lock, held between acquire() and release(); its file at `path` holds the holder's pid.

    A second taker, in this process or another, gets LockHeld naming that pid. How, by what the platform has:

    * fcntl (Linux, macOS): flock on the file. The system drops it when its holder closes the file
      or dies, so the file a killed run left is simply locked again.
    * msvcrt (Windows): msvcrt.locking of one byte past the pid (Windows refuses others the reading of
      a locked range, and they must read the pid). The system drops it too when its holder dies.
    * neither: the file itself is the lock, made with O_CREAT|O_EXCL (of runs creating it together,
      exactly one succeeds). One that names a dead process, or no pid for over STALE seconds (a run
      killed between creating it and writing its pid), was left by a killed run: it is removed and
      made anew, under a second such file (``<path>.break``) so that two runs never both remove it
      (the later removal would take the lock the other one just made).
    """
    STALE = 10.0
    LOCK_BYTE = 1 << 20              # msvcrt: the byte locked, far past the pid

    def __init__(self, path):
        self.path, self.fd = path, None
        self.how = "flock" if fcntl else "msvcrt" if msvcrt else "create"

    def acquire(self):
        fd = self._create() if self.how == "create" else self._lock()
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def release(self):
        try:
            os.unlink(self.path)     # while held: a run that opened the old file meanwhile re-checks the inode
            removed = True
        except FileNotFoundError:
            removed = True
        except PermissionError:      # Windows removes no file that is open
            removed = False
        if self.how == "msvcrt":
            os.lseek(self.fd, self.LOCK_BYTE, os.SEEK_SET)
            msvcrt.locking(self.fd, msvcrt.LK_UNLCK, 1)
        os.close(self.fd)
        self.fd = None
        if not removed:
            _remove_quietly(self.path)   # fails if another run opened it since: then it is that run's lock

    def _lock(self):
        while True:
            fd = open_no_link(self.path, os.O_RDWR | os.O_CREAT)
            if not self._try(fd):
                holder = _read_holder(fd)
                os.close(fd)
                raise LockHeld(holder)
            try:
                if os.fstat(fd).st_ino == os.lstat(self.path).st_ino:
                    return fd        # still the lock file the folder names (not one a holder just removed)
            except FileNotFoundError:
                pass
            os.close(fd)

    def _try(self, fd):
        if self.how == "flock":
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True
        os.lseek(fd, self.LOCK_BYTE, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError as e:
            if e.errno in (errno.EACCES, getattr(errno, "EDEADLOCK", errno.EDEADLK)):
                return False
            raise
        return True

    def _create(self):
        while True:
            try:
                return open_no_link(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL)
            except FileExistsError:
                pass
            holder, stale = self._look()
            if not stale:
                raise LockHeld(holder)
            self._break()

    def _look(self):
        """(what the lock file names, whether it was left by a run that is gone) of the file there now."""
        try:
            fd = open_no_link(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None, True
        try:
            holder, age = _read_holder(fd), time.time() - os.fstat(fd).st_mtime
        finally:
            os.close(fd)
        if re.fullmatch(r"[0-9]{1,10}", holder):
            return holder, not _alive(int(holder))
        return holder, age > self.STALE

    def _break(self):
        guard = self.path + ".break"
        give_up = time.monotonic() + 2.0
        while True:
            try:
                os.close(open_no_link(guard, os.O_RDWR | os.O_CREAT | os.O_EXCL))
                break
            except FileExistsError:
                if time.monotonic() > give_up:       # held for microseconds: its run was killed inside
                    raise OSError(errno.EEXIST, f"{guard} was left by a run killed while removing a stale "
                                                "lock: delete it if no run is starting there") from None
                time.sleep(0.01)
        try:
            if self._look()[1]:      # still stale: no one else removes it while we hold the guard
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass
        finally:
            os.unlink(guard)


def _read_holder(fd):
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 200).decode(errors="replace").strip() or "unknown"


def _alive(pid):
    """Whether process `pid` runs, where os.kill(pid, 0) can tell (POSIX); elsewhere it is assumed to."""
    if pid == os.getpid() or os.name == "nt" or not hasattr(os, "kill"):
        return True                  # (on Windows os.kill(pid, 0) would send a Ctrl-C: 0 is CTRL_C_EVENT)
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except OSError:                  # PermissionError: it runs, as another user
        return True
    return True


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
