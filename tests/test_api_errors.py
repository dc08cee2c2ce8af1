"""The Python API refuses a wrong argument in one line (a UsageError naming it and the fix), never a traceback
from deep inside NumPy, and never after allocating what cannot fit.

Run only these with: pytest tests/test_api_errors.py
"""
import numpy as np
import pytest

from minirev import GPT, Bilinear, Factorized, MaskedGPT, OneLayer, RunConfig, Trainer, run_experiment
from minirev.errors import UsageError
from minirev.running import make_dataset, make_model, make_optimizer

CFG = RunConfig(layers=1, width=16, heads=2, vocab=40, epochs=1).resolved()
DATA = make_dataset(CFG)
RAGGED = [[1, 2, 3], [1, 2]]


def model():
    return make_model(CFG, DATA)


CASES = [  # (what a user typed, the call, what the one-line message must say)
    ("RunConfig(unknown_field=1)", lambda: RunConfig(unknown_field=1), "RunConfig has no field 'unknown_field'"),
    ("RunConfig(scheduler='')", lambda: RunConfig(scheduler="").resolved(), "--scheduler '': the scheme must be tcp://"),
    ("run_experiment(cfg, out=123)", lambda: run_experiment(CFG, out=123), "out takes a function"),
    ("Trainer(seed='x')", lambda: Trainer(model(), make_optimizer(CFG), DATA, seed="x"),
     "Trainer: seed must be a whole number >= 0, got 'x'"),
    ("Trainer(seed=-1)", lambda: Trainer(model(), make_optimizer(CFG), DATA, seed=-1),
     "Trainer: seed must be a whole number >= 0, got -1"),
    ("Trainer(m, None, data).run(1)", lambda: Trainer(model(), None, DATA).run(1),
     "Trainer: optimizer has no .step, got NoneType"),
    ("Trainer(m, opt, None)", lambda: Trainer(model(), make_optimizer(CFG), None),
     "Trainer: dataset has no .train, got NoneType"),
    ("Trainer(...).run(epochs='2')", lambda: Trainer(model(), make_optimizer(CFG), DATA).run(epochs="2"),
     "Trainer: epochs must be a whole number >= 0, got '2'"),
    ("GPT: ragged tokens", lambda: model().loss_and_grads(RAGGED), "gpt: .* sentences of different lengths"),
    ("GPT-MLM: ragged tokens", lambda: MaskedGPT(10, layers=1, width=8, heads=2).logits(RAGGED),
     "gpt-mlm: .* sentences of different lengths"),
    ("OneLayer: ragged tokens", lambda: OneLayer(10).loss(RAGGED), "one-layer: .* sentences of different lengths"),
    ("Bilinear: ragged tokens", lambda: Bilinear(10).logits(RAGGED), "bilinear: .* sentences of different lengths"),
    ("GPT(seed=-1)", lambda: GPT(40, seed=-1), "gpt: seed must be a whole number >= 0, got -1"),
    ("GPT(width=10**9)", lambda: GPT(40, width=10 ** 9), "gpt: .* parameters would need about .* over half"),
    ("Bilinear(10**6)", lambda: Bilinear(10 ** 6), "bilinear: .* parameters would need about .* over half"),
    ("OneLayer(10**6)", lambda: OneLayer(10 ** 6), "one-layer: .* parameters would need about"),
    ("Factorized(10, rank=0)", lambda: Factorized(10, rank=0), "rank must be a whole number >= 1"),
    ("OneLayer(seed=1.5)", lambda: OneLayer(10, seed=1.5), "one-layer: seed must be a whole number >= 0"),
]


@pytest.mark.parametrize("call, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_wrong_argument_is_one_line_naming_it(call, message):
    with pytest.raises(UsageError, match=message) as refused:
        call()
    text = str(refused.value)
    assert "\n" not in text, f"the error should be one line, got:\n{text}"


def test_a_model_too_large_is_refused_before_anything_is_allocated(monkeypatch):
    """The refusal comes from the sizes alone: no random draw (nor any array) is made first."""
    def no_draws(*args, **kwargs):
        raise AssertionError("a random generator was built: the size should have been refused before")
    monkeypatch.setattr(np.random, "default_rng", no_draws)
    with pytest.raises(UsageError, match="over half"):
        GPT(40, width=10 ** 9)
    with pytest.raises(UsageError, match="over half"):
        Bilinear(10 ** 6, dim=10 ** 6)
