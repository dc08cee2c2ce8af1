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
holder a second run names in its refusal: lock.FileLock, which works without
fcntl too, and never touches a ``.lock`` it did not make), taken before the
data is built; the folder, opened once, written by descriptor; and it deletes
only the files a minirev run writes there (``arrays-<digits>.npz`` and its own
temporaries), never anything else in the folder. Everything read back is
checked (types, ranges, shapes, sizes) before it is used: a damaged or edited
checkpoint is refused with one line.
"""
import dataclasses
import hashlib
import json
import os
import re

import numpy as np

from ..backend import to_backend
from ..errors import RunError, UsageError
from .files import TMP_NAME, Folder, atomic_write, what_is_wrong, why
from .limits import check_model_memory
from .lock import FileLock, LockHeld, NotALock
from ..model import Model
from .paths import check_name, check_out_dir
from .validate import DAMAGED, check_history, check_position, check_rng, check_state_types, read_npz, same_type

FORMAT_VERSION = 3           # 2: the position within an epoch (batch) and the lock; 3: the optimiser resolved
ARRAYS = re.compile(r"arrays-\d{9,}\.npz\Z")
LOCK = ".lock"


# --------------------------------------------------------------------------- one model

def save_model(model, path):
    """Write `model` to the file `path` (new, or a writable regular file: never a link, device or folder)."""
    if not isinstance(model, Model):
        raise UsageError(f"save_model saves a minirev model (Model), got {type(model).__name__}: "
                         "e.g. save_model(GPT(40), 'm.npz')")
    path = check_name(path, "save_model's path")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"cannot save the model to {path}: the folder {folder} does not exist; create it first")
    if os.path.lexists(path) and what_is_wrong(os.lstat(path)):
        raise UsageError(f"cannot save the model to {path}: it is {what_is_wrong(os.lstat(path))}, not a regular "
                         "file minirev may replace; choose another path")
    meta = dict(format=FORMAT_VERSION, kind=model.kind, config=model.config, dtype=model.dtype.name)
    arrays = {f"param.{k}": v for k, v in model.host_params().items()}
    arrays["meta"] = np.array(json.dumps(meta))           # a unicode string array: no pickle needed
    atomic_write(path, lambda f: np.savez(f, **arrays))
    return path


def load_model(path, backend="numpy"):
    """A model saved by ``save_model`` (from any backend), on `backend`.

    Read in two passes: the description ('meta') alone, whose model is checked against the memory
    limit before it is built; then exactly that model's parameters, their headers checked first."""
    path = check_name(path, "load_model's path")
    if not os.path.isfile(path):
        raise UsageError(f"no model file at {path}")
    meta = read_npz(path, only={"meta"}, allowed=lambda name: name == "meta" or name.startswith("param.")).get("meta")
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
    check_model_memory(meta["kind"], meta["config"], np.dtype(meta["dtype"]).itemsize, path)
    try:
        model = Model.registry[meta["kind"]](**meta["config"], dtype=np.dtype(meta["dtype"]), backend=backend)
    except (TypeError, ValueError, OverflowError, MemoryError) as e:
        if isinstance(e, UsageError):
            raise UsageError(f"{path}: {e}") from None
        raise UsageError(f"{path}: its model description ('meta') is damaged or was edited "
                         f"({type(e).__name__})") from None
    expected = {f"param.{k}": (tuple(v.shape), "f") for k, v in model.params.items()}
    arrays = read_npz(path, dict(expected, meta=((), "U")))
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

    The folder is opened once, when locked: every save is written into it by descriptor, and a
    folder swapped for another (a link to another run's) during the run is refused, never written.
    A save deletes the other ``arrays-<digits>.npz`` of the folder (earlier saves of this run, a
    save killed before its state.json, or the run --overwrite replaces) and nothing else.
    fresh=True (a --save without --overwrite): a checkpoint found there once locked is refused,
    so that a run which finished there since this one's checks is not replaced.
    """

    def __init__(self, folder, fresh=False):
        self.folder, self.fresh = folder, fresh
        self.lock = FileLock(os.path.join(folder, LOCK))
        self.created, self.dir = [], None

    def __enter__(self):
        path = os.path.abspath(self.folder)
        while not os.path.lexists(path):               # the folders this run makes, removed if it saves nothing
            self.created.append(path)
            path = os.path.dirname(path)
        try:
            os.makedirs(self.folder, exist_ok=True)
            self.dir = Folder(self.folder)
            try:
                self.lock.acquire()
            except LockHeld as e:
                raise RunError(f"checkpoint folder {self.folder} is in use by another run (process {e.holder}): "
                               "wait for it to finish or choose another folder") from None
            except NotALock as e:
                raise RunError(f"cannot use the checkpoint folder {self.folder}: its .lock is {e}, not a lock "
                               "minirev made; minirev never replaces it: move it away or choose another "
                               "folder") from None
            try:
                self.dir.check()                        # still the folder opened, now locked
                for name in self.dir.names():            # left by a run killed while saving here
                    if TMP_NAME.match(name) and not what_is_wrong(self.dir.lstat(name)):
                        self.dir.remove(name)
                if self.fresh and "state.json" in self.dir.names():
                    found = _describe(os.path.join(self.folder, "state.json"))
                    raise UsageError(f"--save {self.folder} now holds {found}, saved by another run since this one "
                                     f"was checked: continue it with --resume {self.folder}, or pass --overwrite "
                                     "to replace it")
            except BaseException:
                self.lock.release()
                raise
        except OSError as e:
            self._leave()
            raise RunError(f"cannot use the checkpoint folder {self.folder}: {why(e)}") from None
        except BaseException:
            self._leave()
            raise
        return self

    def __exit__(self, *exc):
        self.lock.release()
        self._leave()

    def _leave(self):
        if self.dir is not None:
            self.dir.close()
        for path in self.created:                       # nothing was saved: leave no empty folder behind
            try:
                os.rmdir(path)
            except OSError:
                break

    def save(self, trainer, config):
        model, opt = trainer.model, trainer.optimizer
        arrays = {f"param.{k}": v for k, v in model.host_params().items()}
        arrays.update({f"opt.{k}": v for k, v in opt.state_dict().items() if k != "t"})
        name = f"arrays-{trainer.step:09d}.npz"
        atomic_write(os.path.join(self.folder, name), lambda f: np.savez(f, **arrays), self.dir)
        digest = hashlib.sha256()
        fd = self.dir.open(name, os.O_RDONLY)
        with os.fdopen(fd, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        state = dict(format=FORMAT_VERSION, kind=model.kind, dtype=model.dtype.name,
                     config=config.identity(), epoch=trainer.epoch, batch=trainer.batch, step=trainer.step,
                     seconds=trainer.seconds, history=trainer.history, optimizer=dict(name=opt.name, t=opt.t),
                     rng=dict(shuffle=trainer.shuffle_state(), dropout=trainer.dropout_rng.bit_generator.state),
                     arrays=name, sha256=digest.hexdigest())
        atomic_write(os.path.join(self.folder, "state.json"), lambda f: f.write(json.dumps(state).encode()), self.dir)
        for old in self.dir.names():     # arrays of earlier saves, or of a save killed before its state
            if ARRAYS.match(old) and old != name and not what_is_wrong(self.dir.lstat(old)):
                self.dir.remove(old)
        return self.folder


def check_folders(save, resume, overwrite=False):
    """Before any work: the folder to resume is a checkpoint, the folder to save to can be written,
    and a --save does not replace another run's checkpoint unless asked (overwrite)."""
    if resume is not None:
        check_out_dir(resume, "--resume")               # a name we can take, not a link to a folder
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
    if os.path.isfile(state):
        try:
            with open(state, "rb"):
                pass
        except OSError as e:
            raise UsageError(f"{flag} {target}: its state.json cannot be read ({why(e)}): make it readable "
                             f"(chmod u+r {state}){' or choose another folder' if save else ''}") from None
    if not os.access(target, os.W_OK | os.X_OK) or os.path.isfile(state) and not os.stat(state).st_mode & 0o222:
        raise UsageError(f"{flag} {target}: the checkpoint folder is read-only, so the run could not be saved "
                         f"there; make it writable{' or add --save DIR to save elsewhere' if not save else ''}")
    same = resume is not None and os.path.realpath(target) == os.path.realpath(resume)
    if save and not same and not overwrite and os.path.lexists(state):
        raise UsageError(f"--save {save} already holds {_describe(state)}: continue it with "
                         f"--resume {save}, or pass --overwrite to replace it")


def _describe(path):
    if not os.path.isfile(path):
        return "a state.json"
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
        with open(path, "rb") as f:
            state = json.load(f)
    except OSError as e:
        raise UsageError(f"{path} cannot be read ({why(e)})") from None
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
