"""The reversal run, then the learned token embeddings: are they nearly orthogonal, as the theory assumes?"""
import os

import numpy as np

from ..measures import embedding_similarity
from .reversal import Reversal


def orthogonality_verdict(learned, initial, random):
    """One sentence on the paper's "nearly orthogonal", from the mean |cosine| between different tokens' embeddings:
    against 0 (orthogonal) and 1 (aligned), random vectors of the same width, and the embeddings at initialisation."""
    ratio = learned / random
    start = f"training moved the mean |cosine| from {initial:.3f} at initialisation to {learned:.3f}, " + (
        f"{ratio:.1f} times that of random vectors of this width ({random:.3f})" if ratio >= 1.05 else
        f"about that of random vectors of this width ({random:.3f})")
    if learned >= 0.5:
        return f"{start}: closer to aligned (1) than to orthogonal (0), so 'nearly orthogonal' does not hold."
    if ratio < 1.25:
        return f"{start}: as orthogonal as random vectors get, so 'nearly orthogonal' holds."
    return f"{start}: closer to orthogonal (0) than to aligned (1), but 'nearly orthogonal' holds only loosely."


APPENDIX_WIDTHS = (20, 64, 768)          # the widths of the appendix's models (arXiv 2405.04669)


def random_mean_abs_cosine(n, width, seed=0):
    """The mean |cosine| between n random Gaussian vectors of this width (about sqrt(2 / (pi width)))."""
    R = np.random.default_rng(seed).standard_normal((n, width))
    R /= np.linalg.norm(R, axis=1, keepdims=True)
    return float(np.abs((R @ R.T)[~np.eye(n, dtype=bool)]).mean())


class Embeddings(Reversal):
    name = "embeddings"
    help = "cosine similarity of the learned embeddings after the reversal run"
    models = ("gpt", "gpt-mlm")                   # the models with learned token embeddings

    @classmethod
    def measure(cls, runs):
        from ..running import make_model             # (running imports the experiments)
        run = runs[0]
        sim, off, off_random = embedding_similarity(run["model"], run["dataset"], limit=None)
        # the same model at initialisation: its seed draws the very embeddings training started from
        initial = make_model(run["cfg"].replace(backend="numpy"), run["dataset"], run["seed"])
        _, off_initial, _ = embedding_similarity(initial, run["dataset"])
        return dict(mean_abs_cosine=off, mean_abs_cosine_random=off_random, mean_abs_cosine_initial=off_initial), [
            f"learned entity embeddings: mean |cosine similarity| between different tokens {off:.3f} "
            f"(at initialisation {off_initial:.3f}; random vectors of the same width: {off_random:.3f}); "
            "near 0 means nearly orthogonal",
            orthogonality_verdict(off, off_initial, off_random),
            "random vectors at the appendix's widths " + ", ".join(
                f"{w}: {random_mean_abs_cosine(len(sim), w):.3f}" for w in APPENDIX_WIDTHS)
            + "; the learned ones at those widths: python -m minirev.demo sweep (its embeddings lines)"]

    @classmethod
    def figures(cls, result, runs, out_dir):
        from .. import plots
        paths = super().figures(result, runs, out_dir)
        sim, off, _ = embedding_similarity(runs[0]["model"], runs[0]["dataset"])
        paths.append(plots.plot_similarity(sim, os.path.join(out_dir, "embeddings_cosine.png"),
                                           f"cosine similarity of learned entity embeddings (mean |off-diag| {off:.3f})"))
        return paths
