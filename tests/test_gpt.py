"""The multi-layer GPT (paper's Model 3): every gradient against autograd, the bad
inputs it refuses, and a tiny memorisation run. Run only these with: pytest -m gpt
"""
import numpy as np
import pytest

from minirev.errors import UsageError
from minirev.gpt import GPT
from minirev.gradcheck import check_layer, check_model
from minirev.optim import AdamW
from gradients import TOL, assert_gradients_match as assert_ok

pytestmark = pytest.mark.gpt

V = 13


def sentences(n=4, T=5, seed=1):
    return np.random.default_rng(seed).integers(0, V, (n, T))


def scrambled(model, seed=3):
    """GPT-2's init (std 0.02) makes attention nearly uniform; O(1) random parameters
    make every path (softmax, LayerNorm gains, rotations) carry a visible gradient."""
    rng = np.random.default_rng(seed)
    model.dtype = np.dtype(np.float64)             # first: assigning params packs them in the model's dtype
    model.params = {k: rng.normal(0.0, 0.5, v.shape) + (1.0 if k.endswith(".g") else 0.0)
                    for k, v in model.copy(dtype=np.float64).params.items()}
    return model


# ---- gradients -----------------------------------------------------------------------------

@pytest.mark.parametrize("pos", ["none", "absolute", "rotary"])
@pytest.mark.parametrize("dropout", [0.0, 0.3], ids=["no-dropout", "dropout"])
def test_gradients_match_autograd(pos, dropout):
    model = scrambled(GPT(V, layers=2, width=12, heads=3 if pos != "rotary" else 2, pos=pos,
                          max_len=6, dropout=dropout, entity_len=2, dtype=np.float64))
    assert_ok(check_model(model, sentences(), tol=TOL), f"gpt pos={pos} dropout={dropout}")


def test_gradients_of_the_untied_output_layer():
    model = scrambled(GPT(V, layers=2, width=12, heads=3, max_len=6, entity_len=2, tied=False, dtype=np.float64))
    assert "w_out" in model.params, (
        f"tied=False: the output layer should be its own w_out; parameters {list(model.params)}")
    assert_ok(check_model(model, sentences(), tol=TOL), "gpt tied=False")


def test_gradients_with_one_answer_token_and_real_init():
    model = GPT(V, layers=2, width=8, heads=2, entity_len=1, dropout=0.1, dtype=np.float64)
    assert_ok(check_model(model, sentences(n=6, T=3), tol=TOL), "gpt entity_len=1, GPT-2 init")


def test_backward_logits_matches_autograd():
    model = scrambled(GPT(V, layers=2, width=8, heads=2, pos="rotary", dtype=np.float64))
    tokens, names = sentences(), list(model.params)

    def forward(xp, **params):
        return model.forward_logits(params, tokens, xp)

    def backward(dlogits, cache):
        grads = model.backward_logits(dlogits, cache)
        return tuple(grads[k] for k in names)

    assert_ok(check_layer(forward, backward, dict(model.params), wrt=names, tol=TOL),
              "gpt forward_logits/backward_logits")


def test_the_gpt_trains_with_the_layers_the_gradient_checks_check():
    """One form of each layer: every forward and backward the GPT calls is minirev.layers' own, the
    function tests/test_layers.py hands autograd (no second, faster copy for training)."""
    import minirev.gpt
    import minirev.layers
    called = {n: f for n, f in vars(minirev.gpt).items()
              if n.endswith(("_forward", "_backward")) and callable(f) and f.__module__ != "minirev.gpt"}
    assert {"attention_forward", "attention_backward", "layernorm_forward", "linear_backward",
            "gelu_forward"} <= set(called), f"the GPT's layer functions: {sorted(called)}"
    elsewhere = {n: f.__module__ for n, f in called.items() if getattr(minirev.layers, n, None) is not f}
    assert not elsewhere, f"the GPT calls layer functions that are not minirev.layers' own: {elsewhere}"


# ---- what the model computes ---------------------------------------------------------------

@pytest.mark.parametrize("pos", ["none", "absolute", "rotary"])
def test_logits_are_causal_and_consistent_with_the_loss(pos):
    model = scrambled(GPT(V, layers=2, width=8, heads=2, pos=pos, entity_len=2))
    tokens = sentences()
    full, _ = model.forward_logits(model.params, tokens, np)                    # (B, T, V)
    changed = tokens.copy()
    changed[:, -1] = (changed[:, -1] + 1) % V
    assert np.allclose(full[:, :-1], model.forward_logits(model.params, changed, np)[0][:, :-1]), \
        "changing the last token must not change the logits at earlier positions"
    assert np.allclose(model.logits(tokens), full[:, 2:4]), "logits() = the positions predicting the answer"
    assert np.allclose(model.next_logits(tokens[:, :3]), full[:, 2]), \
        "next_logits() = the logits at the prefix's end"
    logp = full[:, 2:4] - np.log(np.exp(full[:, 2:4]).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, tokens[:, 3:, None], -1).mean()
    assert np.isclose(model.loss(tokens), nll), "the loss is the mean NLL of the last entity_len tokens"


def test_float32_stays_float32_and_dropout_is_seeded():
    model = GPT(V, layers=2, width=8, heads=2, dropout=0.5)
    loss, grads = model.loss_and_grads(sentences(), rng=np.random.default_rng(0))
    for k, g in grads.items():
        assert g.dtype == np.float32, f"no float64 upcasts in the backward: the gradient of {k} is {g.dtype}"
    again = model.loss_and_grads(sentences(), rng=np.random.default_rng(0))[0]
    assert loss == again, f"same seed, same masks: loss {loss!r}, then {again!r}"
    other = model.loss_and_grads(sentences(), rng=np.random.default_rng(1))[0]
    assert loss != other, f"another seed draws other dropout masks, yet seeds 0 and 1 gave the same loss {loss!r}"
    first, second = model.loss(sentences()), model.loss(sentences())
    assert first == second, f"no rng: evaluation, no dropout; two evaluations gave {first!r} and {second!r}"


def test_parameters_and_init_follow_gpt2():
    model = GPT(802, layers=2, width=64, heads=4, seed=1)
    p = model.host_params()
    assert list(p)[:3] == ["wte", "wpe", "h0.ln1.g"], f"GPT-2's order starts wte, wpe, h0.ln1.g: got {list(p)[:3]}"
    assert list(p)[-3:] == ["lnf.g", "lnf.b", "w_out"], f"GPT-2's order ends lnf.g, lnf.b, w_out: got {list(p)[-3:]}"
    assert p["h1.attn.w_qkv"].shape == (64, 192), (
        f"h1.attn.w_qkv is (width, 3 x width) = (64, 192), got {p['h1.attn.w_qkv'].shape}")
    assert p["h1.mlp.w_proj"].shape == (256, 64), (
        f"h1.mlp.w_proj is (4 x width, width) = (256, 64), got {p['h1.mlp.w_proj'].shape}")
    assert abs(p["wte"].std() - 0.02) < 1e-3, f"GPT-2's init: wte has std 0.02, got {p['wte'].std():.4f}"
    assert abs(p["h0.mlp.w_proj"].std() - 0.01) < 1e-3, (
        f"GPT-2's init: a residual projection has std 0.02 / sqrt(2 x layers) = 0.01, got "
        f"{p['h0.mlp.w_proj'].std():.4f}")
    assert np.all(p["h0.ln1.g"] == 1), f"LayerNorm gains start at 1: h0.ln1.g has {np.unique(p['h0.ln1.g'])}"
    assert np.all(p["h0.attn.b_qkv"] == 0), f"biases start at 0: h0.attn.b_qkv has {np.unique(p['h0.attn.b_qkv'])}"
    want = dict(vocab_size=802, layers=2, width=64, heads=4, pos="absolute",
                max_len=16, dropout=0.1, entity_len=1, seed=1, tied=False)
    wrong = [k for k in sorted(model.config.keys() | want.keys()) if model.config.get(k) != want.get(k)]
    assert model.config == want, (
        "config: " + ", ".join(f"{k} {model.config.get(k)!r} (want {want.get(k)!r})" for k in wrong))
    assert "wpe" not in GPT(V, pos="rotary").params, "pos='rotary' has no positional table wpe"


def output_layer_reads(model, name):
    """True when the logits come from the matrix params[name]: zeroing it zeroes every logit."""
    twin = model.copy(dtype=np.float64)
    twin.params[name] = twin.params[name] * 0
    return bool(np.all(twin.logits(sentences()) == 0))


def test_output_layer_is_its_own_matrix_unless_tied():
    untied, tied = GPT(V, layers=1, width=8, heads=2), GPT(V, layers=1, width=8, heads=2, tied=True)
    assert "w_out" in untied.params and output_layer_reads(untied, "w_out"), \
        "by default (the paper's code as it runs) the output layer is its own matrix w_out"
    assert not output_layer_reads(untied, "wte"), "the untied output layer must not read the token embedding"
    assert "w_out" not in tied.params and output_layer_reads(tied, "wte"), "tied=True: the output layer is wte"


def test_the_output_layer_check_catches_a_planted_mistake():
    planted = GPT(V, layers=1, width=8, heads=2)
    planted.out_name = "wte"                       # the mistake: an "untied" model whose head reads wte
    assert "w_out" in planted.params, f"the planted model still has a w_out: parameters {list(planted.params)}"
    assert not output_layer_reads(planted, "w_out"), (
        "the check missed the planted mistake: out_name = 'wte', yet zeroing w_out zeroed every logit")


# ---- bad inputs ----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    pytest.param(dict(width=10, heads=4), "not divisible by heads", id="width 10 heads 4"),
    pytest.param(dict(pos="learned"), "unknown pos 'learned'; choose one of none, absolute, rotary", id="pos learned"),
    pytest.param(dict(dropout=1.0), r"dropout must be a number in \[0, 1\)", id="dropout 1"),
    pytest.param(dict(dropout=-0.1), r"dropout must be a number in \[0, 1\)", id="dropout -0.1"),
    pytest.param(dict(layers=0), "layers must be an integer >= 1", id="layers 0"),
    pytest.param(dict(width=0), "width must be an integer >= 1", id="width 0"),
    pytest.param(dict(heads=0), "heads must be an integer >= 1", id="heads 0"),
    pytest.param(dict(width=12, heads=4, pos="rotary"), "head dim .* must be even", id="rotary head dim 3"),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(UsageError, match=message):
        GPT(V, **kwargs)


def test_bad_inputs_are_refused():
    model = GPT(V, layers=1, width=8, heads=2, max_len=4)
    with pytest.raises(UsageError, match="longer than the positional table.*increase max_len"):
        model.loss(sentences(T=5))
    with pytest.raises(UsageError, match="increase max_len"):
        model.next_logits(sentences(T=5))
    with pytest.raises(UsageError, match="outside the vocabulary"):
        model.logits(np.array([[0, 1, V]]))
    with pytest.raises(UsageError, match="outside the vocabulary"):
        model.next_logits(np.array([[V + 5, 1]]))
    with pytest.raises(UsageError, match="no context"):
        model.loss(np.array([[3]]))
    GPT(V, layers=1, width=8, heads=2, max_len=4, pos="rotary").loss(sentences(T=7))  # rotary: no table


# ---- it learns -----------------------------------------------------------------------------

def test_memorises_a_tiny_reversal_set():
    x, y = np.arange(2, 10), np.arange(10, 18)
    tokens = np.concatenate([np.stack([x, 0 * x, y], 1), np.stack([y, 0 * y + 1, x], 1)])  # (16, 3)
    model, opt = GPT(18, layers=1, width=32, heads=2, seed=0, dropout=0.0), AdamW(lr=0.01)
    first = model.loss(tokens)
    for _ in range(150):
        loss, grads = model.loss_and_grads(tokens)
        opt.step(model.params, grads)
    assert first > 2.5, f"an untrained model should be near chance: first loss {first:.2f}, want above 2.5"
    assert model.loss(tokens) < 0.05, f"training loss went {first:.2f} -> {model.loss(tokens):.3f}, expected below 0.05"
