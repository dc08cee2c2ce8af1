"""The command line:  python -m minirev.demo COMMAND [options]

The commands: every experiment of the registry (minirev/experiments/: reversal,
chain, incontext, embeddings), then bilinear (the bilinear model's dimension
sweep), theory (the paper's theorems as numbers), gradcheck (every hand-written
gradient against autograd) and cures (the cures from the literature side by side). Every command has --help, its options in
groups. Errors are one line, "minirev: error: ...": exit status 2 for a bad
request, 1 when running it failed.
"""
import argparse
import dataclasses
import difflib
import math
import os
import re
import signal
import sys
import threading

import numpy as np

from . import commands
from .backend import BACKENDS
from .config import GROUPS, RunConfig, choices, did_you_mean, field_type, to_flag
from .cures import ROWS
from .sweep import CELLS
from .errors import MinirevError
from .experiments import Experiment
from .gradcheck import DEFAULT_TOL
from .machinery.parallel import cores
from .model import DTYPES, Model
from .train import STOP_SIGNALS, stop_signal
from ._version import __version__

PROG = "python -m minirev.demo"


# --------------------------------------------------------------------------- argument types

def whole_number(minimum, maximum=None):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, got {value}")
        return value
    return parse


positive_int = whole_number(1)
nonnegative_int = whole_number(0)


def finite_float(minimum, strict=False, below=None):
    """A number >= minimum (> minimum if strict), and < below if given: RunConfig's bounds for its field."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"must be a finite number {'>' if strict else '>='} {minimum:g}, "
                                             f"got {text}")
        if below is not None and value >= below:
            raise argparse.ArgumentTypeError(f"must be in [{minimum:g}, {below:g}), got {text}")
        return value
    return parse


positive_float = finite_float(0.0, strict=True)


def dims_list(text):
    """'16,64,256,onehot' -> [16, 64, 256, None]"""
    dims = []
    for part in text.split(","):
        part = part.strip().lower()
        if part in ("onehot", "one-hot"):
            dims.append(None)
        else:
            dims.append(positive_int(part))
    return dims


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is ONE line (and exit status 2), with a "did you mean" where one is close."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)    # --epoch is a typo, not --epochs
        super().__init__(*args, **kwargs)

    def error(self, message):
        wrong = re.search(r"invalid choice: '?([^' ]*)'? \(choose from (.*)\)", message)
        if wrong:
            message += did_you_mean(wrong.group(1), re.findall(r"'([^']*)'", wrong.group(2)) or
                                    [c.strip() for c in wrong.group(2).split(",")])
        self.exit(2, f"minirev: error: {message} (see {self.prog} --help)\n")

    def refuse_unknown(self, extras):
        """Options this parser does not know, each with the closest one it does."""
        hints = [difflib.get_close_matches(e.split("=")[0], list(self._option_string_actions), n=1, cutoff=0.6)
                 for e in extras if e.startswith("-")]
        hints = [f"did you mean {h[0]}?" for h in hints if h]
        self.error("unrecognized arguments: " + " ".join(extras) + ("; " + " ".join(hints) if hints else ""))


# --------------------------------------------------------------------------- the parser

def add_config_options(p, experiment):
    """One option per field of RunConfig (its help, its checks), in the groups of --help.

    No option has a default here: a field is set in the RunConfig only when it was given,
    so the config can tell an explicit value, even one equal to the default, from none."""
    groups = {name: p.add_argument_group(f"{name} options") for name in GROUPS}
    for f in dataclasses.fields(RunConfig):
        meta = f.metadata
        if not meta.get("command_line", True):
            continue
        kind = field_type(f)
        text = meta["help"].replace("%(default)s", str(f.default))
        text = text.replace("{experiment_epochs}", str(experiment.default_epochs)).replace("%", "%%")
        kwargs = dict(help=text, default=argparse.SUPPRESS)
        if kind is bool:
            groups[meta["group"]].add_argument(to_flag(f.name), action="store_true", **kwargs)
            continue
        if "choices" in meta:
            kwargs.update(choices=choices(f))
        else:
            kwargs["metavar"] = meta.get("metavar")
            if kind is int:
                kwargs["type"] = whole_number(meta["minimum"], meta.get("maximum"))
            elif kind is float:
                kwargs["type"] = finite_float(meta["minimum"], meta.get("strict", False), meta.get("below"))
        groups[meta["group"]].add_argument(to_flag(f.name), **kwargs)
    return groups


def build_parser():
    parser = Parser(prog=PROG, description="The reversal curse, explained through the training dynamics of "
                                           "gradient descent: the paper's experiments, the bilinear model, the "
                                           "gradient checks and the cures.",
                    epilog=f"Run '{PROG} COMMAND --help' for the options of a command.")
    parser.add_argument("--version", action="version", version=f"minirev {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    parser.commands = sub.choices                 # name -> the command's own parser
    for name, experiment in Experiment.registry.items():
        e = sub.add_parser(name, help=experiment.help, description=experiment.help[0].upper() + experiment.help[1:]
                           + ".")
        groups = add_config_options(e, experiment)
        add_outputs(groups["output"], f"minirev_output/{name}")

    b = sub.add_parser("bilinear", help="the bilinear model: dimension sweep, forward vs reverse weight",
                       description="Train the bilinear model logit(y|x) = u_x^T Theta u_y for several embedding "
                                   "dimensions and print the training and reversal loss of each.")
    b.add_argument("--dims", type=dims_list, default=[16, 64, 256, None],
                   help="embedding dimensions, comma-separated; 'onehot' for one-hot (default: 16,64,256,onehot)")
    b.add_argument("--vocab", type=positive_int, default=200, help="vocabulary size m (default: %(default)s)")
    b.add_argument("--pairs", type=positive_int, default=50, help="number of pairs n (default: %(default)s)")
    b.add_argument("--held-out", type=positive_int, default=10,
                   help="pairs whose reverse is never trained, the ones measured (default: %(default)s)")
    b.add_argument("--lr", type=positive_float, default=20.0, help="learning rate eta (default: %(default)s)")
    b.add_argument("--steps", type=whole_number(1, 10 ** 6), default=3000,
                   help="gradient steps (default: %(default)s)")
    b.add_argument("--trace", type=nonnegative_int, default=0, metavar="STEPS",
                   help="print the first STEPS updates of one held-out pair, sentence by sentence")
    b.add_argument("--seed", type=nonnegative_int, default=0, help="random seed (default: %(default)s)")
    b.add_argument("--backend", choices=BACKENDS, default="numpy",
                   help="array library: numpy (CPU) or cupy (GPU, needs pip install -e \".[gpu]\")")
    b.add_argument("--dtype", choices=tuple(DTYPES), default="float32",
                   help="training precision (default: %(default)s)")
    add_outputs(b, "minirev_output/bilinear")

    c = sub.add_parser("cures", help="what breaks the curse: the cures from the literature, side by side",
                       description="Train every intervention (rows) for several seeds on the reversal data and "
                                   "print one table: NLL, rank within the alphabet, the two yardsticks and a "
                                   "verdict that holds for every seed.")
    c.add_argument("--rows", type=lambda text: [k.strip() for k in text.split(",") if k.strip()], default=None,
                   help="comma-separated row names, from: " + ", ".join(r.key for r in ROWS)
                        + " (default: all but " + ", ".join(r.key for r in ROWS if not r.default) + ")")
    c.add_argument("--seeds", type=positive_int, default=5, help="seeds per row (default: %(default)s)")
    c.add_argument("--seed", type=nonnegative_int, default=1234, help="the first seed (default: %(default)s)")
    c.add_argument("--quick", action="store_true", help="small models on small data: a check in well under a minute")
    c.add_argument("--jobs", type=positive_int, default=os.cpu_count() or 1,
                   help="worker processes (default: the number of cores, %(default)s)")
    add_outputs(c, "minirev_output/cures")

    t = sub.add_parser("theory", help="the paper's theorems as numbers: every claim measured at every step",
                       description="Measure the theorems of arXiv 2405.04669 along whole runs: the bilinear bound "
                                   "L_rev(t)/L_rev(0) >= (L(t)/L(0))^eps (section 3) over d, n and embedding seeds, "
                                   "and the one-layer transformer's reversal (4.1) and chain of thought (4.2) over "
                                   "seeds; one table of claims with PASS or FAIL, one figure per claim. Exit status "
                                   "1 when a claim fails.")
    size = t.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="fewer sizes, seeds and steps: a check in seconds")
    size.add_argument("--full", action="store_true",
                      help="also n = 200 pairs, and 1000 bilinear steps instead of 100 (about 17 minutes of CPU)")
    add_outputs(t, "minirev_output/theory")
    w = sub.add_parser("sweep", help="the appendix's axes as one figure: the curse over size, vocabulary, "
                                     "entity length, positions, frozen embeddings",
                       description="Train the reversal run along each axis of the paper's appendix (layers / width, "
                                   "vocabulary, entity length, positions, frozen embeddings), several seeds per "
                                   "cell, and print one table and one figure: unseen NLL and rank against both "
                                   "yardsticks, and a verdict per cell that holds for every seed. The full sweep "
                                   "takes long on a CPU: it prints its estimate first.")
    w.add_argument("--cells", type=lambda text: [k.strip() for k in text.split(",") if k.strip()], default=None,
                   help="comma-separated cell names (default: all), from: "
                        + ", ".join(dict.fromkeys(c.key for c in CELLS)))
    w.add_argument("--seeds", type=positive_int, default=5, help="seeds per cell (default: %(default)s)")
    w.add_argument("--seed", type=nonnegative_int, default=1234, help="the first seed (default: %(default)s)")
    w.add_argument("--quick", action="store_true", help="small models on small data, 3 epochs: a check of the "
                                                        "machinery in seconds, not of the curse")
    w.add_argument("--jobs", type=positive_int, default=os.cpu_count() or 1,
                   help="processes for each cell's seeds, as --seeds uses them (default: the number of cores, "
                        "%(default)s)")
    w.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help='run the seeds on the Dask cluster at ADDRESS (needs pip install -e ".[cluster]")')
    w.add_argument("--backend", choices=BACKENDS, default="numpy",
                   help='array library: numpy (CPU) or cupy (GPU, needs pip install -e ".[gpu]")')
    add_outputs(w, "minirev_output/sweep")

    g = sub.add_parser("gradcheck", help="check every hand-written gradient against autograd (float64)",
                       description="Differentiate each model's forward with autograd in float64 and compare it "
                                   "with the hand-written backward, one line per parameter.")
    g.add_argument("--model", choices=("all", *Model.registry), default="all",
                   help="the model whose gradient-check example to run (default: all)")
    g.add_argument("--seed", type=nonnegative_int, default=0,
                   help="seed of the examples' random parameters and tokens (default: %(default)s)")
    g.add_argument("--tol", type=positive_float, default=DEFAULT_TOL, help="relative error bound (default: %(default)s)")
    return parser


def add_outputs(p, out_default):
    p.add_argument("--out", default=out_default, help="folder for the figures (default: %(default)s)")
    p.add_argument("--json", metavar="PATH", help="also write the configuration and results as JSON here")


def parse(argv=None):
    """The parsed command line; an unknown option is refused by its command's parser, with a suggestion."""
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        parser.commands[args.command].refuse_unknown(extras)
    return args


def dispatch(args):
    """Hand the parsed options to the command (minirev/commands.py)."""
    if args.command == "gradcheck":
        return commands.gradcheck(list(Model.registry) if args.model == "all" else [args.model], args.seed, args.tol)
    if args.command == "cures":
        return commands.cures(args.rows, args.seeds, args.seed, args.quick, args.jobs, args.out, args.json)
    if args.command == "theory":
        return commands.theory(args.quick, args.full, args.out, args.json)
    if args.command == "sweep":
        return commands.sweep(args.cells, args.seeds, args.seed, args.quick, args.jobs, args.scheduler, args.backend,
                              args.out, args.json)
    if args.command == "bilinear":
        cfg = RunConfig(model="bilinear", vocab=args.vocab, lr=args.lr, epochs=args.steps, seed=args.seed,
                        dtype=args.dtype, backend=args.backend, trace=args.trace)
        return commands.bilinear(cfg, args.dims, args.pairs, args.held_out, args.out, args.json)
    given = {name: value for name, value in vars(args).items() if name in RunConfig.names()}
    given.setdefault("jobs", cores())   # the command line runs seeds side by side; Python's default is one process
    return commands.experiment(RunConfig(experiment=args.command, **given), args.out, args.json)


def where_failed(e):
    """What an OSError without a file name was about, where that can be told: a deleted working folder."""
    try:
        os.getcwd()
    except FileNotFoundError:
        return "the working folder no longer exists (deleted?): cd into a folder that does"
    return ""
class Lines:
    """stdout that goes quiet when its reader leaves (``| head -3``): the run goes on and still writes its
    checkpoint, figures and JSON; the lines it prints from then on go to /dev/null."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text):
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            self.reader_left()
            return len(text)

    def flush(self):
        try:
            self.stream.flush()
        except BrokenPipeError:
            self.reader_left()

    def reader_left(self):
        devnull = os.open(os.devnull, os.O_WRONLY)          # the descriptor itself: Python flushes it at exit
        os.dup2(devnull, self.stream.fileno())
        os.close(devnull)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def main(argv=None):
    """Run the command line; returns the exit status. SIGTERM and SIGHUP are handled like Ctrl-C: during
    training they stop it between two steps (minirev/train.py), before it they end the run in one line."""
    if sys.stdout is None:          # started with stdout closed (>&-): the lines go nowhere, the files still
        sys.stdout = open(os.devnull, "w")
    stdout, sys.stdout = sys.stdout, Lines(sys.stdout)
    main_thread = threading.current_thread() is threading.main_thread()      # (the only one signals reach)
    previous = {signum: signal.signal(signum, stop_signal) for signum in STOP_SIGNALS
                if main_thread and signal.getsignal(signum) is not signal.SIG_IGN}
    try:
        args = parse(argv)
        # overflow inside NumPy is not an error here: a diverging run is caught (and named) by the
        # training loop's finite-loss check, so NumPy's own warnings would only add noise
        with np.errstate(all="ignore"):
            return dispatch(args) or 0
    except MinirevError as e:
        print(f"minirev: error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        print(f"minirev: error: {e.strerror or e}: {e.filename or where_failed(e)}".rstrip(": "), file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", signal.SIGINT)
        print(f"\nminirev: interrupted by {signal.Signals(signum).name}", file=sys.stderr)
        return 128 + signum
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sys.stdout.flush()
        sys.stdout = stdout


if __name__ == "__main__":
    sys.exit(main())
