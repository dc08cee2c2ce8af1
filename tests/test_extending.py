"""The two recipes of docs/extending.md, followed from this file alone: a new experiment and a new model,
each registered by defining its class, then run from the command line's entry point.

Run only these with: pytest -m structure
"""
import json

import numpy as np
import pytest

from minirev import demo
from minirev.data import reversal_data
from minirev.errors import UsageError
from minirev.experiments import Experiment
from minirev.layers import cross_entropy_backward, cross_entropy_forward
from minirev.model import Model
from minirev.optim import SGD

pytestmark = pytest.mark.structure


@pytest.fixture
def registered():
    """Classes defined inside a test register themselves; this takes them out again afterwards."""
    models, experiments = dict(Model.registry), dict(Experiment.registry)
    yield
    Model.registry.clear(), Model.registry.update(models)
    Experiment.registry.clear(), Experiment.registry.update(experiments)


def define_toy_experiment():
    class SmallReversal(Experiment):                       # recipe 1: an experiment is its class
        name = "small-reversal"
        help = "the reversal data of a small vocabulary, for a quick look"
        default_epochs = 7
        measures = "unseen direction"
        failed = "the reversal curse"
        learned = "no curse here"

        @classmethod
        def data(cls, cfg, seed):
            return reversal_data(cfg.vocab, cfg.entity_len, seed)

        @classmethod
        def shape(cls, cfg):                               # as reversal_data draws: a pair per alphabet token
            return cfg.vocab + 2, 3, 3 * (cfg.vocab // 4)

        @classmethod
        def measure(cls, runs):
            n = len(runs[0]["dataset"].train)
            return dict(training_sentences=n), [f"trained on {n} sentences"]
    return SmallReversal


def define_toy_model():
    class Bigram(Model):                                   # recipe 2: a model is its class
        """logit(y | x) = W[x, y]: the answer read from a table by the sentence's first token (the entity)."""
        kind = "bigram"
        default_lr = 1.0
        options = ("width",)                               # reads nothing of --width, but says it takes it

        def __init__(self, vocab_size, seed=0, dtype=np.float32, backend="numpy"):
            rng = np.random.default_rng(seed)
            super().__init__({"W": rng.normal(0, 0.01, (vocab_size, vocab_size))}, vocab_size, dtype, backend)

        @classmethod
        def from_config(cls, cfg, dataset, seed):
            cls.single_token_answers(dataset)
            return cls(dataset.vocab_size, seed=seed, dtype=cfg.dtype, backend=cfg.backend)

        @staticmethod
        def make_optimizer(cfg):
            return SGD(cfg.lr, weight_decay=cfg.weight_decay)

        @classmethod
        def parameter_count(cls, cfg, V, P):
            return V * V

        @classmethod
        def gradcheck_example(cls, seed=0):
            return cls(7, seed=seed), np.random.default_rng(seed).integers(0, 7, (5, 3))

        def forward(self, params, tokens, xp, rng=None):   # (B, T) -> scalar
            logits = params["W"][tokens[:, 0]]             # (B, V) the row of the entity
            loss, c_ce = cross_entropy_forward(xp, logits, tokens[:, -1])
            return loss, (xp, tokens, c_ce)

        def backward(self, cache):
            xp, tokens, c_ce = cache
            dlogits = cross_entropy_backward(1.0, c_ce)    # (B, V)
            dW = xp.zeros(self.params["W"].shape, dtype=dlogits.dtype)
            xp.add.at(dW, tokens[:, 0], dlogits)           # forward: a row lookup, so scatter back
            return {"W": dW}

        def logits(self, tokens):                          # (B, T) -> (B, 1, V)
            tokens = self.check_tokens(tokens)
            return self.params["W"][tokens[:, 0]][:, None, :]
    return Bigram


def test_a_new_experiment_runs_from_the_command_line(registered, tmp_path, capsys):
    define_toy_experiment()
    path = tmp_path / "r.json"
    code = demo.main(["small-reversal", "--vocab", "40", "--layers", "1", "--width", "16", "--heads", "2",
                      "--out", str(tmp_path), "--json", str(path)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    result = json.loads(path.read_text())
    assert result["experiment"] == "small-reversal" and result["final"]["epochs"] == 7, \
        f"the experiment's own default epochs (7) should apply, got {result['final']['epochs']}"
    n = len(reversal_data(40, 1, 1234).train)
    assert result["final"]["training_sentences"] == n and f"trained on {n} sentences" in printed, printed
    assert (tmp_path / "small-reversal_nll.png").exists(), "the default figures are drawn under its name"


def test_a_new_model_runs_from_the_command_line_and_passes_the_gradient_check(registered, tmp_path, capsys):
    define_toy_model()
    code = demo.main(["reversal", "--model", "bigram", "--vocab", "40", "--epochs", "20", "--lr", "5",
                      "--out", str(tmp_path), "--json", str(tmp_path / "r.json")])
    printed = capsys.readouterr().out
    assert code == 0, printed
    final = json.loads((tmp_path / "r.json").read_text())["final"]
    assert final["train_nll"] < 0.5 < final["val_nll"], f"a bigram table learns A -> B, never B <- A: {final}"
    assert demo.main(["gradcheck", "--model", "bigram"]) == 0, capsys.readouterr().out


def test_the_new_model_is_refused_options_it_does_not_take(registered, capsys):
    define_toy_model()
    assert demo.main(["reversal", "--model", "bigram", "--layers", "3"]) == 2
    err = capsys.readouterr().err
    assert "--layers does not apply to --model bigram" in err and "it takes --width" in err, err


def test_a_model_without_a_parameter_count_is_named_not_skipped(registered):
    from minirev import RunConfig
    from minirev.machinery.limits import check_run_memory
    Bigram = define_toy_model()
    del Bigram.parameter_count
    with pytest.raises(NotImplementedError, match="Bigram must define parameter_count"):
        check_run_memory(RunConfig(model="bigram", vocab=40).resolved())


def test_a_registered_experiment_with_a_model_list_refuses_others(registered):
    from minirev import RunConfig
    Small = define_toy_experiment()
    Small.models = ("gpt",)
    with pytest.raises(UsageError, match="runs --model gpt, not one-layer: use --model gpt"):
        RunConfig(experiment="small-reversal", model="one-layer").resolved()
