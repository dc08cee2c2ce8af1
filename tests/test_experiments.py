"""Shrunken versions of the paper's experiments: each asserts the direction of its result.

The full-size runs (the demo's defaults, and the paper's 3000 epochs on the small
24-layer model) are marked slow: run them with  pytest -m slow
"""
import math

import numpy as np
import pytest

from minirev.config import RunConfig
from minirev.measures import chain_step_by_step, embedding_similarity
from minirev.running import run_experiment

pytestmark = pytest.mark.experiments

SMALL = RunConfig(layers=1, width=32, heads=2, batch_size=32, eval_every=5)     # the defaults otherwise


def run(experiment, **changes):
    return run_experiment(SMALL.replace(experiment=experiment, **changes), out=None)


def test_reversal_curse_in_a_small_gpt():
    result, _ = run("reversal", vocab=200, epochs=60)
    final = result["final"]
    assert final["train_nll"] < 0.1, (
        f"the training sentences should be learned: train NLL {final['train_nll']:.3f}, want < 0.1")
    assert final["val_seen_nll"] < 0.5, (
        f"the trained direction of held-out pairs is learned too: NLL {final['val_seen_nll']:.3f}, want < 0.5")
    assert final["val_nll"] > final["log_vocab"], (
        f"the unseen direction should stay worse than a uniform guess: {final['val_nll']:.2f} "
        f"vs log|V| = {final['log_vocab']:.2f}")


def test_untied_output_layer_makes_the_curse_complete():
    """Measured: with tied embeddings the unseen direction leaks partly (the right answer is often
    the best of the held-out answers); with its own output matrix it is at chance."""
    from minirev.measures import logit_matrix
    hits = {}
    for tied in (True, False):
        _, runs = run("reversal", vocab=200, epochs=60, tied=tied)
        M = logit_matrix(runs[0]["model"], runs[0]["dataset"].groups["val unseen"])
        hits[tied] = (M.argmax(1) == np.arange(len(M))).mean()
    assert hits[False] <= 0.2 < hits[True], f"right answer ranked first: tied {hits[True]:.2f}, untied {hits[False]:.2f}"


def test_reversal_curse_in_the_one_layer_model():
    cfg = RunConfig(model="one-layer", vocab=200, epochs=40, lr=100.0, batch_size=85, eval_every=5)
    result, _ = run_experiment(cfg, out=None)
    final = result["final"]
    assert final["train_nll"] < 0.2, (
        f"one-layer: the training sentences should be learned: train NLL {final['train_nll']:.3f}, want < 0.2")
    assert final["val_nll"] > final["log_vocab"], (
        f"one-layer: the unseen direction should stay worse than a uniform guess: {final['val_nll']:.2f} "
        f"vs log|V| = {final['log_vocab']:.2f}")


def test_training_both_directions_is_what_the_unseen_direction_lacks():
    """Sanity check of the measurement: the seen direction of the SAME held-out pairs is learned."""
    result, _ = run("reversal", vocab=200, epochs=60)
    final = result["final"]
    assert final["val_unseen_nll"] - final["val_seen_nll"] > 5, (
        f"the unseen direction should be far worse than the seen one: unseen {final['val_unseen_nll']:.2f}, "
        f"seen {final['val_seen_nll']:.2f}, want a gap > 5")


def test_chain_of_thought_works_where_the_direct_step_fails():
    result, runs = run("chain", vocab=200, epochs=60)
    final = result["final"]
    steps = chain_step_by_step(runs[0]["model"], runs[0]["dataset"])
    assert final["train_nll"] < 0.1, (
        f"the chain's training sentences should be learned: train NLL {final['train_nll']:.3f}")
    assert final["val_nll"] > final["log_vocab"], (
        f"the direct A ~> C of validation triples is not learned: NLL {final['val_nll']:.2f} "
        f"should stay above log|V| = {final['log_vocab']:.2f}")
    assert steps["step_by_step_acc"] > 0.9, (
        f"going A -> B -> C step by step recovers C: accuracy {steps['step_by_step_acc']:.2f}, want > 0.9")
    assert steps["direct_acc"] < 0.2, (
        f"the direct A ~> C answer should be near chance: accuracy {steps['direct_acc']:.2f}, want < 0.2")


def test_no_curse_when_the_fact_is_in_the_context():
    result, _ = run("incontext", vocab=200, epochs=40, batch_size=64)
    final = result["final"]
    assert final["val_nll"] < 0.2 * final["log_vocab"], f"validation NLL {final['val_nll']:.2f} should be near 0"


def test_learned_embeddings_do_not_collapse_onto_each_other():
    """Measured, not assumed: at width 32 the mean |cosine| is about 0.3 (random vectors: 0.14).

    The paper (width 768) reports ~0; a narrow model is further from orthogonal,
    but its entity embeddings stay far from collapsing onto one direction.
    """
    _, runs = run("reversal", vocab=200, epochs=30)
    sim, off, off_random = embedding_similarity(runs[0]["model"], runs[0]["dataset"])
    assert np.allclose(np.diag(sim), 1), (
        f"an embedding's cosine with itself is 1: diagonal from {np.diag(sim).min():.4f} to {np.diag(sim).max():.4f}")
    assert off_random < off < 0.5, (
        f"mean |cosine| between learned embeddings {off:.3f} should lie between "
        f"random vectors' {off_random:.3f} and 0.5")


def test_several_seeds_give_a_mean_and_a_spread():
    result, runs = run("reversal", vocab=40, epochs=3, seeds=2)
    assert len(runs) == 2, f"--seeds 2 gives 2 runs, got {len(runs)}"
    assert len(result["runs"]) == 2, f"--seeds 2 records 2 runs in the result, got {len(result['runs'])}"
    assert result["final"]["val_nll_std"] > 0, (
        f"two seeds should spread: val_nll_std {result['final']['val_nll_std']!r}, want > 0")
    a, b = (np.array([r["val_nll"] for r in run_["history"]]) for run_ in result["runs"])
    mean = np.array([r["val_nll"] for r in result["history"]])
    assert np.allclose(mean, (a + b) / 2), (
        f"the history is the mean of the seeds: val_nll {mean.tolist()}, the seeds' mean {((a + b) / 2).tolist()}")


# --------------------------------------------------------------------------- full size (pytest -m slow)

@pytest.mark.slow
def test_demo_reversal_defaults_show_the_curse():
    result, _ = run_experiment(RunConfig(), out=None)
    final = result["final"]
    assert final["train_nll"] < 0.05, f"the training sentences should be learned: train NLL {final['train_nll']:.3f}"
    assert final["val_seen_nll"] < 0.5, (
        f"the trained direction of held-out pairs: NLL {final['val_seen_nll']:.3f}, want < 0.5")
    assert final["val_nll"] > final["log_vocab"], (
        f"the unseen direction should stay worse than a uniform guess: {final['val_nll']:.2f} "
        f"vs log|V| = {final['log_vocab']:.2f}")


@pytest.mark.slow
def test_paper_small_model_3000_epochs_float32_stays_finite():
    """The paper's small variant (24 layers, width 20) for its 3000 epochs, in float32: no NaN."""
    result, runs = run("reversal", layers=24, width=20, heads=4, batch_size=64, vocab=800, epochs=3000,
                       eval_every=100)
    final = result["final"]
    for r in result["history"]:
        assert math.isfinite(r["train_nll"]), f"float32 training NLL at epoch {r['epoch']} is {r['train_nll']}"
    for name, v in runs[0]["model"].params.items():
        assert np.isfinite(v).all(), f"parameter {name} has {int((~np.isfinite(v)).sum())} non-finite entries"
    assert final["train_nll"] < 0.05, f"the training sentences should be learned: train NLL {final['train_nll']:.3f}"
    assert final["val_nll"] > final["log_vocab"], (
        f"the unseen direction should stay worse than a uniform guess: {final['val_nll']:.2f} "
        f"vs log|V| = {final['log_vocab']:.2f}")
