"""The one-layer transformer with a factorized decoder: Y = W_V W_O, trained from a small start.

Same as minirev/one_layer.py (one-hot tokens, the Z attention, l2 normalisation),
except that the decoder is the product of two trainable matrices instead of one:

    Y = W_V @ W_O           W_V (M, R): value,  W_O (R, M): output,  R = rank (M by default)

This is the output-value factorization of Huang et al. (arXiv 2506.10887) and of
the Identity Bridge analysis (arXiv 2602.02470). Why it can matter for the curse:
a gradient step on the product moves Y by
    dY_product ~ dY W_O^T W_O + W_V W_V^T dY
(first order), so an update of row A of Y spreads to every row u with
(W_V W_V^T)[u, A] != 0, and every column through W_O^T W_O. In the combined model
(Y itself trained) the row of a token that never appears in a context, Y[B, :],
receives nothing; here it can, once the factors have learned correlations.
"""
import numpy as np

from .errors import UsageError, whole
from .model import check_size
from .one_layer import OneLayer


class Factorized(OneLayer):
    kind = "one-layer-factorized"
    default_lr = 10.0           # measured: 100 (the combined model's) diverges, 30 too; 10 fits in 40 epochs
    decoder_names = ("W_V", "W_O")

    def __init__(self, vocab_size, rank=None, seed=0, init_scale=0.01, dtype=np.float32, backend="numpy"):
        M, seed = whole(self.kind, "vocab_size", vocab_size, minimum=2), whole(self.kind, "seed", seed)
        R = M if rank is None else whole(self.kind, "rank", rank, minimum=1)
        check_size(self.kind, 2 * M * R + M * M, "use a smaller vocabulary or rank")
        if not init_scale > 0:
            raise UsageError(f"{self.kind}: init_scale must be > 0 (W_V = W_O = 0 is a saddle: "
                             f"neither factor would ever move), got {init_scale}")
        rng = np.random.default_rng(seed)
        host = {"W_V": init_scale * rng.standard_normal((M, R)),          # (M, R)
                "W_O": init_scale * rng.standard_normal((R, M)),          # (R, M)
                "Z": np.zeros((M, M))}                                    # (M, M) uniform attention
        super(OneLayer, self).__init__(host, M, dtype=dtype, backend=backend,
                                       config=dict(vocab_size=M, rank=rank, seed=seed, init_scale=init_scale))

    @classmethod
    def parameter_count(cls, cfg, V, P):
        return 3 * V * V                                        # W_V, W_O and Z

    @classmethod
    def gradcheck_example(cls, seed=0):
        rng = np.random.default_rng(seed)
        model = cls(30, rank=7, seed=seed, init_scale=0.5)
        model.params["Z"] = 0.5 * rng.standard_normal((30, 30)).astype(model.dtype)   # attention not uniform
        return model, rng.integers(0, 30, (12, 4))

    def decoder(self, params):  # -> Y (M, M)
        return params["W_V"] @ params["W_O"]                               # (M, M)

    def backward_decoder(self, dY, params):
        # forward: Y = W_V @ W_O, so dW_V = dY @ W_O^T and dW_O = W_V^T @ dY
        return {"W_V": dY @ params["W_O"].T, "W_O": params["W_V"].T @ dY}

    def decoder_terms(self, f, dlogits, u, v):  # (B, M), (B, M) -> (B,)
        """Sentence i's first-order push on Y[u, v] through both factors (times -lr):
        dY_i = outer(f_i, dlogits_i) enters as dY_i W_O^T W_O + W_V W_V^T dY_i."""
        W_V, W_O = (np.asarray(self.host_params()[k], dtype=np.float64) for k in ("W_V", "W_O"))
        return f[:, u] * (dlogits @ (W_O.T @ W_O[:, v])) + (f @ (W_V @ W_V[u])) * dlogits[:, v]
