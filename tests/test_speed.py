"""The speed-ups keep the numbers: one flat parameter buffer, the flat optimiser, the fast layer twins.

Run only these with: pytest tests/test_speed.py
"""
import pickle

import autograd.numpy as anp
import numpy as np
import pytest

import minirev.model
import minirev.optim
from minirev import fast_layers, layers
from minirev.errors import UsageError
from minirev.gpt import GPT, ops_for
from minirev.mlm import MaskedGPT
from minirev.model import FlatParams
from minirev.optim import SGD, AdamW

pytestmark = pytest.mark.train


def small_gpt(**kw):
    return GPT(13, layers=2, width=16, heads=4, max_len=5, seed=0, **kw)


# --------------------------------------------------------------------------- the flat buffer

def test_parameters_are_views_into_one_flat_buffer():
    model = small_gpt()
    params, flat = model.params, model.params.flat
    assert flat.ndim == 1 and flat.size == model.num_params()
    start = 0
    for name, p in params.items():                    # in order, back to back
        assert np.shares_memory(p, flat) and np.array_equal(p.ravel(), flat[start:start + p.size]), name
        start += p.size
    params["wte"] = np.ones(params["wte"].shape)      # copied INTO the view: still one buffer
    assert params.flat is flat and np.shares_memory(params["wte"], flat) and flat[:params["wte"].size].min() == 1
    with pytest.raises(UsageError, match="does not fit"):
        params["wte"] = np.ones((2, 2))
    with pytest.raises(UsageError, match="does not fit"):
        params["new"] = np.ones(3)


def test_copies_and_pickles_get_their_own_flat_buffer():
    model = small_gpt()
    for twin in (model.copy(), pickle.loads(pickle.dumps(model)), model.copy(dtype=np.float64)):
        assert isinstance(twin.params, FlatParams) and not np.shares_memory(twin.params.flat, model.params.flat)
        assert all(np.shares_memory(v, twin.params.flat) for v in twin.params.values())
        assert all(np.array_equal(twin.params[k], model.params[k]) for k in model.params)
    model.params = {k: v * 2 for k, v in model.params.items()}        # assigning a dict repacks it
    assert isinstance(model.params, FlatParams) and np.shares_memory(model.params["wte"], model.params.flat)


@pytest.mark.parametrize("kw", [dict(), dict(tied=True), dict(pos="rotary", dropout=0.0), dict(pos="none", tied=True),
                                dict(masked=True)])
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
    assert isinstance(grads, FlatParams) and grads.keys() == model.params.keys() and grads.flat is model._grads.flat
    assert copies == []                                   # tied too: the lookup's part adds in place
    _, cache = model.forward(model.params, tokens, np, np.random.default_rng(3))
    plain = model.backward(cache)                         # new arrays
    assert all(not np.shares_memory(plain[k], grads.flat) and np.array_equal(grads[k], plain[k]) for k in plain)


def test_a_model_with_no_backward_says_so():
    class Empty(GPT):
        backward_into = minirev.model.Model.backward_into
    model = Empty(13, layers=1, width=8, heads=2, max_len=5)
    with pytest.raises(NotImplementedError, match="neither backward nor backward_into"):
        model.loss_and_grads(np.zeros((2, 5), dtype=int))


@pytest.mark.parametrize("make", [lambda: AdamW(lr=0.01, weight_decay=0.1), lambda: SGD(lr=0.5)])
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
    assert all(np.array_equal(flat_model.params[k], loop_params[k]) for k in loop_params)
    if isinstance(flat_opt, AdamW):
        assert isinstance(flat_opt.m, FlatParams) and not isinstance(loop_opt.m, FlatParams)
        assert all(np.array_equal(flat_opt.v[k], loop_opt.v[k]) for k in loop_params)


# --------------------------------------------------------------------------- the fast twins

def pairing_grads(fwd, bwd, inputs, rng):
    out, cache = fwd(np, *inputs)
    return out, bwd(rng.standard_normal(out.shape), cache)


def test_layernorm_twins_agree_in_all_four_pairings():
    rng = np.random.default_rng(0)
    x, g, b = rng.standard_normal((4, 3, 8)), rng.standard_normal(8), rng.standard_normal(8)
    results = [pairing_grads(f, bw, (x, g, b), np.random.default_rng(1))
               for f in (layers.layernorm_forward, fast_layers.layernorm_forward)
               for bw in (layers.layernorm_backward, fast_layers.layernorm_backward)]
    out0, grads0 = results[0]
    for out, grads in results[1:]:
        assert np.allclose(out, out0, rtol=1e-12, atol=1e-12)
        assert all(np.allclose(a, b, rtol=1e-10, atol=1e-12) for a, b in zip(grads, grads0))


@pytest.mark.parametrize("name", ["linear_forward", "gelu_forward"])
def test_forward_twins_agree_and_feed_the_plain_backward(name):
    rng = np.random.default_rng(0)
    inputs = (rng.standard_normal((4, 3, 8)),) + ((rng.standard_normal((8, 5)), rng.standard_normal(5))
                                                    if name == "linear_forward" else ())
    bwd = getattr(layers, name.replace("forward", "backward"))
    (o1, g1), (o2, g2) = (pairing_grads(getattr(m, name), bwd, inputs, np.random.default_rng(1))
                          for m in (layers, fast_layers))
    assert np.allclose(o1, o2, rtol=1e-12, atol=1e-14)
    for a, b in zip(g1 if isinstance(g1, tuple) else [g1], g2 if isinstance(g2, tuple) else [g2]):
        assert np.allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("rotary", [False, True])
def test_attention_twin_agrees_and_feeds_the_plain_backward(rotary):
    rng = np.random.default_rng(0)
    B, T, C, H = 3, 5, 8, 2
    args = (rng.standard_normal((B, T, C)), rng.standard_normal((C, 3 * C)), rng.standard_normal(3 * C),
            rng.standard_normal((C, C)), rng.standard_normal(C), H,
            layers.rotary_tables(T, C // H, np.float64, np) if rotary else None,
            (rng.random((B, H, T, T)) > 0.2) / 0.8)
    dout = rng.standard_normal((B, T, C))
    (o1, c1), (o2, c2) = layers.attention_forward(np, *args), fast_layers.attention_forward(np, *args)
    assert np.allclose(o1, o2, rtol=1e-12, atol=1e-12)
    for a, b in zip(layers.attention_backward(dout, c1), layers.attention_backward(dout, c2)):
        assert np.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_the_gpt_trains_with_the_twins_and_autograd_traces_the_plain_pairs():
    assert ops_for(np) is fast_layers and ops_for(anp) is layers


def backward_twin_cases(rng):
    """(name, plain backward, fast twin, cache, dout, number of parameter gradients) for each twin."""
    f = rng.standard_normal
    x, w, b = f((4, 3, 8)), f((8, 5)), f(5)
    tokens = np.array([[1, 2, 1], [0, 1, 6]])
    attn = (f((3, 5, 8)), f((8, 24)), f(24), f((8, 8)), f(8), 2, None, (rng.random((3, 2, 5, 5)) > 0.2) / 0.8)
    rot = attn[:6] + (layers.rotary_tables(5, 4, np.float64, np),) + attn[7:]
    return [("linear", layers.linear_backward, fast_layers.linear_backward,
             layers.linear_forward(np, x, w, b)[1], f((4, 3, 5)), 2),
            ("layernorm", layers.layernorm_backward, fast_layers.layernorm_backward,
             layers.layernorm_forward(np, x, f(8), f(8))[1], f((4, 3, 8)), 2),
            ("unembedding", layers.unembedding_backward, fast_layers.unembedding_backward,
             layers.unembedding_forward(np, f((6, 8)), f((7, 8)))[1], f((6, 7)), 1),
            ("embedding", layers.embedding_backward, fast_layers.embedding_backward,
             layers.embedding_forward(np, tokens, f((7, 4)))[1], f((2, 3, 4)), 1),
            ("positions", layers.position_embedding_backward, fast_layers.position_embedding_backward,
             layers.position_embedding_forward(np, f((2, 3, 4)), f((5, 4)))[1], f((2, 3, 4)), 1),
            ("attention", layers.attention_backward, fast_layers.attention_backward,
             layers.attention_forward(np, *attn)[1], f((3, 5, 8)), 4),
            ("attention rotary", layers.attention_backward, fast_layers.attention_backward,
             layers.attention_forward(np, *rot)[1], f((3, 5, 8)), 4)]


@pytest.mark.parametrize("case", range(7))
def test_backward_twins_agree_with_the_plain_pairs_and_write_where_told(case):
    name, plain, twin, cache, dout, n = backward_twin_cases(np.random.default_rng(case))[case]
    want = plain(dout, cache)
    want = want if isinstance(want, tuple) else (want,)
    if name == "positions":
        want = want[1:]                                   # dx is dout itself
    got = twin(dout, cache)
    got = got if isinstance(got, tuple) else (got,)
    got = got[-n:]
    assert len(got) == len(want[-n:])
    for a, b in zip(got, want[-n:]):                      # the parameter gradients
        assert np.allclose(a, b, rtol=1e-12, atol=1e-12), name
    if len(want) > n:                                     # the input gradient
        assert np.allclose(twin(dout, cache)[0], want[0], rtol=1e-12, atol=1e-12), name
    outs = [np.full(a.shape, np.nan) for a in want[-n:]]  # stale buffers: every number is overwritten
    written = twin(dout, cache, *outs)
    written = written if isinstance(written, tuple) else (written,)
    for out, w_, b in zip(outs, written[-n:], want[-n:]):
        assert w_ is out and np.allclose(out, b, rtol=1e-12, atol=1e-12), name


def test_same_bits_tells_an_unchanged_package_from_a_changed_one(tmp_path, capsys):
    """benchmarks/same_bits.py, which backs the README's "the same bits as before", can fail."""
    import importlib.util
    import pathlib
    import shutil
    repo = pathlib.Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("same_bits", repo / "benchmarks" / "same_bits.py")
    same_bits = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(same_bits)
    assert same_bits.main(["--code", str(repo), "--steps", "1"]) == 0
    assert "0 of 12 variants differ" in capsys.readouterr().out
    shutil.copytree(repo / "minirev", tmp_path / "minirev", ignore=shutil.ignore_patterns("__pycache__"))
    optim = tmp_path / "minirev" / "optim.py"
    optim.write_text(optim.read_text().replace("eps=1e-8", "eps=1.1e-8"))     # a change of AdamW's eps
    assert same_bits.main(["--code", str(tmp_path), "--steps", "1"]) == 1
    assert "12 of 12 variants differ" in capsys.readouterr().out
