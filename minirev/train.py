"""One training loop for every model, and the per-update trace.

    trainer = Trainer(model, optimizer, dataset, batch_size=64, seed=0)
    history = trainer.run(epochs=100)

Each step: loss_and_grads on a minibatch (hand-written backward), a check that
the loss has not diverged, then ``optimizer.step``. Each evaluated epoch appends a
record to ``trainer.history``: the epoch, the training NLL, the NLL of every
evaluation group of the dataset and the validation NLL.

The trainer's position is (epoch, batch within the epoch, step, the generator
states): a checkpoint taken anywhere, even mid-epoch, continues bit for bit.
Under :class:`Interrupts`, Ctrl-C (or SIGTERM, SIGHUP) only sets a flag, and the loop
stops between two steps (never inside an update) by raising KeyboardInterrupt.

A :class:`~minirev.trace.Trace` passed as ``trace`` is told before and after
every step, and explains each update (``minirev/trace.py``).
"""
import math
import signal
import threading
import time

import numpy as np

from .backend import to_numpy
from .errors import RunError, UsageError, whole
from .layers import cross_entropy_forward

DIVERGED = 100        # a loss above DIVERGED x log|V| (a uniform guess) means training blew up


def evaluate(model, tokens):
    """(mean NLL of the answer tokens, accuracy of the argmax answer) on (N, T) tokens, no dropout."""
    return evaluate_groups(model, {"": tokens})[""][:2]


def evaluate_groups(model, groups):
    """{name: (NLL, accuracy, the first answer token's NLL)} of each group of (N, T) tokens, in ONE forward.

    The NLL and accuracy are evaluate()'s; the first answer token's NLL alone is what the paper's code
    plots for answers of several tokens. The groups of a dataset share sentences (the training set holds
    most of the others), so the distinct sentences of each length run through the model once, together:
    at minirev's sizes a forward costs about the same for 60 sentences as for 600. An empty group has no
    NLL (nan).
    """
    results = {name: (float("nan"),) * 3 for name, tokens in groups.items() if len(tokens) == 0}
    lengths = {np.shape(tokens)[1] for tokens in groups.values() if len(tokens)}
    for T in sorted(lengths):
        named = {name: np.asarray(tokens) for name, tokens in groups.items() if len(tokens) and np.shape(tokens)[1] == T}
        rows, where = np.unique(np.concatenate(list(named.values())), axis=0, return_inverse=True)   # (n, T), (N,)
        logits = to_numpy(model.logits(rows)).astype(np.float64)                 # (n, L, V)
        n, L, V = logits.shape
        targets = rows[:, -L:]                                                   # (n, L)
        _, (_, shifted, logz, _) = cross_entropy_forward(np, logits.reshape(n * L, V), targets.reshape(-1))
        # the loss's own terms, logz - the right answer's logit, for each of a sentence's L answer tokens
        token_nll = (logz - shifted[np.arange(n * L), targets.reshape(-1)]).reshape(n, L)   # (n, L)
        nll, first = token_nll.mean(1), token_nll[:, 0]                         # (n,), (n,)
        correct = (logits.argmax(-1) == targets).all(axis=1)                    # (n,)
        start = 0
        for name, tokens in named.items():
            mine, start = where.ravel()[start:start + len(tokens)], start + len(tokens)   # the group's rows
            results[name] = float(nll[mine].mean()), float(correct[mine].mean()), float(first[mine].mean())
    return {name: results[name] for name in groups}


STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class Interrupts:
    """Inside ``with Interrupts() as stop:``, Ctrl-C, SIGTERM and SIGHUP set stop.requested to the
    signal's number instead of ending the process.

    The training loop looks at the flag between steps, so a stop never lands in the middle of an
    update or of a save; a command then exits with 128 + that number, as a shell reports a signal.
    Nested blocks both see the signal, and an inner block starts with what the outer one heard. (Outside the main thread Python delivers no signals, so there
    is nothing to catch.)
    """

    def __init__(self):
        self.requested = 0
        self._previous = {}

    def _handler(self, signum, frame):
        self.requested = signum
        outer = self._previous.get(signum)
        if isinstance(getattr(outer, "__self__", None), Interrupts):      # an enclosing block hears it too
            outer(signum, frame)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                # a process started with a signal ignored (Ctrl-C in the background) keeps ignoring it
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    self._previous[signum] = signal.signal(signum, self._handler)
        outer = [h.__self__ for h in self._previous.values() if isinstance(getattr(h, "__self__", None), Interrupts)]
        self.requested = next((o.requested for o in outer if o.requested), 0)   # a signal heard before this block
        return self

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP outside an Interrupts block: raised like Ctrl-C's KeyboardInterrupt, with the signal."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def stop_signal(signum, frame):
    """A signal handler: end what is running as Ctrl-C does (the command line installs it for every STOP_SIGNAL)."""
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Stopped(signum)


def _whole(name, value, minimum=1):
    return whole("Trainer", name, value, minimum)


class Trainer:
    """Trains `model` on `dataset.train` with `optimizer`; the state it keeps is all a resume needs."""

    def __init__(self, model, optimizer, dataset, batch_size=None, seed=0, eval_every=1, trace=None):
        for name, value, needs in (("model", model, "loss_and_grads"), ("optimizer", optimizer, "step"),
                                   ("dataset", dataset, "train")):
            if not hasattr(value, needs):
                raise UsageError(f"Trainer: {name} has no .{needs}, got {type(value).__name__}: e.g. "
                                 "Trainer(make_model(cfg, data), make_optimizer(cfg), make_dataset(cfg))")
        self.model, self.optimizer, self.dataset = model, optimizer, dataset
        n = len(dataset.train)
        if n == 0:
            raise UsageError("Trainer: the dataset has no training sentences")
        self.batch_size = n if batch_size is None else min(_whole("batch_size", batch_size), n)
        self.eval_every = _whole("eval_every", eval_every)
        self.trace = trace
        # Two independent streams from one seed: minibatch order and dropout masks.
        seeds = np.random.SeedSequence(_whole("seed", seed, minimum=0)).spawn(2)
        self.shuffle_rng, self.dropout_rng = (np.random.default_rng(s) for s in seeds)
        self.epoch = 0                 # epochs completed
        self.batch = 0                 # steps done in the epoch under way
        self.epoch_start = None        # shuffle_rng's state when that epoch drew its order
        self.step = 0
        self.history = []
        self.seconds = 0.0
        self.loss_limit = DIVERGED * math.log(max(model.vocab_size, 2))

    @property
    def steps_per_epoch(self):
        return -(-len(self.dataset.train) // self.batch_size)

    def shuffle_state(self):
        """The shuffle generator's state a resume needs: mid-epoch, the one that drew this epoch's order."""
        return self.epoch_start if self.batch else self.shuffle_rng.bit_generator.state

    def diverged(self, what, value, when):
        if not math.isfinite(value) or value > self.loss_limit:
            above = f", above {DIVERGED} x log|V| = {self.loss_limit:.0f}" if math.isfinite(value) else ""
            raise RunError(f"the {what} became {value:.4g} {when}{above}: training diverged; "
                           "lower the learning rate (--lr)")

    def train_step(self, batch):
        if self.trace is not None:
            self.trace.before(batch, self.step + 1, rng=self.dropout_rng)   # the rng: to replay its dropout
        loss, grads = self.model.loss_and_grads(batch, rng=self.dropout_rng)
        self.diverged("training loss", loss, f"at step {self.step + 1} (epoch {self.epoch + 1})")
        self.optimizer.step(self.model.params, grads)
        self.step += 1
        if self.trace is not None:
            self.trace.after(batch)
        return loss

    def run_epoch(self, stop=None):
        """Train the epoch under way from where it stands; stop() between steps raises KeyboardInterrupt."""
        n = len(self.dataset.train)
        self.epoch_start = self.shuffle_rng.bit_generator.state
        # Full-batch training needs no shuffling; minibatches are reshuffled every epoch.
        order = np.arange(n) if self.batch_size == n else self.shuffle_rng.permutation(n)
        for start in range(self.batch * self.batch_size, n, self.batch_size):
            if stop is not None and stop():
                raise KeyboardInterrupt
            self.train_step(self.dataset.train[order[start:start + self.batch_size]])
            self.batch += 1
        self.epoch += 1
        self.batch = 0

    def evaluate(self):
        record = {"epoch": self.epoch, "step": self.step}
        scores = evaluate_groups(self.model, {None: self.dataset.train, **self.dataset.groups})   # None: training
        record["train_nll"], record["train_acc"], _ = scores.pop(None)
        several = self.dataset.entity_len > 1            # answers of several tokens: their first one's NLL too
        for name, (nll, acc, first) in scores.items():
            record[f"{name} nll"], record[f"{name} acc"] = nll, acc
            if several:
                record[f"{name} first nll"] = first
        record["val_nll"] = record[f"{self.dataset.val_group} nll"]
        if several:
            record["val_first_nll"] = record[f"{self.dataset.val_group} first nll"]
        if self.step:                                 # (at the start nothing has been trained to diverge)
            when = f"by epoch {self.epoch}"
            self.diverged("training NLL", record["train_nll"], when)
            for name, tokens in self.dataset.groups.items():
                if len(tokens):                       # an empty group has no NLL (nan), nothing diverged
                    self.diverged(f"{name} NLL", record[f"{name} nll"], when)
        return record

    def run(self, epochs, on_eval=None, on_epoch=None, stop=None):
        """Train until `epochs` epochs are done in all (a resumed trainer continues where it was).

        Evaluates at the start, every `eval_every` epochs, and at the end; on_eval(trainer, record)
        is called after each evaluation (progress lines), on_epoch(trainer) after every epoch
        (checkpoints). stop() is asked between steps and epochs: True raises KeyboardInterrupt.
        """
        epochs = _whole("epochs", epochs, minimum=0)
        if not self.history:
            self.history.append(self.evaluate())
        elif self.history[-1]["epoch"] == self.epoch < epochs and self.batch == 0 and self.epoch % self.eval_every:
            self.history.pop()      # the closing record of a shorter run: the longer run evaluates on its grid
        while self.epoch < epochs:
            t0 = time.perf_counter()
            self.run_epoch(stop)
            self.seconds += time.perf_counter() - t0
            if self.epoch % self.eval_every == 0 or self.epoch == epochs:
                record = self.evaluate()
                self.history.append(record)
                if on_eval is not None:
                    on_eval(self, record)
            if on_epoch is not None:
                on_epoch(self)
            if stop is not None and stop() and self.epoch < epochs:
                raise KeyboardInterrupt
        return self.history
