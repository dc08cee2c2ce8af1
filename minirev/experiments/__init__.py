"""The paper's experiments, one file each, registered by name like the models.

    python -m minirev.demo reversal           # Experiment.registry["reversal"]

An experiment holds its data, its default epochs, what its validation NLL measures
and how the verdict says so, what else it measures and its figures
(``minirev/experiments/base.py``). Adding one is its file, its test and one line
here (docs/extending.md).
"""
from .base import Experiment  # noqa: F401
from . import reversal, chain, incontext, embeddings, chain_related  # noqa: F401  (each registers itself)
