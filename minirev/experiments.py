"""The paper's experiments as functions that return plain dicts (and draw figures).

The command line (``minirev/demo.py``) is a thin layer over these; the
lessons call them too. Every function takes an ``out`` callable for its
printed lines (``print`` by default, ``None`` for silence).
"""
import math
import os
import time

import numpy as np

from . import plots
from .backend import to_numpy
from .bilinear import Bilinear
from .checkpoint import load_run, save_run
from .data import chain_data, incontext_data, reversal_data
from .errors import UsageError
from .gpt import GPT
from .one_layer import OneLayer
from .optim import SGD, AdamW
from .train import Trace, Trainer, say


def check_out_dir(path):
    """Fail early (before any work) if the output folder cannot be created or written."""
    path = os.path.abspath(path)
    probe = path
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"output folder {path} cannot be written ({probe} is not a writable folder): "
                         "choose another with --out")
    return path


def check_json_path(path):
    if path is None:
        return None
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"--json {path}: the folder {folder} does not exist; create it or choose another path")
    if not os.access(folder, os.W_OK) or os.path.isdir(path):
        raise UsageError(f"--json {path}: cannot write a file there; choose another path")
    return path


# --------------------------------------------------------------------------- building a run

# The paper's full configuration (its public code's defaults); `--paper` selects it.
PAPER_CONFIG = dict(model="gpt", layers=24, width=768, heads=12, pos="absolute", dropout=0.1, epochs=3000,
                    lr=0.01, weight_decay=0.01, batch_size=64)
DEFAULT_LR = {"gpt": 0.01, "bilinear": 20.0, "one-layer": 100.0}


def make_dataset(experiment, cfg):
    if experiment in ("reversal", "embeddings"):
        return reversal_data(cfg["vocab"], cfg["entity_len"], cfg["seed"])
    if experiment == "chain":
        return chain_data(cfg["vocab"], cfg["entity_len"], cfg["seed"])
    if experiment == "incontext":
        return incontext_data(cfg["vocab"], seed=cfg["seed"])
    raise UsageError(f"unknown experiment {experiment!r}: choose reversal, chain, incontext or embeddings")


def make_model(cfg, dataset, seed):
    dtype = np.dtype(cfg.get("dtype", "float32"))
    kind = cfg["model"]
    if kind == "gpt":
        return GPT(dataset.vocab_size, layers=cfg["layers"], width=cfg["width"], heads=cfg["heads"],
                   pos=cfg["pos"], max_len=dataset.train.shape[1], dropout=cfg["dropout"],
                   entity_len=dataset.entity_len, seed=seed, tied=not cfg.get("untied", False), dtype=dtype,
                   backend=cfg["backend"])
    if dataset.entity_len != 1:
        raise UsageError(f"--model {kind} scores single-token answers: use --entity-len 1 (or --model gpt)")
    if kind == "bilinear":
        return Bilinear(dataset.vocab_size, cfg["width"], seed=seed, dtype=dtype, backend=cfg["backend"])
    if kind == "one-layer":
        return OneLayer(dataset.vocab_size, seed=seed, dtype=dtype, backend=cfg["backend"])
    raise UsageError(f"unknown model {kind!r}: choose gpt, bilinear or one-layer")


def make_optimizer(cfg):
    """AdamW (the paper's GPT settings) for the gpt; plain SGD, as in the theory, for the others."""
    lr = cfg["lr"] if cfg.get("lr") is not None else DEFAULT_LR[cfg["model"]]
    if cfg["model"] == "gpt":
        return AdamW(lr=lr, weight_decay=cfg["weight_decay"])
    if cfg["model"] == "one-layer":
        return SGD(lr, lrs={"Z": cfg.get("lr_z", 0.0)})
    return SGD(lr)


def held_out_pairs(dataset, count=2):
    """(seen sentence, unseen sentence) of the first held-out pairs, preferring ones trained forward."""
    seen, unseen = dataset.groups["val seen"], dataset.groups["val unseen"]
    order = sorted(range(len(seen)), key=lambda i: seen[i, dataset.entity_len] != 0)
    return [(seen[i], unseen[i]) for i in order[:count]]


def logit_trace(model, sentences, labels):
    """watch/terms for a Trace of the logit of each sentence's first answer token.

    The account of a change is first order and split by parameter tensor:
    change of logit ~ sum over tensors of <d logit / d tensor, update of tensor>.
    It works with any optimiser, since it reads the update that was made.
    """
    xp, L = model.xp, model.n_target
    sentences = np.asarray(sentences)
    pos, answers = sentences.shape[1] - L - 1, sentences[:, -L]

    def watch():
        logits = to_numpy(model.logits(sentences))[:, 0, :]                        # (k, V)
        return {label: float(logits[i, answers[i]]) for i, label in enumerate(labels)}

    def terms(batch):
        grads = []
        for i in range(len(sentences)):              # one backward per watched logit
            logits, cache = model.forward_logits(model.params, xp.asarray(sentences), xp)
            seed = np.zeros(logits.shape, dtype=model.dtype)
            seed[i, pos, answers[i]] = 1                                           # d logit_i / d logits
            grads.append(model.backward_logits(xp.asarray(seed), cache))

        def account(old):
            result = {}
            for label, g in zip(labels, grads):
                parts = [(name, float(xp.sum(g[name] * (model.params[name] - old[name])))) for name in g]
                result[label] = sorted(parts, key=lambda p: -abs(p[1]))
            return result
        return account

    return watch, terms


def make_trace(model, dataset, optimizer, steps, out=print):
    """A Trace of the first `steps` updates for a few held-out pairs, in each model's own terms."""
    pairs = held_out_pairs(dataset)
    name = dataset.sentence
    if model.kind == "gpt":
        labels = []
        for seen, unseen in pairs:
            labels += [f"logit({name(seen[-1:])[1:-1]} | {name(seen[:-1])[1:-1]}) trained",
                       f"logit({name(unseen[-1:])[1:-1]} | {name(unseen[:-1])[1:-1]}) unseen"]
        watch, terms = logit_trace(model, [s for pair in pairs for s in pair], labels)
        say(out, "trace: watched logits, and each parameter tensor's first-order share of their change",
            "  (first order: it approaches the actual change as the updates get small; AdamW's first steps move "
            "every weight by about lr, large next to GPT-2's 0.02 init, so early steps are explained only "
            "roughly; a smaller --lr gives a closer account)")
        return Trace(model, watch, terms, steps=steps, out=out)
    ab = [(int(seen[0]), int(seen[-1])) for seen, _ in pairs]
    if model.kind == "bilinear":
        say(out, f"trace: effective weights W(a->b) of held-out pairs {ab}, with each training sentence's share")
        return Trace(model, lambda: model.watch(ab),
                     lambda batch: model.trace_terms(batch, ab, optimizer.lr, name=name), steps=steps, out=out)
    say(out, f"trace: Y, Z entries of held-out pairs {ab}, with each training sentence's share")
    return Trace(model, lambda: model.watch(ab, 0, 1),
                 lambda batch: model.trace_terms(batch, ab, 0, 1, {"Y": optimizer.lr_for("Y"),
                                                                   "Z": optimizer.lr_for("Z")}),
                 steps=steps, out=out)


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


def _progress(out, total_epochs, n_seeds):
    """A progress line that updates in place on a terminal (a line per 10% otherwise)."""
    import sys
    tty = out is print and sys.stdout.isatty()
    start = time.perf_counter()
    state = {"done": 0, "last_printed": -1}

    def on_eval(trainer, record):
        done = state["done"] + trainer.epoch
        elapsed = time.perf_counter() - start
        remaining = elapsed / max(done, 1) * (total_epochs * n_seeds - done)
        line = (f"epoch {trainer.epoch:>5}/{total_epochs}  training NLL {record['train_nll']:7.4f}  "
                f"validation NLL {record['val_nll']:7.3f}  elapsed {elapsed:6.1f}s  remaining ~{remaining:5.1f}s")
        if tty:
            sys.stdout.write("\r" + line)
            sys.stdout.flush()
        elif out is not None and (10 * trainer.epoch) // total_epochs > state["last_printed"]:
            state["last_printed"] = (10 * trainer.epoch) // total_epochs
            out(line)

    def seed_done(epochs):
        state["done"] += epochs
        state["last_printed"] = -1
        if tty:
            sys.stdout.write("\n")
    return on_eval, seed_done


def _mean_history(histories):
    n = min(len(h) for h in histories)
    keys = [k for k in histories[0][0] if isinstance(histories[0][0][k], (int, float))]
    return [{k: float(np.mean([h[i][k] for h in histories])) if k not in ("epoch", "step") else histories[0][i][k]
             for k in keys} for i in range(n)]


def run_experiment(experiment, cfg, out=print):
    """Train cfg["seeds"] models on an experiment's data; return results (JSON-ready) and the runs.

    Ctrl-C stops training cleanly: the results cover the epochs completed so far.
    """
    cfg = dict(cfg, experiment=experiment)
    if (cfg.get("save") or cfg.get("resume")) and cfg.get("seeds", 1) > 1:
        raise UsageError("--save and --resume keep one run: use them with --seeds 1")
    if cfg.get("lr") is None:
        cfg["lr"] = DEFAULT_LR[cfg["model"]]
    seeds = [cfg["seed"] + i for i in range(cfg.get("seeds", 1))]
    on_eval, seed_done = _progress(out, cfg["epochs"], len(seeds))
    runs, interrupted = [], False
    start = time.perf_counter()
    for s in seeds:
        dataset = make_dataset(experiment, {**cfg, "seed": s})
        model = make_model(cfg, dataset, s)
        optimizer = make_optimizer(cfg)
        if s == seeds[0]:
            say(out, dataset.summary(), f"model: {model.describe()}",
                 f"optimizer: {optimizer.name}, lr {cfg['lr']}, batch {cfg['batch_size']}, {cfg['epochs']} epochs")
        trace = make_trace(model, dataset, optimizer, cfg["trace"], out) if cfg.get("trace") and s == seeds[0] else None
        trainer = Trainer(model, optimizer, dataset, batch_size=cfg["batch_size"], seed=s,
                          eval_every=cfg.get("eval_every", 1), trace=trace)
        if cfg.get("resume"):
            load_run(cfg["resume"], trainer, cfg)
            say(out, f"resumed from {cfg['resume']} at epoch {trainer.epoch}")
        save_to = cfg.get("save") or cfg.get("resume")

        def on_eval_and_save(trainer, record):
            on_eval(trainer, record)
            if save_to and cfg.get("save_every") and trainer.epoch % cfg["save_every"] == 0:
                save_run(save_to, trainer, cfg)
        try:
            trainer.run(cfg["epochs"], on_eval=on_eval_and_save)
        except KeyboardInterrupt:
            interrupted = True
            say(out, f"\ninterrupted at epoch {trainer.epoch}: reporting the epochs completed so far")
        if save_to:
            save_run(save_to, trainer, cfg)
        seed_done(trainer.epoch)
        runs.append(dict(seed=s, model=model, dataset=dataset, trainer=trainer, trace=trace))
        if interrupted:
            break
    finals = [r["trainer"].history[-1] for r in runs]
    dataset = runs[0]["dataset"]
    final = {k: float(np.mean([f[k] for f in finals])) for k in finals[0] if k not in ("epoch", "step")}
    final.update(epochs=finals[0]["epoch"], log_vocab=math.log(dataset.vocab_size),
                 seconds=time.perf_counter() - start)
    if "val seen nll" in final:
        final["val_seen_nll"] = final["val seen nll"]
    if len(runs) > 1:
        final.update({f"{k}_std": float(np.std([f[k] for f in finals])) for k in ("train_nll", "val_nll")})
    result = dict(experiment=experiment, config=cfg, interrupted=interrupted, final=final,
                  history=_mean_history([r["trainer"].history for r in runs]),
                  runs=[dict(seed=r["seed"], history=r["trainer"].history) for r in runs])
    if runs[0]["trace"] is not None:
        result["trace"] = runs[0]["trace"].records
    return result, runs


def print_report(result, runs, out=print):
    """The table of NLL and accuracy per group, and one plain sentence about what happened."""
    final, dataset = result["final"], runs[0]["dataset"]
    n = len(runs)
    say(out, "", f"{'group':<22} {'sentences':>9} {'NLL':>9} {'accuracy':>9}" + ("   (mean of %d seeds)" % n if n > 1 else ""),
         "-" * 52)
    for name, tokens in dataset.groups.items():
        say(out, f"{name:<22} {len(tokens):>9} {final[name + ' nll']:>9.3f} {100 * final[name + ' acc']:>8.1f}%")
    log_v = final["log_vocab"]
    say(out, f"{'uniform guess, log|V|':<22} {'':>9} {log_v:>9.3f}")
    train, val = final["train_nll"], final["val_nll"]
    spread = f" (+- {final['val_nll_std']:.2f} over {n} seeds)" if n > 1 else ""
    verdict = {
        "reversal": ("worse than guessing uniformly", "the reversal curse", "better than guessing uniformly", "no curse here"),
        "chain": ("worse than guessing uniformly", "the direct A ~> C was not learned", "better than guessing uniformly", "the direct A ~> C was learned"),
        "incontext": ("worse than guessing uniformly", "the in-context reversal was not learned", "far below guessing uniformly", "no curse when the fact is in the context"),
    }[dataset.name]
    worse = val > log_v
    if train > 0.5:
        say(out, "", f"training NLL {train:.2f}: the model has not learned its training sentences yet, so the "
                      f"validation NLL ({val:.2f}) says nothing about the curse; train longer (--epochs) or "
                      "adjust --lr.")
        return
    what = {"reversal": "unseen direction", "chain": "direct A ~> C on validation triples",
            "incontext": "validation"}[dataset.name]
    say(out, "", f"training NLL {train:.2f}; {what} {val:.2f}{spread}, "
                  f"{verdict[0] if worse else verdict[2]} ({log_v:.2f}): {verdict[1] if worse else verdict[3]}.")


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
