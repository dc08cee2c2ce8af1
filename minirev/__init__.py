"""minirev: the reversal curse, explained through the training dynamics of gradient descent.

The public API, used by the lessons:

    from minirev import Bilinear, OneLayer, GPT           # the three models
    from minirev import reversal_data, pairs_data          # the data sets
    from minirev import SGD, AdamW, Trainer, Trace         # training, every update readable
    from minirev import check_model, check_layer           # gradient checks against autograd
    from minirev import RunConfig, run_experiment          # the paper's experiments, one typed configuration
    from minirev import Experiment, Model                  # the registries: add an experiment or a model
    from minirev import save_model, load_model             # a model in one .npz file
"""
import os
import sys

from .machinery import BLAS_VARS  # noqa: E402  (no NumPy there: it must come first)


def _started_as_command():
    """Whether `python -m minirev...` is loading us: Python sets argv[0] to "-m" until the module is found,
    and sys.orig_argv (3.10+) names the module. Any other program that imports us keeps its own signals."""
    argv = [a for a in getattr(sys, "orig_argv", []) if a.startswith("-m")][:1]
    module = sys.orig_argv[sys.orig_argv.index(argv[0]) + 1] if argv == ["-m"] else argv[0][2:] if argv else ""
    return sys.argv[:1] == ["-m"] and module.split(".")[0] == "minirev"


if _started_as_command():
    # Ctrl-C, SIGTERM or SIGHUP while the package loads ends the command in one line, not a traceback;
    # the command line's main() takes over once it runs.
    import signal

    def _loading(signum, frame):
        os.write(2, f"\nminirev: interrupted by {signal.Signals(signum).name} while starting\n".encode())
        os._exit(128 + signum)
    for _signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(_signum) is not signal.SIG_IGN:
            signal.signal(_signum, _loading)

if "numpy" not in sys.modules:
    # The models here are small: their matrix products run as fast on one BLAS thread, and a
    # multi-threaded BLAS slows down many times over when the machine is busy with other work.
    # So, unless you chose otherwise (or imported NumPy first), minirev asks for one thread.
    for _var in BLAS_VARS:
        os.environ.setdefault(_var, "1")

from .bilinear import Bilinear  # noqa: E402
from .machinery.checkpoint import load_model, save_model  # noqa: E402
from .config import RunConfig  # noqa: E402
from .data import chain_data, incontext_data, pairs_data, reversal_data  # noqa: E402
from .errors import MinirevError, RunError, UsageError  # noqa: E402
from .experiments import Experiment  # noqa: E402
from .gradcheck import check_layer, check_model, compare_gradients  # noqa: E402
from .one_layer import OneLayer  # noqa: E402
from .gpt import GPT  # noqa: E402
from .model import Model  # noqa: E402
from .factorized import Factorized  # noqa: E402
from .mlm import MaskedGPT  # noqa: E402
from .optim import SGD, AdamW  # noqa: E402
from .trace import Trace  # noqa: E402
from .train import Trainer, evaluate  # noqa: E402
from .running import run_experiment  # noqa: E402

__all__ = ["Experiment", "Model", "Bilinear", "OneLayer", "Factorized", "GPT", "MaskedGPT", "RunConfig", "run_experiment", "load_model", "save_model", "chain_data", "incontext_data", "pairs_data",
           "reversal_data", "MinirevError", "RunError", "UsageError", "check_layer", "check_model",
           "compare_gradients", "SGD", "AdamW", "Trace", "Trainer", "evaluate"]
from ._version import __version__  # noqa: E402  (written once, in minirev/_version.py)
