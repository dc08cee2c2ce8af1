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
from .errors import UsageError
from .layers import cross_entropy_backward, cross_entropy_forward
from .model import Model


def attention_forward(xp, Z, context):  # (M, M), (B, K) int -> (B, K)
    """b_t = softmax_t Z[x_q, x_t], with the query x_q the last context token."""
    query = context[:, -1]                                      # (B,)   x_q
    s = Z[query[:, None], context]                              # (B, K) attention logits
    s = s - s.max(axis=1, keepdims=True)                        # (B, K) same softmax, no overflow
    return xp.exp(s) / xp.exp(s).sum(axis=1, keepdims=True)     # (B, K) b_t, rows sum to 1


def watch_keys(a, b):
    """The names of the four watched quantities of the pair (a, b), in order."""
    return f"Y[{a},{b}]", f"Y[{b},{a}]", f"Y[<-,{a}]", f"attn[{a}->]({a})"


def sentence_label(sentence, relation_fwd, relation_bwd):
    """[12 -> 57] for a forward sentence, [57 <- 12] for a backward one."""
    names = {relation_fwd: "->", relation_bwd: "<-"}
    return "[" + " ".join(names.get(int(x), str(int(x))) for x in sentence) + "]"


class OneLayer(Model):
    kind = "one-layer"
    n_target = 1

    def __init__(self, vocab_size, seed=0, init_scale=0.0, dtype=np.float32, backend="numpy"):
        if int(vocab_size) < 2:
            raise UsageError(f"one-layer: vocab_size must be at least 2, got {vocab_size}")
        if not init_scale >= 0:
            raise UsageError(f"one-layer: init_scale must be >= 0 (0 = the paper's zero start), got {init_scale}")
        M = int(vocab_size)
        if init_scale > 0:
            rng = np.random.default_rng(seed)
            host = {"Y": init_scale * rng.standard_normal((M, M)),
                    "Z": init_scale * rng.standard_normal((M, M))}
        else:                                                   # the paper starts from Y = Z = 0
            host = {"Y": np.zeros((M, M)), "Z": np.zeros((M, M))}
        super().__init__(host, M, dtype=dtype, backend=backend,
                         config=dict(vocab_size=M, seed=seed, init_scale=init_scale))

    def check_tokens(self, tokens):
        tokens = super().check_tokens(tokens)
        if tokens.shape[1] < 2:
            raise UsageError(f"one-layer: sentences need at least 2 tokens (a context and the answer), "
                             f"got sentences of length {tokens.shape[1]}")
        return tokens

    # ---- forward and backward -------------------------------------------------------
    def forward(self, params, tokens, xp, rng=None):  # (B, T) -> scalar
        Y, Z = params["Y"], params["Z"]
        M = self.vocab_size
        context, target = tokens[:, :-1], tokens[:, -1]         # (B, K), (B,)
        b = attention_forward(xp, Z, context)                   # (B, K) b_t
        onehot = xp.eye(M, dtype=self.dtype)[context]           # (B, K, M) e_{x_t}
        c = (b[:, :, None] * onehot).sum(axis=1)                # (B, M) c = sum_t b_t e_{x_t}
        norm = xp.sqrt((c * c).sum(axis=1, keepdims=True))      # (B, 1) ||c|| >= 1/sqrt(K) > 0
        f = c / norm                                            # (B, M) f = LN(c)
        logits = f @ Y                                          # (B, M) logits[v] = sum_u f[u] Y[u, v]
        loss, ce_cache = cross_entropy_forward(xp, logits, target)
        return loss, (xp, context, b, norm, f, Y, logits, ce_cache)

    def _per_sentence(self, cache):
        """The backward pass up to the sum over sentences.

        Returns f (B, M), dlogits (B, M) and ds (B, K): sentence i alone
        contributes dY_i = outer(f_i, dlogits_i) and, at the entries
        Z[x_q, x_t] it read, dZ_i = ds_i. ``backward`` sums them; ``trace_terms``
        keeps them apart.
        """
        xp, context, b, norm, f, Y, logits, ce_cache = cache
        # forward: loss = mean_i cross-entropy(logits_i, target_i)
        dlogits = cross_entropy_backward(1.0, ce_cache)         # (B, M) (p - onehot(target)) / B
        # forward: logits = f @ Y, so df = dlogits @ Y^T (dY is summed in backward)
        df = dlogits @ Y.T                                      # (B, M)
        # forward: f = c / norm, whose Jacobian is (I - f f^T) / ||c||
        dc = (df - f * (f * df).sum(axis=1, keepdims=True)) / norm  # (B, M)
        # forward: c = sum_t b_t e_{x_t}, so db_t = dc[x_t] (a gather)
        db = dc[xp.arange(len(context))[:, None], context]      # (B, K)
        # forward: b = softmax_t(s), so ds_t = b_t (db_t - sum_t' b_t' db_t')
        ds = b * (db - (b * db).sum(axis=1, keepdims=True))     # (B, K)
        return f, dlogits, ds

    def backward(self, cache):
        xp, context = cache[0], cache[1]
        f, dlogits, ds = self._per_sentence(cache)
        # forward: logits = f @ Y, so dY[u, v] = sum_i f_i[u] dlogits_i[v]
        dY = f.T @ dlogits                                      # (M, M)
        # forward: s = Z[x_q, x_t] (a gather), so scatter ds back; a repeated (x_q, x_t) adds up
        dZ = xp.zeros((self.vocab_size, self.vocab_size), dtype=ds.dtype)
        xp.add.at(dZ, (context[:, -1:], context), ds)           # (M, M)
        return {"Y": dY, "Z": dZ}

    # ---- reading the model -------------------------------------------------------------
    def logits(self, tokens):  # (B, T) -> (B, 1, M)
        tokens = self.check_tokens(tokens)
        _, cache = self.forward(self.params, to_backend(self.xp, tokens), self.xp)
        *_, logits, _ = cache                                   # (B, M)
        return to_numpy(logits)[:, None, :]

    def attention(self, tokens):  # (B, T) -> (B, K), host numpy
        tokens = self.check_tokens(tokens)
        return to_numpy(attention_forward(self.xp, self.params["Z"], to_backend(self.xp, tokens[:, :-1])))

    def _attention_on_first(self, a, relation_fwd):
        """Attention weight on a of the context [a, ->], and its gradient dattn/dZ (M, M)."""
        probe = np.array([[a, relation_fwd]])                   # (1, 2) the context "a ->"
        b = to_numpy(attention_forward(np, to_numpy(self.params["Z"]).astype(np.float64), probe))[0]
        on_a = (probe[0] == a).astype(np.float64)               # (2,) which positions hold a
        attn = float(b @ on_a)
        # attn = sum_t b_t [x_t = a]; softmax backward, then scatter into Z[x_q, x_t]
        dattn_dZ = np.zeros((self.vocab_size, self.vocab_size))
        np.add.at(dattn_dZ, (relation_fwd, probe[0]), b * (on_a - attn))
        return attn, dattn_dZ

    def watch(self, pairs, relation_fwd, relation_bwd):
        """Current values of Y[A,B], Y[B,A], Y[<-,A] and attn[A->](A) for each pair."""
        Y = to_numpy(self.params["Y"])
        out = {}
        for a, b in pairs:
            k_ab, k_ba, k_rel, k_attn = watch_keys(a, b)
            out[k_ab], out[k_ba] = float(Y[a, b]), float(Y[b, a])
            out[k_rel] = float(Y[relation_bwd, a])
            out[k_attn] = self._attention_on_first(a, relation_fwd)[0]
        return out

    def trace_terms(self, tokens, pairs, relation_fwd, relation_bwd, lrs):
        """Who moves each watched quantity in one SGD step on ``tokens``.

        For every key of ``watch``: a list of (sentence label, contribution),
        nonzero only, largest first. Y terms are exact: -eta_Y f_i[u]
        dlogits_i[v] (dlogits_i already carries the 1/B of the mean), and sum
        to the step's change of Y[u, v]. Attention terms are first order:
        -eta_Z <dattn/dZ, dL_i/dZ>.
        """
        tokens = self.check_tokens(tokens)
        _, cache = self.forward(self.params, to_backend(self.xp, tokens), self.xp)
        f, dlogits, ds = (to_numpy(a).astype(np.float64) for a in self._per_sentence(cache))
        labels = [sentence_label(s, relation_fwd, relation_bwd) for s in tokens]
        eta_Y, eta_Z = float(lrs["Y"]), float(lrs["Z"])
        context = tokens[:, :-1]                                # (B, K)

        def ranked(values):                                     # (B,) -> [(label, value)], largest first
            terms = [(labels[i], float(v)) for i, v in enumerate(values) if v != 0]
            return sorted(terms, key=lambda term: -abs(term[1]))

        out = {}
        for a, b in pairs:
            k_ab, k_ba, k_rel, k_attn = watch_keys(a, b)
            out[k_ab] = ranked(-eta_Y * f[:, a] * dlogits[:, b])
            out[k_ba] = ranked(-eta_Y * f[:, b] * dlogits[:, a])
            out[k_rel] = ranked(-eta_Y * f[:, relation_bwd] * dlogits[:, a])
            _, dattn_dZ = self._attention_on_first(a, relation_fwd)
            # <dattn/dZ, dL_i/dZ>: sentence i's gradient lives on the entries Z[x_q, x_t] it read
            inner = (dattn_dZ[context[:, -1:], context] * ds).sum(axis=1)  # (B,)
            out[k_attn] = ranked(-eta_Z * inner)
        return out
