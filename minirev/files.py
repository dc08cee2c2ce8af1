"""Files a run writes: the output folder, the JSON results, atomic writes.

A file is written into a temporary file in the same folder and then renamed
over its target, so a reader (or a crash) never sees half a file.
"""
import json
import math
import os
import tempfile

import numpy as np

from .errors import UsageError


def atomic_write(path, write):
    """write(file_object) into a temporary file next to `path`, then rename it over `path`."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise



def check_out_dir(path):
    """Fail early (before any work) if the output folder cannot be created or written."""
    path = os.path.abspath(path)
    probe = path
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"output folder {path} cannot be written ({probe} is not a writable folder): "
                         "choose another with --out")
    return path


def check_json_path(path):
    if path is None:
        return None
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"--json {path}: the folder {folder} does not exist; create it or choose another path")
    if not os.access(folder, os.W_OK) or os.path.isdir(path):
        raise UsageError(f"--json {path}: cannot write a file there; choose another path")
    return path


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
