"""The reversal experiment (arXiv 2405.04669, section 5): train A -> B, ask B <- A."""
from ..data import reversal_data
from .base import Experiment


class Reversal(Experiment):
    name = "reversal"
    help = "the reversal experiment: train A -> B, test B <- A"
    default_epochs = 100
    measures = "unseen direction"
    failed = "the reversal curse"
    learned = "no curse here"
    traceable = True
    heatmap_columns = 2

    @classmethod
    def data(cls, cfg, seed):
        return reversal_data(cfg.vocab, cfg.entity_len, seed)

    @classmethod
    def shape(cls, cfg):
        alphabet = cfg.vocab // 4
        pairs = min(alphabet ** min(cfg.entity_len, 64), 2 * alphabet)       # as reversal_data draws them
        return cfg.vocab + 2, 2 * cfg.entity_len + 1, 3 * pairs
