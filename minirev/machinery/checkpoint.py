"""Saving and resuming, in open formats: ``.npz`` for arrays, JSON for the rest (no pickle).

A model alone:  ``minirev.save_model(model, "m.npz")`` and ``minirev.load_model("m.npz")``.
Models are found through ``Model.registry`` (by their ``kind``): this module
imports no model, and no model imports it.

A training run (``--save DIR`` / ``--resume DIR``) is a folder holding
``state.json`` (configuration, history, position: epoch, batch within the
epoch, step and random generator states; optimiser scalars, format version,
and the name and SHA-256 of the arrays file) and ``arrays-<step>.npz``
(parameters and optimiser moments). A save writes the arrays under a new
name, then replaces ``state.json`` atomically: an interrupted save leaves the
previous checkpoint intact, since ``state.json`` only ever names a complete file.

A run holds its folder through :class:`RunFolder`: a lock (``.lock``, whose
holder a second run names in its refusal: files.FileLock, which works without
fcntl too), and it deletes only the files a minirev run writes there
(``arrays-<digits>.npz`` and its own temporaries), never anything else in the
folder. Everything read back is checked (types, ranges, shapes, sizes) before
it is used: a damaged or edited checkpoint is refused with one line.
"""
import dataclasses
import hashlib
import json
import os
import re

import numpy as np

from ..backend import to_backend
from ..errors import RunError, UsageError
from .files import TMP_NAME, FileLock, LockHeld, atomic_write, check_name, check_out_dir, remove_stale_temporaries
from ..model import Model
from .validate import DAMAGED, check_history, check_position, check_rng, check_state_types, read_npz, same_type

FORMAT_VERSION = 3           # 2: the position within an epoch (batch) and the lock; 3: the optimiser resolved
ARRAYS = re.compile(r"arrays-\d{9,}\.npz\Z")
LOCK = ".lock"


# --------------------------------------------------------------------------- one model

def save_model(model, path):
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"cannot save the model to {path}: the folder {folder} does not exist; create it first")
    meta = dict(format=FORMAT_VERSION, kind=model.kind, config=model.config, dtype=model.dtype.name)
    arrays = {f"param.{k}": v for k, v in model.host_params().items()}
    arrays["meta"] = np.array(json.dumps(meta))           # a unicode string array: no pickle needed
    atomic_write(path, lambda f: np.savez(f, **arrays))
    return path


def load_model(path, backend="numpy"):
    """A model saved by ``save_model`` (from any backend), on `backend`."""
    if not os.path.isfile(path):
        raise UsageError(f"no model file at {path}")
    arrays = read_npz(path)
    meta = arrays.get("meta")
    if meta is None or meta.shape != () or meta.dtype.kind != "U":
        raise UsageError(f"{path} is not a minirev model file (it has no 'meta' text entry)")
    try:
        meta = json.loads(str(meta))
    except (ValueError, RecursionError):
        meta = None
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict) \
            or meta.get("dtype") not in ("float32", "float64"):
        raise UsageError(f"{path}: its model description ('meta') is damaged or was edited")
    _check_format(meta, path)
    if meta.get("kind") not in Model.registry:
        raise UsageError(f"{path} holds an unknown model kind {meta.get('kind')!r}")
    try:
        model = Model.registry[meta["kind"]](**meta["config"], dtype=np.dtype(meta["dtype"]), backend=backend)
    except (TypeError, ValueError, OverflowError, MemoryError) as e:
        if isinstance(e, UsageError):
            raise UsageError(f"{path}: {e}") from None
        raise UsageError(f"{path}: its model description ('meta') is damaged or was edited "
                         f"({type(e).__name__})") from None
    _set_params(model, {k[6:]: v for k, v in arrays.items() if k.startswith("param.")}, path)
    return model


def _check_format(meta, path):
    version = meta.get("format")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise UsageError(f"{path}: 'format' should be a whole number >= 1, got {version!r}: "
                         "the file is damaged or was edited")
    if version > FORMAT_VERSION:
        raise UsageError(f"{path} was written by a newer minirev (format {version}, this one reads "
                         f"up to {FORMAT_VERSION}): upgrade minirev")


def _set_params(model, params, path):
    for name, value in model.params.items():
        found = params.get(name)
        if found is None or found.shape != tuple(value.shape) or found.dtype.kind != "f":
            got = "nothing" if found is None else f"{found.dtype} {found.shape}"
            raise UsageError(f"{path}: parameter {name} should be floats of shape {tuple(value.shape)}, found {got}")
    for name in model.params:
        model.params[name] = to_backend(model.xp, params[name], model.dtype)


# --------------------------------------------------------------------------- a training run

class RunFolder:
    """The checkpoint folder of a run, locked while the run holds it.

        with RunFolder("ck") as folder:
            ... folder.save(trainer, cfg) ...

    A save deletes the other ``arrays-<digits>.npz`` of the folder (earlier saves of
    this run, a save killed before its state.json, or the run --overwrite replaces)
    and nothing else.
    """

    def __init__(self, folder):
        self.folder = folder
        self.lock = FileLock(os.path.join(folder, LOCK))
        self.created = False

    def __enter__(self):
        self.created = not os.path.isdir(self.folder)
        try:
            os.makedirs(self.folder, exist_ok=True)
            try:
                self.lock.acquire()
            except LockHeld as e:
                raise RunError(f"checkpoint folder {self.folder} is in use by another run (process {e.holder}): "
                               "wait for it to finish or choose another folder") from None
            remove_stale_temporaries(self.folder)      # left by a run killed while saving here
        except OSError as e:
            raise RunError(f"cannot use the checkpoint folder {self.folder}: {e.strerror or e}") from None
        return self

    def __exit__(self, *exc):
        self.lock.release()
        if self.created and not os.listdir(self.folder):
            os.rmdir(self.folder)                       # nothing was saved: leave no empty folder behind

    def save(self, trainer, config):
        model, opt = trainer.model, trainer.optimizer
        arrays = {f"param.{k}": v for k, v in model.host_params().items()}
        arrays.update({f"opt.{k}": v for k, v in opt.state_dict().items() if k != "t"})
        name = f"arrays-{trainer.step:09d}.npz"
        digest = hashlib.sha256()

        def write_arrays(f):
            np.savez(f, **arrays)

        atomic_write(os.path.join(self.folder, name), write_arrays)
        with open(os.path.join(self.folder, name), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        state = dict(format=FORMAT_VERSION, kind=model.kind, dtype=model.dtype.name,
                     config=config.identity(), epoch=trainer.epoch, batch=trainer.batch, step=trainer.step,
                     seconds=trainer.seconds, history=trainer.history, optimizer=dict(name=opt.name, t=opt.t),
                     rng=dict(shuffle=trainer.shuffle_state(), dropout=trainer.dropout_rng.bit_generator.state),
                     arrays=name, sha256=digest.hexdigest())
        atomic_write(os.path.join(self.folder, "state.json"), lambda f: f.write(json.dumps(state).encode()))
        for old in os.listdir(self.folder):      # arrays of earlier saves, or of a save killed before its state
            path = os.path.join(self.folder, old)
            if ARRAYS.match(old) and old != name and os.path.isfile(path) and not os.path.islink(path):
                os.remove(path)
        return self.folder


def check_folders(save, resume, overwrite=False):
    """Before any work: the folder to resume is a checkpoint, the folder to save to can be written,
    and a --save does not replace another run's checkpoint unless asked (overwrite)."""
    if resume is not None:
        check_name(resume, "--resume")
        if not os.path.isdir(resume):
            raise UsageError(f"--resume {resume}: no such folder (start a run with --save {resume} first)")
        if not os.path.isfile(os.path.join(resume, "state.json")):
            raise UsageError(f"--resume {resume}: no state.json inside, so it is not a minirev checkpoint folder")
    if save is not None:
        check_out_dir(save, "--save")
    target = save or resume
    if target is None or not os.path.lexists(target):
        return
    state = os.path.join(target, "state.json")
    if not os.path.isdir(target) or os.path.lexists(state) and not os.path.isfile(state):
        raise UsageError(f"{target} is not a checkpoint folder (or its state.json is not a file): "
                         "choose another folder")
    flag = "--save" if save else "--resume"
    if not os.access(target, os.W_OK | os.X_OK) or os.path.isfile(state) and not os.stat(state).st_mode & 0o222:
        raise UsageError(f"{flag} {target}: the checkpoint folder is read-only, so the run could not be saved "
                         f"there; make it writable{' or add --save DIR to save elsewhere' if not save else ''}")
    same = resume is not None and os.path.realpath(target) == os.path.realpath(resume)
    if save and not same and not overwrite and os.path.lexists(state):
        raise UsageError(f"--save {save} already holds {_describe(state)}: continue it with "
                         f"--resume {save}, or pass --overwrite to replace it")


def _describe(path):
    try:
        with open(path) as f:
            state = json.load(f)
        return f"the checkpoint of a {state['kind']} run at epoch {state['epoch']}"
    except (OSError, ValueError, RecursionError, KeyError, TypeError):
        return "a checkpoint"


def collides(path, folder):
    """True if writing `path` would replace a file of the checkpoint in `folder`."""
    name = os.path.basename(path)
    return os.path.realpath(os.path.dirname(os.path.abspath(path))) == os.path.realpath(folder) and bool(
        name in ("state.json", LOCK, LOCK + ".break") or ARRAYS.match(name) or TMP_NAME.match(name))


def load_run(folder, trainer, config):
    """Restore a Trainer (model, optimiser, generators, history, position) saved by RunFolder.save."""
    path = os.path.join(folder, "state.json")
    if not os.path.isdir(folder):
        raise UsageError(f"--resume {folder}: no such folder (start a run with --save {folder} first)")
    if not os.path.isfile(path):
        raise UsageError(f"--resume {folder}: no state.json inside, so it is not a minirev checkpoint folder")
    try:
        with open(path) as f:
            state = json.load(f)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise UsageError(f"{path} is truncated or corrupted (not valid JSON)") from None
    if not isinstance(state, dict):
        raise UsageError(f"{path} holds a JSON {type(state).__name__}, not a checkpoint: it is damaged or was edited")
    _check_format(state, path)
    check_state_types(state, path)
    stored_config = dict(state["config"])
    if state["format"] <= 2:        # written before the config named its optimiser: what the run ran with
        stored_config["optimizer"] = stored_config.get("optimizer") or type(trainer.model).default_optimizer
        if stored_config["optimizer"] == "sgd":
            stored_config["weight_decay"] = 0.0      # SGD then ignored --weight-decay (its default was AdamW's 0.01)
    for f in dataclasses.fields(config):     # fields added later: a checkpoint without one ran with its default
        if f.metadata.get("added"):
            stored_config.setdefault(f.name, f.default)
    for key, value in config.identity().items():
        if key not in stored_config:
            raise UsageError(f"{path}: config.{key} is missing: the file is damaged or was edited")
        stored, flag = stored_config[key], "--" + key.replace("_", "-")
        if not same_type(stored, value):
            raise UsageError(f"{path}: config.{key} is {stored!r} (a {type(stored).__name__}), where this run's "
                             f"{flag} is a {type(value).__name__}: {DAMAGED}")
        if stored != value:
            raise UsageError(f"checkpoint {folder} was made with {flag} {stored}, this run "
                             f"asks for {value}: pass the same options or resume another folder")
    model, opt = trainer.model, trainer.optimizer
    for key, mine in (("kind", model.kind), ("dtype", model.dtype.name)):
        if state[key] != mine:
            raise UsageError(f"{path}: {key} {state[key]!r} does not match this run's {mine!r}")
    if state["optimizer"]["name"] != opt.name:
        raise UsageError(f"{path}: optimizer {state['optimizer']['name']!r} does not match this run's {opt.name!r}")
    batch = state.get("batch", 0) if state["format"] >= 2 else 0
    check_position(state, batch, trainer.steps_per_epoch, path)
    check_history(state["history"], state["epoch"], path)
    for which in ("shuffle", "dropout"):
        check_rng(state["rng"][which], f"{path}: rng.{which}")
    arrays_path = _arrays_path(folder, state)
    expected = {f"param.{k}": (tuple(v.shape), "f") for k, v in model.params.items()}
    expected.update({f"opt.{k}": (tuple(model.params[k[2:]].shape), "f")
                     for k in opt.state_names(model.params) if state["step"] > 0})
    arrays = read_npz(arrays_path, expected)
    _set_params(model, {k[6:]: v for k, v in arrays.items() if k.startswith("param.")}, arrays_path)
    opt_state = {k[4:]: v for k, v in arrays.items() if k.startswith("opt.")}
    opt_state["t"] = state["optimizer"]["t"]
    opt.load_state_dict(opt_state, model.xp)
    trainer.shuffle_rng.bit_generator.state = state["rng"]["shuffle"]
    trainer.dropout_rng.bit_generator.state = state["rng"]["dropout"]
    trainer.epoch, trainer.batch, trainer.step = state["epoch"], batch, state["step"]
    trainer.seconds, trainer.history = float(state["seconds"]), state["history"]
    return trainer


def _arrays_path(folder, state):
    name = state["arrays"]
    if not ARRAYS.match(name) or name != f"arrays-{state['step']:09d}.npz":
        raise UsageError(f"{folder}/state.json names the arrays file {name[:80]!r}; a checkpoint's is "
                         f"arrays-{state['step']:09d}.npz in the same folder: the file is damaged or was edited")
    path = os.path.join(folder, name)
    if not os.path.lexists(path):
        raise UsageError(f"{path}, named by state.json, is missing")
    if os.path.islink(path) or not os.path.isfile(path):
        raise UsageError(f"{path} is not a regular file (a link or a folder): refusing to read it")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != state["sha256"]:
        raise UsageError(f"{path} is corrupted (its SHA-256 differs from the one in state.json)")
    return path
