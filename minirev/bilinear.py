"""The bilinear model of the paper's section 3: the reversal curse in one matrix.

Every token v has a FIXED embedding u_v (Gaussian N(0, I/d), or one-hot with
d = m). The only trainable parameter is Theta (d x d), started at 0:

    logit(y | x) = u_x^T Theta u_y          p(y | x) = softmax_y(logit(y | x))

Shapes: B sentences [x, y], m tokens in the vocabulary, d embedding dimension.

Why the reverse weight does not move: one gradient step changes Theta by
    dTheta = -(eta/B) sum_i u_{x_i} (u_{y_i} - E_{v~p(.|x_i)} u_v)^T
so the effective weight W(a -> b) = u_a^T Theta u_b changes by
    eta/B sum_i <u_a, u_{x_i}> (<u_b, u_{y_i}> - E_v <u_b, u_v>).
For the reverse of a held-out pair (a = y, b = x) the factor <u_y, u_{x_i}> is
~1/sqrt(d) for every training sentence (exactly 0 for one-hot), because y is
never the FIRST token of a training sentence.
"""
import numpy as np

from .backend import to_backend, to_numpy
from .errors import UsageError, whole
from .layers import cross_entropy_backward, cross_entropy_forward
from .model import Model, check_size
from .optim import SGD, AdamW
from .trace import Terms


def embeddings(vocab_size, dim, seed):
    """The fixed embeddings U (m, d): one-hot (dim=None, d = m) or Gaussian N(0, I/d), one row per token."""
    if dim is None:
        return np.eye(vocab_size)                                               # (m, m) one-hot
    return np.random.default_rng(seed).standard_normal((vocab_size, dim)) / np.sqrt(dim)   # (m, d)


class Bilinear(Model):
    kind = "bilinear"
    default_lr = 20.0
    options = ("width",)   # --width is the embedding dimension d

    def __init__(self, vocab_size, dim=None, seed=0, dtype=np.float32, backend="numpy"):
        """dim=None gives one-hot embeddings (d = vocab_size); else Gaussian N(0, I/dim)."""
        if not isinstance(vocab_size, (int, np.integer)) or vocab_size < 2:
            raise UsageError(f"bilinear: vocabulary size must be an integer >= 2, got {vocab_size!r}")
        if dim is not None and (not isinstance(dim, (int, np.integer)) or dim < 1):
            raise UsageError(f"bilinear: embedding dimension must be an integer >= 1 (or None for one-hot), got {dim!r}")
        d = vocab_size if dim is None else dim
        check_size("bilinear", vocab_size * d + d * d, "use a smaller vocabulary or embedding dimension")
        U = embeddings(vocab_size, dim, whole("bilinear", "seed", seed))       # (m, d)
        super().__init__({"Theta": np.zeros((d, d))}, vocab_size, dtype, backend,
                         config=dict(vocab_size=vocab_size, dim=dim, seed=seed))
        self.U_host = U
        self._moved()

    @classmethod
    def from_config(cls, cfg, dataset, seed):
        """--width is the embedding dimension d."""
        cls.single_token_answers(dataset)
        return cls(dataset.vocab_size, cfg.width, seed=seed, dtype=cfg.dtype, backend=cfg.backend)

    @staticmethod
    def make_optimizer(cfg):
        """Plain SGD: the update the paper's theorem is about (--optimizer adamw for AdamW)."""
        if cfg.optimizer == "adamw":
            return AdamW(cfg.lr, weight_decay=cfg.weight_decay)
        return SGD(cfg.lr, weight_decay=cfg.weight_decay)

    @classmethod
    def parameter_count(cls, cfg, V, P):
        return V * cfg.width + cfg.width ** 2                   # U (fixed) and Theta

    @classmethod
    def gradcheck_example(cls, seed=0):
        """A random Theta (the zero start would make every logit equal) and random pairs."""
        rng = np.random.default_rng(seed)
        model = cls(30, dim=16, seed=seed)
        model.params["Theta"] = rng.standard_normal((16, 16)).astype(model.dtype)
        return model, rng.integers(0, 30, (12, 2))

    def _moved(self):
        self.U = to_backend(self.xp, self.U_host, self.dtype)                 # (m, d) fixed embeddings

    def forward(self, params, tokens, xp, rng=None):
        ux = self.U[tokens[:, 0]]                                               # (B, d)
        logits = ux @ params["Theta"] @ self.U.T                                # (B, m) u_x^T Theta u_v
        loss, ce_cache = cross_entropy_forward(xp, logits, tokens[:, -1])
        return loss, (ux, ce_cache)

    def backward(self, cache):
        ux, ce_cache = cache
        dlogits = cross_entropy_backward(1.0, ce_cache)                         # (B, m) (p - onehot(y)) / B
        # forward: logits = ux @ Theta @ U.T, so dTheta = ux.T @ (dlogits @ U)
        return {"Theta": ux.T @ (dlogits @ self.U)}                             # (d, d)

    def logits(self, tokens):
        tokens = to_backend(self.xp, self.check_tokens(tokens))
        return (self.U[tokens[:, 0]] @ self.params["Theta"] @ self.U.T)[:, None, :]   # (B, 1, m)

    def effective_weight(self, a, b):
        """W(a -> b) = u_a^T Theta u_b, the logit of b after a: the quantity the theory is about."""
        return float(self.effective_weights([a], [b])[0])

    def effective_weights(self, a, b):
        """W(a_k -> b_k) for token id arrays a, b of one length k, as a host array (k,)."""
        a, b = to_backend(self.xp, np.asarray(a)), to_backend(self.xp, np.asarray(b))
        return to_numpy(((self.U[a] @ self.params["Theta"]) * self.U[b]).sum(1))   # (k,) u_a^T Theta u_b

    # ---- every update readable -------------------------------------------------------------
    def watch(self, pairs, name=None):
        """Current forward and reverse effective weights of the watched (trained, unseen, ...) pairs."""
        values = {}
        for trained, *_ in pairs:
            x, y = int(trained[0]), int(trained[-1])
            values[f"W({x}->{y})"] = self.effective_weight(x, y)
            values[f"W({y}->{x})"] = self.effective_weight(y, x)
        return values

    def trace_title(self, pairs, name=None):
        ab = [(int(pair[0][0]), int(pair[0][-1])) for pair in pairs]
        return (f"trace: effective weights W(a->b) of held-out pairs {ab}, with each training sentence's share "
                "= overlap <u_a, u_x> x coefficient -lr <g, u_b> from the gradient")

    def trace_terms(self, tokens, pairs, optimizer, name=lambda row: f"[{row[0]} -> {row[-1]}]"):
        """What one SGD step on `tokens` will add to each watched weight, sentence by sentence.

        Term of sentence (x_i, y_i) in the change of W(a -> b), a product of two factors:
            <u_a, u_{x_i}>  x  -lr <g_i, u_b>,   g_i = dlogits_i @ U = sum_v (p(v|x_i) - [v = y_i]) u_v / B
        (the overlap of the embeddings, and the coefficient from the gradient).
        The terms add up exactly to the change the step makes. Largest first; each
        list is a Terms with the two factors of every term, and a note when no
        sentence of the step starts with a.
        """
        tokens = np.asarray(tokens)
        twin = self.copy(dtype=np.float64, backend="numpy")                    # the account in float64,
        twin.U = to_numpy(self.U).astype(np.float64)       # with the embeddings the step itself used
        _, (ux, ce_cache) = twin.forward(twin.params, tokens, np)
        g = cross_entropy_backward(1.0, ce_cache) @ twin.U                      # (B, d) g_i, with the 1/B
        terms = {}
        for trained, *_ in pairs:
            x, y = int(trained[0]), int(trained[-1])
            for a, b in ((x, y), (y, x)):
                overlap = ux @ twin.U[a]                                        # (B,) <u_a, u_{x_i}>
                coefficient = -optimizer.lr * (g @ twin.U[b])                   # (B,) -lr <g_i, u_b>
                contrib = overlap * coefficient                                 # (B,)
                order = [i for i in np.argsort(-np.abs(contrib)) if contrib[i] != 0]
                note = None if (tokens[:, 0] == a).any() else \
                    f"no training sentence starts with {a}: every overlap is <u_{a}, u_x> of another token x"
                terms[f"W({a}->{b})"] = Terms([(name(tokens[i]), float(contrib[i])) for i in order],
                                              factors={name(tokens[i]): (float(overlap[i]), float(coefficient[i]))
                                                       for i in order}, note=note)
        return terms
