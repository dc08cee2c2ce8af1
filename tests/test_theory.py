"""The paper's theorems as numbers (python -m minirev.demo theory, minirev/theory*.py).

Run only these checks with:  pytest tests/test_theory.py

1. the bilinear model trained in its effective weights, W <- W - lr K S K, is the d x d
   update of minirev's Bilinear model, step for step (float64, to 1e-12);
2. eps_min is the smallest eps for which the bound holds at every step, and a planted
   violation (a reversal loss that falls with the training loss) is reported as FAIL;
3. the quick run of the command: every claim of sections 3, 4.1 and 4.2 holds, its
   table, figures and JSON are written; a planted one-layer violation is a FAIL.
"""
import json

import numpy as np
import pytest

from minirev.bilinear import Bilinear
from minirev.data import pairs_data
from minirev.demo import main
from minirev.optim import SGD
from minirev.theory import bilinear_claims, one_layer_claims
from minirev.theory_bilinear import ONE_HOT, descend, eps_min, overlaps
from minirev.train import Trainer, evaluate


# ------------------------------------------------------------------ 1. the effective-weight form

@pytest.mark.bilinear
@pytest.mark.parametrize("dim", [6, 40, ONE_HOT], ids=["d=6 < m", "d=40 > m", "one-hot"])
def test_effective_weights_follow_the_d_by_d_update_step_for_step(dim):
    data = pairs_data(vocab=30, pairs=10, held_out=3, seed=1)
    lr, steps = 20.0, 7
    model = Bilinear(30, dim, seed=2, dtype=np.float64)
    Trainer(model, SGD(lr), data).run(steps)                          # Theta (d, d) by minirev's own update
    rows, W, train, reversal = descend(overlaps(30, [dim], [2])[1], data, lr, steps)
    U = model.U_host
    expected = U[rows] @ model.params["Theta"] @ U.T                                # (R, m) u_a^T Theta u_b
    assert np.abs(W[0] - expected).max() < 1e-12, \
        f"W - lr K S K drifted from U Theta U^T of the d x d update: max diff {np.abs(W[0] - expected).max():.2e}"
    assert abs(train[0, -1] - evaluate(model, data.train)[0]) < 1e-12, "the training losses differ"
    assert abs(reversal[0, -1] - evaluate(model, data.groups["reversal"])[0]) < 1e-12, "the reversal losses differ"


@pytest.mark.bilinear
def test_one_hot_reverse_loss_never_moves_so_eps_min_is_exactly_zero():
    data = pairs_data(vocab=30, pairs=10, held_out=3, seed=1)
    _, _, train, reversal = descend(overlaps(30, [ONE_HOT], [0])[1], data, 20.0, 20)
    assert train[0, -1] < train[0, 0] / 2, "the training loss should fall"
    assert (reversal[0] == reversal[0, 0]).all(), f"one-hot: the reversal loss moved: {reversal[0]}"
    assert eps_min(train, reversal)[0][0] == 0, "one-hot: eps_min should be exactly 0"


# ------------------------------------------------------------------ 2. eps_min, and planted violations

@pytest.mark.bilinear
def test_eps_min_is_the_smallest_eps_that_holds_at_every_step():
    train = np.array([[5.0, 2.0, 0.5, 0.1]])
    following = np.array([[5.0, 5 * 0.4 ** 0.3, 5 * 0.1 ** 0.1, 5 * 0.02 ** 0.05]])   # needs 0.3, 0.1, 0.05
    eps, at = eps_min(train, following)
    assert np.isclose(eps[0], 0.3) and at[0] == 1, f"eps_min should be 0.3, set at step 1; got {eps[0]} at {at[0]}"
    ratio_r, ratio_l = following / following[:, :1], train / train[:, :1]
    assert (ratio_r >= ratio_l ** eps[0] - 1e-12).all(), "the bound with eps_min should hold at every step"
    assert not (ratio_r >= ratio_l ** (0.99 * eps[0])).all(), "a smaller eps should fail at some step"
    rising = np.array([[5.0, 5.5, 6.0, 7.0]])
    assert eps_min(train, rising)[0][0] == 0, "a reversal loss that only rises needs eps = 0"
    worse = eps_min(np.array([[5.0, 5.2]]), np.array([[5.0, 4.9]]))[0][0]
    assert worse == np.inf, "a training loss above its start, a reversal loss below: no eps >= 0 holds"


def planted_rows(eps_by_dim, n=50):
    """Result rows of the bilinear bound, each (d, eps) made from loss histories with that exponent."""
    train = np.geomspace(5.3, 0.01, 50)[None, :]                                   # (1, T)
    rows = []
    for dim, eps in eps_by_dim:
        found = eps_min(train, 5.3 * (train / 5.3) ** eps)[0].tolist()          # reversal falls with training
        rows.append(dict(pairs=n, dim=dim, eps_min=found * 3))
    return rows


@pytest.mark.bilinear
def test_a_reversal_loss_that_falls_with_the_training_loss_is_reported_as_fail():
    honest = bilinear_claims(planted_rows([(64, 0.05), (256, 0.01), (1024, 0.002), (ONE_HOT, 0.0)]))
    assert all(r["passed"] for r in honest), f"honest histories should pass: {honest}"
    planted = bilinear_claims(planted_rows([(64, 0.05), (256, 0.2), (1024, 0.5), (ONE_HOT, 0.3)]))
    failed = [r["claim"] for r in planted if not r["passed"]]
    assert len(failed) == 3, f"one-hot eps > 0, eps growing with d and eps large at the largest d are three " \
                             f"FAILs; got FAIL for {failed}"


# ------------------------------------------------------------------ 3. the command, quick

@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    folder = tmp_path_factory.mktemp("theory")
    status = main(["theory", "--quick", "--out", str(folder), "--json", str(folder / "theory.json")])
    return status, folder, json.loads((folder / "theory.json").read_text())


@pytest.mark.one_layer
def test_every_claim_of_the_quick_run_holds(quick):
    status, folder, result = quick
    failed = [f"{r['section']} {r['claim']}: {r['measured']} (bound {r['bound']})" for r in result["claims"]
              if not r["passed"]]
    assert not failed, "these claims of the paper failed:\n" + "\n".join(failed)
    assert status == 0, "every claim holds, so the command should exit 0"
    assert {r["section"] for r in result["claims"]} == {"3", "4.1", "4.2"}, "a section of the table is missing"
    for name in ("theory_bilinear.png", "theory_one_layer.png", "theory_chain.png"):
        assert (folder / name).stat().st_size > 0, f"the figure {name} was not written"


@pytest.mark.one_layer
def test_every_step_of_the_one_layer_runs_is_measured(quick):
    _, _, result = quick
    steps = result["settings"]["one_layer_steps"]
    for run in result["one_layer"]["reversal"] + result["one_layer"]["chain"]:
        assert len(run["p_times_m"]) == steps, f"seed {run['seed']}: p x M measured at {len(run['p_times_m'])} " \
                                               f"of {steps} steps"
    assert all(max(r["y_ba"]) == 0 for r in result["one_layer"]["reversal"]), "Y[B,A] moved at some step"


@pytest.mark.one_layer
@pytest.mark.parametrize("planted", ["Y[B,A] moved", "p above 1/M", "Y[A,B] not log t", "chain p above 1/M"])
def test_a_planted_one_layer_violation_is_reported_as_fail(quick, planted):
    _, _, result = quick
    one_layer = json.loads(json.dumps(result["one_layer"]))                        # a copy to spoil
    run = one_layer["chain" if planted.startswith("chain") else "reversal"][0]
    if planted == "Y[B,A] moved":
        run["max_y_ba"] = 1e-9
    elif planted == "Y[A,B] not log t":
        run["y_ab_r2"] = 0.5
    else:
        run["max_p_times_m"] = 1.01
    failed = [r for r in one_layer_claims(one_layer) if not r["passed"]]
    assert len(failed) == 1, f"the planted violation ({planted}) should fail exactly one claim: {failed}"


@pytest.mark.cli
def test_quick_and_full_together_are_refused(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["theory", "--quick", "--full"])
    assert stop.value.code == 2, "--quick with --full is a usage error (exit status 2)"
    assert "minirev: error:" in capsys.readouterr().err, "the error should be one 'minirev: error:' line"
