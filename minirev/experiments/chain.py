"""Chain of thought (arXiv 2405.04669, section 4.2): A -> B and B -> C are learned, the direct A ~> C is not."""
from ..data import chain_data
from ..measures import chain_step_by_step
from .reversal import Reversal


class Chain(Reversal):
    name = "chain"
    help = "chain of thought: A -> B, B -> C trained; is A ~> C learned?"
    default_epochs = 80
    measures = "direct A ~> C on validation triples"
    failed = "the direct A ~> C was not learned"
    learned = "the direct A ~> C was learned"
    traceable = False
    heatmap_columns = 3

    @classmethod
    def data(cls, cfg, seed):
        return chain_data(cfg.vocab, cfg.entity_len, seed)

    @classmethod
    def measure(cls, runs):
        steps = chain_step_by_step(runs[0]["model"], runs[0]["dataset"])
        return steps, [f"chain of thought on the validation triples: A -> B right {100 * steps['b_acc']:.1f}%, "
                       f"then B -> C right {100 * steps['step_by_step_acc']:.1f}%; "
                       f"the direct A ~> C right {100 * steps['direct_acc']:.1f}%"]
