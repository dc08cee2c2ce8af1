"""Save and resume: bit-identical continuation, and clear errors for a bad checkpoint."""
import json
import os

import numpy as np
import pytest

from minirev.checkpoint import load_model, save_model
from minirev.config import RunConfig
from minirev.errors import UsageError
from minirev.experiments import run_experiment

pytestmark = pytest.mark.train

SMALL = RunConfig(layers=1, width=16, heads=2, batch_size=16, vocab=40, seed=3)


def run(epochs, **extra):
    result, runs = run_experiment(SMALL.replace(epochs=epochs, **extra), out=None)
    return result, runs[0]["trainer"]


def test_resumed_run_is_bit_identical_to_an_uninterrupted_one(tmp_path):
    _, whole = run(6)
    run(3, save=str(tmp_path / "ck"))
    _, resumed = run(6, resume=str(tmp_path / "ck"))
    for name, value in whole.model.params.items():
        assert np.array_equal(value, resumed.model.params[name]), f"{name} differs after resuming"
    assert whole.history == resumed.history
    assert resumed.epoch == 6 and resumed.step == whole.step
    for name in whole.optimizer.m:
        assert np.array_equal(whole.optimizer.m[name], resumed.optimizer.m[name])


def test_save_every_keeps_one_complete_checkpoint(tmp_path):
    run(4, save=str(tmp_path / "ck"), save_every=1)
    files = sorted(os.listdir(tmp_path / "ck"))
    assert files[-1] == "state.json" and len(files) == 2, f"one arrays file and state.json, got {files}"
    state = json.loads((tmp_path / "ck" / "state.json").read_text())
    assert state["epoch"] == 4 and state["arrays"] == files[0]


@pytest.fixture
def checkpoint(tmp_path):
    run(2, save=str(tmp_path / "ck"))
    return tmp_path / "ck"


@pytest.mark.parametrize("change, message", [
    (dict(width=32), "made with --width 16, this run asks for 32"),
    (dict(model="bilinear"), "made with --model gpt"),
    (dict(vocab=80), "made with --vocab 40"),
    (dict(seed=4), "made with --seed 3"),
])
def test_resuming_with_other_options_names_what_differs(checkpoint, change, message):
    with pytest.raises(UsageError, match=message):
        run(4, resume=str(checkpoint), **change)


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


@pytest.mark.parametrize("how, message", [
    ("truncated arrays", "corrupted"), ("flipped byte", "corrupted"), ("truncated state", "truncated or corrupted"),
    ("newer format", "newer minirev"), ("missing arrays", "is missing")])
def test_a_damaged_checkpoint_is_refused_and_left_in_place(checkpoint, how, message):
    corrupt(checkpoint, how)
    before = {p.name: p.read_bytes() for p in checkpoint.iterdir()}
    with pytest.raises(UsageError, match=message) as info:
        run(4, resume=str(checkpoint))
    assert "\n" not in str(info.value)
    assert {p.name: p.read_bytes() for p in checkpoint.iterdir()} == before, "nothing may be overwritten"


def test_model_save_and_load_round_trip(tmp_path):
    _, trainer = run(1)
    path = save_model(trainer.model, str(tmp_path / "m.npz"))
    twin = load_model(path)
    assert twin.kind == "gpt" and twin.config == trainer.model.config
    for name, value in trainer.model.params.items():
        assert np.array_equal(value, twin.params[name]) and twin.params[name].dtype == value.dtype
    (tmp_path / "bad.npz").write_bytes(b"not a zip file")
    with pytest.raises(UsageError, match="truncated or corrupted"):
        load_model(str(tmp_path / "bad.npz"))
