"""The paper's experiments as functions that return plain dicts (and draw figures).

    result, runs = run_experiment(RunConfig(experiment="reversal", epochs=50))

Science only: the data, the models, the training and the measurements. What a
run prints lives in ``minirev/report.py``, the command line in
``minirev/demo.py``. Every function takes an ``out`` callable for its printed
lines (``print`` by default, ``None`` for silence).
"""
import math
import os
import time

import numpy as np

from . import plots
from .backend import to_numpy
from .checkpoint import load_run, save_run
from .config import RunConfig
from .data import chain_data, incontext_data, reversal_data
from .errors import UsageError
from .model import Model
from .parallel import run_all
from .report import progress, say
from .trace import Trace
from .train import Trainer


# --------------------------------------------------------------------------- building a run

def make_dataset(cfg, seed=None):
    seed = cfg.seed if seed is None else seed
    if cfg.experiment in ("reversal", "embeddings"):
        return reversal_data(cfg.vocab, cfg.entity_len, seed)
    if cfg.experiment == "chain":
        return chain_data(cfg.vocab, cfg.entity_len, seed)
    return incontext_data(cfg.vocab, seed=seed)


def make_model(cfg, dataset, seed=None):
    """The model cfg.model names, sized for the dataset (see each model's from_config)."""
    return Model.registry[cfg.model].from_config(cfg, dataset, cfg.seed if seed is None else seed)


def make_optimizer(cfg):
    """Each model's own: AdamW (the paper's GPT settings) for the gpt; plain SGD, as in the theory, for the others."""
    return Model.registry[cfg.model].make_optimizer(cfg)


def held_out_pairs(dataset, count=2):
    """(seen sentence, unseen sentence) of the first held-out pairs, preferring ones trained forward."""
    seen, unseen = dataset.groups["val seen"], dataset.groups["val unseen"]
    order = sorted(range(len(seen)), key=lambda i: seen[i, dataset.entity_len] != 0)
    return [(seen[i], unseen[i]) for i in order[:count]]


def make_trace(model, dataset, optimizer, steps, out=print):
    """A Trace of the first `steps` updates for a few held-out pairs, in each model's own terms."""
    pairs, name = held_out_pairs(dataset), dataset.sentence
    say(out, model.trace_title(pairs, name))
    return Trace(model, lambda: model.watch(pairs, name),
                 lambda batch: model.trace_terms(batch, pairs, optimizer, name), steps=steps, out=out)


def logit_matrix(model, group, with_relation=True, limit=60):
    """M[i, j] = logit(first token of answer j | sentence i's prefix), for up to `limit` sentences.

    with_relation=False reads the logits given the entity alone, as the public
    code did (a position the loss never trains).
    """
    group = np.asarray(group)[:limit]
    L = model.n_target
    tokens = group if with_relation else np.concatenate([group[:, :L], group[:, -L:]], 1)
    logits = to_numpy(model.logits(tokens))[:, 0, :]                               # (n, V)
    return logits[:, group[:, -L]]                                                 # (n, n)


def _mean_history(histories):
    n = min(len(h) for h in histories)
    keys = [k for k in histories[0][0] if isinstance(histories[0][0][k], (int, float))]
    return [{k: float(np.mean([h[i][k] for h in histories])) if k not in ("epoch", "step") else histories[0][i][k]
             for k in keys} for i in range(n)]


def train_seed(job, report):
    """Train one seed: job = (cfg, seed, first?, the trace's out). The unit of work of minirev/parallel.py.

    report(message) carries ("say", lines), ("eval", seed, epoch, record) and
    ("done", seed, epochs) to the parent's display (report.progress). Ctrl-C ends the training loop cleanly: the run keeps the
    epochs completed so far and says it was interrupted.
    """
    cfg, s, first, trace_out = job
    dataset = make_dataset(cfg, s)
    model = make_model(cfg, dataset, s)
    optimizer = make_optimizer(cfg)
    if first:
        report(("say", [dataset.summary(), f"model: {model.describe()}",
                        f"optimizer: {optimizer.name}, lr {cfg.lr}, batch {cfg.batch_size}, {cfg.epochs} epochs"]))
    experiment = "reversal" if cfg.experiment == "embeddings" else cfg.experiment
    trace = make_trace(model, dataset, optimizer, cfg.trace, trace_out) if cfg.trace and first \
        and experiment == "reversal" else None
    trainer = Trainer(model, optimizer, dataset, batch_size=cfg.batch_size, seed=s,
                      eval_every=cfg.eval_every, trace=trace)
    if cfg.resume:
        load_run(cfg.resume, trainer, cfg)
        report(("say", [f"resumed from {cfg.resume} at epoch {trainer.epoch}"]))
    save_to = cfg.save or cfg.resume

    def on_eval(trainer, record):
        report(("eval", s, trainer.epoch, record))
        if save_to and cfg.save_every and trainer.epoch % cfg.save_every == 0:
            save_run(save_to, trainer, cfg)
    interrupted = False
    try:
        trainer.run(cfg.epochs, on_eval=on_eval)
    except KeyboardInterrupt:
        interrupted = True
    if save_to:
        save_run(save_to, trainer, cfg)
    if cfg.scheduler and cfg.backend != "numpy":   # the run goes back to a machine that may have no GPU
        trainer.model = model = model.copy(backend="numpy")
        optimizer.load_state_dict(optimizer.state_dict(), np)
    report(("done", s, trainer.epoch))
    return dict(seed=s, model=model, dataset=dataset, trainer=trainer, trace=trace, interrupted=interrupted)


def run_experiment(cfg, out=print):
    """Train cfg.seeds models on cfg.experiment's data; return results (JSON-ready) and the runs.

    The seeds run side by side in cfg.jobs processes (default: one per core), or on
    the Dask cluster at cfg.scheduler; the results are bit-identical to one after the
    other. A trace runs in this process. Ctrl-C stops training cleanly: the results
    cover the epochs completed so far.
    """
    if not isinstance(cfg, RunConfig):
        raise UsageError(f"run_experiment takes a RunConfig, got {type(cfg).__name__}: "
                         "e.g. run_experiment(RunConfig(experiment='reversal', epochs=50))")
    cfg = cfg.resolved()
    experiment = "reversal" if cfg.experiment == "embeddings" else cfg.experiment
    seeds = [cfg.seed + i for i in range(cfg.seeds)]
    display = progress(out, cfg.epochs, seeds)
    start = time.perf_counter()
    jobs = 1 if cfg.trace else cfg.jobs            # a trace prints every step here, in order
    runs = run_all(train_seed, [(cfg, s, s == seeds[0], out if cfg.trace else None) for s in seeds], jobs=jobs,
                   scheduler=cfg.scheduler, on_message=display, stop_when=lambda run: run["interrupted"])
    interrupted = any(r["interrupted"] for r in runs)
    if interrupted:
        say(out, f"\ninterrupted at epoch {min(r['trainer'].epoch for r in runs)}: "
                 "reporting the epochs completed so far")
    finals = [r["trainer"].history[-1] for r in runs]
    dataset = runs[0]["dataset"]
    final = {k: float(np.mean([f[k] for f in finals])) for k in finals[0] if k not in ("epoch", "step")}
    final.update(epochs=finals[0]["epoch"], log_vocab=math.log(dataset.vocab_size),
                 seconds=time.perf_counter() - start)
    if "val seen nll" in final:
        final["val_seen_nll"] = final["val seen nll"]
    if len(runs) > 1:
        final.update({f"{k}_std": float(np.std([f[k] for f in finals])) for k in ("train_nll", "val_nll")})
    result = dict(experiment=experiment, config=cfg.to_dict(), interrupted=interrupted, final=final,
                  history=_mean_history([r["trainer"].history for r in runs]),
                  runs=[dict(seed=r["seed"], history=r["trainer"].history) for r in runs])
    if runs[0]["trace"] is not None:
        result["trace"] = runs[0]["trace"].records
    return result, runs


def chain_step_by_step(model, dataset):
    """Accuracy of chain of thought on the validation triples: A -> B (argmax), then B -> C."""
    first = dataset.groups["B given A (val)"]                        # [a, ->, b]
    second = dataset.groups["C given B (val)"]                       # [b, ->, c]
    L = dataset.entity_len
    b_hat = to_numpy(model.logits(first)).argmax(-1)                 # (n, L) greedy B, token by token
    step2 = np.concatenate([b_hat, second[:, L:L + 1], second[:, -L:]], 1)
    c_hat = to_numpy(model.logits(step2)).argmax(-1)                 # (n, L)
    direct = to_numpy(model.logits(dataset.groups["C given A (val)"])).argmax(-1)
    return dict(step_by_step_acc=float((c_hat == second[:, -L:]).all(1).mean()),
                b_acc=float((b_hat == first[:, -L:]).all(1).mean()),
                direct_acc=float((direct == second[:, -L:]).all(1).mean()))


def embedding_similarity(model, dataset, limit=60):
    """Cosine similarity of the learned embeddings of the entity tokens, and its mean |off-diagonal|."""
    if "wte" not in model.params:
        raise UsageError("the embeddings experiment needs learned token embeddings: use --model gpt")
    tokens = np.unique(np.concatenate([dataset.info["x_words"].ravel(), dataset.info["y_words"].ravel()]))
    E = to_numpy(model.params["wte"]).astype(np.float64)[tokens]                  # (n, C)
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    sim = E @ E.T                                                                   # (n, n)
    off = np.abs(sim[~np.eye(len(sim), dtype=bool)])
    rng = np.random.default_rng(0)
    R = rng.standard_normal(E.shape)
    R /= np.linalg.norm(R, axis=1, keepdims=True)
    off_random = np.abs((R @ R.T)[~np.eye(len(sim), dtype=bool)])
    return sim[:limit, :limit], float(off.mean()), float(off_random.mean())


def draw_figures(experiment, result, runs, out_dir):
    """The figures of an experiment; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    model, dataset = runs[0]["model"], runs[0]["dataset"]
    paths = [plots.plot_nll_curves([r["trainer"].history for r in runs], result["final"]["log_vocab"],
                                   os.path.join(out_dir, f"{experiment}_nll.png"),
                                   f"{experiment}: {model.kind}, {len(dataset.train)} training sentences",
                                   val_label=f"validation ({dataset.val_group})")]
    if experiment in ("reversal", "chain"):
        ncols = 2 if experiment == "reversal" else 3
        for with_rel, suffix, how in ((True, "", "given entity AND relation token"),
                                      (False, "_no_relation", "given the entity alone (the public code's way)")):
            mats = {name: logit_matrix(model, g, with_rel) for name, g in dataset.groups.items()}
            paths.append(plots.plot_heatmaps(mats, os.path.join(out_dir, f"{experiment}_heatmaps{suffix}.png"),
                                             f"logit(entity j | entity i), {how}", ncols=ncols))
    return paths
