"""The paper's one-layer transformer in the Y/Z reparameterisation (section 4).

Following Tian et al. 2023 ("Scan and Snap"): one-hot embeddings of M tokens,
no positions, and two M x M matrices instead of the usual query/key/value and
output weights:

    Z[q, t]  attention logit from the query token q to the context token t;
    Y[u, v]  decoder weight from a context token u to a next token v.

A sentence x_1 .. x_T is scored on its last token, predicted from the context
x_1 .. x_{T-1}, whose last token x_q = x_{T-1} is the query (for "A -> B" the
context is [A, ->] and the query is "->"):

    b_t    = softmax_t Z[x_q, x_t]             attention over the context
    c      = sum_t b_t e_{x_t}                 the attended one-hot vectors
    f      = c / ||c||_2                       l2 normalisation (the paper's LN)
    logits = Y^T f                             p(. | context) = softmax(logits)

The reversal curse in one line: Y[u, v] only moves when u is in a context of
some sentence, so Y[B, A] of a pair that was never read as "B <- A" keeps its
initial value, while the rows of the relation tokens learn that A never follows.
``watch`` and ``trace_terms`` print exactly these entries and who moved them.

Shapes: B = sentences, T = sentence length, K = T - 1 context positions,
M = vocabulary size.
"""
import numpy as np

from .backend import to_backend, to_numpy
from .errors import UsageError, whole
from .layers import (cross_entropy_backward, cross_entropy_forward, l2norm_backward, l2norm_forward,
                     softmax_backward, token_attention_backward, token_attention_forward)
from .model import Model, check_size
from .optim import SGD, AdamW


def watch_keys(a, b):
    """The names of the four watched quantities of the pair (a, b), in order."""
    return f"Y[{a},{b}]", f"Y[{b},{a}]", f"Y[<-,{a}]", f"attn[{a}->]({a})"


class OneLayer(Model):
    kind = "one-layer"
    n_target = 1
    default_lr = 100.0
    options = ("lr_z",)
    decoder_names = ("Y",)      # the parameters that make the decoder Y

    def __init__(self, vocab_size, seed=0, init_scale=0.0, dtype=np.float32, backend="numpy"):
        M, seed = whole(self.kind, "vocab_size", vocab_size, minimum=2), whole(self.kind, "seed", seed)
        check_size(self.kind, 2 * M * M, "use a smaller vocabulary")
        if not init_scale >= 0:
            raise UsageError(f"one-layer: init_scale must be >= 0 (0 = a zero start), got {init_scale}")
        super().__init__(self.initial_params(M, seed, init_scale), M, dtype=dtype, backend=backend,
                         config=dict(vocab_size=M, seed=seed, init_scale=init_scale))

    @staticmethod
    def initial_params(M, seed, init_scale):
        if init_scale > 0:
            rng = np.random.default_rng(seed)
            return {"Y": init_scale * rng.standard_normal((M, M)), "Z": init_scale * rng.standard_normal((M, M))}
        return {"Y": np.zeros((M, M)), "Z": np.zeros((M, M))}    # Y = Z = 0: uniform p and attention

    @classmethod
    def from_config(cls, cfg, dataset, seed):
        cls.single_token_answers(dataset)
        return cls(dataset.vocab_size, seed=seed, dtype=cfg.dtype, backend=cfg.backend)

    @staticmethod
    def make_optimizer(cfg):
        """Plain SGD, as in the theory (or --optimizer adamw); Z has its own rate (0 by default: uniform attention)."""
        if cfg.optimizer == "adamw":
            return AdamW(cfg.lr, weight_decay=cfg.weight_decay, lrs={"Z": cfg.lr_z})
        return SGD(cfg.lr, lrs={"Z": cfg.lr_z}, weight_decay=cfg.weight_decay)

    @classmethod
    def parameter_count(cls, cfg, V, P):
        return 2 * V * V                                        # Y and Z

    @classmethod
    def gradcheck_example(cls, seed=0):
        rng = np.random.default_rng(seed)
        return cls(30, seed=seed, init_scale=0.5), rng.integers(0, 30, (12, 4))

    def check_tokens(self, tokens):
        tokens = super().check_tokens(tokens)
        if tokens.shape[1] < 2:
            raise UsageError(f"{self.kind}: sentences need at least 2 tokens (a context and the answer), "
                             f"got sentences of length {tokens.shape[1]}")
        return tokens

    # ---- forward and backward -------------------------------------------------------
    def decoder(self, params):  # -> Y (M, M)
        """The decoder matrix Y; the factorized model builds it from two factors."""
        return params["Y"]

    def forward_logits(self, params, tokens, xp):  # (B, T) -> (B, M)
        M = self.vocab_size
        context = tokens[:, :-1]                                # (B, K)
        b, c_att = token_attention_forward(xp, params["Z"], context)  # (B, K) b_t
        onehot = xp.eye(M, dtype=self.dtype)[context]           # (B, K, M) e_{x_t}
        c = (b[:, :, None] * onehot).sum(axis=1)                # (B, M) c = sum_t b_t e_{x_t}
        f, c_norm = l2norm_forward(xp, c)                       # (B, M) f = LN(c); ||c|| >= 1/sqrt(K) > 0
        Y = self.decoder(params)                                # (M, M)
        logits = f @ Y                                          # (B, M) logits[v] = sum_u f[u] Y[u, v]
        return logits, (xp, context, c_att, c_norm, f, Y, params)

    def forward(self, params, tokens, xp, rng=None):  # (B, T) -> scalar
        logits, cache = self.forward_logits(params, tokens, xp)
        loss, ce_cache = cross_entropy_forward(xp, logits, tokens[:, -1])
        return loss, (cache, ce_cache)

    def backward_decoder(self, dY, params):  # (M, M) -> {name: gradient}
        return {"Y": dY}

    def backward(self, cache):
        (xp, context, c_att, c_norm, f, Y, params), ce_cache = cache
        # the layers of forward, undone in reverse order
        dlogits = cross_entropy_backward(1.0, ce_cache)         # (B, M) (p - onehot(target)) / B
        # forward: logits = f @ Y, so df = dlogits @ Y^T and dY[u, v] = sum_i f_i[u] dlogits_i[v]
        df = dlogits @ Y.T                                      # (B, M)
        dY = f.T @ dlogits                                      # (M, M)
        dc = l2norm_backward(df, c_norm)                        # (B, M)
        # forward: c = sum_t b_t e_{x_t}, so db_t = dc[x_t] (a gather)
        db = dc[xp.arange(len(context))[:, None], context]      # (B, K)
        dZ = token_attention_backward(db, c_att)                # (M, M)
        return {**self.backward_decoder(dY, params), "Z": dZ}

    def per_sentence(self, tokens):
        """Each sentence's own pieces of the gradient (float64, host): f, dlogits, ds.

        Sentence i alone contributes dY_i = outer(f_i, dlogits_i) and, at the entries
        Z[x_q, x_t] it read, dZ_i = ds_i; ``backward`` sums them, the trace keeps them apart.
        """
        _, ((xp, context, c_att, c_norm, f, Y, _), ce_cache) = self.forward(self.params, to_backend(self.xp, tokens),
                                                                          self.xp)
        dlogits = cross_entropy_backward(1.0, ce_cache)         # (B, M)
        dc = l2norm_backward(dlogits @ Y.T, c_norm)             # (B, M)
        ds = softmax_backward(dc[xp.arange(len(context))[:, None], context], c_att[-1])  # (B, K)
        return tuple(to_numpy(a).astype(np.float64) for a in (f, dlogits, ds))

    # ---- reading the model -------------------------------------------------------------
    def logits(self, tokens):  # (B, T) -> (B, 1, M)
        tokens = self.check_tokens(tokens)
        logits, _ = self.forward_logits(self.params, to_backend(self.xp, tokens), self.xp)   # (B, M)
        return to_numpy(logits)[:, None, :]

    def attention(self, tokens):  # (B, T) -> (B, K), host numpy
        tokens = self.check_tokens(tokens)
        b, _ = token_attention_forward(self.xp, self.params["Z"], to_backend(self.xp, tokens[:, :-1]))
        return to_numpy(b)

    def _attention_on_first(self, a, relation_fwd):
        """Attention weight on a of the context [a, ->], and its gradient dattn/dZ (M, M)."""
        probe = np.array([[a, relation_fwd]])                   # (1, 2) the context "a ->"
        b, cache = token_attention_forward(np, to_numpy(self.params["Z"]).astype(np.float64), probe)
        on_a = (probe[0] == a).astype(np.float64)               # (2,) which positions hold a
        # attn = sum_t b_t [x_t = a], so dattn/db = on_a; then back through the softmax and the gather
        return float(b[0] @ on_a), token_attention_backward(on_a[None, :], cache)

    def watch(self, pairs, name=None):
        """Current values of Y[A,B], Y[B,A], Y[<-,A] and attn[A->](A) for each (trained, unseen) pair."""
        Y = to_numpy(self.decoder(self.params))
        out = {}
        for trained, unseen, *_ in pairs:
            a, b, relation_fwd, relation_bwd = _pair_tokens(trained, unseen)
            k_ab, k_ba, k_rel, k_attn = watch_keys(a, b)
            out[k_ab], out[k_ba] = float(Y[a, b]), float(Y[b, a])
            out[k_rel] = float(Y[relation_bwd, a])
            out[k_attn] = self._attention_on_first(a, relation_fwd)[0]
        return out

    def trace_title(self, pairs, name=None):
        ab = [_pair_tokens(*pair[:2])[:2] for pair in pairs]
        return f"trace: Y, Z entries of held-out pairs {ab}, with each training sentence's share"

    def decoder_terms(self, f, dlogits, u, v):  # (B, M), (B, M) -> (B,)
        """Sentence i's gradient of Y[u, v] (times -1/eta gives its share of the SGD change)."""
        return f[:, u] * dlogits[:, v]

    def trace_terms(self, tokens, pairs, optimizer, name=str):
        """Who moves each watched quantity in one SGD step on ``tokens``.

        For every key of ``watch``: a list of (sentence label, contribution),
        nonzero only, largest first. Y terms are exact: -eta_Y f_i[u]
        dlogits_i[v] (dlogits_i already carries the 1/B of the mean), and sum
        to the step's change of Y[u, v]. Attention terms are first order:
        -eta_Z <dattn/dZ, dL_i/dZ>.
        """
        tokens = self.check_tokens(tokens)
        f, dlogits, ds = self.per_sentence(tokens)
        labels = [name(s) for s in tokens]
        eta_Y, eta_Z = (float(optimizer.lr_for(k)) for k in (self.decoder_names[0], "Z"))
        context = tokens[:, :-1]                                # (B, K)

        def ranked(values):                                     # (B,) -> [(label, value)], largest first
            terms = [(labels[i], float(v)) for i, v in enumerate(values) if v != 0]
            return sorted(terms, key=lambda term: -abs(term[1]))

        out = {}
        for trained, unseen, *_ in pairs:
            a, b, relation_fwd, relation_bwd = _pair_tokens(trained, unseen)
            k_ab, k_ba, k_rel, k_attn = watch_keys(a, b)
            out[k_ab] = ranked(-eta_Y * self.decoder_terms(f, dlogits, a, b))
            out[k_ba] = ranked(-eta_Y * self.decoder_terms(f, dlogits, b, a))
            out[k_rel] = ranked(-eta_Y * self.decoder_terms(f, dlogits, relation_bwd, a))
            _, dattn_dZ = self._attention_on_first(a, relation_fwd)
            # <dattn/dZ, dL_i/dZ>: sentence i's gradient lives on the entries Z[x_q, x_t] it read
            inner = (dattn_dZ[context[:, -1:], context] * ds).sum(axis=1)  # (B,)
            out[k_attn] = ranked(-eta_Z * inner)
        return out


def _pair_tokens(trained, unseen):
    """(A, B, "->", "<-") of a held-out pair: the trained sentence [A, ->, B] and its unseen [B, <-, A]."""
    return int(trained[0]), int(trained[-1]), int(trained[1]), int(unseen[1])
