"""Settings of the paper's public code (arXiv 2405.04669; GitHub marlo-z/reversal_curse_analysis) that minirev
offers: frozen embeddings, the loss on the whole sequence, the first answer token's NLL.

Run only these with: pytest tests/test_settings.py
"""
import json

import numpy as np
import pytest

from minirev.config import RunConfig
from minirev.errors import UsageError
from minirev.gpt import GPT
from minirev.gradcheck import check_model
from minirev.layers import cross_entropy_forward
from minirev.report import print_report
from minirev.running import run_experiment

TINY = RunConfig(layers=1, width=16, heads=2, vocab=40, epochs=2, batch_size=16, seed=5)


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_frozen_embeddings_are_bit_unchanged_after_training(optimizer):
    cfg = TINY.replace(freeze_embeddings=True, optimizer=optimizer, **({"lr": 0.5} if optimizer == "sgd" else {}))
    _, runs = run_experiment(cfg, out=None)
    model, start = runs[0]["model"], GPT.from_config(cfg.resolved(), runs[0]["dataset"], cfg.seed)
    for name in ("wte", "wpe"):
        assert np.array_equal(model.params[name], start.params[name]), (
            f"{optimizer}: {name} was frozen but changed in training (max |change| "
            f"{np.abs(model.params[name] - start.params[name]).max():.2e}): the optimiser must skip it, decay included")
    moved = np.abs(model.params["w_out"] - start.params["w_out"]).max()
    assert moved > 0, f"{optimizer}: the output layer w_out did not train at all with frozen embeddings"


def test_frozen_embeddings_with_tied_weights_are_refused():
    with pytest.raises(UsageError, match="--tied") as e:
        RunConfig(freeze_embeddings=True, tied=True).validate()
    assert "drop" in str(e.value), f"the error should say what to drop, got: {e.value}"


@pytest.mark.parametrize("option", ["freeze_embeddings", "loss_whole_sequence"])
def test_the_settings_are_refused_by_models_that_do_not_read_them(option):
    with pytest.raises(UsageError, match="does not apply to --model one-layer"):
        RunConfig(model="one-layer", **{option: True}).validate()


def whole_sequence_model(seed=0):
    model, tokens = GPT.gradcheck_example(seed)
    model.loss_whole_sequence = True
    return model, tokens


def test_whole_sequence_loss_is_the_mean_over_every_next_token():
    model, tokens = whole_sequence_model()
    m = model.copy(dtype=np.float64)
    logits, _ = m.forward_logits(m.params, tokens, np)                       # (B, T, V), no dropout
    want, _ = cross_entropy_forward(np, logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
    got = m.loss(tokens)
    assert abs(got - want) < 1e-12, (f"the whole-sequence loss should average the NLL of tokens 2..T given the "
                                     f"ones before: got {got}, the logits give {want}")
    m.loss_whole_sequence = False
    assert abs(m.loss(tokens) - want) > 1e-3, "the answer-only loss should differ from the whole-sequence one"


def test_whole_sequence_loss_gradients_match_autograd():
    model, tokens = whole_sequence_model(seed=1)
    passed, _ = check_model(model, tokens, out=None)
    assert passed, "a hand-written gradient of the whole-sequence loss disagrees with autograd (float64)"


def test_whole_sequence_run_and_its_checkpoint(tmp_path):
    """A run with the option trains another model, says so, and resumes from its checkpoint; resuming it
    without the option is refused."""
    lines = []
    cfg = TINY.replace(loss_whole_sequence=True)
    result, _ = run_experiment(cfg.replace(save=str(tmp_path / "ck")), out=lines.append)
    plain, _ = run_experiment(TINY, out=None)
    assert any("loss on every next token" in line for line in lines), "the run should say where its loss is"
    assert result["final"]["train_nll"] != plain["final"]["train_nll"], "the option changed nothing in training"
    with pytest.raises(UsageError, match="--loss-whole-sequence"):
        run_experiment(TINY.replace(epochs=3, resume=str(tmp_path / "ck")), out=None)
    _, runs = run_experiment(cfg.replace(epochs=3, resume=str(tmp_path / "ck")), out=None)
    assert runs[0]["trainer"].epoch == 3, "the whole-sequence checkpoint did not resume to epoch 3"


def test_a_checkpoint_from_before_the_settings_resumes(tmp_path):
    """A checkpoint whose config has no freeze_embeddings / loss_whole_sequence ran without them."""
    folder = tmp_path / "ck"
    run_experiment(TINY.replace(save=str(folder)), out=None)
    state = json.loads((folder / "state.json").read_text())
    for key in ("freeze_embeddings", "loss_whole_sequence"):
        state["config"].pop(key)
    (folder / "state.json").write_text(json.dumps(state))
    _, runs = run_experiment(TINY.replace(epochs=3, resume=str(folder)), out=None)
    assert runs[0]["trainer"].epoch == 3, "an older checkpoint without the new fields did not resume"
    with pytest.raises(UsageError, match="--freeze-embeddings"):
        run_experiment(TINY.replace(epochs=4, freeze_embeddings=True, resume=str(folder)), out=None)


def test_first_answer_token_nll_beside_the_mean_for_entities_of_two_tokens():
    result, runs = run_experiment(TINY.replace(entity_len=2, epochs=1), out=None)
    model, data = runs[0]["model"], runs[0]["dataset"]
    rows = data.groups["val unseen"]
    logits = np.asarray(model.logits(rows), dtype=np.float64)                # (n, 2, V)
    want, _ = cross_entropy_forward(np, logits[:, 0], rows[:, -2])
    second, _ = cross_entropy_forward(np, logits[:, 1], rows[:, -1])
    got = result["final"]["val_unseen_first_nll"]
    # float32 logits: the evaluation runs these rows in one batch with the other groups', so the last bits
    # differ (1e-6 apart); the second token's NLL, what a mix-up would give, is far from the first's
    assert abs(got - want) < 1e-6 < abs(second - want), (
        f"val_unseen_first_nll should be the NLL of the first answer token: {got} vs {want} (second token {second})")
    assert result["final"]["val_first_nll"] == got, "val_first_nll is the validation group's first-token NLL"
    lines = []
    print_report(result, runs, out=lines.append)
    assert any("1st token" in line for line in lines), "the table should show the first token's NLL column"
    single, _ = run_experiment(TINY.replace(epochs=1), out=None)
    assert "val_first_nll" not in single["final"], "entities of one token need no first-token NLL"


def test_related_chain_data_is_the_public_codes():
    from minirev.data import related_chain_data
    data = related_chain_data(seed=1234)
    assert len(data.train) == 700 and len(data.groups["C given A (val)"]) == 50, (
        f"want 200 triples x 3 + 50 x 2 = 700 training and 50 validation sentences, got {len(data.train)} and "
        f"{len(data.groups['C given A (val)'])}")
    assert data.vocab_size == 803 and data.entity_len == 2, "vocabulary 800 + 3 ids, entities of 2 tokens"
    x, y, z = data.info["fixed"]
    for name, (first, relation, then) in (("B given A", (x, 0, y)), ("C given B", (y, 0, z)), ("C given A", (x, 1, z))):
        rows = np.concatenate([data.groups[f"{name} (train)"], data.groups[f"{name} (val)"]])
        assert (rows[:, [0, 2, 3]] == [first, relation, then]).all(), f"{name}: want [{first} i {relation} {then} i]"
        assert (rows[:, 1] == rows[:, 4]).all(), f"{name}: the answer's second token is the question's i"
    i_train = set(data.groups["C given A (train)"][:, 1])
    i_val = set(data.groups["C given A (val)"][:, 1])
    assert len(i_train) == 200 and len(i_val) == 50 and not i_train & i_val, "200 and 50 distinct i, disjoint"
    val = {tuple(r) for r in data.groups["C given A (val)"]}
    assert not val & {tuple(r) for r in data.train}, "a validation sentence [x i ~> z i] is in the training set"
    again = related_chain_data(seed=1234)
    assert np.array_equal(data.train, again.train), "the same seed must give the same sentences"


def test_related_chain_runs_and_measures_the_copied_token():
    from minirev.experiments import Experiment
    cfg = RunConfig(experiment="related", layers=1, width=16, heads=2, epochs=1)
    result, runs = run_experiment(cfg, out=None)
    measured, lines = Experiment.registry["related"].measure(runs)
    assert {"val_i_nll", "val_z_nll", "direct_acc"} <= set(measured), f"measured: {sorted(measured)}"
    mean = result["final"]["val_nll"]
    assert abs((measured["val_i_nll"] + measured["val_z_nll"]) / 2 - mean) < 1e-6, (
        "the two answer tokens' NLLs should average to the validation NLL")
    assert result["final"]["log_alphabet"] == pytest.approx((np.log(3) + np.log(600)) / 2), (
        "the yardstick within the alphabets: log 3 for the fixed first token, log 600 for i, averaged")
    with pytest.raises(UsageError, match="--vocab"):
        RunConfig(experiment="related", vocab=400).validate()


def test_the_random_yardstick_of_the_embeddings_at_the_appendix_widths():
    from minirev.experiments.embeddings import APPENDIX_WIDTHS, random_mean_abs_cosine
    values = [random_mean_abs_cosine(400, w) for w in APPENDIX_WIDTHS]
    for w, v in zip(APPENDIX_WIDTHS, values):
        theory = np.sqrt(2 / (np.pi * w))             # E|cos| of two random directions in w dimensions
        assert abs(v - theory) < 0.05 * theory, f"width {w}: random vectors' mean |cosine| {v:.4f}, theory {theory:.4f}"
    assert values == sorted(values, reverse=True), f"random vectors are more orthogonal when wider: {values}"
