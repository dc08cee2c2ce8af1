"""The fact stated in the context (arXiv 2405.04669, section 5): [x -> y <=> y <- ?] is answered; no curse."""
from ..data import incontext_data
from .base import Experiment


class InContext(Experiment):
    name = "incontext"
    help = "the fact stated in the context: no curse"
    default_epochs = 60
    measures = "validation"
    failed = "the in-context reversal was not learned"
    learned = "no curse when the fact is in the context"

    @classmethod
    def data(cls, cfg, seed):
        return incontext_data(cfg.vocab, seed=seed)

    @classmethod
    def shape(cls, cfg):
        return cfg.vocab + 3, 7, 1000                  # as incontext_data builds it: 100 x 10 sentences of 7 tokens
