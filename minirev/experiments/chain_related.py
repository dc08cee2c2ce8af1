"""The chain of thought with related tokens (the public code's train_chain_related_tokens, arXiv 2405.04669's
appendix): entities of two tokens (x i), (y i), (z i) that share their second token i. The direct
[x i ~> z i] of a validation triple can be answered by a rule, "z, then copy i", so here it can be learned."""
import numpy as np

from ..backend import to_numpy
from ..data import related_chain_data
from ..layers import cross_entropy_forward
from .chain import Chain


def token_nll(model, rows, k):
    """The NLL of the k-th answer token alone, on (n, T) rows."""
    logits = to_numpy(model.logits(rows)).astype(np.float64)[:, k]        # (n, V)
    nll, _ = cross_entropy_forward(np, logits, np.asarray(rows)[:, -model.n_target + k])
    return float(nll)


class ChainRelated(Chain):
    name = "related"
    help = "chain of thought with related tokens: x i -> y i, y i -> z i trained; is x i ~> z i learned?"
    default_epochs = 100
    measures = "direct x i ~> z i on validation triples"
    failed = "the direct x i ~> z i was not learned"
    learned = "the direct x i ~> z i was learned: the shared token i carries the rule"

    @classmethod
    def check(cls, cfg):
        super().check(cfg)
        given = sorted({"vocab", "entity_len"} & cfg.given())
        if given and (cfg.entity_len != 1 or cfg.vocab != 800):
            from ..errors import UsageError
            raise UsageError(f"the related experiment is the public code's fixed data (vocabulary 800, "
                             f"alphabet 600, entities of 2 tokens): drop --{given[0].replace('_', '-')}")

    @classmethod
    def data(cls, cfg, seed):
        return related_chain_data(seed=seed)

    @classmethod
    def shape(cls, cfg):
        return 803, 5, 750

    @classmethod
    def measure(cls, runs):
        steps, lines = super().measure(runs)
        model, data = runs[0]["model"], runs[0]["dataset"]
        rows = data.groups["C given A (val)"]
        copied = dict(val_i_nll=token_nll(model, rows, 1), val_z_nll=token_nll(model, rows, 0))
        return dict(steps, **copied), lines + [
            f"direct x i ~> z i on the validation triples, token by token: z {copied['val_z_nll']:.3f} nats, "
            f"the copied i {copied['val_i_nll']:.3f} nats (a uniform guess over the 600 i: {np.log(600):.2f})"]
