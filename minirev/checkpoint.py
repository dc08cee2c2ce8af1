"""Saving and resuming, in open formats: ``.npz`` for arrays, JSON for the rest (no pickle).

A model alone:  ``minirev.save_model(model, "m.npz")`` and ``minirev.load_model("m.npz")``.
Models are found through ``Model.registry`` (by their ``kind``): this module
imports no model, and no model imports it.

A training run (``--save DIR`` / ``--resume DIR``) is a folder holding
``state.json`` (configuration, history, epoch, step, random generator states,
optimiser scalars, format version, and the name and SHA-256 of the arrays
file) and ``arrays-<step>.npz`` (parameters and optimiser moments). A save
writes the arrays under a new name, then replaces ``state.json`` atomically
(a temporary file, then a rename): an interrupted save leaves the previous
checkpoint intact, since ``state.json`` only ever names a complete file.
"""
import hashlib
import json
import os
import zipfile

import numpy as np

from .backend import to_backend, to_numpy
from .errors import UsageError
from .files import atomic_write
from .model import Model

FORMAT_VERSION = 1


def _read_npz(path):
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise UsageError(f"{path} is not a readable minirev file ({type(e).__name__}: {e}); "
                         "it may be truncated or corrupted") from None


# --------------------------------------------------------------------------- one model

def save_model(model, path):
    meta = dict(format=FORMAT_VERSION, kind=model.kind, config=model.config, dtype=model.dtype.name)
    arrays = {f"param.{k}": v for k, v in model.host_params().items()}
    arrays["meta"] = np.array(json.dumps(meta))           # a unicode string array: no pickle needed
    atomic_write(path, lambda f: np.savez(f, **arrays))
    return path


def load_model(path, backend="numpy"):
    """A model saved by ``save_model`` (from any backend), on `backend`."""
    if not os.path.isfile(path):
        raise UsageError(f"no model file at {path}")
    arrays = _read_npz(path)
    if "meta" not in arrays:
        raise UsageError(f"{path} is not a minirev model file (it has no 'meta' entry)")
    meta = json.loads(str(arrays["meta"]))
    _check_format(meta, path)
    classes = Model.registry
    if meta["kind"] not in classes:
        raise UsageError(f"{path} holds an unknown model kind {meta['kind']!r}")
    model = classes[meta["kind"]](**meta["config"], dtype=np.dtype(meta["dtype"]), backend=backend)
    _set_params(model, {k[6:]: v for k, v in arrays.items() if k.startswith("param.")}, path)
    return model


def _check_format(meta, path):
    if meta.get("format", 0) > FORMAT_VERSION:
        raise UsageError(f"{path} was written by a newer minirev (format {meta['format']}, this one reads "
                         f"up to {FORMAT_VERSION}): upgrade minirev")


def _set_params(model, params, path):
    for name, value in model.params.items():
        if name not in params or params[name].shape != tuple(value.shape):
            got = params[name].shape if name in params else "nothing"
            raise UsageError(f"{path}: parameter {name} should have shape {tuple(value.shape)}, found {got}")
        model.params[name] = to_backend(model.xp, params[name], model.dtype)


# --------------------------------------------------------------------------- a training run

def save_run(folder, trainer, config):
    os.makedirs(folder, exist_ok=True)
    model, opt = trainer.model, trainer.optimizer
    arrays = {f"param.{k}": v for k, v in model.host_params().items()}
    opt_state = opt.state_dict()
    arrays.update({f"opt.{k}": to_numpy(v) for k, v in opt_state.items() if k != "t"})
    name = f"arrays-{trainer.step:09d}.npz"
    digest = hashlib.sha256()

    def write_arrays(f):
        np.savez(f, **arrays)

    atomic_write(os.path.join(folder, name), write_arrays)
    with open(os.path.join(folder, name), "rb") as f:
        digest.update(f.read())
    state = dict(format=FORMAT_VERSION, kind=model.kind, model_config=model.config, dtype=model.dtype.name,
                 config=config.identity(), epoch=trainer.epoch, step=trainer.step,
                 seconds=trainer.seconds, history=trainer.history, optimizer=dict(name=opt.name, t=opt.t),
                 rng=dict(shuffle=trainer.shuffle_rng.bit_generator.state,
                          dropout=trainer.dropout_rng.bit_generator.state),
                 arrays=name, sha256=digest.hexdigest())
    atomic_write(os.path.join(folder, "state.json"), lambda f: f.write(json.dumps(state).encode()))
    for old in os.listdir(folder):                       # older arrays are no longer named by state.json
        if old.startswith("arrays-") and old != name:
            os.remove(os.path.join(folder, old))
    return folder


def load_run(folder, trainer, config):
    """Restore a Trainer (model, optimiser, generators, history) saved by save_run."""
    path = os.path.join(folder, "state.json")
    if not os.path.isdir(folder):
        raise UsageError(f"--resume {folder}: no such folder (start a run with --save {folder} first)")
    if not os.path.isfile(path):
        raise UsageError(f"--resume {folder}: no state.json inside, so it is not a minirev checkpoint folder")
    try:
        with open(path) as f:
            state = json.load(f)
    except (ValueError, UnicodeDecodeError):
        raise UsageError(f"{path} is truncated or corrupted (not valid JSON)") from None
    _check_format(state, path)
    for key, value in config.identity().items():
        if state["config"].get(key) != value:
            flag = "--" + key.replace("_", "-")
            raise UsageError(f"checkpoint {folder} was made with {flag} {state['config'].get(key)}, this run "
                             f"asks for {value}: pass the same options or resume another folder")
    arrays_path = os.path.join(folder, state["arrays"])
    if not os.path.isfile(arrays_path):
        raise UsageError(f"{arrays_path}, named by state.json, is missing")
    with open(arrays_path, "rb") as f:
        if hashlib.sha256(f.read()).hexdigest() != state["sha256"]:
            raise UsageError(f"{arrays_path} is corrupted (its SHA-256 differs from the one in state.json)")
    arrays = _read_npz(arrays_path)
    _set_params(trainer.model, {k[6:]: v for k, v in arrays.items() if k.startswith("param.")}, arrays_path)
    opt_state = {k[4:]: v for k, v in arrays.items() if k.startswith("opt.")}
    opt_state["t"] = state["optimizer"]["t"]
    trainer.optimizer.load_state_dict(opt_state, trainer.model.xp)
    trainer.shuffle_rng.bit_generator.state = state["rng"]["shuffle"]
    trainer.dropout_rng.bit_generator.state = state["rng"]["dropout"]
    trainer.epoch, trainer.step, trainer.seconds = state["epoch"], state["step"], state["seconds"]
    trainer.history = state["history"]
    return trainer
