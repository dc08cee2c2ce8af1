"""The bilinear model of section 3: its gradient, and the reversal curse in one matrix."""
import math

import numpy as np
import pytest

from minirev.bilinear import Bilinear
from minirev.bilinear_sweep import bilinear_sweep
from minirev.config import RunConfig
from minirev.data import pairs_data
from minirev.errors import UsageError
from minirev.gradcheck import check_model
from minirev.optim import SGD
from records import first_difference

pytestmark = pytest.mark.bilinear


def sweep(dims, vocab=200, pairs=50, held_out=10, lr=20.0, steps=3000, seed=0, **options):
    """bilinear_sweep with the command's defaults: m = 200, 50 pairs, 10 held out, lr 20, 3000 steps, seed 0."""
    cfg = RunConfig(model="bilinear", vocab=vocab, lr=lr, epochs=steps, seed=seed, **options)
    return bilinear_sweep(cfg, dims, pairs, held_out, out=None)


def random_theta_model(dim, vocab=30, seed=0):
    model = Bilinear(vocab, dim, seed=seed, dtype=np.float64)
    model.params["Theta"] = np.random.default_rng(seed + 1).standard_normal(model.params["Theta"].shape)
    return model


@pytest.mark.parametrize("dim", [8, None], ids=["gaussian", "one-hot"])
def test_hand_gradient_of_theta_matches_autograd(dim):
    tokens = np.random.default_rng(2).integers(0, 30, (25, 2))
    ok, rows = check_model(random_theta_model(dim), tokens, out=None)
    assert ok and rows[0]["rel_error"] < 1e-8, f"dTheta disagrees with autograd: {rows}"


@pytest.mark.parametrize("mistake", ["transposed", "factor 2", "wrong sign"])
def test_gradient_check_catches_a_wrong_gradient(mistake, monkeypatch):
    model = random_theta_model(8)
    right = Bilinear.backward
    wrong = {"transposed": lambda g: g.T, "factor 2": lambda g: 2 * g, "wrong sign": lambda g: -g}[mistake]
    monkeypatch.setattr(Bilinear, "backward", lambda self, cache: {"Theta": wrong(right(self, cache)["Theta"])})
    ok, rows = check_model(model, np.random.default_rng(2).integers(0, 30, (25, 2)), out=None)
    assert not ok and rows[0]["rel_error"] > 0.1, f"a {mistake} gradient passed the check: {rows}"


def test_effective_weight_is_the_logit():
    model = random_theta_model(8)
    logits = model.logits(np.array([[3, 0]]))[0, 0]
    assert model.effective_weight(3, 7) == pytest.approx(logits[7], rel=1e-12), (
        f"effective_weight(3, 7) = {model.effective_weight(3, 7)!r}, but the logit of 7 after 3 is {logits[7]!r}")


def test_trace_terms_add_up_to_the_actual_change_of_both_weights():
    data = pairs_data(vocab=40, pairs=10, held_out=3, seed=0)
    model = Bilinear(40, 16, seed=0, dtype=np.float64)
    x, y = (int(t) for t in data.groups["reversal"][0][::-1])
    opt, pair = SGD(5.0), [(np.array([x, y]), np.array([y, x]))]
    for _ in range(3):
        before = model.watch(pair)
        terms = model.trace_terms(data.train, pair, opt)
        opt.step(model.params, model.loss_and_grads(data.train)[1])
        after = model.watch(pair)
        for name in before:
            explained, actual = sum(v for _, v in terms[name]), after[name] - before[name]
            assert explained == pytest.approx(actual, abs=1e-12), (
                f"{name}: the trace terms sum to {explained!r}, but the step moved it by {actual!r}")
    # the forward weight's largest push is the pair's own sentence
    assert terms[f"W({x}->{y})"][0][0] == f"[{x} -> {y}]", (
        f"W({x}->{y})'s largest term should be the sentence [{x} -> {y}], got {terms[f'W({x}->{y})'][:3]}")


def test_one_hot_reverse_weight_never_moves():
    """One-hot: y is never the first token of a training sentence, so no term touches W(y -> x)."""
    _, results = sweep([None], vocab=60, pairs=12, held_out=4, lr=20.0, steps=200)
    r = results[0]
    assert r["train_end"] < 0.05, "the training loss should fall"
    assert r["reverse_weights"] == [0.0] * 4, f"one-hot reverse weights must stay exactly 0: {r['reverse_weights']}"
    assert r["reverse_probs"] == [1 / 60] * 4, (
        f"held-out p(x | y) must stay exactly 1/m = {1 / 60!r}: {r['reverse_probs']}")
    assert r["reversal_end"] == pytest.approx(math.log(60), abs=1e-6), (
        f"the reversal loss should stay log m = {math.log(60):.6f}, got {r['reversal_end']!r}")


def test_gaussian_training_loss_falls_while_reversal_loss_stays_above_log_m():
    """Section 3's claim at d=64, m=200, 50 pairs, eta 20 (1500 steps here): the training loss goes to ~0
    while the reversal loss stays at or above log m (python -m minirev.demo bilinear prints the full run)."""
    _, results = sweep([64], steps=1500)
    r = results[0]
    assert r["train_end"] < 0.01, f"training loss {r['train_end']}"
    assert r["reversal_end"] >= math.log(200), f"reversal loss {r['reversal_end']} fell below log m"
    assert r["forward_weight"] > 5 and abs(r["reverse_weight"]) < 1, (
        f"want W(x->y) > 5 and |W(y->x)| < 1: forward {r['forward_weight']:.3f}, reverse {r['reverse_weight']:.3f}")


def test_same_seed_same_numbers_bit_for_bit():
    a = sweep([32], steps=50)[1][0]
    b = sweep([32], steps=50)[1][0]
    c = sweep([32], steps=50, seed=1)[1][0]
    assert a["history"] == b["history"], (
        f"the same seed gave other numbers: {first_difference(a['history'], b['history'])}")
    assert a["history"] != c["history"], "seed 1 gave the same history as seed 0: the seed is not used"


def test_nan_loss_stops_training_with_the_step():
    from minirev.errors import RunError
    from minirev.train import Trainer
    data = pairs_data(vocab=40, pairs=10, held_out=3)
    model = Bilinear(40, 8)
    model.params["Theta"][0, 0] = np.nan            # a broken parameter: the loss cannot be finite
    with pytest.raises(RunError, match=r"became nan at step 1 .*lower the learning rate"):
        Trainer(model, SGD(1.0), data).run(5)


@pytest.mark.parametrize("kwargs, message", [
    pytest.param(dict(dims=[0]), "dimension must be an integer >= 1", id="dims=[0]"),
    pytest.param(dict(held_out=60), "held-out pairs must be between 0 and the number of pairs", id="held_out=60"),
    pytest.param(dict(vocab=50), "too small for 50 pairs", id="vocab=50"),
    pytest.param(dict(lr=-1.0), "--lr must be a finite number > 0", id="lr=-1"),
    pytest.param(dict(lr=float("nan")), "--lr must be a finite number > 0", id="lr=nan"),
    pytest.param(dict(backend="tpu"), "unknown backend 'tpu'", id="backend=tpu"),
])
def test_bad_input_gets_a_one_line_error(kwargs, message):
    with pytest.raises(UsageError, match=message) as info:
        sweep(**{**dict(dims=[8], steps=2), **kwargs})
    assert "\n" not in str(info.value), f"the error should be one line, got:\n{info.value}"
