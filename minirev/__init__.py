"""minirev: the reversal curse, explained through the training dynamics of gradient descent.

The public API, used by the lessons:

    from minirev import Bilinear, OneLayer, GPT           # the three models
    from minirev import reversal_data, pairs_data          # the data sets
    from minirev import SGD, AdamW, Trainer, Trace         # training, every update readable
    from minirev import check_model, check_layer           # gradient checks against autograd
"""
from .bilinear import Bilinear
from .checkpoint import load_model
from .data import chain_data, incontext_data, pairs_data, reversal_data
from .errors import MinirevError, RunError, UsageError
from .gpt import GPT
from .gradcheck import check_layer, check_model, compare_gradients
from .one_layer import OneLayer
from .optim import SGD, AdamW
from .train import Trace, Trainer, evaluate

__all__ = ["Bilinear", "OneLayer", "GPT", "load_model", "chain_data", "incontext_data", "pairs_data",
           "reversal_data", "MinirevError", "RunError", "UsageError", "check_layer", "check_model",
           "compare_gradients", "SGD", "AdamW", "Trace", "Trainer", "evaluate"]
__version__ = "0.1.0"
