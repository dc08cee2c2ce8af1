"""The reversal run, then the learned token embeddings: are they nearly orthogonal, as the theory assumes?"""
import os

from ..measures import embedding_similarity
from .reversal import Reversal


class Embeddings(Reversal):
    name = "embeddings"
    help = "cosine similarity of the learned embeddings after the reversal run"
    models = ("gpt", "gpt-mlm")                   # the models with learned token embeddings

    @classmethod
    def measure(cls, runs):
        _, off, off_random = embedding_similarity(runs[0]["model"], runs[0]["dataset"])
        return dict(mean_abs_cosine=off, mean_abs_cosine_random=off_random), [
            f"learned entity embeddings: mean |cosine similarity| between different tokens {off:.3f} "
            f"(random vectors of the same width: {off_random:.3f}); near 0 means nearly orthogonal"]

    @classmethod
    def figures(cls, result, runs, out_dir):
        from .. import plots
        paths = super().figures(result, runs, out_dir)
        sim, off, _ = embedding_similarity(runs[0]["model"], runs[0]["dataset"])
        paths.append(plots.plot_similarity(sim, os.path.join(out_dir, "embeddings_cosine.png"),
                                           f"cosine similarity of the learned entity embeddings\nmean |off-diagonal| {off:.3f}"))
        return paths
