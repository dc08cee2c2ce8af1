"""What each command of ``python -m minirev.demo`` does, once its options are parsed.

Each function takes plain values (a RunConfig, paths, numbers), prints what it
found and returns an exit status; ``minirev/demo.py`` only parses and dispatches.
"""
import math
import os
import signal
import sys
import textwrap
import time

import numpy as np

from .backend import get_xp
from .bilinear_sweep import bilinear_sweep
from .cures import run_cures
from .errors import UsageError
from .experiments import Experiment
from .gradcheck import check_model
from .machinery.checkpoint import collides
from .machinery.files import remove_stale_temporaries, staged_writes, write_json
from .machinery.paths import check_figures, check_json_path, check_out_dir
from .machinery.limits import check_memory
from .machinery.parallel import check_jobs
from .model import Model
from .plots import plot_bilinear, plot_cures
from .report import bilinear_verdict, print_bilinear_table, print_report
from .running import environment, make_dataset, make_model, make_optimizer, run_experiment
from .theory import DEFAULT, FULL, QUICK, claims, eps_grid_lines, run_theory, summary_lines, table_lines
from .train import Interrupts


def experiment(cfg, out, json_path):
    """An experiment of the registry (minirev/experiments/): train, report, measure, draw.

    Exit status 0; 1 when a seed's worker process died (the other seeds' results are written); or
    128 + the signal's number after Ctrl-C, SIGTERM or SIGHUP (130, 143, 129: as a
    shell reports them), once the results of the epochs done, the figures, the JSON and the checkpoint
    are written."""
    cfg = cfg.resolved()
    if not cfg.scheduler:               # on a cluster, the workers need the backend, not this machine
        get_xp(cfg.backend)
    out_dir, json_path = check_out_dir(out), check_json_path(json_path)
    check_figures(out_dir, cfg.experiment, json_path)
    for folder in (cfg.save, cfg.resume):
        if json_path and folder and collides(json_path, folder):
            raise UsageError(f"--json {json_path} would replace a file of the checkpoint in {folder}: "
                             "write the results outside the checkpoint folder")
    if cfg.paper:
        print(f"--paper: the paper's full configuration (24 layers, width 768, 12 heads, dropout 0.1, "
              f"{cfg.epochs} epochs); a GPU (--backend cupy) is advised.")
        if not cfg.scheduler:
            estimate_paper_time(cfg)
    kind = Experiment.registry[cfg.experiment]
    result, runs = run_experiment(cfg)
    # a Ctrl-C now would only lose the run's results: they are written first, all of them or none
    with Interrupts(), staged_writes():
        print_report(result, runs)
        measured, lines = kind.measure(runs)
        result["final"].update(measured)
        for line in lines:
            print(line)
        paths = kind.figures(result, runs, out_dir)
        print("figures: " + ", ".join(paths))
        if json_path:
            result["run"].update(json=json_path, out=out_dir)         # paths stay out of the results
            write_json(json_path, result)
            print(f"results: {json_path}")
        clean_up(out_dir, json_path)
    if "lost" in result:            # a killed worker: the other seeds' results are written, the status says so
        print("minirev: error: " + "; ".join(f"seed {r['seed']}: {r['why']}" for r in result["lost"])
              + f"; the results of the other {len(runs)} seed(s) are written", file=sys.stderr)
        return 1
    return 128 + signal.Signals[result["run"]["stopped_by"]] if result["interrupted"] else 0


def clean_up(out_dir, json_path):
    """Temporary files of killed runs, an hour old, next to the figures and the JSON."""
    for folder in {out_dir, os.path.dirname(os.path.abspath(json_path or out_dir))}:
        if os.path.isdir(folder):
            remove_stale_temporaries(folder, older_than=3600)


def estimate_paper_time(cfg):
    """Time a few training steps of the configuration and project the whole run."""
    data = make_dataset(cfg)
    model, opt = make_model(cfg, data), make_optimizer(cfg)
    batch = data.train[:cfg.batch_size]
    rng = np.random.default_rng(0)
    opt.step(model.params, model.loss_and_grads(batch, rng=rng)[1])         # warm-up
    t0 = time.perf_counter()
    for _ in range(2):
        opt.step(model.params, model.loss_and_grads(batch, rng=rng)[1])
    per_step = (time.perf_counter() - t0) / 2
    steps = math.ceil(len(data.train) / cfg.batch_size) * cfg.epochs * cfg.seeds
    total = per_step * steps
    when = f"{total:.0f} s" if total < 120 else f"{total / 60:.0f} minutes" if total < 7200 else f"{total / 3600:.1f} hours"
    print(f"estimate: {per_step * 1000:.0f} ms per step x {steps} steps = about {when} of training "
          f"on this machine ({cfg.backend}). Ctrl-C stops it and still writes the results so far.")


def bilinear(cfg, dims, pairs, held_out, out, json_path):
    """The bilinear sweep (minirev/bilinear_sweep.py): cfg a RunConfig of the bilinear model."""
    cfg = cfg.replace(model="bilinear", full_batch=True).resolved()
    get_xp(cfg.backend)
    out_dir, json_path = check_out_dir(out), check_json_path(json_path)
    check_figures(out_dir, "bilinear", json_path)
    vocab, itemsize = cfg.vocab, np.dtype(cfg.dtype).itemsize
    for dim in dims:            # U (host float64, and a copy), Theta, its gradient and the (B, m) logits
        d = vocab if dim is None else dim
        check_memory(f"the bilinear model with d = {d} and m = {vocab}", 8 * vocab * d
                     + itemsize * (vocab * d + 2 * d * d + 3 * 2 * pairs * vocab), "use a smaller --dims or --vocab")
    print(f"bilinear model: {pairs} pairs ({held_out} held out), vocabulary {vocab}, "
          f"full-batch gradient descent, lr {cfg.lr}, {cfg.epochs} steps")
    data, results = bilinear_sweep(cfg, dims, pairs, held_out)
    print_bilinear_table(results, vocab)
    onehot = [r for r in results if r["dim"] is None]
    if onehot:
        r = onehot[0]
        print(f"one-hot, held-out pairs: reverse weights {sorted(set(r['reverse_weights']))}, "
              f"reverse probabilities {sorted(set(round(p, 12) for p in r['reverse_probs']))} (1/m = {1 / vocab})")
    print("", bilinear_verdict(results, vocab), sep="\n")
    with staged_writes():                   # the figure and the JSON, both or neither
        fig = plot_bilinear(results, math.log(vocab), os.path.join(out_dir, "bilinear.png"))
        print(f"figure: {fig}")
        clean_up(out_dir, json_path)
        if json_path:
            seconds = [r.pop("seconds") for r in results]          # timing and paths stay out of the results
            config = dict(dims=dims, pairs=pairs, held_out=held_out, vocab=vocab, lr=cfg.lr, steps=cfg.epochs,
                          seed=cfg.seed, dtype=cfg.dtype, backend=cfg.backend, trace=cfg.trace,
                          weight_decay=cfg.weight_decay)
            write_json(json_path, dict(experiment="bilinear", config=config, results=results,
                                       run=dict(seconds=seconds, out=out_dir, json=json_path,
                                                environment=environment())))
            print(f"results: {json_path}")


def sweep(cells, seeds, seed, quick, jobs, scheduler, backend, out, json_path):
    """The appendix's axes as one figure (minirev/sweep.py): a run of 'seeds' seeds per cell, a verdict each."""
    from .sweep import plot_sweep, print_sweep, run_sweep
    if not scheduler:
        get_xp(backend)
    out_dir, json_path = check_out_dir(out), check_json_path(json_path)
    result = run_sweep(seeds, seed, jobs, scheduler, backend, quick, cells)
    stopped = result["stopped_by"]
    if stopped and not result["cells"]:
        print(f"minirev: interrupted by {stopped} before any cell finished", file=sys.stderr)
        return 128 + signal.Signals[stopped]
    print_sweep(result)
    print(f"\n{len(result['cells'])} cells x {seeds} seeds in {result['seconds']:.0f} s on {jobs} process(es)"
          + (f" on the cluster at {scheduler}" if scheduler else ""))
    if stopped:
        print(f"interrupted by {stopped}: the table, figure and JSON hold the finished cells")
    with Interrupts(), staged_writes():         # the results so far, written whole
        print("figure: " + plot_sweep(result, os.path.join(out_dir, "sweep.png")))
        if json_path:
            result["run"] = dict(jobs=jobs, scheduler=scheduler, environment=environment())
            write_json(json_path, result)
            print(f"results: {json_path}")
    return 128 + signal.Signals[stopped] if stopped else 0


def gradcheck(kinds, seed, tol):
    """Each model's gradient-check example (the same the tests use) against autograd."""
    ok = True
    for kind in kinds:
        model, tokens = Model.registry[kind].gradcheck_example(seed)
        passed, _ = check_model(model, tokens, tol=tol)
        ok &= passed
        print()
    print("all gradients match autograd" if ok else "SOME GRADIENTS DO NOT MATCH autograd (FAIL above)")
    return 0 if ok else 1


def cures(rows, seeds, seed, quick, jobs, out, json_path):
    """The cures from the literature side by side: the table, the accounts, one figure (minirev/cures.py)."""
    check_jobs(jobs)
    out_dir, json_path = check_out_dir(out), check_json_path(json_path)
    check_figures(out_dir, "cures", json_path)
    start = time.perf_counter()
    result = run_cures(rows, seeds, seed, quick, jobs)
    result["seconds"] = time.perf_counter() - start
    result["run"] = dict(jobs=jobs, environment=environment())            # where it ran, last
    print(f"{len(result['rows'])} rows x {seeds} seeds in {result['seconds']:.0f} s on {jobs} process(es)")
    with staged_writes():                   # the figure and the JSON, both or neither
        fig = plot_cures(result["rows"], os.path.join(out_dir, "cures.png"),
                         f"What breaks the curse: unseen NLL over {seeds} seeds per row"
                         + (" (--quick: small models on small data)" if quick else ""))
        print(f"figure: {fig}")
        if json_path:
            write_json(json_path, result)
            print(f"results: {json_path}")


def theory(quick, full, out, json_path):
    """The paper's theorems as numbers (minirev/theory.py): the table of claims, the eps_min grid, the figures."""
    out_dir, json_path = check_out_dir(out), check_json_path(json_path)
    check_figures(out_dir, "theory", json_path)
    settings = QUICK if quick else FULL if full else DEFAULT
    for line in (f"bilinear: n = {', '.join(map(str, settings['pairs']))} pairs x d = "
                 f"{', '.join(str(d) for d in settings['dims'] if d)}, one-hot x {len(settings['seeds'])} embedding "
                 f"seeds, {settings['bilinear_steps']} full-batch steps",
                 f"one-layer: {len(settings['one_layer_seeds'])} seeds x {settings['one_layer_steps']} full-batch "
                 "steps" + (" (--quick)" if quick else "")):
        print(textwrap.fill(line, 79, subsequent_indent="  "))          # (an 80-column terminal)
    start = time.perf_counter()
    result = run_theory(settings)
    seconds = time.perf_counter() - start
    rows = claims(result)
    for line in ["", *eps_grid_lines(result["bilinear"]), "", *table_lines(rows), ""]:
        print(line)
    for line in summary_lines(result):                  # prose: wrapped for an 80-column terminal
        print(textwrap.fill(line, 79, subsequent_indent="  "))
    print(f"\n{sum(r['passed'] for r in rows)} of {len(rows)} claims hold, in {seconds:.0f} s")
    with staged_writes():                   # the figures and the JSON, all or none
        from .theory_plots import theory_figures          # matplotlib only when drawing
        print("figures: " + ", ".join(theory_figures(result, out_dir)))
        if json_path:
            write_json(json_path, dict(experiment="theory", claims=rows, **result,
                                       run=dict(seconds=seconds, out=out_dir, json=json_path,
                                                environment=environment())))
            print(f"results: {json_path}")
        clean_up(out_dir, json_path)
    return 0 if all(r["passed"] for r in rows) else 1

