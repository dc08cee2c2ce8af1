"""The lock of a checkpoint folder: its ``.lock`` file, made by minirev and by nobody else.

The file is written in full under a temporary name and then linked to
``.lock`` (``os.link`` fails if the name exists, whatever it is), so a lock
file is never seen half written and never made through a link. Its one line,
``minirev lock, process <pid>``, is how a run recognises a lock a minirev run
left. A ``.lock`` that is anything else (another text, a hard link to another
file, a symbolic link, a folder) is the user's: it is refused in one line,
never opened for writing, never deleted.

How the lock is held, by what the platform has:

* fcntl (Linux, macOS): flock on the file. The system drops it when its holder closes the file
  or dies, so a lock a killed run left is found unlocked: it is removed and made anew.
* msvcrt (Windows): msvcrt.locking of one byte far past the text (Windows refuses others the
  reading of a locked range, and they must read the pid). The system drops it too when its holder dies.
* neither: the file itself is the lock. One naming a dead process was left by a killed run: it is
  removed and made anew, under a second such file (``<path>.break``) so that two runs never both
  remove it (the later removal would take the lock the other one just made).
"""
import errno
import os
import re
import stat
import time

from .files import BINARY, NOFOLLOW, TMP_LETTERS, TMP_PREFIX

try:
    import fcntl                     # POSIX (Linux, macOS)
except ImportError:
    fcntl = None
try:
    import msvcrt                    # Windows
except ImportError:
    msvcrt = None

NONBLOCK = getattr(os, "O_NONBLOCK", 0)
HOLDER = re.compile(r"minirev lock, process ([0-9]{1,10})\n\Z")


class LockHeld(Exception):
    """Raised by FileLock.acquire: another holds the lock; .holder is the pid its file names (or "unknown")."""

    def __init__(self, holder):
        super().__init__(holder)
        self.holder = holder


class NotALock(Exception):
    """Raised by FileLock.acquire: the file at the lock's path is not one minirev made; the text says what it is."""


def open_no_link(path, flags):
    """os.open(path, flags) that never follows a symbolic link at `path`: O_NOFOLLOW, or where the
    platform lacks it an lstat first."""
    if not NOFOLLOW and os.path.islink(path):
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
    return os.open(path, flags | NOFOLLOW | BINARY, 0o666)


class FileLock:
    """An exclusive lock, held between acquire() and release(); a second taker, in this process or
    another, gets LockHeld naming the holder's pid, or NotALock if the file there is not minirev's."""
    LOCK_BYTE = 1 << 20              # msvcrt: the byte locked, far past the text
    WAIT = 1.0                       # seconds an empty lock file may be one being made (without os.link)

    def __init__(self, path):
        self.path, self.fd = path, None
        self.how = "flock" if fcntl else "msvcrt" if msvcrt else "create"

    def acquire(self):
        since = time.monotonic()
        while self.fd is None:
            self.fd = self._make()
            if self.fd is not None:
                break
            try:
                fd = open_no_link(self.path, os.O_RDONLY | NONBLOCK)    # (a FIFO there must not block)
            except FileNotFoundError:
                continue                                 # released meanwhile: make it
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise NotALock("a symbolic link") from None
                raise
            try:
                if self.how != "create" and not self._try(fd):
                    raise LockHeld(self._text(fd)[1] or "unknown")
                if not _named(fd, self.path):
                    continue                             # removed by its holder meanwhile: look again
                self._check_file(fd)
                text, pid = self._text(fd)
                if not text and time.monotonic() - since < self.WAIT:
                    time.sleep(0.01)                     # being made: its text comes next
                    continue
                if pid is None:
                    raise NotALock("a file minirev did not write (it does not hold minirev's one line)")
                if self.how == "create":
                    if _alive(int(pid)):
                        raise LockHeld(pid)
                else:                                    # left unlocked by a run that was killed: take it over
                    self._take_over(fd)
                    self.fd, fd = fd, None
            finally:
                if fd is not None:
                    os.close(fd)
            if self.how == "create":
                self._remove_stale()
        return self

    def release(self):
        mine, removed = _named(self.fd, self.path), False      # never remove a file put in its place
        if mine:                     # while held: a run that opened the old file meanwhile re-checks the inode
            try:
                os.unlink(self.path)
                removed = True
            except PermissionError:  # Windows removes no file that is open
                pass
        if self.how == "msvcrt":
            os.lseek(self.fd, self.LOCK_BYTE, os.SEEK_SET)
            msvcrt.locking(self.fd, msvcrt.LK_UNLCK, 1)
        os.close(self.fd)
        self.fd = None
        if mine and not removed:
            try:
                os.unlink(self.path)  # fails if another run opened it since: then it is that run's lock
            except OSError:
                pass

    # ---- making the file, and recognising one a killed run left

    def _make(self):
        """The descriptor of a new lock file, locked and holding its text; None if the path exists."""
        text = f"minirev lock, process {os.getpid()}\n".encode()
        folder = os.path.dirname(os.path.abspath(self.path))
        tmp = os.path.join(folder, TMP_PREFIX + "".join(TMP_LETTERS[b % 37] for b in os.urandom(8)))
        fd = open_no_link(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL)
        try:
            os.write(fd, text)
            self._try(fd)            # a file only this run knows: always free
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                os.close(fd)
                fd = None
                return None
            except (OSError, NotImplementedError):          # a file system without hard links
                os.close(fd)
                fd = None
                try:
                    fd = open_no_link(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL)
                except FileExistsError:
                    return None
                os.write(fd, text)
                self._try(fd)
            return fd
        except BaseException:
            if fd is not None:
                os.close(fd)
            raise
        finally:
            _unlink_quietly(tmp)     # (Windows keeps an open file: then the release of the lock goes first)

    def _text(self, fd):
        """(the text of the lock file, the pid it names or None)."""
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 200).decode(errors="replace")
        found = HOLDER.match(text)
        return text, found.group(1) if found else None

    def _take_over(self, fd):
        """Write this run's text into the lock file `fd` holds (a lock minirev made, found stale)."""
        rw = open_no_link(self.path, os.O_RDWR)
        try:
            if os.fstat(rw).st_ino != os.fstat(fd).st_ino:
                raise LockHeld("unknown")                # replaced in between: some run is taking it
            os.ftruncate(rw, 0)
            os.write(rw, f"minirev lock, process {os.getpid()}\n".encode())
        finally:
            os.close(rw)

    def _check_file(self, fd):
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotALock("a folder" if stat.S_ISDIR(st.st_mode) else "a device or other special file")
        if st.st_nlink != 1:
            raise NotALock(f"a file with {st.st_nlink} names (a hard link: another of its names holds it)")

    def _remove_stale(self):
        """Remove the lock file naming a dead process (no fcntl, no msvcrt: the file is the lock)."""
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
            fd = open_no_link(self.path, os.O_RDONLY)
            try:
                pid = self._text(fd)[1]
            finally:
                os.close(fd)
            if pid and not _alive(int(pid)):         # still stale: no one else removes it while we hold the guard
                _unlink_quietly(self.path)
        except FileNotFoundError:
            pass
        finally:
            os.unlink(guard)

    def _try(self, fd):
        if self.how == "flock":
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True
        if self.how == "create":
            return True
        os.lseek(fd, self.LOCK_BYTE, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError as e:
            if e.errno in (errno.EACCES, getattr(errno, "EDEADLOCK", errno.EDEADLK)):
                return False
            raise
        return True


def _named(fd, path):
    """Whether `path` still names the file open at `fd` (not removed, not replaced)."""
    try:
        st, here = os.fstat(fd), os.lstat(path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (here.st_dev, here.st_ino)


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


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
