"""Checks of what a checkpoint holds, before any of it is used.

A checkpoint may be damaged or edited by hand: every value is checked for its
type, range and consistency (``step = epoch x steps per epoch + batch``), and
an ``.npz`` file's zip headers (not encrypted, stored or deflated, sizes
the file can hold: deflate inflates at most 1032 times) and its array headers
(name, shape, dtype, size) are read and checked before a single array is
loaded, and a member no one asked for is never decompressed, so a header
claiming 400 GB costs nothing. Each failure is a one-line UsageError naming the file and the field.
"""
import math
import os
import zipfile

import numpy as np

from ..errors import UsageError, readable
from .limits import MEMORY_LIMIT

MAX_EPOCHS = 10 ** 6          # as RunConfig's --epochs: far beyond any run of this package
DAMAGED = "the file is damaged or was edited"
MAX_DEFLATE_RATIO = 1032      # deflate's limit: no member inflates to more than 1032 times its compressed size

# field -> (type, description) of a state.json; the nested ones are checked below
FIELDS = {"kind": (str, "a string"), "dtype": (str, "a string"), "config": (dict, "an object"),
          "epoch": (int, "a whole number"), "step": (int, "a whole number"),
          "seconds": ((int, float), "a number"), "history": (list, "a list"), "optimizer": (dict, "an object"),
          "rng": (dict, "an object"), "arrays": (str, "a string"), "sha256": (str, "a string")}


def _is(value, kind):
    return isinstance(value, kind) and not isinstance(value, bool)


def check_state_types(state, path):
    for key, (kind, what) in FIELDS.items():
        if key not in state:
            raise UsageError(f"{path}: '{key}' is missing: {DAMAGED}")
        if not _is(state[key], kind):
            raise UsageError(f"{path}: '{key}' should be {what}, got {type(state[key]).__name__}: {DAMAGED}")
    if "batch" in state and not _is(state["batch"], int):
        raise UsageError(f"{path}: 'batch' should be a whole number: {DAMAGED}")
    opt = state["optimizer"]
    if not _is(opt.get("name"), str) or not _is(opt.get("t"), int):
        raise UsageError(f"{path}: 'optimizer' should hold a name (string) and t (whole number): {DAMAGED}")
    if not all(_is(state["rng"].get(k), dict) for k in ("shuffle", "dropout")):
        raise UsageError(f"{path}: 'rng' should hold the 'shuffle' and 'dropout' generator states: {DAMAGED}")
    if len(state["sha256"]) != 64 or any(c not in "0123456789abcdef" for c in state["sha256"]):
        raise UsageError(f"{path}: 'sha256' should be 64 hexadecimal digits: {DAMAGED}")
    if not math.isfinite(state["seconds"]) or state["seconds"] < 0:
        raise UsageError(f"{path}: 'seconds' should be a finite number >= 0: {DAMAGED}")


def same_type(stored, wanted):
    """The same type (an int and a float count as one numeric type; a bool is not a number here)."""
    return all(_is(v, (int, float)) for v in (stored, wanted)) or type(stored) is type(wanted)


def check_position(state, batch, steps_per_epoch, path):
    epoch, step, t = state["epoch"], state["step"], state["optimizer"]["t"]
    if not 0 <= epoch <= MAX_EPOCHS:
        raise UsageError(f"{path}: epoch {epoch} is outside 0..{MAX_EPOCHS}: {DAMAGED}")
    if not 0 <= batch < steps_per_epoch:
        raise UsageError(f"{path}: batch {batch} is outside 0..{steps_per_epoch - 1} "
                         f"({steps_per_epoch} steps an epoch): {DAMAGED}")
    if step != epoch * steps_per_epoch + batch:
        raise UsageError(f"{path}: step {step} does not match epoch {epoch} and batch {batch} "
                         f"({steps_per_epoch} steps an epoch make step {epoch * steps_per_epoch + batch}): {DAMAGED}")
    if t != step:
        raise UsageError(f"{path}: the optimizer has taken {t} steps but the run {step}: {DAMAGED}")


def check_history(history, epoch, path):
    """A non-empty list of records, epochs rising, none past `epoch`, values numbers (or null)."""
    if not history or len(history) > epoch + 2:
        raise UsageError(f"{path}: the history has {len(history)} records for {epoch} epochs: {DAMAGED}")
    last = -1
    for record in history:
        if not isinstance(record, dict) or not _is(record.get("epoch"), int) or not _is(record.get("step"), int):
            raise UsageError(f"{path}: each history record should be an object with an epoch and a step: {DAMAGED}")
        if not last < record["epoch"] <= epoch:
            raise UsageError(f"{path}: history epochs should rise and stay <= {epoch}, "
                             f"found {record['epoch']} after {last}: {DAMAGED}")
        if not all(v is None or _is(v, (int, float)) for v in record.values()):
            raise UsageError(f"{path}: history values should be numbers: {DAMAGED}")
        last = record["epoch"]


def check_rng(state, where):
    """A generator state NumPy accepts (tried on a throwaway generator)."""
    try:
        np.random.default_rng(0).bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError):
        raise UsageError(f"{where} is not a PCG64 generator state: {DAMAGED}") from None


def read_npz(path, expected=None, only=None, allowed=None):
    """{name: array} of an .npz file, its zip and array headers checked first.

    expected: {name: (shape, dtype kind)}; then exactly these members, with these
    shapes, must be there. Without it, any members of plain (non-object) dtypes.
    only: the names to read (the others are never decompressed); default all.
    allowed(name): whether a member may be in the file at all (default: any, or the expected ones).
    """
    try:
        archive = os.path.getsize(path)
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            for info in infos:
                _check_zip_member(info, archive, path)
            if sum(info.compress_size for info in infos) > archive:
                raise UsageError(f"{path}: its members claim more bytes than the file holds: {DAMAGED}")
            allowed = allowed or (expected.__contains__ if expected is not None else lambda name: True)
            extra = sorted(info.filename[:-4] for info in infos if not allowed(info.filename[:-4]))
            if extra:                                   # refused by name: never decompressed
                raise UsageError(f"{path} has unexpected {', '.join(extra[:3])}{' ...' if len(extra) > 3 else ''}: "
                                 f"{DAMAGED}")
            headers = {}
            for info in infos:
                if only is None or info.filename[:-4] in only:
                    with z.open(info) as f:
                        headers[info.filename[:-4]] = _npy_header(f, info, path)
            if expected is not None:
                _check_members(headers, expected, path)
            names = set(headers)
            if sum(headers[k][0] for k in names) > MEMORY_LIMIT:
                raise UsageError(f"{path} holds {readable(sum(headers[k][0] for k in names))} of arrays, over "
                                 f"the limit of {readable(MEMORY_LIMIT)}: {DAMAGED}")
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in names}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError) as e:
        if isinstance(e, UsageError):
            raise
        raise UsageError(f"{path} is not a readable minirev file ({type(e).__name__}); "
                         "it may be truncated or corrupted") from None


def _check_zip_member(info, archive, path):
    """From the zip header alone: not encrypted, stored or deflated (what NumPy writes), sizes possible."""
    name = f"member {info.filename[:60]!r}"
    if info.flag_bits & 0x1:
        raise UsageError(f"{path}: {name} is encrypted; minirev files never are: {DAMAGED}")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise UsageError(f"{path}: {name} uses compression method {info.compress_type}; minirev reads stored "
                         f"or deflated members (what NumPy writes): {DAMAGED}")
    ratio = 1 if info.compress_type == zipfile.ZIP_STORED else MAX_DEFLATE_RATIO
    if info.compress_size > archive or info.file_size > ratio * info.compress_size + 64:
        raise UsageError(f"{path}: {name} claims {readable(info.file_size)} from {readable(info.compress_size)} "
                         f"{'stored' if ratio == 1 else 'deflated'} in a file of {readable(archive)}: {DAMAGED}")


def _npy_header(f, info, path):
    """(bytes of data, shape, dtype) of one .npy member, from its header alone."""
    if not info.filename.endswith(".npy"):
        raise UsageError(f"{path}: member {info.filename[:60]!r} is not an array: {DAMAGED}")
    version = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read(f)
    if dtype.hasobject:
        raise UsageError(f"{path}: member {info.filename[:60]!r} holds Python objects, refused (no pickle)")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > info.file_size:
        raise UsageError(f"{path}: member {info.filename[:60]!r} claims {readable(nbytes)} but the file holds "
                         f"{readable(info.file_size)}: {DAMAGED}")
    return nbytes, shape, dtype


def _check_members(headers, expected, path):
    missing = sorted(set(expected) - set(headers))
    if missing:
        raise UsageError(f"{path} lacks {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}: {DAMAGED}")
    for name, (shape, kind) in expected.items():
        _, got_shape, dtype = headers[name]
        if tuple(got_shape) != tuple(shape) or dtype.kind != kind:
            what = "text" if kind == "U" else "floats"
            raise UsageError(f"{path}: {name} should be {what} of shape {tuple(shape)}, found {dtype} "
                             f"{tuple(got_shape)}: {DAMAGED}")
