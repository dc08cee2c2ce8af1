"""The appendix of arXiv 2405.04669 as one result: the reversal curse over the axes of its configuration table.

    result = run_sweep(seeds=5, jobs=2)            # every cell of CELLS, 5 seeds each

Each axis (model size, vocabulary, entity length, positions, frozen embeddings) changes one thing of the
base run (minirev's default GPT, 2 layers of width 64, on the reversal data); a cell is one value on one
axis, trained for `seeds` seeds by ``run_experiment``, so ``jobs`` and ``scheduler`` spread its seeds over
processes or a Dask cluster exactly as ``--seeds`` does. The base run sits on every axis and runs once.
Each cell has its own epochs: enough for every seed to learn its training sentences (the verdict says so
when they were not). Its verdict is the reversal verdict (minirev/report.py): unseen NLL against log|V|
and the uniform guess within the answer's alphabet, and the rank within the alphabet, holding for every seed.
"""
import math
import os
import signal
import textwrap
import time
from dataclasses import dataclass, field

import numpy as np

from .config import RunConfig
from .errors import UsageError
from .experiments import Experiment
from .model import Model
from .experiments.embeddings import orthogonality_verdict
from .measures import embedding_similarity
from .progress import duration
from .report import rank_note, spread, verdict
from .running import make_dataset, make_model, make_optimizer, run_experiment
from .train import Interrupts


@dataclass(frozen=True)
class Cell:
    axis: str                  # the axis of the appendix's table it belongs to
    label: str                 # its value on that axis, as the figure prints it
    changes: dict = field(default_factory=dict)     # RunConfig fields that differ from the base run
    epochs: int = 100

    @property
    def key(self):             # the cell's name (--cells); the base run has one name on every axis
        return "base" if not self.changes else "-".join(f"{k}={v}" for k, v in sorted(self.changes.items()))


BASE = RunConfig(experiment="reversal", model="gpt")            # 2 layers, width 64, 4 heads, vocab 800
AXES = ("layers / width", "vocabulary", "entity length", "positions", "embeddings")
# epochs: 100 (the reversal default) unless a cell's 5 seeds (1234 to 1238) need more to learn their training
# sentences (training NLL <= 0.5 for every seed); each larger number is the one those seeds were measured to
# learn in (README, "The appendix as one figure"); the table names any cell left untrained
CELLS = [
    Cell("layers / width", "1 / 20", dict(layers=1, width=20)),
    Cell("layers / width", "2 / 64"),
    Cell("layers / width", "1 / 768", dict(layers=1, width=768, heads=12)),
    Cell("layers / width", "24 / 20", dict(layers=24, width=20), epochs=600),   # at 300: one seed at 0.63
    Cell("vocabulary", "200", dict(vocab=200)),
    Cell("vocabulary", "400", dict(vocab=400)),
    Cell("vocabulary", "800"),
    Cell("entity length", "1"),
    Cell("entity length", "2", dict(entity_len=2), epochs=300),    # at 100: two seeds of 5 at 0.72, 0.77
    Cell("entity length", "3", dict(entity_len=3)),   # 250 sentences (the public code: 100 pairs, 50 held out)
    Cell("positions", "none", dict(pos="none")),
    Cell("positions", "absolute"),
    Cell("positions", "rotary", dict(pos="rotary")),
    Cell("embeddings", "trained"),
    Cell("embeddings", "frozen", dict(freeze_embeddings=True), epochs=200),   # at 100: one seed of 5 at 1.86
]
# --quick: the same axes on small models and data, a few epochs: a check of the machinery, not of the curse
QUICK_BASE = RunConfig(experiment="reversal", model="gpt", layers=1, width=16, heads=2, vocab=40, batch_size=16)
QUICK = [
    Cell("layers / width", "1 / 8", dict(width=8)), Cell("layers / width", "1 / 16"),
    Cell("layers / width", "2 / 16", dict(layers=2)),
    Cell("vocabulary", "40"), Cell("vocabulary", "80", dict(vocab=80)),
    Cell("entity length", "1"), Cell("entity length", "2", dict(entity_len=2)),
    Cell("positions", "none", dict(pos="none")), Cell("positions", "absolute"),
    Cell("positions", "rotary", dict(pos="rotary")),
    Cell("embeddings", "trained"), Cell("embeddings", "frozen", dict(freeze_embeddings=True)),
]
QUICK_EPOCHS = 3
HOURS = 3600                  # a cell estimated longer than this is named before it starts


def cell_config(base, cell, seeds, seed, jobs, scheduler, backend, quick):
    return base.replace(**cell.changes, epochs=QUICK_EPOCHS if quick else cell.epochs, seeds=seeds, seed=seed,
                        jobs=jobs, scheduler=scheduler, backend=backend)


def step_units(cfg):
    """A training step's cost in the units of the model's own counts: its parameters (the optimiser's pass,
    and the matmuls' weights) plus the numbers one step of a batch holds (minirev/machinery/limits.py)."""
    cfg = cfg.resolved()
    V, P, n = Experiment.registry[cfg.experiment].shape(cfg)
    model = Model.registry[cfg.model]
    return model.parameter_count(cfg, V, P) + model.activation_count(cfg, min(cfg.batch_size, n), V, P)


def seconds_per_unit(cfg):
    """This machine's seconds per step unit, timed on a few steps of the base run (the fastest of five: on
    a busy machine the others measure the other programs too)."""
    cfg = cfg.replace(seeds=1, scheduler=None).resolved()
    data = make_dataset(cfg)
    model, opt = make_model(cfg, data), make_optimizer(cfg)
    batch, rng = data.train[:cfg.batch_size], np.random.default_rng(0)
    opt.step(model.params, model.loss_and_grads(batch, rng=rng)[1])         # warm-up
    times = []
    for _ in range(5):
        start = time.perf_counter()
        opt.step(model.params, model.loss_and_grads(batch, rng=rng)[1])
        times.append(time.perf_counter() - start)
    return min(times) / step_units(cfg)


def estimate(cfg, per_unit, jobs):
    """Seconds of training for a cell on this machine: steps x units x seconds per unit, its seeds on `jobs`."""
    cfg = cfg.resolved()
    _, _, n = Experiment.registry[cfg.experiment].shape(cfg)
    steps = math.ceil(n / cfg.batch_size) * cfg.epochs
    rounds = math.ceil(cfg.seeds / max(1, min(jobs, cfg.seeds)))
    return per_unit * step_units(cfg) * steps * rounds


def select(cells, names):
    if names is None:
        return cells
    known = {c.key for c in cells}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(f"unknown sweep cell {unknown[0]!r}: choose from {', '.join(sorted(known))}")
    return [c for c in cells if c.key in names]


def run_sweep(seeds=5, seed=1234, jobs=1, scheduler=None, backend="numpy", quick=False, cells=None, out=print):
    """Train every cell (one run per distinct configuration) and return the JSON-ready results."""
    base, chosen = (QUICK_BASE, QUICK) if quick else (BASE, CELLS)
    chosen = select(chosen, cells)
    configs = {c.key: cell_config(base, c, seeds, seed, jobs, scheduler, backend, quick) for c in chosen}
    for cfg in configs.values():
        cfg.resolved()                        # every refusal before any training
    per_unit = seconds_per_unit(configs.get("base", next(iter(configs.values()))))
    guesses = {k: estimate(cfg, per_unit, jobs) for k, cfg in configs.items()}
    where = "on the Dask cluster's workers, estimated from this machine" if scheduler else "on this machine"
    say = out or (lambda *a: None)
    say(textwrap.fill(f"{len(configs)} runs x {seeds} seeds; estimated training time {where} ({backend}, "
                      f"{jobs} process(es)): about {duration(sum(guesses.values()))} in all", 79))
    for key, s in guesses.items():
        if s > HOURS:
            say(f"  {key}: about {duration(s)} on this CPU: run it with --backend cupy on a GPU, "
                "or on a cluster with --scheduler")
    runs, start, stopped = {}, time.perf_counter(), None
    # Ctrl-C, SIGTERM or SIGHUP stops the cell under way (its seeds between two steps) and the sweep with it:
    # the cells finished are kept, the one cut short is left out (its numbers are not those of its epochs)
    with Interrupts() as stop:
        for key, cfg in configs.items():
            if stop.requested:
                stopped = signal.Signals(stop.requested).name
                break
            t0 = time.perf_counter()
            result, trained = run_experiment(cfg, out=None)
            if result["interrupted"]:
                stopped = result["run"]["stopped_by"] or "SIGINT"
                say(f"{key}: stopped by {stopped}, left out")
                break
            runs[key] = r = summary(result, trained, time.perf_counter() - t0, guesses[key])
            say(f"{key}: {cfg.epochs} epochs in {duration(r['seconds'])} (estimated {duration(r['estimated_seconds'])})")
            say(f"  train {spread(r['train_nll'])}  unseen {spread(r['val_nll'])}")
        if stop.requested and not stopped:        # during the last cell's summary: every cell is whole
            stopped = signal.Signals(stop.requested).name
    rows = [dict(axis=c.axis, label=c.label, key=c.key, **runs[c.key]) for c in chosen if c.key in runs]
    return dict(experiment="sweep", quick=quick, seeds=seeds, seed=seed, base=base.to_dict(), cells=rows,
                seconds=time.perf_counter() - start, stopped_by=stopped)


def summary(result, trained, seconds, estimated):
    """A cell's numbers per seed, its yardsticks and its verdict (the one the reversal run prints)."""
    final = result["final"]
    train = [r["final"]["train_nll"] for r in result["runs"]]
    vals = [r["final"]["val_nll"] for r in result["runs"]]
    ranks = [r["final"]["val_rank"] for r in result["runs"]]
    size = len(trained[0]["dataset"].info["alphabets"][0])
    cosines = [embedding_cosines(r) for r in trained]             # (learned, at initialisation, random) per seed
    learned = max(vals) < final["log_alphabet"] and max(train) <= 0.5
    words = verdict("reversal", train, vals, final["log_vocab"], final["log_alphabet"])
    return dict(epochs=final["epochs"], train_nll=train, val_nll=vals, val_rank=ranks, alphabet=size,
                log_vocab=final["log_vocab"], log_alphabet=final["log_alphabet"],
                trained=max(train) <= 0.5, cursed=min(vals) > final["log_alphabet"],
                verdict=words + ("" if learned else rank_note(ranks, size)),
                cosine=dict(zip(("learned", "initial", "random"), np.mean(cosines, 0).tolist())),
                config={k: v for k, v in result["config"].items() if k in RunConfig.names()},
                seconds=seconds, estimated_seconds=estimated)


def embedding_cosines(run):
    """Mean |cosine| between different entity tokens' embeddings: learned, at initialisation, random vectors."""
    _, learned, random = embedding_similarity(run["model"], run["dataset"])
    start = make_model(run["cfg"].replace(backend="numpy"), run["dataset"], run["seed"])  # its seed: the same draw
    return learned, embedding_similarity(start, run["dataset"])[1], random


def print_sweep(result, out=print):
    """One line per cell: its epochs, training and unseen NLL, rank, and whether the curse holds for every seed."""
    out(f"\n{'axis':<14} {'cell':<8} {'epochs':>6} {'train':>5} {'unseen':>6} {'log|V| / a':>10} {'rank':>5} "
        f"{'chance':>6}  verdict")
    out(f"{'':<14} {'':<8} {'':>6} {'max':>5} {'min':>6} {'':>10} {'mean':>5}")
    for c in result["cells"]:
        state = ("untrained" if not c["trained"] else "curse" if c["cursed"] else "no curse")
        out(f"{c['axis']:<14} {c['label']:<8} {c['epochs']:>6} {max(c['train_nll']):>5.3f} "
            f"{min(c['val_nll']):>6.2f} {c['log_vocab']:>5.2f}/{c['log_alphabet']:<4.2f} "
            f"{np.mean(c['val_rank']):>5.1f} {(c['alphabet'] + 1) / 2:>6.1f}  {state}")
    out("")
    for line in textwrap.wrap("(NLL: the training NLL of the worst seed, the unseen NLL of the best; log|V| / a: "
                              "the uniform guesses over the vocabulary and within the answer's alphabet; rank: the "
                              "right answer's within its alphabet, chance its mean at random. The curse: the unseen "
                              "NLL above log a for every seed; untrained: some seed's training NLL above 0.5)", 79):
        out(line)                                        # (an 80-column terminal)
    out("\nembeddings, mean |cosine| between different entity tokens (0: orthogonal),")
    out("per distinct run:")
    seen = set()
    for c in result["cells"]:
        if c["key"] not in seen:
            seen.add(c["key"])
            cos = c["cosine"]
            out(f"  {c['key']} (width {c['config']['width']}):")
            for line in textwrap.wrap(orthogonality_verdict(cos["learned"], cos["initial"], cos["random"]), 75):
                out("    " + line)
    untrained = sorted({c["key"] for c in result["cells"] if not c["trained"]})
    if untrained:
        for line in textwrap.wrap("not trained in their epochs (train longer, or the cell's epochs in "
                                  f"minirev/sweep.py): {', '.join(untrained)}", 79):
            out(line)
    for c in result["cells"]:
        if c["trained"] and not c["cursed"]:
            for line in textwrap.wrap(f"{c['axis']} {c['label']}: {c['verdict']}", 77):
                out("  " + line)


def plot_sweep(result, path):
    """Top: unseen NLL per seed per cell, with each cell's two yardsticks; bottom: mean rank / chance."""
    from matplotlib.figure import Figure
    axes_used = [a for a in AXES if any(c["axis"] == a for c in result["cells"])]
    fig = Figure(figsize=(3.2 * len(axes_used) + 1, 6.5))
    grid = fig.subplots(2, len(axes_used), squeeze=False, sharey="row")
    for j, axis in enumerate(axes_used):
        cells = [c for c in result["cells"] if c["axis"] == axis]
        top, bottom = grid[0, j], grid[1, j]
        for x, c in enumerate(cells):
            top.scatter([x] * len(c["val_nll"]), c["val_nll"], s=14, color="C3" if c["trained"] else "gray",
                        zorder=3, label="unseen NLL, one dot per seed" if x == 0 else None)
            top.hlines(c["log_vocab"], x - 0.35, x + 0.35, color="k", ls="--", lw=1,
                       label="log |V|" if x == 0 else None)
            top.hlines(c["log_alphabet"], x - 0.35, x + 0.35, color="k", ls=":", lw=1.3,
                       label="log alphabet" if x == 0 else None)
            bottom.scatter([x] * len(c["val_rank"]), np.array(c["val_rank"]) / ((c["alphabet"] + 1) / 2), s=14,
                           color="C0" if c["trained"] else "gray", zorder=3)
        bottom.axhline(1, color="k", ls=":", lw=1)
        for ax in (top, bottom):
            ax.set_xticks(range(len(cells)), [c["label"] for c in cells])
            ax.set_xlim(-0.6, len(cells) - 0.4)
        top.set_title(axis)
        bottom.set_xlabel(axis)
    grid[0, 0].set_ylabel("unseen-direction NLL (nats)")
    grid[1, 0].set_ylabel("rank in alphabet / chance")
    # the legend in the top margin, right of the title: inside a panel it would cover dots or yardsticks
    fig.legend(*grid[0, 0].get_legend_handles_labels(), loc="upper right", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(f"The reversal curse over the appendix's axes, {result['seeds']} seeds per cell"
                 + (" (--quick: small models on small data)" if result["quick"] else "")
                 + "; gray: training not learned", x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
