"""What breaks the curse: the cures from the literature, side by side, rows x seeds.

    result = run_cures(seeds=5, jobs=2)          # every row of ROWS, the table, the verdicts

Each row is one intervention in one model: a RunConfig (the reversal data, the
model and its optimiser) plus a data recipe (minirev/cure_data.py). Each
(row, seed) pair is an independent task, a pure function of picklable inputs
returning a small dict, so ``run_tasks`` may run them in any number of worker
processes and get the very same numbers as a serial run.

Epochs are matched: every training sentence is seen as often as in the
baseline, so a recipe that adds sentences also gets proportionally more
updates (matching updates instead left the GPT's identity-bridge rows short
of learning their training sentences). The one-layer models train with
full-batch gradient descent, as in their theory.
"""
import math
import textwrap
from dataclasses import dataclass, field

import numpy as np

from .config import RunConfig
from .cure_data import apply
from .cure_trace import MarginAccount, decoder_split
from .errors import RunError, UsageError
from .machinery.parallel import run_all
from .measures import alphabet_rank
from .one_layer import OneLayer
from .running import make_dataset, make_model, make_optimizer
from .progress import TaskProgress
from .report import say, verdict
from .train import Trainer

@dataclass(frozen=True)
class Row:
    key: str                   # the name --rows selects it by
    label: str                 # the intervention, as the table prints it
    source: str                # where it comes from
    model: str                 # a registered model kind
    changes: dict = field(default_factory=dict)     # RunConfig fields that differ from the row's base
    recipe: tuple = ("none", {})                    # cure_data.apply(recipe, data)
    default: bool = True                            # False: only when --rows names it


BRIDGE, COMPOSITION, REVERSE = ("bridge", {"form": "naive"}), ("bridge", {"form": "composition"}), ("reverse", {})
ROWS = [
    Row("baseline", "baseline (paper's code as run)", "Zhu et al. 2405.04669", "gpt"),
    Row("tied", "tied output layer", "lesson 8", "gpt", dict(tied=True)),
    Row("no-dropout", "dropout 0", "lesson 8", "gpt", dict(dropout=0.0)),
    Row("wd-0", "weight decay 0", "sweep", "gpt", dict(weight_decay=0.0)),
    Row("wd-0.1", "weight decay 0.1", "sweep", "gpt", dict(weight_decay=0.1)),
    Row("wd-1", "weight decay 1", "sweep", "gpt", dict(weight_decay=1.0)),
    Row("bridge", "identity bridge [A id A]", "Ma et al. 2602.02470", "gpt", recipe=BRIDGE),
    Row("bridge-comp", "identity bridge, composition", "Ma et al. 2602.02470", "gpt", recipe=COMPOSITION),
    Row("reverse", "reverse training", "Golovneva et al. 2403.13799", "gpt", recipe=REVERSE),
    Row("mlm-u", "MLM-U (bidirectional, masked)", "Kitouni et al. 2406.05183", "gpt-mlm",
        dict(lr=0.003, epochs=200)),
    Row("combined", "combined Y (gradient descent)", "Huang et al. 2506.10887", "one-layer"),
    Row("factorized", "factorized W_V W_O (small init)", "Huang et al. 2506.10887", "one-layer-factorized"),
    Row("bridge-1l", "identity bridge [A id A]", "Ma et al. 2602.02470", "one-layer", recipe=BRIDGE),
    Row("bridge-f", "identity bridge [A id A]", "Ma et al. 2602.02470", "one-layer-factorized", recipe=BRIDGE),
    Row("bridge-comp-1l", "identity bridge, composition", "Ma et al. 2602.02470", "one-layer", recipe=COMPOSITION),
    Row("bridge-comp-f", "identity bridge, composition", "Ma et al. 2602.02470", "one-layer-factorized",
        recipe=COMPOSITION),
    Row("reverse-1l", "reverse training", "Golovneva et al. 2403.13799", "one-layer", recipe=REVERSE),
    Row("wd-0.001-f", "weight decay 0.001", "sweep", "one-layer-factorized", dict(weight_decay=0.001)),
    Row("wd-0.01-f", "weight decay 0.01", "sweep", "one-layer-factorized", dict(weight_decay=0.01)),
    # two-token entities (400 pairs): reverse training keeps each entity's inner order; ~6x a baseline row
    Row("baseline-L2", "baseline (entities of 2 tokens)", "Zhu et al. 2405.04669", "gpt", dict(entity_len=2),
        default=False),
    Row("reverse-L2", "reverse training (2-token ents)", "Golovneva et al. 2403.13799", "gpt",
        dict(entity_len=2), recipe=REVERSE, default=False),
]
# the base of every row: the demo's default reversal run for the GPT; the one-layer models (whose
# every step costs ~M^3 for the M x M decoder) on the 100-pair split of vocabulary 400, full batch
BASE = {"gpt": dict(vocab=800, epochs=100), "one-layer": dict(vocab=400, full_batch=True, epochs=100),
        "one-layer-factorized": dict(vocab=400, full_batch=True, epochs=600)}
QUICK = {"gpt": dict(vocab=200, layers=1, width=32, epochs=60),
         "one-layer": dict(vocab=100, full_batch=True, epochs=100),
         "one-layer-factorized": dict(vocab=100, full_batch=True, epochs=200)}


def select(keys=None):
    """The rows named by keys (the default rows of ROWS for None), in ROWS order; one line for an unknown name."""
    if keys is None:
        return [r for r in ROWS if r.default]
    known = {r.key: r for r in ROWS}
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise UsageError(f"unknown row(s) {', '.join(unknown)}: choose from {', '.join(known)}")
    return [r for r in ROWS if r.key in keys]


def row_config(row, quick=False):
    """The row's RunConfig: its model's base (BASE, or QUICK), then the row's own changes."""
    family = "gpt" if row.model.startswith("gpt") else row.model
    base = dict((QUICK if quick else BASE)[family])
    if quick and "epochs" in row.changes:          # keep a row's longer training in proportion
        base["epochs"] = round(base["epochs"] * row.changes["epochs"] / BASE[family]["epochs"])
    changes = {k: v for k, v in row.changes.items() if not (quick and k == "epochs")}
    cfg = RunConfig(model=row.model, **{**base, **changes}).resolved()
    return cfg.replace(eval_every=cfg.epochs)          # evaluated once, at the end


def make_tasks(rows, seeds=5, seed=1234, quick=False, account=False):
    """One task per (row, seed): everything a worker needs, nothing it must share."""
    return [dict(row=r.key, cfg=row_config(r, quick), recipe=r.recipe, seed=seed + i, account=account)
            for r in rows for i in range(seeds)]


# --------------------------------------------------------------------------- one task

def run_task(task):
    """Train one row for one seed; return its final numbers (a small, JSON-ready dict)."""
    cfg, seed = task["cfg"], task["seed"]
    data = apply(task["recipe"], make_dataset(cfg, seed))
    model = make_model(cfg, data, seed)
    optimizer = make_optimizer(cfg)
    account = MarginAccount(model, data) if task["account"] else None
    trainer = Trainer(model, optimizer, data, batch_size=None if cfg.full_batch else cfg.batch_size, seed=seed,
                      eval_every=cfg.eval_every, trace=account)
    final = trainer.run(cfg.epochs)[-1]
    out = dict(row=task["row"], seed=seed, epochs=cfg.epochs, steps=trainer.step, sentences=len(data.train),
               train_nll=final["train_nll"], val_nll=final["val_nll"], val_acc=final[f"{data.val_group} acc"],
               # both yardsticks per answer token, as the NLL is
               log_vocab=math.log(data.vocab_size), log_alphabet=data.log_alphabet(),
               alphabet=len(data.info["alphabets"][0]), **alphabet_rank(model, data))
    if isinstance(model, OneLayer):
        out.update(decoder_split(model, data))
    if account is not None:
        out["account"] = account.result()
    return out


def run_tasks(tasks, jobs=1, out=None, what="cures"):
    """run_task over every task, on `jobs` processes (minirev/machinery/parallel.py: each with cores // jobs BLAS
    threads, so two workers on two cores, not four threads); results in task order, the same bits. With out,
    a progress line per finished task (report.TaskProgress: rewritten in place on a terminal)."""
    display = TaskProgress(out, len(tasks), what)
    try:
        return run_all(_run_task, tasks, jobs=jobs, on_message=display,
                       name=lambda task: f"row {task['row']}, seed {task['seed']}")
    finally:
        display.close()


def _run_task(task, report):  # the unit of work of run_all, which hands every unit a report channel
    result = run_task(task)
    report(("task", task["row"], task["seed"], result["train_nll"], result["val_nll"]))
    return result


# --------------------------------------------------------------------------- the table

def short_verdict(train, vals, top1, log_a):
    """One word that holds for EVERY seed: cursed, broken, or mixed (saying which), or not learned."""
    n = len(vals)
    if max(train) > 0.5:
        return f"not learned (training NLL up to {max(train):.2f} > 0.5)"
    below = sum(v < log_a for v in vals)
    first = sum(t > 0.5 for t in top1)
    if below == 0:
        return "cursed"
    if below == n and first == n:
        return "broken"
    return f"mixed ({below}/{n} seeds below log a; {first}/{n} rank it first for most questions)"


def summarize(rows, tasks, results):
    """Per row: the seeds' numbers side by side, their means, and the verdicts."""
    summary = []
    for row in rows:
        runs = [r for t, r in zip(tasks, results) if t["row"] == row.key]
        col = lambda k: [r[k] for r in runs]                                   # noqa: E731
        s = dict(key=row.key, intervention=row.label, model=row.model, source=row.source, runs=runs,
                 **{k: float(np.mean(col(k))) for k in ("train_nll", "val_nll", "val_acc", "val_rank", "val_top1")},
                 val_nll_min=min(col("val_nll")), val_nll_max=max(col("val_nll")),
                 log_vocab=runs[0]["log_vocab"], log_alphabet=runs[0]["log_alphabet"], alphabet=runs[0]["alphabet"])
        s["verdict"] = short_verdict(col("train_nll"), col("val_nll"), col("val_top1"), s["log_alphabet"])
        s["sentence"] = verdict("reversal", col("train_nll"), col("val_nll"), s["log_vocab"], s["log_alphabet"])
        if "margin_entity_row" in runs[0]:
            s.update({k: float(np.mean(col(k))) for k in
                      ("margin_entity_row", "margin_other_rows", "ov_diagonal_minus_off")})
        summary.append(s)
    return summary


def print_table(summary, seeds, out=print):
    """The rows grouped by model (in the order of ROWS within each), 100 columns at most: a verdict's details
    (which seeds, how far from learned) on a line of their own under its row."""
    say(out, "", f"{'intervention, by model':<33} {'train':>5} {'unseen (min-max)':>19} {'acc':>4} {'rank':>5} "
                 f"{'log|V|':>6} {'log a':>5}  verdict", "-" * 96)
    for model in dict.fromkeys(s["model"] for s in summary):
        say(out, model)
        for s in (s for s in summary if s["model"] == model):
            word, _, detail = s["verdict"].partition(" (")
            say(out, f"  {s['intervention']:<31} {s['train_nll']:>5.3f} {s['val_nll']:>6.2f} "
                     f"({s['val_nll_min']:>5.2f}-{s['val_nll_max']:<5.2f}) {100 * s['val_acc']:>3.0f}% "
                     f"{s['val_rank']:>5.1f} {s['log_vocab']:>6.2f} {s['log_alphabet']:>5.2f}  {word}")
            if detail:
                say(out, f"      ({detail}")
    say(out, *textwrap.wrap(
        "train, unseen: NLL of the training sentences and of the held-out reverse questions (acc: their accuracy); "
        "rank: of the right answer within its alphabet of a tokens (1 = first, chance (a+1)/2); means over "
        f"seeds; each verdict holds for every one of the {seeds} seeds.", 100))


def print_accounts(summary, accounts, out=print):
    """Who carried the reverse direction: exact for the one-layer models, per tensor for the GPTs."""
    one_layer = [s for s in summary if "margin_entity_row" in s]
    if one_layer:
        say(out, "", *textwrap.wrap(
            "one-layer models, exactly: margin = logit(right answer) - mean over its alphabet, on the unseen "
            "questions, split by the row of Y (= W_V W_O) that carries it; and the learned output-value "
            "matrix on the held-out block (theory: diagonal > off-diagonal only where the curse breaks)", 100),
            f"  {'':<31} {'':<20} {'entity row':>11} {'relation rows':>14} {'Y diag - off':>13}")
        for s in one_layer:
            say(out, f"  {s['intervention']:<31} {s['model']:<20} {s['margin_entity_row']:>+11.2f} "
                     f"{s['margin_other_rows']:>+14.2f} {s['ov_diagonal_minus_off']:>+13.2f}")
    for s, acc in accounts:
        shares = ", ".join(f"{k} {v:+.2f}" for k, v in acc["shares"].items())
        say(out, "", *textwrap.wrap(
            f"{s['intervention']} ({s['model']}, seed {s['runs'][0]['seed']}, every update, first order): "
            f"unseen margin {acc['start']:+.2f} -> {acc['end']:+.2f} (sum of shares "
            f"{acc['start'] + sum(acc['shares'].values()):+.2f}); by tensor: {shares}", 100))


def run_cures(keys=None, seeds=5, seed=1234, quick=False, jobs=1, out=print):
    """Every selected row for `seeds` seeds; then, for each GPT row that moved the unseen questions below
    log(alphabet) for some seed, its first seed again with the per-tensor account. Returns a JSON-ready dict."""
    if not isinstance(seeds, int) or seeds < 1:
        raise UsageError(f"--seeds must be a whole number >= 1, got {seeds!r}")
    rows = select(keys)
    tasks = make_tasks(rows, seeds, seed, quick)
    say(out, f"cures: {len(rows)} rows x {seeds} seeds = {len(tasks)} training runs on {jobs} process(es)"
             + (" (--quick: small models, small data)" if quick else ""))
    results = run_tasks(tasks, jobs, out)
    summary = summarize(rows, tasks, results)
    retrace = [s for s in summary if s["model"].startswith("gpt") and not s["verdict"].startswith(("cursed", "not"))]
    again = [next(t for t in tasks if t["row"] == s["key"]) for s in retrace]
    if again:
        say(out, f"per-tensor accounts: the first seed of {', '.join(s['key'] for s in retrace)} again, "
                 "every update traced")
    traced = run_tasks([dict(t, account=True) for t in again], jobs, out, what="account")
    for s, r in zip(retrace, traced):          # the hook only reads: the traced run is the table's first seed
        if r["val_nll"] != s["runs"][0]["val_nll"]:
            raise RunError(f"row {s['key']}: the traced run did not reproduce its untraced twin; "
                           "please report this (a run must be a pure function of its seed)")
    accounts = [(s, r["account"]) for s, r in zip(retrace, traced)]
    print_table(summary, seeds, out)
    print_accounts(summary, accounts, out)
    configs = {r.key: row_config(r, quick).to_dict() for r in rows}
    return dict(experiment="cures", seeds=seeds, seed=seed, quick=quick, configs=configs, rows=summary,
                accounts={s["key"]: acc for s, acc in accounts})
