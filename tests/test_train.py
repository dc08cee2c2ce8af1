"""The optimisers, the training loop and the per-update trace."""
import numpy as np
import pytest

from minirev.bilinear import Bilinear
from minirev.data import pairs_data
from minirev.errors import UsageError
from minirev.optim import SGD, AdamW
from minirev.trace import Trace
from minirev.train import Trainer, evaluate
from records import first_difference

pytestmark = pytest.mark.train


def test_sgd_is_theta_minus_lr_times_grad_and_lrs_overrides_one_parameter():
    params = {"Y": np.ones(3), "Z": np.ones(3)}
    grads = {"Y": np.array([1.0, 2.0, 3.0]), "Z": np.array([1.0, 1.0, 1.0])}
    SGD(0.5, lrs={"Z": 0.0}).step(params, grads)
    assert params["Y"].tolist() == [0.5, 0.0, -0.5], (
        f"Y = 1 - 0.5 * (1, 2, 3) should be [0.5, 0.0, -0.5], got {params['Y'].tolist()}")
    assert params["Z"].tolist() == [1.0, 1.0, 1.0], (
        f"a learning rate of 0 freezes the parameter: Z {params['Z'].tolist()}")


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
    np.testing.assert_allclose(params["w"], p, rtol=1e-12, err_msg="w after 4 AdamW steps vs the formula by hand")
    # the first step of Adam moves every coordinate by about lr, whatever the gradient's scale
    params = {"w": np.zeros(3)}
    AdamW(lr=0.01, weight_decay=0).step(params, {"w": np.array([1e-3, 5.0, -200.0])})
    np.testing.assert_allclose(np.abs(params["w"]), 0.01, rtol=1e-4,
                               err_msg="|w| after Adam's first step, for gradients 1e-3, 5, -200: should be lr = 0.01")


@pytest.mark.parametrize("make", [lambda: SGD(0), lambda: SGD(float("nan")), lambda: AdamW(-1),
                                  lambda: AdamW(0.01, weight_decay=float("inf")), lambda: SGD(1, lrs={"Z": -1})],
                         ids=["SGD(0)", "SGD(nan)", "AdamW(-1)", "AdamW(weight_decay=inf)", "SGD(lrs Z=-1)"])
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
    assert a.history == b.history, f"the same seed gave another history: {first_difference(a.history, b.history)}"
    assert np.array_equal(a.model.params["Theta"], b.model.params["Theta"]), (
        f"the same seed gave another Theta: max |difference| "
        f"{np.abs(a.model.params['Theta'] - b.model.params['Theta']).max():.3e}")
    assert not np.array_equal(a.model.params["Theta"], c.model.params["Theta"]), (
        "seed 1 gave the same Theta as seed 0: the minibatch order does not depend on the seed")
    assert [r["epoch"] for r in a.history] == [0, 1, 2, 3] and a.step == 3 * 3, (
        f"35 sentences in batches of 16: 3 steps an epoch; evaluated at epochs {[r['epoch'] for r in a.history]} "
        f"(want [0, 1, 2, 3]), {a.step} steps (want 9)")


def test_history_records_every_group_and_the_validation_loss():
    record = small_run(0).history[-1]
    assert record["val_nll"] == record["reversal nll"], (
        f"val_nll should be the reversal group's NLL: {record['val_nll']!r} vs {record['reversal nll']!r}")
    assert record["train_nll"] < record["val_nll"], (
        f"after training, train NLL {record['train_nll']:.4f} should be below validation NLL {record['val_nll']:.4f}")
    loss, acc = evaluate(small_run(0).model, pairs_data(vocab=60, pairs=20, held_out=5).train)
    assert loss == pytest.approx(record["train_nll"]) and 0 <= acc <= 1, (
        f"evaluate() on the training sentences: loss {loss!r} vs the recorded train_nll {record['train_nll']!r}, "
        f"accuracy {acc!r} (should be in [0, 1])")


def test_trace_records_before_after_and_terms_for_the_first_steps_only():
    data = pairs_data(vocab=60, pairs=20, held_out=5, seed=0)
    model = Bilinear(60, None)
    x, y = (int(t) for t in data.groups["reversal"][0][::-1])
    lines, opt, pair = [], SGD(2.0), [(np.array([x, y]), np.array([y, x]))]
    trace = Trace(model, lambda: model.watch(pair), lambda batch: model.trace_terms(batch, pair, opt),
                  steps=2, out=lines.append)
    Trainer(model, opt, data, trace=trace).run(5)
    assert [r["step"] for r in trace.records] == [1, 2], (
        f"steps=2 traces steps 1 and 2 only, got steps {[r['step'] for r in trace.records]}")
    fwd, rev = trace.records[0]["quantities"][f"W({x}->{y})"], trace.records[0]["quantities"][f"W({y}->{x})"]
    assert fwd["change"] > 0 and fwd["explained"] == pytest.approx(fwd["change"], rel=1e-6), (
        f"W({x}->{y}) at step 1 should rise and its terms explain the rise: "
        f"change {fwd['change']!r}, explained {fwd['explained']!r}")
    assert rev["change"] == 0 and rev["terms"] == [], (
        f"one-hot: nothing moves the reverse weight W({y}->{x}): change {rev['change']!r}, terms {rev['terms'][:3]}")
    assert any("no term at all" in line for line in lines), (
        "the trace should print that the reverse weight has 'no term at all'; it printed:\n" + "\n".join(lines))


# ---- SGD's weight decay on every path ------------------------------------------------------------

def test_sgd_weight_decay_applies_on_the_flat_buffer():
    """Every model's parameters are views of one flat buffer, which SGD updates in one call: the decay
    must be in that call too (a zero gradient, lr 0.5, decay 0.1: every weight 1.0 -> 0.95)."""
    model = Bilinear(10, 4)
    model.params["Theta"] = np.ones((4, 4))
    model._grads["Theta"] = np.zeros((4, 4))
    SGD(0.5, weight_decay=0.1).step(model.params, model._grads)
    theta = model.params["Theta"]
    assert np.allclose(theta, 0.95), f"flat path: want 1 - 0.5 x 0.1 = 0.95 everywhere, got {np.unique(theta)}"


def test_sgd_weight_decay_applies_tensor_by_tensor_too():
    """A learning rate of one's own (lrs) takes the per-tensor path: the same decay, each at its own rate."""
    params = {"Y": np.ones(3), "Z": np.ones(3)}
    SGD(0.5, lrs={"Z": 1.0}, weight_decay=0.1).step(params, {"Y": np.zeros(3), "Z": np.zeros(3)})
    assert np.allclose(params["Y"], 0.95) and np.allclose(params["Z"], 0.9), \
        f"want Y 1 - 0.5 x 0.1 = 0.95 and Z 1 - 1.0 x 0.1 = 0.9, got Y {params['Y']}, Z {params['Z']}"


def test_the_gpt_with_sgd_takes_the_weight_decay_it_is_given(capsys, tmp_path):
    """--optimizer sgd --weight-decay 0.1 for the GPT: the run's optimiser decays (it once did not, silently)."""
    from minirev import demo
    from minirev.config import RunConfig
    from minirev.running import make_optimizer
    opt = make_optimizer(RunConfig(optimizer="sgd", weight_decay=0.1).resolved())
    assert isinstance(opt, SGD) and opt.weight_decay == 0.1, f"got {opt.describe()}"
    assert make_optimizer(RunConfig(optimizer="sgd").resolved()).weight_decay == 0.0, "SGD's default decay is 0"
    assert make_optimizer(RunConfig().resolved()).weight_decay == 0.01, "AdamW's default decay is 0.01"
    code = demo.main(["reversal", "--vocab", "40", "--layers", "1", "--width", "8", "--heads", "2", "--epochs", "1",
                      "--optimizer", "sgd", "--weight-decay", "0.1", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert code == 0 and "optimizer: sgd, lr 0.01, weight decay 0.1" in printed, printed
