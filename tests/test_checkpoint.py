"""Save and resume: bit-identical continuation, and clear errors for a bad checkpoint."""
import hashlib
import io
import json
import os
import zipfile

import numpy as np
import pytest

from minirev.machinery.checkpoint import load_model, save_model
from minirev.config import RunConfig
from minirev.errors import UsageError
from minirev.running import run_experiment
from records import first_difference

pytestmark = pytest.mark.train

SMALL = RunConfig(layers=1, width=16, heads=2, batch_size=16, vocab=40, seed=3)


def files_changed(before, after):
    """The names whose bytes differ between two {name: bytes} snapshots of a folder (added and removed too)."""
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))


def run(epochs, **extra):
    result, runs = run_experiment(SMALL.replace(epochs=epochs, **extra), out=None)
    return result, runs[0]["trainer"]


def test_resumed_run_is_bit_identical_to_an_uninterrupted_one(tmp_path):
    _, whole = run(6)
    run(3, save=str(tmp_path / "ck"))
    _, resumed = run(6, resume=str(tmp_path / "ck"))
    for name, value in whole.model.params.items():
        assert np.array_equal(value, resumed.model.params[name]), f"{name} differs after resuming"
    assert whole.history == resumed.history, (
        f"the resumed run's history differs: {first_difference(whole.history, resumed.history)}")
    assert resumed.epoch == 6 and resumed.step == whole.step, (
        f"the resumed run ends at epoch {resumed.epoch}, step {resumed.step}; "
        f"the uninterrupted one at epoch 6, step {whole.step}")
    for name in whole.optimizer.m:
        assert np.array_equal(whole.optimizer.m[name], resumed.optimizer.m[name]), (
            f"AdamW's first moment m[{name}] differs after resuming")


def test_save_every_keeps_one_complete_checkpoint(tmp_path):
    run(4, save=str(tmp_path / "ck"), save_every=1)
    files = sorted(os.listdir(tmp_path / "ck"))
    assert files[-1] == "state.json" and len(files) == 2, f"one arrays file and state.json, got {files}"
    state = json.loads((tmp_path / "ck" / "state.json").read_text())
    assert state["epoch"] == 4 and state["arrays"] == files[0], (
        f"state.json should record epoch 4 and name the arrays file {files[0]}: "
        f"epoch {state['epoch']!r}, arrays {state['arrays']!r}")


@pytest.fixture
def checkpoint(tmp_path):
    run(2, save=str(tmp_path / "ck"))
    return tmp_path / "ck"


@pytest.mark.parametrize("change, message", [
    pytest.param(dict(width=32), "made with --width 16, this run asks for 32", id="width=32"),
    pytest.param(dict(model="bilinear"), "made with --model gpt", id="model=bilinear"),
    pytest.param(dict(vocab=80), "made with --vocab 40", id="vocab=80"),
    pytest.param(dict(seed=4), "made with --seed 3", id="seed=4"),
])
def test_resuming_with_other_options_names_what_differs(checkpoint, change, message):
    cfg = SMALL.replace(epochs=4, resume=str(checkpoint), **change)
    if "model" in change:       # the GPT's sizes do not apply to another model: give only what it takes
        cfg = RunConfig.from_dict({k: v for k, v in cfg.to_dict().items() if k not in ("layers", "heads")})
    with pytest.raises(UsageError, match=message):
        run_experiment(cfg, out=None)


def corrupt(folder, how):
    state_path = folder / "state.json"
    state = json.loads(state_path.read_text())
    arrays = folder / state["arrays"]
    if how == "truncated arrays":
        arrays.write_bytes(arrays.read_bytes()[:100])
    elif how == "flipped byte":
        data = bytearray(arrays.read_bytes())
        data[len(data) // 2] ^= 0xFF
        arrays.write_bytes(bytes(data))
    elif how == "truncated state":
        state_path.write_text(state_path.read_text()[:50])
    elif how == "newer format":
        state_path.write_text(json.dumps(dict(state, format=99)))
    elif how == "missing arrays":
        arrays.unlink()


DAMAGES = [("truncated arrays", "corrupted"), ("flipped byte", "corrupted"),
           ("truncated state", "truncated or corrupted"), ("newer format", "newer minirev"),
           ("missing arrays", "is missing")]


@pytest.mark.parametrize("how, message", DAMAGES, ids=[how for how, _ in DAMAGES])
def test_a_damaged_checkpoint_is_refused_and_left_in_place(checkpoint, how, message):
    corrupt(checkpoint, how)
    before = {p.name: p.read_bytes() for p in checkpoint.iterdir()}
    with pytest.raises(UsageError, match=message) as info:
        run(4, resume=str(checkpoint))
    assert "\n" not in str(info.value), f"the refusal should be one line, got:\n{info.value}"
    after = {p.name: p.read_bytes() for p in checkpoint.iterdir()}
    assert after == before, f"nothing may be overwritten, but {files_changed(before, after)} changed"


def set_arrays(folder, state, data):
    """Replace the arrays file with `data` (bytes, or a dict saved as .npz) and give state.json its hash."""
    path = folder / state["arrays"]
    if isinstance(data, dict):
        np.savez(path, **data)
    else:
        path.write_bytes(data)
    state["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()


def arrays_of(folder, state):
    with np.load(folder / state["arrays"]) as z:
        return {k: z[k] for k in z.files}


def huge_header_npz():
    """An .npz whose only member claims 10**11 float32 (400 GB) and holds 16 bytes."""
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, {"descr": "<f4", "fortran_order": False, "shape": (10 ** 11,)})
    member.write(bytes(16))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("param.wte.npy", member.getvalue())
    return out.getvalue()


def outside(folder, state):
    (folder.parent / "outside.npz").write_bytes((folder / state["arrays"]).read_bytes())
    state["arrays"] = "../outside.npz"


def without(*keys):
    return lambda folder, state: [state.pop(k) for k in keys]


def setting(path, value):
    def edit(folder, state):
        *parents, last = path.split(".")
        d = state
        for p in parents:
            d = d[p]
        d[last] = value
    return edit


def replaced_arrays(change):
    def edit(folder, state):
        arrays = arrays_of(folder, state)
        change(arrays)
        set_arrays(folder, state, arrays)
    return edit


TAMPERED = [  # (the test's id, how the checkpoint is edited, what the refusal says)
    ("step a string", setting("step", "12"), "'step' should be a whole number"),
    ("epoch a string", setting("epoch", "2"), "'epoch' should be a whole number"),
    ("format a string", setting("format", "2"), "'format' should be a whole number"),
    ("format null", setting("format", None), "'format' should be a whole number"),
    ("optimizer.t a string", setting("optimizer.t", "12"), "'optimizer' should hold a name"),
    ("no config", without("config"), "'config' is missing"),
    ("no arrays", without("arrays"), "'arrays' is missing"),
    ("no sha256", without("sha256"), "'sha256' is missing"),
    ("no rng", without("rng"), "'rng' is missing"),
    ("no optimizer", without("optimizer"), "'optimizer' is missing"),
    ("history a string", setting("history", "[]"), "'history' should be a list"),
    ("history an object", setting("history", {}), "'history' should be a list"),
    ("history null", setting("history", None), "'history' should be a list"),
    ("history empty", setting("history", []), "the history has 0 records"),
    ("history record's epoch a string", setting("history", [{"epoch": "0", "step": 0}]),
     "each history record should be an object"),
    ("rng.shuffle empty", setting("rng.shuffle", {}), "rng.shuffle is not a PCG64 generator state"),
    ("config.width a string", setting("config.width", "16"),
     "config.width is '16' .a str., where this run's --width is a int"),
    ("step 10**30", setting("step", 10 ** 30), "step 1000000000000000000000000000000 does not match epoch 2"),
    ("step -1", setting("step", -1), "step -1 does not match"),
    ("epoch 10**9", setting("epoch", 10 ** 9), "epoch 1000000000 is outside 0..1000000"),
    ("epoch -5", setting("epoch", -5), "epoch -5 is outside"),
    ("batch 99", setting("batch", 99), "batch 99 is outside 0..1"),
    ("seconds -1", setting("seconds", -1.0), "'seconds' should be a finite number"),
    ("arrays file not there", setting("arrays", "arrays-000000099.npz"),
     "names the arrays file 'arrays-000000099.npz'"),
    ("arrays file outside the folder", outside, "names the arrays file '../outside.npz'"),
    ("arrays file an absolute path", setting("arrays", "/etc/passwd"), "names the arrays file '/etc/passwd'"),
    ("arrays not an npz", lambda folder, state: set_arrays(folder, state, np.lib.format.magic(1, 0) + bytes(100)),
     "not a readable minirev file"),
    ("arrays claim 400 GB", lambda folder, state: set_arrays(folder, state, huge_header_npz()), "claims 400 GB"),
    ("no optimizer arrays", replaced_arrays(lambda a: [a.pop(k) for k in list(a) if k.startswith("opt.")]),
     "lacks opt.m"),
    ("optimizer moments cut short",
     replaced_arrays(lambda a: a.update({k: a[k][:1] for k in a if k.startswith("opt.m.")})),
     "should be floats of shape"),
    ("param.wte strings", replaced_arrays(lambda a: a.update({"param.wte": np.full(a["param.wte"].shape, "x")})),
     "param.wte should be floats"),
    ("param.wte int8", replaced_arrays(lambda a: a.update({"param.wte": a["param.wte"].astype(np.int8)})),
     "param.wte should be floats"),
    ("an extra array", replaced_arrays(lambda a: a.update({"extra": np.zeros(3)})), "has unexpected extra"),
]


@pytest.mark.parametrize("edit, message", [pytest.param(edit, message, id=name)
                                           for name, edit, message in TAMPERED])
def test_a_tampered_checkpoint_is_refused_in_one_line(checkpoint, edit, message):
    state = json.loads((checkpoint / "state.json").read_text())
    edit(checkpoint, state)
    (checkpoint / "state.json").write_text(json.dumps(state))
    before = {p.name: p.read_bytes() for p in checkpoint.iterdir()}
    with pytest.raises(UsageError, match=message) as info:
        run(4, resume=str(checkpoint))
    assert "\n" not in str(info.value), f"the refusal should be one line, got:\n{info.value}"
    after = {p.name: p.read_bytes() for p in checkpoint.iterdir()}
    assert after == before, f"nothing may be overwritten, but {files_changed(before, after)} changed"


@pytest.mark.parametrize("text", ["[]", "null", "5", '"a string"', "[" * 200000 + "]" * 200000],
                         ids=["a list", "null", "a number", "a string", "a list nested 200000 deep"])
def test_a_state_file_that_is_not_an_object_is_refused(checkpoint, text):
    (checkpoint / "state.json").write_text(text)
    with pytest.raises(UsageError, match="not a checkpoint|not valid JSON"):
        run(4, resume=str(checkpoint))


def test_model_save_and_load_round_trip(tmp_path):
    _, trainer = run(1)
    path = save_model(trainer.model, str(tmp_path / "m.npz"))
    twin = load_model(path)
    assert twin.kind == "gpt" and twin.config == trainer.model.config, (
        f"the loaded model should be the saved gpt: kind {twin.kind!r}, config {twin.config} "
        f"vs {trainer.model.config}")
    for name, value in trainer.model.params.items():
        assert np.array_equal(value, twin.params[name]) and twin.params[name].dtype == value.dtype, (
            f"{name} differs after save and load: dtype {twin.params[name].dtype} (saved {value.dtype}), "
            f"same values: {np.array_equal(value, twin.params[name])}")
    (tmp_path / "bad.npz").write_bytes(b"not a zip file")
    with pytest.raises(UsageError, match="truncated or corrupted"):
        load_model(str(tmp_path / "bad.npz"))


def test_a_checkpoint_of_format_2_still_resumes(tmp_path):
    """Format 2 stored no optimiser name (null: the model's own) and AdamW's 0.01 as the decay of every run,
    which SGD then ignored, and had no paper field: such a checkpoint resumes as the run it was."""
    for cfg in (SMALL, RunConfig(model="one-layer", vocab=40, seed=3, eval_every=2)):
        folder = tmp_path / cfg.model
        run_experiment(cfg.replace(epochs=2, save=str(folder)), out=None)
        state = json.loads((folder / "state.json").read_text())
        state["format"] = 2
        state["config"].update(optimizer=None, weight_decay=0.01)
        state["config"].pop("paper", None)
        (folder / "state.json").write_text(json.dumps(state))
        result, runs = run_experiment(cfg.replace(epochs=3, resume=str(folder)), out=None)
        assert runs[0]["trainer"].epoch == 3, f"{cfg.model}: the format-2 checkpoint did not resume to epoch 3"
