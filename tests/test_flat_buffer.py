"""The flat buffers keep the numbers: parameters and gradients as views of one buffer each, the flat optimiser.

Run only these with: pytest tests/test_flat_buffer.py (or pytest -m train)
"""
import pickle

import numpy as np
import pytest

import minirev.model
import minirev.optim
from minirev.errors import UsageError
from minirev.gpt import GPT
from minirev.mlm import MaskedGPT
from minirev.model import FlatParams
from minirev.optim import SGD, AdamW

pytestmark = pytest.mark.train


def small_gpt(**kw):
    return GPT(13, layers=2, width=16, heads=4, max_len=5, seed=0, **kw)


def differing(a, b):
    """The names whose arrays differ in any bit between two dicts of arrays."""
    return [k for k in b if not np.array_equal(a[k], b[k])]


def test_parameters_are_views_into_one_flat_buffer():
    model = small_gpt()
    params, flat = model.params, model.params.flat
    assert flat.ndim == 1 and flat.size == model.num_params(), \
        f"flat buffer of shape {flat.shape}, expected ({model.num_params()},)"
    start = 0
    for name, p in params.items():                    # in order, back to back
        assert np.shares_memory(p, flat), f"{name} is not a view of the flat buffer"
        assert np.array_equal(p.ravel(), flat[start:start + p.size]), \
            f"{name} is not at offset {start} of the flat buffer"
        start += p.size
    params["wte"] = np.ones(params["wte"].shape)      # copied INTO the view: still one buffer
    assert params.flat is flat and np.shares_memory(params["wte"], flat), "assigning wte replaced its view"
    assert flat[:params["wte"].size].min() == 1, "assigning wte did not write into the flat buffer"
    with pytest.raises(UsageError, match="does not fit"):
        params["wte"] = np.ones((2, 2))
    with pytest.raises(UsageError, match="does not fit"):
        params["new"] = np.ones(3)


@pytest.mark.parametrize("how", ["copy", "pickle", "float64"])
def test_copies_and_pickles_get_their_own_flat_buffer(how):
    model = small_gpt()
    other = {"copy": model.copy, "pickle": lambda: pickle.loads(pickle.dumps(model)),
             "float64": lambda: model.copy(dtype=np.float64)}[how]()
    assert isinstance(other.params, FlatParams), f"{how}: params are a {type(other.params).__name__}"
    assert not np.shares_memory(other.params.flat, model.params.flat), f"{how}: shares the original's buffer"
    shared = [k for k, v in other.params.items() if not np.shares_memory(v, other.params.flat)]
    assert not shared, f"{how}: {shared} are not views of its own flat buffer"
    assert not differing(other.params, model.params), f"{how}: {differing(other.params, model.params)} changed"


def test_assigning_a_dict_repacks_it_into_the_flat_buffer():
    model = small_gpt()
    model.params = {k: v * 2 for k, v in model.params.items()}
    assert isinstance(model.params, FlatParams), f"params are a {type(model.params).__name__} after assigning"
    assert np.shares_memory(model.params["wte"], model.params.flat), "wte is not a view of the new flat buffer"


@pytest.mark.parametrize("kw", [dict(), dict(tied=True), dict(pos="rotary", dropout=0.0), dict(pos="none", tied=True),
                                dict(masked=True)],
                         ids=["untied", "tied", "rotary-no-dropout", "no-positions-tied", "masked"])
def test_gradients_are_written_straight_into_a_flat_buffer(kw, monkeypatch):
    """The GPT's backward writes every gradient into its view of the buffer: no copy, no stale number."""
    kw = dict(kw)
    model = (MaskedGPT(14, layers=2, width=16, heads=4, max_len=5, seed=0) if kw.pop("masked", False)
             else small_gpt(**kw))
    tokens = np.random.default_rng(0).integers(0, 13, (6, 5))
    copies = []
    setitem = FlatParams.__setitem__

    def counting(self, name, value):
        if value is not dict.get(self, name):             # not its own view: a copy into the buffer
            copies.append(name)
        setitem(self, name, value)
    model._grads.flat[:] = np.nan                         # whatever the last step left must not leak in
    monkeypatch.setattr(FlatParams, "__setitem__", counting)
    _, grads = model.loss_and_grads(tokens, rng=np.random.default_rng(3))
    monkeypatch.undo()
    assert isinstance(grads, FlatParams) and grads.flat is model._grads.flat, "the gradients left their buffer"
    assert grads.keys() == model.params.keys(), f"gradients for {sorted(grads)}, parameters {sorted(model.params)}"
    assert copies == [], f"these gradients were made as new arrays and copied in: {copies}"
    stale = [k for k, v in grads.items() if np.isnan(v).any()]
    assert not stale, f"numbers of the last step left in (NaN) in {stale}"
    _, cache = model.forward(model.params, tokens, np, np.random.default_rng(3))
    new = model.backward(cache)                           # new arrays
    shared = [k for k in new if np.shares_memory(new[k], grads.flat)]
    assert not shared, f"backward() returned views of the gradient buffer for {shared}"
    assert not differing(grads, new), f"written in place and into new arrays differ in {differing(grads, new)}"


def test_a_model_with_no_backward_says_so():
    class Empty(GPT):
        backward_into = minirev.model.Model.backward_into
    model = Empty(13, layers=1, width=8, heads=2, max_len=5)
    with pytest.raises(NotImplementedError, match="neither backward nor backward_into"):
        model.loss_and_grads(np.zeros((2, 5), dtype=int))


@pytest.mark.parametrize("make", [lambda: AdamW(lr=0.01, weight_decay=0.1), lambda: SGD(lr=0.5)],
                         ids=["adamw", "sgd"])
def test_the_flat_update_gives_the_same_bits_as_the_loop_over_tensors(make, monkeypatch):
    monkeypatch.setattr(minirev.optim, "CHUNK", 100)        # chunk edges fall inside the tensors
    flat_model, loop_model = small_gpt(dropout=0.0), small_gpt(dropout=0.0)
    loop_params = {k: v.copy() for k, v in loop_model.params.items()}   # a plain dict: the per-tensor path
    flat_opt, loop_opt = make(), make()
    rng = np.random.default_rng(1)
    for _ in range(3):
        tokens = rng.integers(0, 13, (6, 5))
        _, grads = flat_model.loss_and_grads(tokens)
        flat_opt.step(flat_model.params, grads)
        loop_model.params = loop_params
        _, grads = loop_model.loss_and_grads(tokens)
        loop_opt.step(loop_params, {k: v.copy() for k, v in grads.items()})
    assert not differing(flat_model.params, loop_params), \
        f"flat and per-tensor updates differ in {differing(flat_model.params, loop_params)}"
    if isinstance(flat_opt, AdamW):
        assert isinstance(flat_opt.m, FlatParams), f"AdamW's m is a {type(flat_opt.m).__name__}, not flat"
        assert not isinstance(loop_opt.m, FlatParams), "the per-tensor AdamW's m is flat"
        assert not differing(flat_opt.v, loop_opt.v), f"AdamW's v differs in {differing(flat_opt.v, loop_opt.v)}"
