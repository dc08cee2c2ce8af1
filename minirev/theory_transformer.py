"""The one-layer transformer's theorems (arXiv 2405.04669, sections 4.1 and 4.2), measured at every step.

The model is minirev/one_layer.py (Y the decoder, Z the attention, both M x M, one-hot
tokens), trained by full-batch gradient descent (one step an epoch) on the data of
``demo reversal`` and ``demo chain`` with ``--model one-layer``.

Section 4.1 (reversal). For a held-out pair trained only as "A r B", the sentence
"B r' A" is never read, so the row Y[B, :] gets no gradient (B is never in a context):
Y[B, A] stays exactly at its start, 0, at every step, while the relation token's row
learns that A never follows it. So p(A | B r') is at most about 1/M, the uniform guess,
at every step, whatever the attention Z does. Meanwhile the trained weight Y[A, B]
grows, slowly: like log t. Measured here: max |Y[B, A]| over the steps, the largest
p(A | B r') x M over the steps and the held-out sentences, and the fit
Y[A, B](t) = a + s log t (its slope s and R^2), with Z frozen (lr_z = 0) and trained.

Section 4.2 (chain of thought). Trained on A -> B and B -> C for every triple and on
A ~> C for the training triples only, the model learns both steps, yet for a held-out
triple the direct p(C | A ~>) stays at or below about 1/M at every step; answering
step by step (B from A, then C from B) gets C right.
"""
import numpy as np

from .config import RunConfig
from .layers import softmax_forward
from .measures import chain_step_by_step
from .running import make_dataset, make_model, make_optimizer
from .train import Trainer

VOCAB = 200          # the data's entity vocabulary: M = 202 tokens, 50 pairs (the appendix's smallest)
LR_Z = 10.0          # "Z trained": ten times slower than Y's 100 (the theory's eta_Y >> eta_Z)
FIT_FROM = 10        # the log t fit skips the first steps, where Y[A, B] is still leaving 0


def p_answer(model, sentences):  # (N, T) -> (N,)
    """p(last token | the rest) of each sentence."""
    p, _ = softmax_forward(np, model.logits(sentences)[:, 0, :].astype(np.float64))   # (N, M)
    return p[np.arange(len(sentences)), sentences[:, -1]]


def log_fit(values):  # (T,) at steps 1..T -> slope, intercept, R^2
    """Least squares values(t) = a + s log t over t >= FIT_FROM, and how much of the variance it explains."""
    t = np.arange(1, len(values) + 1)[FIT_FROM - 1:]
    v = np.asarray(values)[FIT_FROM - 1:]
    slope, intercept = np.polyfit(np.log(t), v, 1)
    residual = v - (intercept + slope * np.log(t))
    return float(slope), float(intercept), float(1 - residual.var() / v.var())


def train_one_layer(experiment, seed, steps, lr_z, on_step):
    """Train --model one-layer on the experiment's data, full batch; on_step(model, dataset) after each step."""
    cfg = RunConfig(experiment=experiment, model="one-layer", vocab=VOCAB, full_batch=True, epochs=steps,
                    seed=seed, lr_z=lr_z).resolved()
    dataset = make_dataset(cfg)
    model = make_model(cfg, dataset)
    trainer = Trainer(model, make_optimizer(cfg), dataset, seed=seed, eval_every=steps)
    trainer.run(steps, on_epoch=lambda t: on_step(model, dataset))
    return model, dataset, trainer.history[-1]


def reversal_run(seed, steps, lr_z):
    """Section 4.1 on one seed of the reversal data: the watched numbers at every step."""
    series = dict(y_ba=[], p_times_m=[], y_ab=[])

    def on_step(model, dataset):
        unseen, seen = dataset.groups["val unseen"], dataset.groups["val seen"]   # [B r' A], its trained [A r B]
        Y = model.params["Y"]
        series["y_ba"].append(float(np.abs(Y[unseen[:, 0], unseen[:, -1]]).max()))
        series["p_times_m"].append(float(p_answer(model, unseen).max() * model.vocab_size))
        series["y_ab"].append(float(Y[seen[:, 0], seen[:, -1]].mean()))
    model, dataset, last = train_one_layer("reversal", seed, steps, lr_z, on_step)
    slope, intercept, r2 = log_fit(series["y_ab"])
    return dict(seed=seed, lr_z=lr_z, vocab_size=model.vocab_size, max_y_ba=max(series["y_ba"]),
                max_p_times_m=max(series["p_times_m"]), y_ab_slope=slope, y_ab_intercept=intercept, y_ab_r2=r2,
                train_nll=last["train_nll"], val_nll=last["val_nll"], **series)


def chain_run(seed, steps, lr_z=0.0):
    """Section 4.2 on one seed of the chain data: the direct p(C | A ~>) at every step, both steps at the end."""
    series = dict(p_times_m=[])

    def on_step(model, dataset):
        series["p_times_m"].append(float(p_answer(model, dataset.groups["C given A (val)"]).max()
                                         * model.vocab_size))
    model, dataset, last = train_one_layer("chain", seed, steps, lr_z, on_step)
    steps_right = chain_step_by_step(model, dataset)
    return dict(seed=seed, lr_z=lr_z, vocab_size=model.vocab_size, max_p_times_m=max(series["p_times_m"]),
                train_nll=last["train_nll"], direct_nll=last["val_nll"], **steps_right, **series)


def run_one_layer(seeds, steps):
    """Both theorems over the seeds: section 4.1 with Z frozen and trained, section 4.2 with Z frozen."""
    return dict(reversal=[reversal_run(s, steps, lr_z) for lr_z in (0.0, LR_Z) for s in seeds],
                chain=[chain_run(s, steps) for s in seeds])
