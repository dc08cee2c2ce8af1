"""Files a run writes: folders held open, atomic writes, the JSON results, the lock of a checkpoint folder.

Nothing of the user's is opened for writing. A file is written into a new
temporary file (``O_CREAT|O_EXCL|O_NOFOLLOW``: made here, never an existing
file or a link) and then renamed over its target, so a reader (or a crash)
never sees half a file. The folder is a :class:`Folder`, opened once: the
temporary file is made and renamed by the folder's descriptor (``dir_fd``),
and before each rename the folder's path must still name that folder and the
target must still be a writable regular file, so a folder swapped for a link
during the run is refused, never followed. Where the platform has no
``dir_fd`` (Windows), the same checks are made by path just before the rename.

The lock of a checkpoint folder is in ``lock.py``; the paths are checked before
any work in ``paths.py``.
"""
import contextlib
import errno
import json
import math
import os
import re
import secrets
import stat
import time

import numpy as np

from ..errors import RunError

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)      # missing on Windows: open_no_link checks with lstat instead
BINARY = getattr(os, "O_BINARY", 0)          # Windows: no newline translation in what we write
DIRECTORY = getattr(os, "O_DIRECTORY", 0)
BY_DESCRIPTOR = bool(DIRECTORY) and {os.open, os.rename, os.stat, os.unlink} <= os.supports_dir_fd
TMP_PREFIX = ".minirev-tmp-"
TMP_NAME = re.compile(re.escape(TMP_PREFIX) + r"[a-z0-9_]{8}\Z")
TMP_LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789_"


def why(e):
    """An OSError's cause in words (never an empty file name after it)."""
    return e.strerror or str(e) or type(e).__name__


def what_is_wrong(st):
    """None for a regular file we may replace; else what it is ("a folder", "a link", ...)."""
    if stat.S_ISREG(st.st_mode):
        if not st.st_mode & 0o222:              # os.access says yes to root, whatever the mode
            return f"read-only (mode {stat.S_IMODE(st.st_mode):o})"
        return None
    return "a folder" if stat.S_ISDIR(st.st_mode) else "a link" if stat.S_ISLNK(st.st_mode) \
        else "a device or other special file"


class Folder:
    """A folder opened once, to make, check and rename files in (by descriptor where the platform can).

    `identity` (st_dev, st_ino), if given, is the folder the run checked before training: another one
    found at the path now is refused."""

    def __init__(self, path, identity=None):
        self.path, self.fd = os.path.abspath(path), None
        try:
            st = os.lstat(self.path)
            if stat.S_ISDIR(st.st_mode) and BY_DESCRIPTOR:
                self.fd = os.open(self.path, os.O_RDONLY | DIRECTORY | NOFOLLOW)
                st = os.fstat(self.fd)
        except OSError as e:
            raise RunError(f"cannot write into {self.path}: {why(e)}") from None
        self.id = (st.st_dev, st.st_ino)
        if not stat.S_ISDIR(st.st_mode) or identity is not None and self.id != identity:
            self.close()
            raise RunError(self._replaced(st))

    def _replaced(self, st):
        now = "gone" if st is None else "now " + (what_is_wrong(st) or "a file") if not stat.S_ISDIR(st.st_mode) \
            else "now another folder"
        return f"the folder {self.path} was replaced during the run ({now}): refusing to write there"

    def check(self):
        """The path still names this folder (not a link put in its place)."""
        try:
            st = os.lstat(self.path)
        except OSError:
            st = None
        if st is None or not stat.S_ISDIR(st.st_mode) or (st.st_dev, st.st_ino) != self.id:
            raise RunError(self._replaced(st))

    def _at(self, name):
        return dict(path=name, dir_fd=self.fd) if self.fd is not None else dict(path=os.path.join(self.path, name))

    def lstat(self, name):
        at = self._at(name)
        return os.stat(at.pop("path"), follow_symlinks=False, **at)

    def check_target(self, name):
        """`name` may be replaced: absent, or a writable regular file (not a folder, link or device)."""
        try:
            problem = what_is_wrong(self.lstat(name))
        except FileNotFoundError:
            return
        if problem:
            raise RunError(f"{os.path.join(self.path, name)} is {problem}: refusing to replace it")

    def open(self, name, flags):
        """os.open of `name` in the folder, never through a link (its descriptor)."""
        at = self._at(name)
        if not NOFOLLOW and os.path.islink(os.path.join(self.path, name)):
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), name)
        return os.open(at.pop("path"), flags | NOFOLLOW | BINARY, 0o666, **at)   # 0666 less the umask

    def new_temp(self):
        """(name, descriptor) of a new temporary file, made here (O_EXCL) with the mode open() gives."""
        while True:
            name = TMP_PREFIX + "".join(secrets.choice(TMP_LETTERS) for _ in range(8))
            try:
                return name, self.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            except FileExistsError:
                continue

    def replace(self, tmp, name):
        self.check()
        self.check_target(name)
        if self.fd is not None:
            os.replace(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        else:
            os.replace(os.path.join(self.path, tmp), os.path.join(self.path, name))

    def remove(self, name):
        at = self._at(name)
        try:
            os.unlink(at.pop("path"), **at)
        except OSError:
            pass

    def names(self):
        return os.listdir(self.fd if self.fd is not None else self.path)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


_staged = None        # inside staged_writes(): {folder path: Folder} and the (folder, temporary, name) to rename


@contextlib.contextmanager
def staged_writes():
    """Inside, atomic_write leaves each file under its temporary name; all are renamed at the end.

    Before the first rename every folder and every target is checked again: a failure part way
    (a full disk on the third figure, a target made a folder meanwhile) leaves none of the new
    files and every old one."""
    global _staged
    _staged = dict(folders={}, files=[])
    try:
        yield
        targets = [(f.path, name) for f, _, name in _staged["files"]]
        for (folder, name) in {t for t in targets if targets.count(t) > 1}:
            raise RunError(f"two outputs of this run are {os.path.join(folder, name)}: give them different paths")
        for folder, _, name in _staged["files"]:
            folder.check()
            folder.check_target(name)
        for folder, tmp, name in _staged["files"]:
            folder.replace(tmp, name)
    finally:
        for folder, tmp, _ in _staged["files"]:
            folder.remove(tmp)
        for folder in _staged["folders"].values():
            folder.close()
        _staged = None


def atomic_write(path, write, folder=None):
    """write(file_object) into a new temporary file next to `path`, then rename it over `path`.

    folder: the Folder `path` is in, held by the caller; by default one is opened for this write.
    The file gets the mode a plain open() would give it (0666 less the umask)."""
    name = os.path.basename(path)
    try:
        if folder is None and _staged is not None:
            where = os.path.dirname(os.path.abspath(path))
            folder = _staged["folders"].get(where) or _staged["folders"].setdefault(where, Folder(where))
        own = folder is None
        folder = folder or Folder(os.path.dirname(os.path.abspath(path)))
    except RunError as e:
        raise RunError(f"cannot write {path}: {e}") from None
    try:
        folder.check_target(name)
        tmp, fd = folder.new_temp()
    except OSError as e:
        raise RunError(f"cannot write {path}: {why(e)}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        if _staged is None or not own and folder not in _staged["folders"].values():
            folder.replace(tmp, name)
        else:
            _staged["files"].append((folder, tmp, name))
            tmp = None
    except OSError as e:
        raise RunError(f"cannot write {path}: {why(e)}") from None
    finally:
        if tmp is not None:
            folder.remove(tmp)
        if own and _staged is None:
            folder.close()


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


def remove_stale_temporaries(folder, older_than=0.0):
    """Remove the temporary files a killed minirev left in `folder` (only names we give them).

    In a folder no lock protects, older_than (seconds) spares the files of a run writing there now."""
    for name in os.listdir(folder):
        full = os.path.join(folder, name)
        if TMP_NAME.match(name) and os.path.isfile(full) and not os.path.islink(full) \
                and time.time() - os.lstat(full).st_mtime >= older_than:
            try:
                os.remove(full)
            except OSError:
                pass
