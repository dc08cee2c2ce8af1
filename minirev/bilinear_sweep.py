"""The bilinear model's experiment: sweep the embedding dimension, watch the curse.

For each dimension d (and one-hot), train Theta by full-batch gradient descent
on the pairs data and record the training loss, the reversal loss and the mean
forward / reverse effective weights of the held-out pairs.
"""
import math

import numpy as np

from .backend import to_numpy
from .bilinear import Bilinear
from .data import pairs_data
from .layers import softmax_forward
from .running import make_optimizer
from .trace import Trace
from .train import Trainer
from .report import say

ONE_HOT = None


def bilinear_weights(model, pairs):
    """Forward W(x->y) and reverse W(y->x) of (k, 2) pairs (x, y), as host arrays (k,)."""
    return model.effective_weights(pairs[:, 0], pairs[:, 1]), model.effective_weights(pairs[:, 1], pairs[:, 0])


def dim_label(dim):
    return "one-hot" if dim is ONE_HOT else f"d={dim}"


def bilinear_sweep(cfg, dims=(16, 64, 256, ONE_HOT), pairs=50, held_out=10, out=print):
    """Train the bilinear model for each embedding dimension (None = one-hot) and report the curse.

    cfg is a RunConfig read for the vocabulary m (--vocab), the learning rate, the number of
    gradient steps (--epochs: full-batch gradient descent makes one step an epoch), the seed, the
    dtype, the backend, the weight decay and --trace; its model is the bilinear one, its width each
    of `dims` in turn. Returns (the pairs data, a list of dicts, one per dimension): label, history (per evaluation: step,
    train_nll, val_nll (the reversal loss), forward_weight, reverse_weight), the start
    and end losses, eps = log(L_rev/L_rev0) / log(L/L0), and the per-pair reverse
    weights and probabilities of the held-out pairs at the end.
    """
    cfg = cfg.replace(model="bilinear", full_batch=True).resolved()
    steps, seed = cfg.epochs, cfg.seed
    data = pairs_data(cfg.vocab, pairs, held_out, seed)
    held = data.groups["reversal"][:, ::-1]                                       # (k, 2) held-out (x, y)
    eval_every = max(1, steps // 100)
    results = []
    for dim in dims:
        model = Bilinear(cfg.vocab, dim, seed=seed, dtype=cfg.dtype, backend=cfg.backend)
        optimizer = make_optimizer(cfg)
        trace = None
        if cfg.trace and len(held):
            x, y = (int(t) for t in held[0])
            say(out, f"\n--- trace of {dim_label(dim)}: held-out pair x={x}, y={y} "
                      f"(trained: x -> y; never trained: y -> x)")
            pair = [(np.array([x, y]), np.array([y, x]))]             # (trained, never trained)
            trace = Trace(model, lambda: model.watch(pair),
                          lambda batch: model.trace_terms(batch, pair, optimizer), steps=cfg.trace, out=out,
                          pairs=pair)
        trainer = Trainer(model, optimizer, data, seed=seed, eval_every=eval_every, trace=trace)

        def add_weights(_, record):
            fwd, rev = bilinear_weights(model, held)
            record["forward_weight"], record["reverse_weight"] = float(fwd.mean()), float(rev.mean())

        trainer.history.append(trainer.evaluate())
        add_weights(None, trainer.history[0])
        trainer.run(steps, on_eval=add_weights)
        h = trainer.history
        fwd, rev = bilinear_weights(model, held)
        rev_logits = to_numpy(model.logits(data.groups["reversal"]))[:, 0, :].astype(np.float64)
        rev_p, _ = softmax_forward(np, rev_logits)                                # (k, m)
        rev_p = rev_p[np.arange(len(held)), held[:, 0]]                           # p(x | y) of each pair
        L0, L, R0, R = h[0]["train_nll"], h[-1]["train_nll"], h[0]["val_nll"], h[-1]["val_nll"]
        eps = math.log(R / R0) / math.log(L / L0) if 0 < L < L0 and R > 0 else float("nan")
        results.append(dict(label=dim_label(dim), dim=dim, history=h, train_start=L0, train_end=L,
                            reversal_start=R0, reversal_end=R, eps=eps, forward_weight=float(fwd.mean()),
                            reverse_weight=float(rev.mean()), reverse_weights=rev.tolist(),
                            reverse_probs=rev_p.tolist(), seconds=trainer.seconds))
    return data, results
