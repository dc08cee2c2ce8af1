"""The paper's experiments as functions that return plain dicts (and draw figures).

    result, runs = run_experiment(RunConfig(experiment="reversal", epochs=50))

Science only: the data, the models, the training and the measurements. What a
run prints lives in ``minirev/report.py``, the command line in
``minirev/demo.py``. Every function takes an ``out`` callable for its printed
lines (``print`` by default, ``None`` for silence).
"""
import contextlib
import math
import os
import time

import numpy as np

from . import plots
from .backend import to_numpy
from .machinery.checkpoint import RunFolder, check_folders, load_run
from .config import RunConfig
from .data import chain_data, incontext_data, reversal_data
from .errors import UsageError
from .machinery.limits import check_run_memory, check_seed
from .model import Model
from .machinery.parallel import run_all
from .report import progress, say
from .trace import Trace
from .train import Interrupts, Trainer


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


def held_out_pairs(dataset, count=2, controls=False):
    """(seen sentence, unseen sentence) of the first held-out pairs, preferring ones trained forward.

    controls=True adds a third sentence to each pair, a control for the unseen one: its
    prefix with another answer of the same alphabet, drawn at random (seeded by the data's seed).
    """
    seen, unseen = dataset.groups["val seen"], dataset.groups["val unseen"]
    order = sorted(range(len(seen)), key=lambda i: seen[i, dataset.entity_len] != 0)
    pairs = [(seen[i], unseen[i]) for i in order[:count]]
    if not controls:
        return pairs
    L, with_controls = dataset.entity_len, []
    for k, (trained, reverse) in enumerate(pairs):
        answer = reverse[-L:]
        words = next(w for w in (dataset.info["x_words"], dataset.info["y_words"]) if (w == answer).all(1).any())
        others = words[~(words == answer).all(1)]                                # the alphabet's other words
        rng = np.random.default_rng([dataset.info.get("seed", 0), k])          # one seeded stream per pair
        control = np.concatenate([reverse[:-L], others[rng.integers(len(others))]])
        with_controls.append((trained, reverse, control))
    return with_controls


def make_trace(model, dataset, optimizer, steps, out=print, count=3):
    """A Trace of the first `steps` updates for `count` held-out pairs (and controls), in each model's own terms."""
    pairs, name = held_out_pairs(dataset, count, controls=True), dataset.sentence
    say(out, model.trace_title(pairs, name))
    if model.kind != "gpt" and optimizer.name != "sgd":      # the GPT's account reads the update that was made
        say(out, f"note: the terms of the {model.kind} trace are those of an SGD step; under {optimizer.name} "
                 "the residual shows how far the update is from them")
    return Trace(model, lambda: model.watch(pairs, name),
                 lambda batch: model.trace_terms(batch, pairs, optimizer, name), steps=steps, out=out, pairs=pairs)


def alphabet_rank(model, dataset):
    """Where the right answer ranks among its alphabet's tokens, on the validation group.

    val_rank: the mean rank of the right first answer token (1 = best; chance is
    (a + 1) / 2 for an alphabet of a tokens); val_top1: how often it ranks first.
    """
    rows = dataset.groups[dataset.val_group]
    logits = to_numpy(model.logits(rows))[:, 0, :]                                 # (n, V)
    candidates = np.take_along_axis(logits, dataset.answer_alphabets(rows), 1)     # (n, a)
    right = logits[np.arange(len(rows)), rows[:, -model.n_target]]                 # (n,)
    rank = 1 + (candidates > right[:, None]).sum(1)                                 # (n,)
    return dict(val_rank=float(rank.mean()), val_top1=float((rank == 1).mean()))


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
    """Train one seed: job = (cfg, seed, first?, the trace's out). The unit of work of minirev/machinery/parallel.py.

    report(message) carries ("say", lines), ("eval", seed, epoch, record) and ("done", seed,
    epochs) to the parent's display (report.progress). Ctrl-C stops training cleanly between
    two steps: the run keeps the steps done so far, and a checkpoint (--save) holds the exact
    position, so --resume continues bit for bit.
    """
    cfg, s, first, trace_out = job
    dataset = make_dataset(cfg, s)
    model = make_model(cfg, dataset, s)
    optimizer = make_optimizer(cfg)
    if first:
        report(("say", [dataset.summary(), f"model: {model.describe()}",
                        f"optimizer: {optimizer.describe()}; batch {'all' if cfg.full_batch else cfg.batch_size}, "
                        f"{cfg.epochs} epochs; loss on the answer tokens only"]))
    experiment = "reversal" if cfg.experiment == "embeddings" else cfg.experiment
    trace = make_trace(model, dataset, optimizer, cfg.trace, trace_out) if cfg.trace and first \
        and experiment == "reversal" else None
    trainer = Trainer(model, optimizer, dataset, seed=s, eval_every=cfg.eval_every, trace=trace,
                      batch_size=None if cfg.full_batch else cfg.batch_size)
    save_to = cfg.save or cfg.resume
    interrupted = False
    with Interrupts() as ctrl_c, (RunFolder(save_to) if save_to else contextlib.nullcontext()) as folder:
        if cfg.resume:
            load_run(cfg.resume, trainer, cfg)
            report(("say", [f"resumed from {cfg.resume} at epoch {trainer.epoch}"
                            + (f", step {trainer.batch} of epoch {trainer.epoch + 1}" if trainer.batch else "")]))

        def save_every(trainer):
            if folder and cfg.save_every and trainer.epoch % cfg.save_every == 0:
                folder.save(trainer, cfg)
        try:
            trainer.run(cfg.epochs, on_eval=lambda t, record: report(("eval", s, t.epoch, record)),
                        on_epoch=save_every, stop=lambda: ctrl_c.requested)
        except KeyboardInterrupt:
            interrupted = True
        if trace is not None:
            trace.finish()
        if folder:
            folder.save(trainer, cfg)
    if cfg.scheduler and cfg.backend != "numpy":   # the run goes back to a machine that may have no GPU
        trainer.model = model = model.copy(backend="numpy")
        optimizer.load_state_dict(optimizer.state_dict(), np)
    report(("done", s, trainer.epoch))
    return dict(seed=s, model=model, dataset=dataset, trainer=trainer, trace=trace, interrupted=interrupted,
                stop=ctrl_c.requested)


def run_experiment(cfg, out=print):
    """Train cfg.seeds models on cfg.experiment's data; return results (JSON-ready) and the runs.

    Ctrl-C stops training cleanly between two steps: the results cover the steps done so
    far, and a checkpoint (--save) holds the exact position, so --resume continues bit for bit.
    The seeds run side by side in cfg.jobs processes (default: one per core), or on the Dask
    cluster at cfg.scheduler; the results are bit-identical to one after the other. A trace
    and a checkpoint run in this process. The results are the same bytes in every process;
    timing and paths sit apart, in result["run"].
    """
    if not isinstance(cfg, RunConfig):
        raise UsageError(f"run_experiment takes a RunConfig, got {type(cfg).__name__}: "
                         "e.g. run_experiment(RunConfig(experiment='reversal', epochs=50))")
    cfg = cfg.resolved()
    check_run(cfg)
    experiment = "reversal" if cfg.experiment == "embeddings" else cfg.experiment
    seeds = [cfg.seed + i for i in range(cfg.seeds)]
    display = progress(out, cfg.epochs, seeds)
    start = time.perf_counter()
    jobs = 1 if cfg.trace or cfg.save or cfg.resume else cfg.jobs   # these run here, in order
    runs = run_all(train_seed, [(cfg, s, s == seeds[0], out if cfg.trace else None) for s in seeds], jobs=jobs,
                   scheduler=cfg.scheduler, on_message=display, stop_when=lambda run: run["interrupted"] or run["stop"])
    # a Ctrl-C that came during the last seed's final save lost nothing; one that stopped a seed early did
    interrupted = any(r["interrupted"] for r in runs) or len(runs) < len(seeds)
    if interrupted:
        trainer = min((r["trainer"] for r in runs), key=lambda t: (t.epoch, t.batch))
        say(out, f"\ninterrupted at epoch {trainer.epoch}" + (f", step {trainer.batch} of epoch "
            f"{trainer.epoch + 1}" if trainer.batch else "") + ": reporting the epochs completed so far")
    finals = [dict(r["trainer"].history[-1], **alphabet_rank(r["model"], r["dataset"])) for r in runs]
    dataset = runs[0]["dataset"]
    final = {k: float(np.mean([f[k] for f in finals])) for k in finals[0] if k not in ("epoch", "step")}
    final.update(epochs=finals[0]["epoch"], log_vocab=math.log(dataset.vocab_size), log_alphabet=dataset.log_alphabet())
    if "val seen nll" in final:
        final["val_seen_nll"] = final["val seen nll"]
    if len(runs) > 1:
        final.update({f"{k}_std": float(np.std([f[k] for f in finals])) for k in ("train_nll", "val_nll")})
    paths = ("save", "resume", "overwrite", "jobs", "scheduler")          # how it ran, not what it found
    result = dict(experiment=experiment, config={k: v for k, v in cfg.to_dict().items() if k not in paths},
                  interrupted=interrupted, final=final,
                  history=_mean_history([r["trainer"].history for r in runs]),
                  runs=[dict(seed=r["seed"], final=f, history=r["trainer"].history) for r, f in zip(runs, finals)])
    if runs[0]["trace"] is not None:
        result["trace"] = runs[0]["trace"].records
    result["run"] = dict(seconds=time.perf_counter() - start, **{k: getattr(cfg, k) for k in paths})   # last
    return result, runs


def check_run(cfg):
    """What can be refused before any work: sizes, seeds, and a --save over another run's checkpoint."""
    check_seed(cfg.seed, cfg.seeds)
    check_run_memory(cfg)
    if cfg.save_every and not (cfg.save or cfg.resume):
        raise UsageError("--save-every saves checkpoints, but no folder was given: add --save DIR")
    check_folders(cfg.save, cfg.resume, cfg.overwrite)


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
                                   val_label=f"validation ({dataset.val_group})",
                                   log_alphabet=result["final"]["log_alphabet"])]
    if experiment in ("reversal", "chain"):
        ncols = 2 if experiment == "reversal" else 3
        for with_rel, suffix, how in ((True, "", "given entity AND relation token"),
                                      (False, "_no_relation", "given the entity alone (the public code's way)")):
            mats = {name: logit_matrix(model, g, with_rel) for name, g in dataset.groups.items()}
            paths.append(plots.plot_heatmaps(mats, os.path.join(out_dir, f"{experiment}_heatmaps{suffix}.png"),
                                             f"logit(entity j | entity i), {how}", ncols=ncols))
    return paths
