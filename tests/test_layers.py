"""Each transformer layer's hand-written backward against autograd, one pair at a time.

Every check calls ``forward(xp, **inputs)`` once with NumPy (hand backward) and
once with autograd.numpy (automatic backward) in float64, and requires a
relative error below 1e-7 for every gradient: a missing factor of 2 gives 1/3,
a transpose about 1. Run only these with: pytest -m layers
"""
import numpy as np
import pytest

from minirev import layers as L
from minirev.gradcheck import check_layer
from gradients import TOL, assert_gradients_match

pytestmark = pytest.mark.layers

B, T, C, H = 2, 5, 12, 3          # T > 3 so causal masking has something to hide
D = C // H


def rand(*shape, seed=0, scale=1.0):
    return scale * np.random.default_rng(seed).standard_normal(shape)


def assert_layer(forward, backward, inputs, wrt, name):
    assert_gradients_match(check_layer(forward, backward, inputs, wrt=wrt, tol=TOL, title=f"{name}:"), name)


# ---- embeddings ----------------------------------------------------------------------------

def test_embedding_accumulates_repeated_token_ids():
    tokens = np.array([[0, 2, 2, 1, 0], [2, 3, 0, 0, 2]])          # ids 0 and 2 occur 4 times
    assert_layer(L.embedding_forward, L.embedding_backward,
                 dict(tokens=tokens, w=rand(4, C)), wrt=["w"], name="embedding")
    dout = rand(B, T, C, seed=1)
    dw = L.embedding_backward(dout, L.embedding_forward(np, tokens, rand(4, C))[1])
    assert np.allclose(dw[0], dout[tokens == 0].sum(axis=0)), \
        "the gradient of a repeated token must be the SUM over all its positions (xp.add.at)"


def test_position_embedding_uses_first_T_rows():
    inputs = dict(x=rand(B, T, C), wpe=rand(T + 3, C, seed=1))      # table longer than T
    assert_layer(L.position_embedding_forward, L.position_embedding_backward, inputs,
                 wrt=["x", "wpe"], name="position embedding")


def test_tied_output_layer():
    assert_layer(L.unembedding_forward, L.unembedding_backward,
                 dict(x=rand(7, C), w=rand(9, C, seed=1)), wrt=["x", "w"], name="unembedding")


# ---- per-position layers -------------------------------------------------------------------

def test_layernorm():
    inputs = dict(x=rand(B, T, C, scale=3) + 1, g=rand(C, seed=1), b=rand(C, seed=2))
    assert_layer(L.layernorm_forward, L.layernorm_backward, inputs, wrt=["x", "g", "b"],
                 name="layernorm")


def test_linear_on_a_batch_of_sequences():
    inputs = dict(x=rand(B, T, C), w=rand(C, 7, seed=1), b=rand(7, seed=2))
    assert_layer(L.linear_forward, L.linear_backward, inputs, wrt=["x", "w", "b"], name="linear")


def test_gelu_tanh_approximation():
    assert_layer(L.gelu_forward, L.gelu_backward, dict(x=rand(B, T, 4 * C, scale=2)),
                 wrt=["x"], name="gelu")
    out, _ = L.gelu_forward(np, np.array([-10.0, 0.0, 10.0]))
    assert np.allclose(out, [0.0, 0.0, 10.0]), "gelu should be ~0 far left, 0 at 0, ~x far right"


def test_dropout_with_a_fixed_mask():
    mask = L.dropout_mask(np.random.default_rng(0), (B, T, C), 0.25, np, np.float64)
    assert set(np.unique(mask)) <= {0.0, 1 / 0.75}, "mask entries must be 0 or 1/(1-p)"
    assert_layer(L.dropout_forward, L.dropout_backward, dict(x=rand(B, T, C), mask=mask),
                 wrt=["x"], name="dropout")


def test_dropout_mask_is_none_in_evaluation_and_seeded_in_training():
    assert L.dropout_mask(None, (3,), 0.5, np, np.float32) is None, "rng None means evaluation"
    assert L.dropout_mask(np.random.default_rng(0), (3,), 0.0, np, np.float32) is None
    a = L.dropout_mask(np.random.default_rng(7), (B, T, C), 0.5, np, np.float32)
    b = L.dropout_mask(np.random.default_rng(7), (B, T, C), 0.5, np, np.float64)
    assert a.dtype == np.float32 and np.array_equal(a, b), "same seed -> same mask in any dtype"


def test_residual_add():
    assert_layer(L.residual_forward, L.residual_backward, dict(x=rand(B, T, C), fx=rand(B, T, C, seed=1)),
                 wrt=["x", "fx"], name="residual")


def test_cross_entropy():
    inputs = dict(logits=rand(6, 9, scale=3), targets=np.array([0, 8, 3, 3, 1, 0]))
    assert_layer(L.cross_entropy_forward, L.cross_entropy_backward, inputs, wrt=["logits"],
                 name="cross-entropy")


# ---- positions and attention ---------------------------------------------------------------

def test_rotary_backward():
    cos, sin = L.rotary_tables(T, D, np.float64, np)
    assert_layer(L.rotary_forward, L.rotary_backward, dict(x=rand(B, H, T, D), cos=cos, sin=sin),
                 wrt=["x"], name="rotary")


def test_rotary_scores_depend_only_on_relative_position():
    cos, sin = L.rotary_tables(T, D, np.float64, np)
    q = np.broadcast_to(rand(D), (1, 1, T, D))                        # the same q and k at every position
    k = np.broadcast_to(rand(D, seed=1), (1, 1, T, D))
    qr, kr = L.rotary_forward(np, q, cos, sin)[0][0, 0], L.rotary_forward(np, k, cos, sin)[0][0, 0]
    scores = qr @ kr.T                                                # (T, T)
    assert np.allclose(scores[3, 1], scores[2, 0]) and np.allclose(scores[4, 4], q[0, 0, 0] @ k[0, 0, 0]), \
        "rotary q.k should depend on t - s only"


@pytest.mark.parametrize("rotary", [False, True], ids=["no-rotary", "rotary"])
@pytest.mark.parametrize("p_drop", [0.0, 0.3], ids=["no-dropout", "dropout"])
def test_causal_self_attention(rotary, p_drop):
    inputs = dict(x=rand(B, T, C), w_qkv=rand(C, 3 * C, seed=1, scale=0.5), b_qkv=rand(3 * C, seed=2),
                  w_proj=rand(C, C, seed=3), b_proj=rand(C, seed=4), n_head=H,
                  rope=L.rotary_tables(T, D, np.float64, np) if rotary else None,
                  drop_mask=L.dropout_mask(np.random.default_rng(5), (B, H, T, T), p_drop, np, np.float64))
    assert_layer(L.attention_forward, L.attention_backward, inputs,
                 wrt=["x", "w_qkv", "b_qkv", "w_proj", "b_proj"], name=f"attention rotary={rotary}")


def test_attention_cannot_see_the_future():
    args = (rand(C, 3 * C, seed=1), rand(3 * C, seed=2), rand(C, C, seed=3), rand(C, seed=4), H)
    x = rand(B, T, C)
    x_changed = x.copy()
    x_changed[:, 3:] += 1.0                                           # change positions 3 and 4
    out, _ = L.attention_forward(np, x, *args)
    out_changed, _ = L.attention_forward(np, x_changed, *args)
    assert np.allclose(out[:, :3], out_changed[:, :3]), "positions 0..2 must not attend to 3, 4"
    assert not np.allclose(out[:, 3:], out_changed[:, 3:])


# ---- the check itself can fail -------------------------------------------------------------

def test_gradient_check_catches_a_wrong_backward():
    inputs = dict(x=rand(B, T, C), w=rand(C, 7, seed=1), b=rand(7, seed=2))

    def doubled(dout, cache):                                         # a forgotten factor 1/2
        dx, dw, db = L.linear_backward(dout, cache)
        return dx, 2 * dw, db

    ok, rows = check_layer(L.linear_forward, doubled, inputs, wrt=["x", "w", "b"], tol=TOL, out=None)
    assert not ok and not rows[1]["ok"] and abs(rows[1]["rel_error"] - 1 / 3) < 1e-6, \
        "a factor 2 in dw must fail the check with relative error 1/3"

    def rotated_forwards(dout, cache):                                # R instead of R^T = -R
        xp, cos, sin = cache
        return dout * cos + L._rotate_half(xp, dout * sin)

    cos, sin = L.rotary_tables(T, D, np.float64, np)
    ok, _ = check_layer(L.rotary_forward, rotated_forwards, dict(x=rand(B, H, T, D), cos=cos, sin=sin),
                        wrt=["x"], tol=TOL, out=None)
    assert not ok, "using the rotation instead of its transpose must fail the check"


def test_cross_entropy_survives_very_large_logits():
    """exp(1e4) overflows; the forward subtracts the row maximum first, so the loss stays exact."""
    from minirev.layers import cross_entropy_backward, cross_entropy_forward
    logits = np.array([[1e4, 0.0, -1e4], [3e4, 3e4, 0.0]], dtype=np.float32)
    loss, cache = cross_entropy_forward(np, logits, np.array([0, 1]))
    assert np.isfinite(loss) and loss == pytest.approx(np.log(2) / 2)      # row 1: 0; row 2: log 2
    dlogits = cross_entropy_backward(1.0, cache)
    assert np.isfinite(dlogits).all()
    np.testing.assert_allclose(dlogits, [[0, 0, 0], [0.25, -0.25, 0]], atol=1e-7)
