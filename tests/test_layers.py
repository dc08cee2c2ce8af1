"""Each layer pair of minirev/layers.py: its hand-written backward against autograd, one pair at a time.

Every check calls ``forward(xp, **inputs)`` once with NumPy (hand backward) and
once with autograd.numpy (automatic backward) in float64, and requires a
relative error below 1e-7 for every gradient: a missing factor of 2 gives 1/3,
a transpose about 1. Each pair exists once, so the forward autograd traces here
is the one the GPT trains with: its in-place writes (``out += b``) must give the
same bits on NumPy as autograd's traced values, and its backward the same bits
whether it writes into given arrays or new ones. Run only these with: pytest -m layers
"""
import inspect

import numpy as np
import pytest

from minirev import embeddings, layers as L
from minirev.gradcheck import check_layer
from gradients import TOL, assert_gradients_match

pytestmark = pytest.mark.layers

B, T, C, H = 2, 5, 12, 3          # T > 3 so causal masking has something to hide
D = C // H


def rand(*shape, seed=0, scale=1.0):
    return scale * np.random.default_rng(seed).standard_normal(shape)


def assert_layer(forward, backward, inputs, wrt, name):
    """The hand backward equals autograd's gradient of the same forward, which autograd must be able to trace."""
    try:
        result = check_layer(forward, backward, inputs, wrt=wrt, tol=TOL, title=f"{name}:")
    except (TypeError, ValueError) as e:       # autograd refuses out= and writes into its traced values
        pytest.fail(f"{name}: autograd cannot trace {forward.__name__} (an out= or a write into an input?): {e}")
    assert_gradients_match(result, name)


def assert_same_bits(got, want, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    differ = ~((got == want) | (np.isnan(got) & np.isnan(want)))
    assert not differ.any(), (f"{what}: {differ.sum()} of {differ.size} numbers differ, largest |diff| "
                              f"{np.nanmax(np.abs(got - want)):.3e}, first at {np.argwhere(differ)[0].tolist()}: "
                              f"{got[differ][0]!r} != {want[differ][0]!r}")


def attention_inputs(rotary=False, p_drop=0.0, causal=True):
    return dict(x=rand(B, T, C), w_qkv=rand(C, 3 * C, seed=1, scale=0.5), b_qkv=rand(3 * C, seed=2),
                w_proj=rand(C, C, seed=3), b_proj=rand(C, seed=4), n_head=H,
                rope=L.rotary_tables(T, D, np.float64, np) if rotary else None,
                drop_mask=L.dropout_mask(np.random.default_rng(5), (B, H, T, T), p_drop, np, np.float64),
                causal=causal)


ATTENTION_WRT = ["x", "w_qkv", "b_qkv", "w_proj", "b_proj"]
TOKENS = np.array([[0, 2, 2, 1, 0], [2, 3, 0, 0, 2]])            # ids 0 and 2 occur 4 times
# name -> (forward, backward, inputs, the inputs the backward differentiates): every pair of layers.py
CASES = {
    "softmax": (L.softmax_forward, L.softmax_backward, dict(x=rand(B, T, 7, scale=2)), ["x"]),
    "cross-entropy": (L.cross_entropy_forward, L.cross_entropy_backward,
                      dict(logits=rand(6, 9, scale=3), targets=np.array([0, 8, 3, 3, 1, 0])), ["logits"]),
    "l2norm": (L.l2norm_forward, L.l2norm_backward, dict(c=rand(4, 7) + 0.5), ["c"]),
    "token-attention": (L.token_attention_forward, L.token_attention_backward,
                        dict(Z=rand(6, 6), context=np.array([[0, 1, 1, 5], [2, 2, 3, 2]])), ["Z"]),
    "embedding": (L.embedding_forward, L.embedding_backward, dict(tokens=TOKENS, w=rand(4, C)), ["w"]),
    "position-embedding": (L.position_embedding_forward, L.position_embedding_backward,
                           dict(x=rand(B, T, C), wpe=rand(T + 3, C, seed=1)), ["x", "wpe"]),  # table longer than T
    "unembedding": (L.unembedding_forward, L.unembedding_backward, dict(x=rand(7, C), w=rand(9, C, seed=1)),
                    ["x", "w"]),
    "rotary": (L.rotary_forward, L.rotary_backward,
               dict(zip(["x", "cos", "sin"], (rand(B, H, T, D),) + L.rotary_tables(T, D, np.float64, np))), ["x"]),
    "layernorm": (L.layernorm_forward, L.layernorm_backward,
                  dict(x=rand(B, T, C, scale=3) + 1, g=rand(C, seed=1), b=rand(C, seed=2)), ["x", "g", "b"]),
    "linear": (L.linear_forward, L.linear_backward, dict(x=rand(B, T, C), w=rand(C, 7, seed=1), b=rand(7, seed=2)),
               ["x", "w", "b"]),
    "gelu": (L.gelu_forward, L.gelu_backward, dict(x=rand(B, T, 4 * C, scale=2)), ["x"]),
    "dropout": (L.dropout_forward, L.dropout_backward,
                dict(x=rand(B, T, C), mask=L.dropout_mask(np.random.default_rng(0), (B, T, C), 0.25, np, np.float64)),
                ["x"]),
    "residual": (L.residual_forward, L.residual_backward, dict(x=rand(B, T, C), fx=rand(B, T, C, seed=1)),
                 ["x", "fx"]),
    "attention": (L.attention_forward, L.attention_backward, attention_inputs(), ATTENTION_WRT),
    "attention-dropout": (L.attention_forward, L.attention_backward, attention_inputs(p_drop=0.3), ATTENTION_WRT),
    "attention-rotary": (L.attention_forward, L.attention_backward, attention_inputs(rotary=True), ATTENTION_WRT),
    "attention-rotary-dropout": (L.attention_forward, L.attention_backward,
                                 attention_inputs(rotary=True, p_drop=0.3), ATTENTION_WRT),
    "attention-bidirectional": (L.attention_forward, L.attention_backward,
                                attention_inputs(rotary=True, p_drop=0.3, causal=False), ATTENTION_WRT),
}


def gradient_slots(backward):
    """The names of the arrays a backward can write its parameter gradients into (dw=None, ...)."""
    return list(inspect.signature(backward).parameters)[2:]


# ---- every forward: traced by autograd, the same bits as on NumPy, its inputs untouched --------------

@pytest.mark.parametrize("name", list(CASES))
def test_autograd_traces_the_forward_and_agrees_with_the_hand_backward(name):
    forward, backward, inputs, wrt = CASES[name]
    assert_layer(forward, backward, inputs, wrt, name)


def test_every_pair_of_the_layers_has_a_case():
    pairs = {f for n, f in vars(L).items() if n.endswith(("_forward", "_backward")) and callable(f)}
    missing = sorted(f.__name__ for f in pairs - {f for case in CASES.values() for f in case[:2]})
    assert not missing, f"no gradient check in CASES for {missing}: add one"


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", list(CASES))
def test_the_in_place_forward_gives_autograds_bits(name, dtype):
    """On NumPy `out += b` writes in place; on autograd's traced values it makes a new array: same numbers."""
    from autograd import make_vjp
    import autograd.numpy as anp
    forward, _, inputs, wrt = CASES[name]
    def cast(v):                                                  # float arrays, also inside (cos, sin)
        if isinstance(v, tuple):
            return tuple(cast(a) for a in v)
        return v.astype(dtype) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
    inputs = {k: cast(v) for k, v in inputs.items()}
    on_numpy, _ = forward(np, **inputs)
    _, traced = make_vjp(lambda values: forward(anp, **{**inputs, **values})[0])({k: inputs[k] for k in wrt})
    assert_same_bits(traced, on_numpy, f"{name} forward, autograd's traced value against NumPy's ({dtype.__name__})")


@pytest.mark.parametrize("name", list(CASES))
def test_a_forward_writes_into_no_input(name):
    forward, _, inputs, _ = CASES[name]
    before = {k: np.copy(v) for k, v in inputs.items() if isinstance(v, np.ndarray)}
    forward(np, **inputs)
    for k, v in before.items():
        assert_same_bits(inputs[k], v, f"{name}: input {k} after the forward")


# ---- every backward with parameters: into given arrays, or new ones, the same bits -----------------

INTO = [name for name, case in CASES.items() if gradient_slots(case[1])]


@pytest.mark.parametrize("name", INTO)
def test_the_backward_writes_into_given_arrays_the_bits_it_returns_in_new_ones(name):
    forward, backward, inputs, wrt = CASES[name]
    slots = gradient_slots(backward)
    out, cache = forward(np, **inputs)
    dout = rand(*np.shape(out), seed=9)
    new = backward(dout, cache)
    new = new if isinstance(new, tuple) else (new,)
    given = [np.full(g.shape, np.nan) for g in new[-len(slots):]]  # stale buffers: every number must be written
    written = backward(dout, cache, *given)
    written = written if isinstance(written, tuple) else (written,)
    assert len(written) == len(new), f"{name}: {len(written)} gradients with given arrays, {len(new)} without"
    for slot, array, got, want in zip(slots, given, written[-len(slots):], new[-len(slots):]):
        assert got is array, f"{name}: {slot} was not written into the array given for it"
        assert_same_bits(got, want, f"{name}: {slot} written into a given array")
    for grad, got, want in zip(wrt, written[:-len(slots)], new[:-len(slots)]):
        assert_same_bits(got, want, f"{name}: d{grad} (input gradient) with arrays given")


# ---- what the layers compute ---------------------------------------------------------------

def test_embedding_accumulates_repeated_token_ids():
    dout = rand(B, T, C, seed=1)
    dw = L.embedding_backward(dout, L.embedding_forward(np, TOKENS, rand(4, C))[1])
    assert np.allclose(dw[0], dout[TOKENS == 0].sum(axis=0)), \
        f"the gradient of a repeated token must be the SUM over all its positions (xp.add.at): {dw[0]}"


def test_gelu_tanh_approximation():
    out, _ = L.gelu_forward(np, np.array([-10.0, 0.0, 10.0]))
    assert np.allclose(out, [0.0, 0.0, 10.0]), f"gelu should be ~0 far left, 0 at 0, ~x far right: {out}"


def test_dropout_masks():
    mask = CASES["dropout"][2]["mask"]
    assert set(np.unique(mask)) <= {0.0, 1 / 0.75}, f"mask entries must be 0 or 1/(1-p): {np.unique(mask)}"
    assert L.dropout_mask(None, (3,), 0.5, np, np.float32) is None, "rng None means evaluation: no mask"
    assert L.dropout_mask(np.random.default_rng(0), (3,), 0.0, np, np.float32) is None, "p = 0: no mask"
    a = L.dropout_mask(np.random.default_rng(7), (B, T, C), 0.5, np, np.float32)
    b = L.dropout_mask(np.random.default_rng(7), (B, T, C), 0.5, np, np.float64)
    assert a.dtype == np.float32, f"a float32 mask was asked for, got {a.dtype}"
    assert_same_bits(a, b, "the same seed's masks in float32 and float64")


def test_rotary_scores_depend_only_on_relative_position():
    cos, sin = L.rotary_tables(T, D, np.float64, np)
    q = np.broadcast_to(rand(D), (1, 1, T, D))                        # the same q and k at every position
    k = np.broadcast_to(rand(D, seed=1), (1, 1, T, D))
    qr, kr = L.rotary_forward(np, q, cos, sin)[0][0, 0], L.rotary_forward(np, k, cos, sin)[0][0, 0]
    scores = qr @ kr.T                                                # (T, T)
    assert np.allclose(scores[3, 1], scores[2, 0]) and np.allclose(scores[4, 4], q[0, 0, 0] @ k[0, 0, 0]), \
        f"rotary q.k should depend on t - s only: {scores[3, 1]} vs {scores[2, 0]}, {scores[4, 4]}"


def test_attention_cannot_see_the_future():
    inputs = attention_inputs()
    changed = dict(inputs, x=inputs["x"].copy())
    changed["x"][:, 3:] += 1.0                                        # change positions 3 and 4
    out, _ = L.attention_forward(np, **inputs)
    out_changed, _ = L.attention_forward(np, **changed)
    assert np.allclose(out[:, :3], out_changed[:, :3]), \
        f"positions 0..2 must not attend to 3, 4: |diff| {np.abs(out[:, :3] - out_changed[:, :3]).max():.2e}"
    assert not np.allclose(out[:, 3:], out_changed[:, 3:]), "positions 3, 4 must see their own change"


def test_cross_entropy_survives_very_large_logits():
    """exp(1e4) overflows; the forward subtracts the row maximum first, so the loss stays exact."""
    logits = np.array([[1e4, 0.0, -1e4], [3e4, 3e4, 0.0]], dtype=np.float32)
    loss, cache = L.cross_entropy_forward(np, logits, np.array([0, 1]))
    assert np.isfinite(loss) and loss == pytest.approx(np.log(2) / 2), f"loss {loss}, expected log(2)/2"
    dlogits = L.cross_entropy_backward(1.0, cache)
    assert np.isfinite(dlogits).all(), f"dlogits not finite: {dlogits}"
    np.testing.assert_allclose(dlogits, [[0, 0, 0], [0.25, -0.25, 0]], atol=1e-7, err_msg="dlogits")


# ---- the checks themselves can fail --------------------------------------------------------

def test_gradient_check_catches_a_wrong_backward():
    forward, backward, inputs, wrt = CASES["linear"]

    def doubled(dout, cache):                                         # a forgotten factor 1/2
        dx, dw, db = backward(dout, cache)
        return dx, 2 * dw, db

    ok, rows = check_layer(forward, doubled, inputs, wrt=wrt, tol=TOL, out=None)
    assert not ok and not rows[1]["ok"] and abs(rows[1]["rel_error"] - 1 / 3) < 1e-6, \
        f"a factor 2 in dw must fail the check with relative error 1/3: {rows[1]}"

    def rotated_forwards(dout, cache):                                # R instead of R^T = -R
        xp, cos, sin = cache
        return dout * cos + embeddings._rotate_half(xp, dout * sin)

    ok, rows = check_layer(L.rotary_forward, rotated_forwards, CASES["rotary"][2], wrt=["x"], tol=TOL, out=None)
    assert not ok, f"using the rotation instead of its transpose must fail the check: {rows}"


def test_an_out_argument_in_a_forward_fails_the_trace():
    """What the first test of this file catches: `xp.tanh(t, out=t)` runs on NumPy, autograd cannot trace it."""
    def gelu_with_out(xp, x):
        t = x * x
        t *= 0.044715
        t += 1.0
        t *= x
        t *= L.GELU_C
        xp.tanh(t, out=t)                                             # the bug: out= in a forward
        out = t + 1.0
        out *= x
        out *= 0.5
        return out, (xp, x, t)

    assert_same_bits(gelu_with_out(np, CASES["gelu"][2]["x"])[0], L.gelu_forward(np, CASES["gelu"][2]["x"])[0],
                     "gelu with out= on NumPy")                       # on NumPy the bug is invisible
    with pytest.raises(pytest.fail.Exception, match="autograd cannot trace gelu_with_out"):
        assert_layer(gelu_with_out, L.gelu_backward, CASES["gelu"][2], ["x"], "gelu with out=")


def test_the_bits_check_catches_a_difference():
    with pytest.raises(AssertionError, match=r"x: 1 of 3 numbers differ.*first at \[1\]"):
        assert_same_bits(np.array([1.0, 2.0, 3.0]), np.array([1.0, np.nextafter(2.0, 3.0), 3.0]), "x")
