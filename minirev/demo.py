"""The command line:  python -m minirev.demo COMMAND [options]

    reversal     the paper's reversal experiment (a GPT by default): the curse, with figures
    chain        chain of thought: A -> B and B -> C learned, A ~> C not, step by step works
    incontext    the fact in the context: no curse
    embeddings   cosine similarity of the learned token embeddings after the reversal run
    bilinear     the bilinear model: sweep the embedding dimension, watch the reverse weight
    gradcheck    every hand-written gradient against autograd, one line per parameter

Every command has --help. Errors are one line: exit status 2 for a bad request,
1 when running it failed.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np

from .backend import BACKENDS, get_xp
from .bilinear import Bilinear
from .bilinear_sweep import bilinear_sweep, print_bilinear_table
from .checkpoint import atomic_write
from .data import reversal_data
from .errors import MinirevError, UsageError
from .experiments import (PAPER_CONFIG, chain_step_by_step, check_json_path, check_out_dir, draw_figures,
                          embedding_similarity, make_dataset, make_model, make_optimizer, print_report,
                          run_experiment)
from .gpt import GPT
from .gradcheck import check_model
from .one_layer import OneLayer
from .plots import plot_bilinear, plot_similarity

EXPERIMENT_DEFAULTS = {   # per experiment: what runs in well under a minute on 2 cores
    "reversal": dict(epochs=100),
    "embeddings": dict(epochs=100),
    "chain": dict(epochs=80),
    "incontext": dict(epochs=60),
}


# --------------------------------------------------------------------------- argument types

def whole_number(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
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


# --------------------------------------------------------------------------- commands

def write_json(path, data):
    """Write JSON atomically: a temporary file in the same folder, then a rename."""
    def clean(x):
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        if isinstance(x, (np.floating, float)):
            return float(x) if math.isfinite(x) else None
        if isinstance(x, np.integer):
            return int(x)
        if isinstance(x, np.ndarray):
            return clean(x.tolist())
        return x
    atomic_write(path, lambda f: f.write(json.dumps(clean(data), indent=1).encode()))
    return path


def cmd_bilinear(args):
    get_xp(args.backend)
    out_dir, json_path = check_out_dir(args.out), check_json_path(args.json)
    print(f"bilinear model: {args.pairs} pairs ({args.held_out} held out), vocabulary {args.vocab}, "
          f"full-batch gradient descent, lr {args.lr}, {args.steps} steps")
    data, results = bilinear_sweep(args.dims, args.vocab, args.pairs, args.held_out, args.lr, args.steps,
                                   args.seed, np.dtype(args.dtype), args.backend, trace_steps=args.trace)
    print_bilinear_table(results, args.vocab)
    onehot = [r for r in results if r["dim"] is None]
    if onehot:
        r = onehot[0]
        print(f"one-hot, held-out pairs: reverse weights {sorted(set(r['reverse_weights']))}, "
              f"reverse probabilities {sorted(set(round(p, 12) for p in r['reverse_probs']))} (1/m = {1 / args.vocab})")
    fig = plot_bilinear(results, math.log(args.vocab), os.path.join(out_dir, "bilinear.png"))
    print(f"figure: {fig}")
    if json_path:
        write_json(json_path, dict(experiment="bilinear", config=vars_of(args), results=results))
        print(f"results: {json_path}")


def cmd_experiment(args):
    cfg = vars_of(args)
    if args.paper:          # the paper's configuration; an explicit --epochs still applies
        cfg.update({k: v for k, v in PAPER_CONFIG.items() if k != "epochs" or args.epochs is None})
    for key, value in EXPERIMENT_DEFAULTS[args.command].items():
        if cfg.get(key) is None:
            cfg[key] = value
    get_xp(cfg["backend"])
    out_dir, json_path = check_out_dir(cfg["out"]), check_json_path(cfg["json"])
    if cfg["save"]:
        check_out_dir(cfg["save"])
    if cfg["resume"] and not os.path.isdir(cfg["resume"]):
        raise UsageError(f"--resume {cfg['resume']}: no such folder (start a run with --save {cfg['resume']} first)")
    if args.paper:
        print(f"--paper: the paper's full configuration (24 layers, width 768, 12 heads, dropout 0.1, "
              f"{cfg['epochs']} epochs); a GPU (--backend cupy) is advised.")
        estimate_paper_time(args.command, cfg)
    experiment = "reversal" if args.command == "embeddings" else args.command
    result, runs = run_experiment(experiment, cfg)
    print_report(result, runs)
    if experiment == "chain":
        steps = chain_step_by_step(runs[0]["model"], runs[0]["dataset"])
        result["final"].update(steps)
        print(f"chain of thought on the validation triples: A -> B right {100 * steps['b_acc']:.1f}%, "
              f"then B -> C right {100 * steps['step_by_step_acc']:.1f}%; "
              f"the direct A ~> C right {100 * steps['direct_acc']:.1f}%")
    paths = draw_figures(experiment, result, runs, out_dir)
    if args.command == "embeddings":
        sim, off, off_random = embedding_similarity(runs[0]["model"], runs[0]["dataset"])
        result["final"].update(mean_abs_cosine=off, mean_abs_cosine_random=off_random)
        print(f"learned entity embeddings: mean |cosine similarity| between different tokens {off:.3f} "
              f"(random vectors of the same width: {off_random:.3f}); near 0 means nearly orthogonal")
        paths.append(plot_similarity(sim, os.path.join(out_dir, "embeddings_cosine.png"),
                                     f"cosine similarity of learned entity embeddings (mean |off-diag| {off:.3f})"))
    print("figures: " + ", ".join(paths))
    if json_path:
        write_json(json_path, result)
        print(f"results: {json_path}")


def estimate_paper_time(experiment, cfg):
    """Time a few training steps of the configuration and project the whole run."""
    data = make_dataset("reversal" if experiment == "embeddings" else experiment, cfg)
    model, opt = make_model(cfg, data, cfg["seed"]), make_optimizer(cfg)
    batch = data.train[:cfg["batch_size"]]
    rng = np.random.default_rng(0)
    opt.step(model.params, model.loss_and_grads(batch, rng=rng)[1])         # warm-up
    t0 = time.perf_counter()
    for _ in range(2):
        opt.step(model.params, model.loss_and_grads(batch, rng=rng)[1])
    per_step = (time.perf_counter() - t0) / 2
    steps = math.ceil(len(data.train) / cfg["batch_size"]) * cfg["epochs"] * cfg["seeds"]
    total = per_step * steps
    when = f"{total:.0f} s" if total < 120 else f"{total / 60:.0f} minutes" if total < 7200 else f"{total / 3600:.1f} hours"
    print(f"estimate: {per_step * 1000:.0f} ms per step x {steps} steps = about {when} of training "
          f"on this machine ({cfg['backend']}). Ctrl-C stops it and still writes the results so far.")


def cmd_gradcheck(args):
    ok = True
    data = reversal_data(vocab=40, entity_len=2, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    for kind in (["bilinear", "one-layer", "gpt"] if args.model == "all" else [args.model]):
        if kind == "bilinear":
            model = Bilinear(30, dim=16, seed=args.seed)
            model.params["Theta"] = rng.standard_normal((16, 16)).astype(model.dtype)
            tokens = rng.integers(0, 30, (12, 2))
        elif kind == "one-layer":
            model = OneLayer(30, seed=args.seed, init_scale=0.5)
            tokens = rng.integers(0, 30, (12, 4))
        else:
            model = GPT(data.vocab_size, layers=2, width=16, heads=4, pos="rotary", max_len=5, entity_len=2,
                        dropout=0.1, seed=args.seed)
            # O(1) random parameters instead of GPT-2's tiny init, under which attention is nearly
            # uniform and a wrong attention gradient would hardly show
            model.params = {k: (rng.normal(0, 0.5, v.shape) + k.endswith(".g")).astype(model.dtype)
                            for k, v in model.params.items()}
            tokens = data.train[:12]
        passed, _ = check_model(model, tokens, tol=args.tol)
        ok &= passed
        print()
    print("all gradients match autograd" if ok else "SOME GRADIENTS DO NOT MATCH autograd (FAIL above)")
    return 0 if ok else 1


def vars_of(args):
    return {k: v for k, v in vars(args).items() if k not in ("func",)}


# --------------------------------------------------------------------------- the parser

def add_common(p, out_default):
    p.add_argument("--seed", type=nonnegative_int, default=None, help="random seed (default: %(default)s)")
    p.add_argument("--backend", choices=BACKENDS, default="numpy",
                   help="array library: numpy (CPU) or cupy (GPU, needs pip install -e \".[gpu]\")")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="training precision")
    p.add_argument("--out", default=out_default, help="folder for the figures (default: %(default)s)")
    p.add_argument("--json", metavar="PATH", help="also write the configuration and results as JSON here")


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
    b.add_argument("--held-out", type=nonnegative_int, default=10,
                   help="pairs whose reverse is never trained (default: %(default)s)")
    b.add_argument("--lr", type=positive_float, default=20.0, help="learning rate eta (default: %(default)s)")
    b.add_argument("--steps", type=positive_int, default=3000, help="gradient steps (default: %(default)s)")
    b.add_argument("--trace", type=nonnegative_int, default=0, metavar="STEPS",
                   help="print the first STEPS updates of one held-out pair, sentence by sentence")
    add_common(b, "minirev_output/bilinear")
    b.set_defaults(func=cmd_bilinear, seed=0)

    for name, text in (("reversal", "the reversal experiment: train A -> B, test B <- A"),
                       ("chain", "chain of thought: A -> B, B -> C trained; is A ~> C learned?"),
                       ("incontext", "the fact stated in the context: no curse"),
                       ("embeddings", "cosine similarity of the learned embeddings after the reversal run")):
        e = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        e.add_argument("--model", choices=("gpt", "bilinear", "one-layer"), default="gpt",
                       help="which model (default: %(default)s)")
        e.add_argument("--layers", type=positive_int, default=2, help="transformer blocks (default: %(default)s)")
        e.add_argument("--width", type=positive_int, default=64,
                       help="model width; the embedding dimension d for the bilinear model (default: %(default)s)")
        e.add_argument("--heads", type=positive_int, default=4, help="attention heads (default: %(default)s)")
        e.add_argument("--pos", choices=("absolute", "rotary", "none"), default="absolute",
                       help="positional encoding (default: %(default)s)")
        e.add_argument("--dropout", type=probability, default=0.0, help="dropout rate in training (default: 0)")
        e.add_argument("--untied", action="store_true",
                       help="gpt: give the output layer its own matrix instead of reusing the token embedding")
        e.add_argument("--lr", type=positive_float, default=None,
                       help="learning rate (default: 0.01 for gpt with AdamW; SGD with 20 for bilinear, 100 for one-layer)")
        e.add_argument("--lr-z", type=nonnegative_float, default=0.0,
                       help="one-layer model: learning rate of Z, the attention (default 0: frozen)")
        e.add_argument("--weight-decay", type=nonnegative_float, default=0.01,
                       help="AdamW's decoupled weight decay (default: %(default)s)")
        e.add_argument("--batch-size", type=positive_int, default=64, help="minibatch size (default: %(default)s)")
        e.add_argument("--epochs", type=positive_int, default=None,
                       help=f"passes over the training data (default: {EXPERIMENT_DEFAULTS[name]['epochs']})")
        e.add_argument("--eval-every", type=positive_int, default=1, help="evaluate every N epochs (default: 1)")
        e.add_argument("--vocab", type=positive_int, default=800,
                       help="entity vocabulary of the data generator (default: %(default)s)")
        e.add_argument("--entity-len", type=positive_int, default=1, help="tokens per entity (default: 1)")
        e.add_argument("--seeds", type=positive_int, default=1,
                       help="train N models with seeds SEED, SEED+1, ... and report mean and spread")
        e.add_argument("--trace", type=nonnegative_int, default=0, metavar="STEPS",
                       help="print the first STEPS updates of watched held-out pairs (reversal data)")
        e.add_argument("--save", metavar="DIR", help="save a checkpoint of the run to DIR at the end (and on Ctrl-C)")
        e.add_argument("--save-every", type=positive_int, metavar="N", help="with --save: also every N epochs")
        e.add_argument("--resume", metavar="DIR",
                       help="continue the run saved in DIR (same options; --epochs may grow); saves back to DIR")
        e.add_argument("--paper", action="store_true",
                       help="the paper's full configuration (24 layers, width 768, 12 heads, dropout 0.1, "
                            "3000 epochs unless --epochs is given): hours on a CPU, a GPU is advised")
        add_common(e, f"minirev_output/{name}")
        e.set_defaults(func=cmd_experiment, seed=1234)

    g = sub.add_parser("gradcheck", help="check every hand-written gradient against autograd (float64)",
                       description="Differentiate each model's forward with autograd in float64 and compare it "
                                   "with the hand-written backward, one line per parameter.")
    g.add_argument("--model", choices=("all", "bilinear", "one-layer", "gpt"), default="all")
    g.add_argument("--seed", type=nonnegative_int, default=0)
    g.add_argument("--tol", type=positive_float, default=1e-7, help="relative error bound (default: %(default)s)")
    g.set_defaults(func=cmd_gradcheck)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if getattr(args, "trace", 0) and args.command in ("incontext", "chain"):
        args.trace = 0
        print("note: --trace watches held-out reversal pairs; it applies to reversal and embeddings only")
    try:
        # overflow inside NumPy is not an error here: a diverging run is caught (and named) by the
        # training loop's finite-loss check, so NumPy's own warnings would only add noise
        with np.errstate(all="ignore"):
            return args.func(args) or 0
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
