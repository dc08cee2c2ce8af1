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

    def step(self, params, grads):
        self.t += 1
        c1 = 1 - self.beta1 ** self.t                # bias corrections: m and v start at 0
        c2 = 1 - self.beta2 ** self.t
        for name, p in params.items():
            lr = self.lr_for(name)
            g = grads[name]
            if name not in self.m:
                self.m[name] = p * 0
                self.v[name] = p * 0
            m, v = self.m[name], self.v[name]
            # in-place updates where possible: each temporary array of this size costs time
            m *= self.beta1
            m += (1 - self.beta1) * g                # m = b1 m + (1 - b1) g
            g2 = g * g
            g2 *= 1 - self.beta2
            v *= self.beta2
            v += g2                                  # v = b2 v + (1 - b2) g^2
            if lr:
                p *= 1 - lr * self.weight_decay      # decoupled decay: shrinks p, not through g
                step = v / c2                        # v_hat
                step **= 0.5
                step += self.eps                     # sqrt(v_hat) + eps
                step = m / step                      # m / (sqrt(v_hat) + eps)
                step *= lr / c1                      # lr m_hat / (sqrt(v_hat) + eps)
                p -= step

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
