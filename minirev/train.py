"""One training loop for every model, and the per-update trace.

    trainer = Trainer(model, optimizer, dataset, batch_size=64, seed=0)
    history = trainer.run(epochs=100)

Each step: loss_and_grads on a minibatch (hand-written backward), a check that
the loss is finite, then ``optimizer.step``. Each evaluated epoch appends a
record to ``trainer.history``: the epoch, the training NLL, the NLL of every
evaluation group of the dataset and the validation NLL.

A :class:`~minirev.trace.Trace` passed as ``trace`` is told before and after
every step, and explains each update (``minirev/trace.py``).
"""
import math
import time

import numpy as np

from .backend import to_numpy
from .errors import RunError
from .layers import cross_entropy_forward


def evaluate(model, tokens):
    """(mean NLL of the answer tokens, accuracy of the argmax answer) on (N, T) tokens, no dropout."""
    if len(tokens) == 0:
        return float("nan"), float("nan")
    logits = to_numpy(model.logits(tokens)).astype(np.float64)                  # (N, L, V)
    targets = np.asarray(tokens)[:, -logits.shape[1]:]                          # (N, L)
    nll, _ = cross_entropy_forward(np, logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    correct = (logits.argmax(-1) == targets).all(axis=1)
    return float(nll), float(correct.mean())


class Trainer:
    """Trains `model` on `dataset.train` with `optimizer`; the state it keeps is all a resume needs."""

    def __init__(self, model, optimizer, dataset, batch_size=None, seed=0, eval_every=1, trace=None):
        self.model, self.optimizer, self.dataset = model, optimizer, dataset
        n = len(dataset.train)
        self.batch_size = n if batch_size is None else min(int(batch_size), n)
        self.eval_every = eval_every
        self.trace = trace
        # Two independent streams from one seed: minibatch order and dropout masks.
        self.shuffle_rng, self.dropout_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
        self.epoch = 0
        self.step = 0
        self.history = []
        self.seconds = 0.0

    def train_step(self, batch):
        if self.trace is not None:
            self.trace.before(batch, self.step + 1, rng=self.dropout_rng)   # the rng: to replay its dropout
        loss, grads = self.model.loss_and_grads(batch, rng=self.dropout_rng)
        if not math.isfinite(loss):
            raise RunError(f"the training loss became {loss} at step {self.step + 1} (epoch {self.epoch + 1}): "
                           "training diverged; lower the learning rate (--lr)")
        self.optimizer.step(self.model.params, grads)
        self.step += 1
        if self.trace is not None:
            self.trace.after(batch)
        return loss

    def run_epoch(self):
        n = len(self.dataset.train)
        # Full-batch training needs no shuffling; minibatches are reshuffled every epoch.
        order = np.arange(n) if self.batch_size == n else self.shuffle_rng.permutation(n)
        for start in range(0, n, self.batch_size):
            self.train_step(self.dataset.train[order[start:start + self.batch_size]])
        self.epoch += 1

    def evaluate(self):
        record = {"epoch": self.epoch, "step": self.step}
        record["train_nll"], record["train_acc"] = evaluate(self.model, self.dataset.train)
        for name, tokens in self.dataset.groups.items():
            record[f"{name} nll"], record[f"{name} acc"] = evaluate(self.model, tokens)
        record["val_nll"] = record[f"{self.dataset.val_group} nll"]
        return record

    def run(self, epochs, on_eval=None):
        """Train until `epochs` epochs are done in all (a resumed trainer continues where it was).

        on_eval(trainer, record) is called after each evaluation (for progress lines).
        Evaluates at the start, every `eval_every` epochs, and at the end.
        """
        if not self.history:
            self.history.append(self.evaluate())
        while self.epoch < epochs:
            t0 = time.perf_counter()
            self.run_epoch()
            self.seconds += time.perf_counter() - t0
            if self.epoch % self.eval_every == 0 or self.epoch == epochs:
                record = self.evaluate()
                if not math.isfinite(record["train_nll"]):
                    raise RunError(f"the training loss became {record['train_nll']} by step {self.step} "
                                   f"(epoch {self.epoch}): "
                                   "training diverged; lower the learning rate (--lr)")
                self.history.append(record)
                if on_eval is not None:
                    on_eval(self, record)
        return self.history
