"""One training loop for every model, and the per-update trace.

    trainer = Trainer(model, optimizer, dataset, batch_size=64, seed=0)
    history = trainer.run(epochs=100)

Each step: loss_and_grads on a minibatch (hand-written backward), a check that
the loss is finite, then ``optimizer.step``. Each evaluated epoch appends a
record to ``trainer.history``: the epoch, the training NLL, the NLL of every
evaluation group of the dataset and the validation NLL.

A :class:`Trace` watches chosen pairs and records, at every step, how much
each watched quantity changed and which training sentence (or, for the GPT,
which parameter tensor) is responsible for how much of it.
"""
import math
import time

import numpy as np

from .backend import to_numpy
from .errors import RunError


def say(out, *lines):
    """Print lines through `out` (print by default in the callers); out=None keeps quiet."""
    if out is not None:
        for line in lines:
            out(line)


def evaluate(model, tokens):
    """(mean NLL of the answer tokens, accuracy of the argmax answer) on (N, T) tokens, no dropout."""
    if len(tokens) == 0:
        return float("nan"), float("nan")
    logits = to_numpy(model.logits(tokens)).astype(np.float64)                  # (N, L, V)
    targets = np.asarray(tokens)[:, -logits.shape[1]:]                          # (N, L)
    logz = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
    picked = np.take_along_axis(logits, targets[..., None], -1)[..., 0]
    correct = (logits.argmax(-1) == targets).all(axis=1)
    return float((logz - picked).mean()), float(correct.mean())


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
            self.trace.before(batch, self.step + 1)
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


class Trace:
    """Watches quantities across the first `steps` updates and explains each change.

    watch():        dict name -> current value (e.g. "W(12->57)": 3.1)
    terms(batch):   called before a step; dict name -> [(label, contribution), ...]
                    predicting that step's change, or a function of the parameters
                    before the step, called after it (for accounts that need the update).
    """

    def __init__(self, model, watch, terms, steps=3, top=4, out=print):
        self.model, self.watch, self.terms = model, watch, terms
        self.steps, self.top, self.out = steps, top, out
        self.records = []

    def before(self, batch, step):
        self._active = step <= self.steps
        if self._active:
            self._step = step
            self._before = self.watch()
            self._old = {k: v.copy() for k, v in self.model.params.items()}
            self._terms = self.terms(batch)

    def after(self, batch):
        if not self._active:
            return
        after = self.watch()
        terms = self._terms(self._old) if callable(self._terms) else self._terms
        record = {"step": self._step, "quantities": {}}
        for name, before in self._before.items():
            parts = terms.get(name, [])
            record["quantities"][name] = dict(before=before, after=after[name], change=after[name] - before,
                                              explained=float(sum(v for _, v in parts)), terms=parts)
        self.records.append(record)
        if self.out is not None:
            self.print_record(record)

    def print_record(self, record, out=None):
        out = out or self.out or print
        out(f"step {record['step']}")
        for name, q in record["quantities"].items():
            out(f"  {name:<16} {q['before']:+9.4f} -> {q['after']:+9.4f}   change {q['change']:+.3e}"
                     f"   sum of terms {q['explained']:+.3e}")
            if not q["terms"]:
                out("      no term at all: nothing in this step moves it")
            for label, value in q["terms"][:self.top]:
                out(f"      {value:+.3e}  {label}")
            rest = q["terms"][self.top:]
            if rest:
                out(f"      {sum(v for _, v in rest):+.3e}  ({len(rest)} more terms, each no larger)")
