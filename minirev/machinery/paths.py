"""The paths a run will write, checked before any work.

Each must be a name the file system takes (encodable, no control character,
no over-long part), in a folder we may write, and either new or a writable
regular file: a device, a folder, a symbolic link or a read-only file at an
output path is refused in one line before training, figures included.
"""
import os
import re
import sys

from ..errors import UsageError
from .files import what_is_wrong


def check_name(path, flag):
    """A path the file system can take: a string (or os.PathLike), not empty, encodable, no control
    characters, no over-long name; returns it as a string."""
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str):
        raise UsageError(f"{flag} takes a path (a string), got {type(path).__name__} {path!r:.60}")
    if path == "":
        raise UsageError(f"{flag} was given an empty path: name a file or folder, or leave {flag} out")
    if any(ord(c) < 32 for c in path):
        raise UsageError(f"{flag} {path!r}: the path contains a control character (a newline?); "
                         "choose a plain name")
    for encoding in dict.fromkeys((sys.getfilesystemencoding(), "utf-8")):     # the file system's; UTF-8 for the JSON
        try:
            path.encode(encoding)
        except UnicodeEncodeError:
            raise UsageError(f"{flag} {ascii(path)}: the path is not valid {encoding} (bytes the shell passed "
                             "through, or a name this locale cannot write): choose a plain name") from None
    too_long = [part for part in path.split(os.sep) if len(part.encode()) > 255]
    if too_long:
        raise UsageError(f"{flag}: the name {too_long[0][:40]}... is {len(too_long[0].encode())} bytes long, "
                         "over the file system's 255; choose a shorter name")
    return path


def check_out_dir(path, flag="--out"):
    """Fail early (before any work) if the output folder cannot be created or written; returns it absolute."""
    path = os.path.abspath(check_name(path, flag))
    if os.path.islink(path):
        raise UsageError(f"{flag} {path} is a symbolic link: give the folder itself ({os.path.realpath(path)}), "
                         "so that nothing is written through a link")
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
    path = check_name(path, flag)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"{flag} {path}: the folder {folder} does not exist; create it or choose another path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: the folder {folder} is not writable; choose another path")
    if os.path.lexists(path):
        problem = what_is_wrong(os.lstat(path))
        if problem:
            fix = "make it writable or choose another path" if problem.startswith("read-only") \
                else "choose another path"
            raise UsageError(f"{flag} {path} is {problem}, not a regular file minirev may replace: {fix}")
    return path


def check_json_path(path):
    return check_file_path(path, "--json")


def figure_name(prefix):
    """The names of a command's figures: <prefix>.png and <prefix>_<anything>.png (reversal_nll.png, ...)."""
    return re.compile(re.escape(prefix) + r"(_[^/\\]*)?\.png\Z")


def check_figures(out_dir, prefix, json_path=None):
    """Every existing file the command's figures would replace may be replaced, and --json is not one of them."""
    names = figure_name(prefix)
    if json_path is not None and names.match(os.path.basename(json_path)) and os.path.realpath(
            os.path.dirname(os.path.abspath(json_path))) == os.path.realpath(out_dir):
        raise UsageError(f"--json {json_path} is the path of one of the figures in --out {out_dir}: "
                         "give the results another name")
    if not os.path.isdir(out_dir):
        return
    for name in sorted(os.listdir(out_dir)):
        if names.match(name):
            problem = what_is_wrong(os.lstat(os.path.join(out_dir, name)))
            if problem:
                fix = "make it writable" if problem.startswith("read-only") else "move it away"
                raise UsageError(f"--out {out_dir}: {name} there is {problem}, and this run's figure of that name "
                                 f"would replace it: {fix}, or choose another --out")
