"""The defaults follow the paper's public code as it actually runs (docs/paper.md, section 4).

Each row: what minirev sets, the value, and where the public code
(GitHub marlo-z/reversal_curse_analysis, with transformers 4.37.2 as its
requirements.txt pins) sets it. Size and epochs are the only departures
of the default run; `--paper` restores those too.
"""
import numpy as np
import pytest

from minirev import GPT, RunConfig
from minirev.config import PAPER
from minirev.running import make_dataset, make_model, make_optimizer
from minirev.optim import AdamW

pytestmark = pytest.mark.experiments

FROM_THE_PUBLIC_CODE = [  # (RunConfig field, value, where the public code sets it)
    ("tied", False, "GPT2CustomLMHeadModel.__init__: super().__init__ ties lm_head to a wte that the next line "
                    "discards (self.transformer = GPT2CustomModel(config)); _from_config never ties again"),
    ("dropout", 0.1, "never set, so GPT2Config's embd_pdrop = attn_pdrop = resid_pdrop = 0.1 apply"),
    ("lr", 0.01, "src/scripts/train_reverse.py: --lr default 0.01, passed to AdamW"),
    ("weight_decay", 0.01, "--decay is parsed but never passed to AdamW, so torch's default weight_decay 0.01"),
    ("batch_size", 64, "--batch_size default 64"),
    ("pos", "absolute", "--pos_encode_type default: GPT-2's learned absolute positions (wpe)"),
    ("vocab", 800, "--vocab_size default 800 (+2 relation tokens)"),
    ("entity_len", 1, "--word_size default 1"),
    ("seed", 1234, "--seed default 1234"),
    ("model", "gpt", "GPT2CustomLMHeadModel (a HuggingFace GPT-2 from a random init)"),
]
PAPER_SIZE = [("layers", 24, "--n_layers default"), ("width", 768, "--embed_dim default"),
              ("heads", 12, "--n_heads default"), ("epochs", 3000, "--num_epochs default")]


@pytest.mark.parametrize("field, value, source", FROM_THE_PUBLIC_CODE, ids=[r[0] for r in FROM_THE_PUBLIC_CODE])
def test_each_default_is_the_public_codes(field, value, source):
    assert getattr(RunConfig().resolved(), field) == value, f"default {field} should be {value!r}: {source}"
    assert getattr(RunConfig(paper=True).resolved(), field) == value, f"--paper: {field} should be {value!r}: {source}"


@pytest.mark.parametrize("field, value, source", PAPER_SIZE, ids=[r[0] for r in PAPER_SIZE])
def test_paper_selects_the_full_size(field, value, source):
    assert getattr(RunConfig(paper=True).resolved(), field) == value, f"--paper {field} should be {value!r}: {source}"


def test_the_table_covers_every_setting_of_paper():
    missing = sorted(set(PAPER) - {r[0] for r in FROM_THE_PUBLIC_CODE + PAPER_SIZE})
    assert not missing, f"these --paper settings have no source row in the table: {missing}"


def test_the_default_model_and_optimiser_are_built_as_the_code_runs():
    cfg = RunConfig(vocab=40).resolved()
    model, opt = make_model(cfg, make_dataset(cfg)), make_optimizer(cfg)
    assert "w_out" in model.params and model.out_name == "w_out", "untied: the output layer has its own matrix"
    assert model.dropout == 0.1, f"the default model's dropout should be 0.1, got {model.dropout}"
    assert isinstance(opt, AdamW), f"the default optimiser should be AdamW, got {type(opt).__name__}"
    got = (opt.lr, opt.beta1, opt.beta2, opt.weight_decay)
    assert got == (0.01, 0.9, 0.999, 0.01), (
        f"AdamW's (lr, beta1, beta2, weight_decay) should be torch's as the code runs, (0.01, 0.9, 0.999, 0.01); got "
        f"{got}")
    gpt = GPT(12)
    assert gpt.out_name == "w_out" and gpt.dropout == 0.1, "the GPT class has the same defaults"


def test_weight_decay_shrinks_every_tensor():
    """torch's AdamW decays every parameter (the code passes model.parameters() without groups)."""
    model = GPT(12, layers=1, width=8, heads=2)
    before = {k: v.copy() for k, v in model.params.items()}
    AdamW(lr=0.01).step(model.params, {k: np.zeros_like(v) for k, v in model.params.items()})
    for name, value in model.params.items():
        assert np.allclose(value, before[name] * (1 - 0.01 * 0.01)), (
            f"{name} was not decayed by 1 - lr x weight decay = 0.9999: max |after - 0.9999 x before| "
            f"{np.abs(value - before[name] * (1 - 0.01 * 0.01)).max():.2e}")


def test_loss_is_on_the_answer_tokens_only():
    """Changing the tokens a sentence is scored on changes the loss; the entity before the relation is context."""
    model = GPT(12, layers=1, width=8, heads=2, entity_len=2, dropout=0.0)
    tokens = np.array([[3, 4, 0, 5, 6]])
    logits = model.forward_logits(model.params, tokens, np)[0][0].astype(np.float64)      # (T, V)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    answer_only = -(logp[2, 5] + logp[3, 6]) / 2                   # positions 2, 3 predict tokens 5, 6
    assert model.loss(tokens) == pytest.approx(answer_only, rel=1e-5), (
        f"the loss should be the mean NLL of the answer tokens 5, 6 only, {answer_only:.6f}; got "
        f"{model.loss(tokens):.6f}")
