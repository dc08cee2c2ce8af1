"""The optimisers, the training loop and the per-update trace."""
import numpy as np
import pytest

from minirev.bilinear import Bilinear
from minirev.data import pairs_data
from minirev.errors import UsageError
from minirev.optim import SGD, AdamW
from minirev.trace import Trace
from minirev.train import Trainer, evaluate

pytestmark = pytest.mark.train


def test_sgd_is_theta_minus_lr_times_grad_and_lrs_overrides_one_parameter():
    params = {"Y": np.ones(3), "Z": np.ones(3)}
    grads = {"Y": np.array([1.0, 2.0, 3.0]), "Z": np.array([1.0, 1.0, 1.0])}
    SGD(0.5, lrs={"Z": 0.0}).step(params, grads)
    assert params["Y"].tolist() == [0.5, 0.0, -0.5]
    assert params["Z"].tolist() == [1.0, 1.0, 1.0], "a learning rate of 0 freezes the parameter"


def test_adamw_matches_the_formula_written_out_step_by_step():
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(5)
    grads = [rng.standard_normal(5) for _ in range(4)]
    lr, b1, b2, eps, wd = 0.01, 0.9, 0.999, 1e-8, 0.01
    params = {"w": p0.copy()}
    opt = AdamW(lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    p, m, v = p0.copy(), np.zeros(5), np.zeros(5)
    for t, g in enumerate(grads, start=1):
        opt.step(params, {"w": g})
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g ** 2
        p = p * (1 - lr * wd) - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    np.testing.assert_allclose(params["w"], p, rtol=1e-12)
    # the first step of Adam moves every coordinate by about lr, whatever the gradient's scale
    params = {"w": np.zeros(3)}
    AdamW(lr=0.01, weight_decay=0).step(params, {"w": np.array([1e-3, 5.0, -200.0])})
    np.testing.assert_allclose(np.abs(params["w"]), 0.01, rtol=1e-4)


@pytest.mark.parametrize("make", [lambda: SGD(0), lambda: SGD(float("nan")), lambda: AdamW(-1),
                                  lambda: AdamW(0.01, weight_decay=float("inf")), lambda: SGD(1, lrs={"Z": -1})])
def test_bad_learning_rates_are_refused(make):
    with pytest.raises(UsageError, match="must be a finite number"):
        make()


def small_run(seed, batch_size=16, epochs=3):
    data = pairs_data(vocab=60, pairs=20, held_out=5, seed=0)
    model = Bilinear(60, 16, seed=0)
    trainer = Trainer(model, SGD(5.0), data, batch_size=batch_size, seed=seed)
    trainer.run(epochs)
    return trainer


def test_training_is_deterministic_for_a_seed_and_minibatch_order_depends_on_it():
    a, b, c = small_run(0), small_run(0), small_run(1)
    assert a.history == b.history
    assert np.array_equal(a.model.params["Theta"], b.model.params["Theta"])
    assert not np.array_equal(a.model.params["Theta"], c.model.params["Theta"])
    assert [r["epoch"] for r in a.history] == [0, 1, 2, 3] and a.step == 3 * 3, "35 sentences in batches of 16: 3 steps an epoch"


def test_history_records_every_group_and_the_validation_loss():
    record = small_run(0).history[-1]
    assert record["val_nll"] == record["reversal nll"]
    assert record["train_nll"] < record["val_nll"]
    loss, acc = evaluate(small_run(0).model, pairs_data(vocab=60, pairs=20, held_out=5).train)
    assert loss == pytest.approx(record["train_nll"]) and 0 <= acc <= 1


def test_trace_records_before_after_and_terms_for_the_first_steps_only():
    data = pairs_data(vocab=60, pairs=20, held_out=5, seed=0)
    model = Bilinear(60, None)
    x, y = (int(t) for t in data.groups["reversal"][0][::-1])
    lines, opt, pair = [], SGD(2.0), [(np.array([x, y]), np.array([y, x]))]
    trace = Trace(model, lambda: model.watch(pair), lambda batch: model.trace_terms(batch, pair, opt),
                  steps=2, out=lines.append)
    Trainer(model, opt, data, trace=trace).run(5)
    assert [r["step"] for r in trace.records] == [1, 2]
    fwd, rev = trace.records[0]["quantities"][f"W({x}->{y})"], trace.records[0]["quantities"][f"W({y}->{x})"]
    assert fwd["change"] > 0 and fwd["explained"] == pytest.approx(fwd["change"], rel=1e-6)
    assert rev["change"] == 0 and rev["terms"] == [], "one-hot: nothing moves the reverse weight"
    assert any("no term at all" in line for line in lines)
