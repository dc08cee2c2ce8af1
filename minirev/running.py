"""Running an experiment: build its data, model and optimiser from a RunConfig, train the seeds, collect.

    result, runs = run_experiment(RunConfig(experiment="reversal", epochs=50))

``result`` is JSON-ready (the configuration, the final numbers, the history of
every seed); ``runs`` holds the trained models and datasets, for measuring and
drawing. What a run prints lives in ``minirev/report.py``, what each experiment
is in ``minirev/experiments/``, the safety and the processes in
``minirev/machinery/``. Every function takes an ``out`` callable for its printed
lines (``print`` by default, ``None`` for silence).
"""
import math
import os
import platform
import re
import signal
import time

import numpy as np

from .config import RunConfig
from .errors import RunError, UsageError
from .experiments import Experiment
from .machinery.checkpoint import RunFolder, check_folders, load_run
from .machinery.limits import check_run_memory, check_seed
from .machinery import BLAS_VARS
from .machinery.parallel import Lost, blas_threads, check_jobs, cores, lost_line, run_all
from .measures import alphabet_rank, held_out_pairs
from .model import Model
from .progress import progress
from .report import say
from .trace import Trace
from .train import Interrupts, Trainer


# --------------------------------------------------------------------------- building a run

def make_dataset(cfg, seed=None):
    """The data of cfg.experiment (each experiment's data(), minirev/experiments/)."""
    return Experiment.registry[cfg.experiment].data(cfg, cfg.seed if seed is None else seed)


def make_model(cfg, dataset, seed=None):
    """The model cfg.model names, sized for the dataset (see each model's from_config)."""
    return Model.registry[cfg.model].from_config(cfg, dataset, cfg.seed if seed is None else seed)


def make_optimizer(cfg):
    """Each model's own: AdamW (the paper's GPT settings) for the gpt; plain SGD, as in the theory, for the others."""
    return Model.registry[cfg.model].make_optimizer(cfg)


def make_trace(model, dataset, optimizer, steps, out=print, count=3):
    """A Trace of the first `steps` updates for `count` held-out pairs (and controls), in each model's own terms."""
    pairs, name = held_out_pairs(dataset, count, controls=True), dataset.sentence
    say(out, model.trace_title(pairs, name))
    if model.kind != "gpt" and optimizer.name != "sgd":      # the GPT's account reads the update that was made
        say(out, f"note: the terms of the {model.kind} trace are those of an SGD step; under {optimizer.name} "
                 "the residual shows how far the update is from them")
    return Trace(model, lambda: model.watch(pairs, name),
                 lambda batch: model.trace_terms(batch, pairs, optimizer, name), steps=steps, out=out, pairs=pairs)


def _mean_history(histories):
    n = min(len(h) for h in histories)
    keys = [k for k in histories[0][0] if isinstance(histories[0][0][k], (int, float))]
    return [{k: float(np.mean([h[i][k] for h in histories])) if k not in ("epoch", "step") else histories[0][i][k]
             for k in keys} for i in range(n)]


def snake_case(key):
    """A result's key: "val seen nll" (a record of the training history) -> "val_seen_nll"."""
    return re.sub(r"[^0-9a-z]+", "_", key.lower()).strip("_")


def json_keys(record):
    """A record of the history (trainer.history keeps its group names) with the results' keys."""
    return {snake_case(k): v for k, v in record.items()}


def processor():
    """platform.processor(), or on Linux (where it is often empty) the model name in /proc/cpuinfo."""
    if platform.processor():
        return platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else ""


def environment(worker_threads=None):
    """Where a run ran, for the "run" block of its results: the versions, the BLAS, the processor, the threads."""
    from . import __version__                                # (the package's __init__ imports this module)
    info = dict(minirev=__version__, python=platform.python_version(), numpy=np.__version__, blas=None,
                machine=platform.machine(), processor=processor(), cores=cores(), cpu_count=os.cpu_count(),
                blas_threads={v: os.environ[v] for v in BLAS_VARS if v in os.environ} or None)
    if worker_threads is not None:
        info["worker_blas_threads"] = worker_threads        # each worker process's (machinery/parallel.py)
    if np.lib.NumpyVersion(np.__version__) >= "1.25.0":      # show_config(mode="dicts"): NumPy 1.25 on
        try:
            blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
            info["blas"] = {k: blas.get(k) for k in ("name", "version")}
        except (KeyError, TypeError, AttributeError, ValueError):
            pass
    return info


# --------------------------------------------------------------------------- one seed, then all of them

def train_seed(job, report):
    """Train one seed: job = (cfg, seed, first?, the trace's out). The unit of work of minirev/machinery/parallel.py.

    cfg is resolved (RunConfig.resolved). report(message) carries ("say", lines), ("start", seed, epoch,
    val_group), ("eval", seed, epoch, record) and ("done", seed, epochs) to the parent's display
    (report.progress). A checkpoint to resume is checked and loaded before anything is printed: a refused
    one prints only its error. Ctrl-C stops training cleanly between two steps: the run keeps the steps
    done so far, and a checkpoint (--save) holds the exact position, so --resume continues bit for bit.
    """
    cfg = job[0]
    if not (cfg.save or cfg.resume):
        return _train_seed(job, report, None)
    fresh = bool(cfg.save) and not cfg.overwrite and not (cfg.resume and os.path.realpath(cfg.save) ==
                                                            os.path.realpath(cfg.resume))
    with RunFolder(cfg.save or cfg.resume, fresh=fresh) as folder:      # locked before the data is built
        return _train_seed(job, report, folder)


def _train_seed(job, report, folder):
    cfg, s, first, trace_out = job
    dataset = make_dataset(cfg, s)
    model = make_model(cfg, dataset, s)
    optimizer = make_optimizer(cfg)
    trainer = Trainer(model, optimizer, dataset, seed=s, eval_every=cfg.eval_every,
                      batch_size=None if cfg.full_batch else cfg.batch_size)
    interrupted = False
    with Interrupts() as ctrl_c:
        if cfg.resume:
            load_run(cfg.resume, trainer, cfg)
        if first:
            report(("say", [dataset.summary(), f"model: {model.describe()}",
                            f"optimizer: {optimizer.describe()}; batch {'all' if cfg.full_batch else cfg.batch_size}, "
                            f"{cfg.epochs} epochs; loss on "
                            + ("every next token" if cfg.loss_whole_sequence else "the answer tokens only")]))
        if cfg.resume:
            report(("say", [resumed_note(cfg, trainer)]))
        trainer.trace = trace = make_trace(model, dataset, optimizer, cfg.trace, trace_out) \
            if cfg.trace and first else None

        def save_every(trainer):
            if folder and cfg.save_every and trainer.epoch % cfg.save_every == 0:
                folder.save(trainer, cfg)
        report(("start", s, trainer.epoch, dataset.val_group))
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
    return dict(seed=s, cfg=cfg, model=model, dataset=dataset, trainer=trainer, trace=trace, interrupted=interrupted,
                stop=ctrl_c.requested)


def resumed_note(cfg, trainer):
    """The line a resume prints: where it continues, or that the checkpoint is already past --epochs."""
    where = f"epoch {trainer.epoch}" + (f", step {trainer.batch} of epoch {trainer.epoch + 1}" if trainer.batch else "")
    if trainer.epoch < cfg.epochs:
        return f"resumed from {cfg.resume} at {where}"
    past = f"past --epochs {cfg.epochs}" if trainer.epoch > cfg.epochs or trainer.batch else \
        f"all of --epochs {cfg.epochs} trained"
    return f"the checkpoint in {cfg.resume} is at {where}, {past}: nothing to train; reporting it as saved"


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
    if out is not None and not callable(out):
        raise UsageError(f"run_experiment's out takes a function of the printed lines (print) or None for "
                         f"silence, got {type(out).__name__} {out!r:.40}")
    cfg = cfg.resolved()
    check_run(cfg)
    seeds = [cfg.seed + i for i in range(cfg.seeds)]
    display = progress(out, cfg.epochs, seeds)
    start = time.perf_counter()
    jobs = 1 if cfg.trace or cfg.save or cfg.resume else cfg.jobs   # these run here, in order
    work = [(cfg, s, s == seeds[0], out if cfg.trace else None) for s in seeds]
    try:
        runs = run_all(train_seed, work, jobs=jobs, scheduler=cfg.scheduler, on_message=display,
                       stop_when=lambda run: run["interrupted"] or run["stop"], partial=True)
    finally:
        display.close()
    lost = [r for r in runs if isinstance(r, Lost)]            # a killed worker, a lost cluster: the others stay
    runs = [r for r in runs if not isinstance(r, Lost)]
    for r in runs:          # a cluster may serialise a result's values apart: the trainer's model is the run's
        r["trainer"].model = r["model"]
    if not runs:
        raise RunError(lost_line(lost, work, seed_name) + ": no run finished")
    # a Ctrl-C that came during the last seed's final save lost nothing; one that stopped a seed early did
    interrupted = any(r["interrupted"] for r in runs) or len(runs) + len(lost) < len(seeds)
    signum = next((r["stop"] for r in runs if r["stop"]), signal.SIGINT) if interrupted else 0
    if interrupted:
        trainer = min((r["trainer"] for r in runs), key=lambda t: (t.epoch, t.batch))
        say(out, f"\ninterrupted at epoch {trainer.epoch}" + (f", step {trainer.batch} of epoch "
            f"{trainer.epoch + 1}" if trainer.batch else "") + ": reporting the epochs completed so far")
    finals = [json_keys(dict(r["trainer"].history[-1], **alphabet_rank(r["model"], r["dataset"]))) for r in runs]
    dataset = runs[0]["dataset"]
    final = {k: float(np.mean([f[k] for f in finals])) for k in finals[0] if k not in ("epoch", "step")}
    final.update(epochs=finals[0]["epoch"], log_vocab=math.log(dataset.vocab_size), log_alphabet=dataset.log_alphabet())
    if len(runs) > 1:
        final.update({f"{k}_std": float(np.std([f[k] for f in finals])) for k in ("train_nll", "val_nll")})
    paths = ("save", "resume", "overwrite", "jobs", "scheduler")          # how it ran, not what it found
    result = dict(experiment=cfg.experiment, config={k: v for k, v in cfg.to_dict().items() if k not in paths},
                  interrupted=interrupted, final=final,
                  history=[json_keys(h) for h in _mean_history([r["trainer"].history for r in runs])],
                  runs=[dict(seed=r["seed"], final=f, history=[json_keys(h) for h in r["trainer"].history])
                        for r, f in zip(runs, finals)])
    if lost:
        result["lost"] = [dict(seed=work[r.index][1], why=r.why) for r in lost]
    if runs[0]["trace"] is not None:
        result["trace"] = runs[0]["trace"].records
    result["run"] = dict(seconds=time.perf_counter() - start, stopped_by=signal.Signals(signum).name if signum else None,
                         **{k: getattr(cfg, k) for k in paths},   # last
                         environment=environment(worker_threads=blas_threads(min(jobs, len(seeds)))
                                                 if jobs > 1 and len(seeds) > 1 and not cfg.scheduler else None))
    return result, runs


def seed_name(work):
    return f"seed {work[1]}"


def check_run(cfg):
    """What can be refused before any work: sizes (in every process), seeds, the processes, and a --save
    over another run's checkpoint."""
    check_seed(cfg.seed, cfg.seeds)
    fastest = max(cfg.lr, cfg.lr_z or 0)
    if cfg.optimizer == "adamw" and "weight_decay" in cfg.given() and fastest * cfg.weight_decay >= 1:
        raise UsageError(f"--weight-decay {cfg.weight_decay:g} with --lr {fastest:g}: AdamW multiplies every weight by "
                         f"1 - lr x weight decay = {1 - fastest * cfg.weight_decay:g} at each step, which zeroes or "
                         f"flips them and diverges; use a weight decay below 1 / lr = {1 / fastest:g}")
    processes = 1 if cfg.scheduler else min(cfg.jobs, cfg.seeds)
    check_jobs(processes)
    check_run_memory(cfg, processes)
    if cfg.save_every and not (cfg.save or cfg.resume):
        raise UsageError("--save-every saves checkpoints, but no folder was given: add --save DIR")
    check_folders(cfg.save, cfg.resume, cfg.overwrite)
