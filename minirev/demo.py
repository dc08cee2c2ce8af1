"""The command line:  python -m minirev.demo COMMAND [options]

    reversal     the paper's reversal experiment (a GPT by default): the curse, with figures
    chain        chain of thought: A -> B and B -> C learned, A ~> C not, step by step works
    incontext    the fact in the context: no curse
    embeddings   cosine similarity of the learned token embeddings after the reversal run
    bilinear     the bilinear model: sweep the embedding dimension, watch the reverse weight
    gradcheck    every hand-written gradient against autograd, one line per parameter
    cures        what breaks the curse: the cures from the literature, side by side over seeds

Every command has --help. Errors are one line: exit status 2 for a bad request,
1 when running it failed.
"""
import argparse
import dataclasses
import math
import os
import sys

import numpy as np

from . import commands
from .backend import BACKENDS
from .config import PAPER, RunConfig, choices, field_type, paper_config
from .cures import ROWS
from .errors import MinirevError, UsageError
from .model import Model


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


def finite_float(minimum, strict, what):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"{what}, got {text}")
        return value
    return parse


positive_float = finite_float(0.0, True, "must be a finite number > 0")
nonnegative_float = finite_float(0.0, False, "must be a finite number >= 0")


def probability(text):
    value = nonnegative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


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
    """argparse, but a usage error is ONE line (and exit status 2)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)    # --epoch is a typo, not --epochs
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# --------------------------------------------------------------------------- the parser

def add_config_options(p):
    """One option per field of RunConfig: its default, its help, its checks."""
    for f in dataclasses.fields(RunConfig):
        meta = f.metadata
        if not meta.get("command_line", True):
            continue
        flag, kind = "--" + f.name.replace("_", "-"), field_type(f)
        kwargs = dict(help=meta["help"], default=f.default, metavar=meta.get("metavar"))
        if kind is bool:
            p.add_argument(flag, action="store_true", help=meta["help"])
            continue
        if "choices" in meta:
            kwargs.update(choices=choices(f), metavar=None)
        elif kind is int:
            kwargs["type"] = whole_number(meta["minimum"], meta.get("maximum"))
        elif kind is float:
            kwargs["type"] = probability if f.name == "dropout" else \
                positive_float if meta.get("strict") else nonnegative_float
        p.add_argument(flag, **kwargs)


def build_parser():
    parser = Parser(prog="python -m minirev.demo", description=__doc__.split("\n\n")[1],
                    formatter_class=argparse.RawDescriptionHelpFormatter,
                    epilog="Run 'python -m minirev.demo COMMAND --help' for the options of a command.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

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
    b.add_argument("--steps", type=positive_int, default=3000, help="gradient steps (default: %(default)s)")
    b.add_argument("--trace", type=nonnegative_int, default=0, metavar="STEPS",
                   help="print the first STEPS updates of one held-out pair, sentence by sentence")
    b.add_argument("--seed", type=nonnegative_int, default=0, help="random seed (default: %(default)s)")
    b.add_argument("--backend", choices=BACKENDS, default="numpy",
                   help="array library: numpy (CPU) or cupy (GPU, needs pip install -e \".[gpu]\")")
    b.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="training precision")
    add_outputs(b, "minirev_output/bilinear")

    for name, text in (("reversal", "the reversal experiment: train A -> B, test B <- A"),
                       ("chain", "chain of thought: A -> B, B -> C trained; is A ~> C learned?"),
                       ("incontext", "the fact stated in the context: no curse"),
                       ("embeddings", "cosine similarity of the learned embeddings after the reversal run")):
        e = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        add_config_options(e)
        e.add_argument("--paper", action="store_true",
                       help="the paper's full configuration (24 layers, width 768, 12 heads, dropout 0.1, "
                            "3000 epochs unless --epochs is given): hours on a CPU, a GPU is advised")
        add_outputs(e, f"minirev_output/{name}")

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

    g = sub.add_parser("gradcheck", help="check every hand-written gradient against autograd (float64)",
                       description="Differentiate each model's forward with autograd in float64 and compare it "
                                   "with the hand-written backward, one line per parameter.")
    g.add_argument("--model", choices=("all", *Model.registry), default="all")
    g.add_argument("--seed", type=nonnegative_int, default=0)
    g.add_argument("--tol", type=positive_float, default=1e-7, help="relative error bound (default: %(default)s)")
    return parser


def add_outputs(p, out_default):
    p.add_argument("--out", default=out_default, help="folder for the figures (default: %(default)s)")
    p.add_argument("--json", metavar="PATH", help="also write the configuration and results as JSON here")


def dispatch(args):
    """Hand the parsed options to the command (minirev/commands.py)."""
    if args.command == "gradcheck":
        return commands.gradcheck(list(Model.registry) if args.model == "all" else [args.model], args.seed, args.tol)
    if args.command == "cures":
        return commands.cures(args.rows, args.seeds, args.seed, args.quick, args.jobs, args.out, args.json)
    if args.command == "bilinear":
        options = {k: v for k, v in vars(args).items() if k != "command"}
        return commands.bilinear(**{k: v for k, v in options.items() if k != "json"}, json_path=args.json,
                                 config=options)
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(RunConfig) if hasattr(args, f.name)}
    cfg = RunConfig(experiment="reversal" if args.command == "embeddings" else args.command, **given)
    if args.paper:          # the paper's configuration; an explicit --epochs still applies
        defaults = {f.name: f.default for f in dataclasses.fields(RunConfig)}
        for name, value in PAPER.items():      # an option given with another value contradicts --paper
            if name != "epochs" and getattr(args, name) not in (value, defaults[name]):
                flag = "--" + name.replace("_", "-")
                raise UsageError(f"--paper sets {flag} {value}, but {flag} {getattr(args, name)} was given: "
                                 f"drop {flag} or --paper")
        cfg = paper_config(cfg, keep_epochs=args.epochs is not None)
    return commands.experiment(cfg, args.out, args.json, paper=args.paper, command=args.command)


def main(argv=None):
    if sys.stdout is None:          # started with stdout closed (>&-): the lines go nowhere, the files still
        sys.stdout = open(os.devnull, "w")
    args = build_parser().parse_args(argv)
    if getattr(args, "trace", 0) and args.command in ("incontext", "chain"):
        args.trace = 0
        print("note: --trace watches held-out reversal pairs; it applies to reversal and embeddings only")
    try:
        # overflow inside NumPy is not an error here: a diverging run is caught (and named) by the
        # training loop's finite-loss check, so NumPy's own warnings would only add noise
        with np.errstate(all="ignore"):
            return dispatch(args) or 0
    except MinirevError as e:
        print(f"minirev: error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        print(f"minirev: error: {e.strerror or e}: {e.filename or ''}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nminirev: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
