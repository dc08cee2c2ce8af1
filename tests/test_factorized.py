"""The factorized one-layer model (Y = W_V W_O): gradients, equivalence with Y, and its trace.

Run only these with: pytest -m one_layer
"""
import numpy as np
import pytest

from minirev.data import relation_pairs_data
from minirev.errors import UsageError
from minirev.factorized import Factorized
from minirev.gradcheck import check_model
from minirev.one_layer import OneLayer
from minirev.optim import SGD
from gradients import TOL, assert_gradients_match

pytestmark = pytest.mark.one_layer

DATA = relation_pairs_data(pairs=20, both=14)          # 0 "->", 1 "<-", A_i = 2 + i, B_i = 22 + i
A, B = DATA.info["A"], DATA.info["B"]


@pytest.mark.parametrize("rank", [3, None], ids=["rank=3", "full rank"])
def test_gradients_of_both_factors_match_autograd(rank):
    model = Factorized(9, rank=rank, seed=1, init_scale=0.5)
    model.params["Z"] = np.random.default_rng(2).standard_normal((9, 9)).astype(model.dtype)
    tokens = np.random.default_rng(3).integers(0, 9, (10, 4))
    assert_gradients_match(check_model(model, tokens, tol=TOL, out=None), f"factorized rank={rank}")


def test_a_missing_transpose_fails_the_check():
    model = Factorized(9, seed=1, init_scale=0.5)                  # square factors: the mistake fits the shape
    tokens = np.random.default_rng(3).integers(0, 9, (10, 4))
    model.backward_decoder = lambda dY, p: {"W_V": dY @ p["W_O"], "W_O": p["W_V"].T @ dY}   # W_O not transposed
    ok, rows = check_model(model, tokens, tol=TOL, out=None)
    assert not ok and next(r for r in rows if r["name"] == "W_V")["rel_error"] > 0.1, (
        f"a dW_V without its transpose should fail the check with a relative error > 0.1: {rows}")


def test_the_product_gives_the_same_logits_as_the_combined_model():
    fact = Factorized(DATA.vocab_size, seed=0, init_scale=0.3, dtype=np.float64)
    combined = OneLayer(DATA.vocab_size, dtype=np.float64)
    combined.params["Y"] = fact.params["W_V"] @ fact.params["W_O"]
    ours, theirs = fact.logits(DATA.train), combined.logits(DATA.train)
    assert np.allclose(ours, theirs, rtol=0, atol=1e-12), (
        f"W_V W_O and Y = W_V @ W_O give other logits: max |difference| {np.abs(ours - theirs).max():.3e} > 1e-12")


def trained(model, steps=30, lr=10.0):
    opt = SGD(lr)
    for _ in range(steps):
        opt.step(model.params, model.loss_and_grads(DATA.train)[1])
    return model


def test_the_held_out_reverse_entry_moves_only_in_the_factorized_model():
    """Combined Y: row B of a held-out pair never gets a gradient. Factorized: it moves through W_V W_V^T."""
    a, b = int(A[-1]), int(B[-1])                          # the last pair is trained only as A -> B
    combined = trained(OneLayer(DATA.vocab_size, dtype=np.float64))
    fact = trained(Factorized(DATA.vocab_size, seed=0, dtype=np.float64))
    assert combined.params["Y"][b, a] == 0.0, (
        f"combined model: Y[{b},{a}] of a held-out pair moved to {combined.params['Y'][b, a]!r}; row B has no gradient")
    Y = fact.params["W_V"] @ fact.params["W_O"]
    start = Factorized(DATA.vocab_size, seed=0, dtype=np.float64)
    Y0 = start.params["W_V"] @ start.params["W_O"]
    assert Y[b, a] != Y0[b, a], (
        f"a product of two trained factors moves every entry of Y, but Y[{b},{a}] stayed {Y0[b, a]!r}")


def test_trace_of_the_product_is_first_order():
    """The decoder terms are the first-order change of Y[u, v]; the error shrinks like lr^2."""
    model = trained(Factorized(DATA.vocab_size, seed=0, dtype=np.float64), steps=10)
    a, b = int(A[0]), int(B[0])
    pairs = [(np.array([a, 0, b]), np.array([b, 1, a]))]
    errors = []
    for lr in (1.0, 0.25):
        opt = SGD(lr)
        predicted = sum(v for _, v in model.trace_terms(DATA.train, pairs, opt, DATA.sentence)[f"Y[{a},{b}]"])
        twin = model.copy()
        twin.params = {k: v.copy() for k, v in twin.params.items()}
        opt.step(twin.params, twin.loss_and_grads(DATA.train)[1])
        actual = twin.watch(pairs)[f"Y[{a},{b}]"] - model.watch(pairs)[f"Y[{a},{b}]"]
        assert abs(predicted - actual) < 0.05 * abs(actual), f"lr {lr}: predicted {predicted}, actual {actual}"
        errors.append(abs(predicted - actual))
    assert errors[1] < errors[0] / 8, f"a 4x smaller step should cut the error ~16x: {errors}"


def test_a_zero_start_is_refused():
    with pytest.raises(UsageError, match="saddle"):
        Factorized(10, init_scale=0.0)
