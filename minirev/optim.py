"""Optimisers, written out. One interface for every model:

    opt = SGD(lr=1.0)            or   AdamW(lr=0.01)
    opt.step(params, grads)      # updates the arrays in ``params`` in place

``lrs`` overrides the learning rate of single parameters by name, e.g. the
one-layer transformer's ``SGD(lr=1.0, lrs={"Z": 0.0})`` trains Y and freezes Z.
``state_dict()`` / ``load_state_dict()`` expose everything a resumed run needs.
"""
import math

import numpy as np

from .backend import to_backend, to_numpy
from .errors import UsageError
from .model import FlatParams


def _check_lr(name, value):
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise UsageError(f"learning rate for {name} must be a finite number >= 0, got {value!r}")


class Optimizer:
    def __init__(self, lr, lrs=None):
        if isinstance(lr, bool) or not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise UsageError(f"learning rate must be a finite number > 0, got {lr!r}: try --lr 0.01")
        if not isinstance(lrs or {}, dict):
            raise UsageError(f"lrs must be a dict {{parameter name: learning rate}}, got {type(lrs).__name__}")
        for name, value in (lrs or {}).items():
            _check_lr(name, value)
        self.lr = float(lr)
        self.lrs = dict(lrs or {})
        self.t = 0                                   # number of steps taken

    def lr_for(self, name):
        return self.lrs.get(name, self.lr)

    def state_dict(self):
        return {"t": self.t}

    def state_names(self, params):
        """The arrays state_dict holds once a step has been taken (a checkpoint must have all of them)."""
        return []

    def load_state_dict(self, state, xp=np):
        self.t = int(state["t"])


CHUNK = 1 << 16    # elements per AdamW chunk: 5 arrays x 256 KB in float32 fit a core's L2 cache


def flat_pair(params, grads, lrs):
    """(params.flat, grads.flat) when one whole-buffer update serves every parameter, else None.

    That is when both are FlatParams of the same layout (minirev/model.py) and no
    parameter has a learning rate of its own.
    """
    if isinstance(params, FlatParams) and isinstance(grads, FlatParams) and not lrs \
            and params.flat.shape == grads.flat.shape:
        return params.flat, grads.flat
    return None


class SGD(Optimizer):
    """theta <- theta - lr * (grad + weight_decay * theta): the update the paper's theorems are about.

    weight_decay is the L2 penalty (weight_decay / 2) ||theta||^2 (PyTorch's SGD weight_decay):
    each step shrinks theta by the factor 1 - lr * weight_decay, so that product must stay below 1.
    """
    name = "sgd"

    def __init__(self, lr, lrs=None, weight_decay=0.0):
        super().__init__(lr, lrs)
        if not (isinstance(weight_decay, (int, float)) and math.isfinite(weight_decay) and weight_decay >= 0):
            raise UsageError(f"weight decay must be a finite number >= 0, got {weight_decay!r}: try 0.01")
        fastest = max([self.lr, *self.lrs.values()])
        if fastest * weight_decay >= 1:
            raise UsageError(f"sgd: lr x weight decay = {fastest * weight_decay:g} >= 1 would zero or flip the "
                             f"weights at every step; use a weight decay below 1 / lr = {1 / fastest:g}")
        self.weight_decay = float(weight_decay)

    def describe(self):
        others = "".join(f", {k} {v}" for k, v in self.lrs.items())
        return f"sgd, lr {self.lr}{others}" + (f", weight decay {self.weight_decay}" if self.weight_decay else "")

    def step(self, params, grads):
        self.t += 1
        flat = flat_pair(params, grads, self.lrs)
        if flat:                                     # the whole flat buffer at once: the same arithmetic
            p, g = flat
            if self.weight_decay:
                p *= 1 - self.lr * self.weight_decay
            p -= self.lr * g
            return
        for name, p in params.items():
            lr = self.lr_for(name)
            if lr:
                if self.weight_decay:
                    p *= 1 - lr * self.weight_decay        # the penalty's gradient, weight_decay * theta
                p -= lr * grads[name]


class AdamW(Optimizer):
    """Adam with bias-corrected moments and decoupled weight decay (Loshchilov & Hutter).

    Defaults are the paper's public code's (docs/paper.md, section 4): lr 0.01, betas (0.9, 0.999), eps 1e-8, weight decay 0.01
    (PyTorch's AdamW default, which the public code ends up using).

    When the parameters and gradients are FlatParams (every model's are), the moments
    are FlatParams of the same layout and a step is a dozen in-place calls per CHUNK
    of the flat buffer, with one scratch chunk reused from step to step: no loop
    over the tensors, no new arrays. Otherwise the same update runs tensor by tensor.
    Elementwise arithmetic gives the same bits however the arrays are cut, so the
    two ways agree exactly (tests/test_flat_buffer.py).
    """
    name = "adamw"

    def describe(self):
        return (f"adamw, lr {self.lr}, betas ({self.beta1}, {self.beta2}), weight decay {self.weight_decay} "
                "on every tensor")

    def __init__(self, lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, lrs=None):
        super().__init__(lr, lrs)
        if not (isinstance(weight_decay, (int, float)) and math.isfinite(weight_decay) and weight_decay >= 0):
            raise UsageError(f"weight decay must be a finite number >= 0, got {weight_decay!r}: try --weight-decay 0.01")
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2
                and all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)):
            raise UsageError(f"AdamW: betas must be two numbers in [0, 1), got {betas!r}: e.g. (0.9, 0.999)")
        if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
            raise UsageError(f"AdamW: eps must be a finite number > 0, got {eps!r}: e.g. 1e-8")
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.weight_decay = weight_decay
        self.m, self.v = {}, {}                      # first and second moments, per parameter
        self.scratch = None                          # the flat path's work buffer

    def step(self, params, grads):
        self.t += 1
        xp = getattr(params, "xp", np)
        flat = flat_pair(params, grads, self.lrs)
        if flat:
            p, g = flat
            # a chunk at a time: the five arrays of a chunk stay in the CPU's cache through all
            # the passes of the update, instead of streaming the whole buffer from memory each pass
            # (on a GPU, one call over the whole buffer: each call there is a kernel launch)
            chunk = min(CHUNK if xp is np else p.size, p.size)
            if not isinstance(self.m, FlatParams):   # first step, or moments loaded from a checkpoint
                self.m, self.v = (FlatParams({k: d.get(k, p_k * 0) for k, p_k in params.items()}, xp, p.dtype)
                                  for d in (self.m, self.v))
                self.scratch = xp.zeros(chunk, dtype=p.dtype)
            m, v = self.m.flat, self.v.flat
            for i in range(0, p.size, chunk):
                k = slice(i, i + chunk)
                self.update(xp, p[k], g[k], m[k], v[k], self.scratch[:min(chunk, p.size - i)], self.lr)
            return
        for name, p in params.items():
            if name not in self.m:
                self.m[name], self.v[name] = p * 0, p * 0
            self.update(xp, p, grads[name], self.m[name], self.v[name], p * 0, self.lr_for(name))

    def update(self, xp, p, g, m, v, s, lr):
        """One AdamW step of p (in place) from its gradient g; m, v its moments, s scratch like p."""
        c1 = 1 - self.beta1 ** self.t                # bias corrections: m and v start at 0
        c2 = 1 - self.beta2 ** self.t
        m *= self.beta1
        xp.multiply(g, 1 - self.beta1, out=s)
        m += s                                       # m = b1 m + (1 - b1) g
        v *= self.beta2
        xp.multiply(g, g, out=s)
        s *= 1 - self.beta2
        v += s                                       # v = b2 v + (1 - b2) g^2
        if lr:
            p *= 1 - lr * self.weight_decay          # decoupled decay: shrinks p, not through g
            # lr m_hat / (sqrt(v_hat) + eps), with m_hat = m / c1 and sqrt(v_hat) = sqrt(v) / sqrt(c2),
            # is (lr sqrt(c2) / c1) m / (sqrt(v) + eps sqrt(c2)): one pass fewer over the arrays
            xp.sqrt(v, out=s)
            s += self.eps * math.sqrt(c2)
            xp.divide(m, s, out=s)
            s *= lr * math.sqrt(c2) / c1
            p -= s

    def state_dict(self):
        state = {"t": self.t}
        for name in self.m:
            state[f"m.{name}"] = to_numpy(self.m[name])
            state[f"v.{name}"] = to_numpy(self.v[name])
        return state

    def state_names(self, params):
        return [f"{which}.{name}" for name in params for which in ("m", "v")]

    def load_state_dict(self, state, xp=np):
        self.t = int(state["t"])
        self.m = {k[2:]: to_backend(xp, v) for k, v in state.items() if k.startswith("m.")}
        self.v = {k[2:]: to_backend(xp, v) for k, v in state.items() if k.startswith("v.")}
