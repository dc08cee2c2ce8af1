"""Who carried the reverse direction: the accounts behind the cures table (minirev/cures.py).

The quantity is the unseen margin: for each held-out reverse question, the
logit of the right answer minus the mean logit over the answer's alphabet
(what decides its rank there), averaged over the questions.

One-layer models, exactly: logits = f @ Y, so the margin splits into one
term per context token u, f[u] (Y[u, a] - mean over the alphabet of Y[u, .]):
the question's entity row of Y, and the relation (or padding) rows.

GPT and MLM-U, per parameter tensor: a Trainer hook adds up, over every
update of training, <d margin / d tensor, update of that tensor> (first
order per step, so the sum lands near, not exactly on, the actual change;
both are reported).
"""
import numpy as np

from .backend import to_numpy
from .mlm import MaskedGPT


def margins_seed(data, n_target, V, T_pos, T, dtype):
    """d(mean margin)/d(logits) for the held-out reverse questions: (n, T, V).

    margin_i = logit(right answer) - mean logit over the answer's alphabet; the mean over questions.
    """
    rows = data.groups[data.val_group]
    n = len(rows)
    seed = np.zeros((n, T, V), dtype=dtype)
    alphabets = data.answer_alphabets(rows)                                     # (n, a)
    for i in range(n):
        seed[i, T_pos, alphabets[i]] -= 1.0 / (alphabets.shape[1] * n)
        seed[i, T_pos, rows[i, -n_target]] += 1.0 / n
    return seed


class MarginAccount:
    """A Trainer hook: each update's share, per parameter tensor, of the change of the mean unseen margin.

    First order per step (<d margin / d tensor, update of tensor>), summed over every step of training;
    ``result`` also gives the actual change, so the reader sees how close the sum came.
    """

    def __init__(self, model, data):
        self.model, self.xp = model, model.xp
        rows = data.groups[data.val_group]
        L, T = model.n_target, rows.shape[1]
        # the causal GPT reads the answer at the position before it; MLM-U at the answer's own, masked
        self.inputs, pos = (model.answer_inputs(rows), T - L) if isinstance(model, MaskedGPT) else (rows, T - L - 1)
        self.seed = margins_seed(data, L, model.vocab_size, pos, T, model.dtype)
        self.start = self.margin()
        self.totals = {k: 0.0 for k in model.params}

    def margin(self):
        logits, _ = self.model.forward_logits(self.model.params, self.xp.asarray(self.inputs), self.xp)
        return float(np.sum(to_numpy(logits).astype(np.float64) * self.seed))

    def before(self, batch, step, rng=None):
        logits, cache = self.model.forward_logits(self.model.params, self.xp.asarray(self.inputs), self.xp)
        self.grad = self.model.backward_logits(self.xp.asarray(self.seed), cache)
        self.old = {k: v.copy() for k, v in self.model.params.items()}

    def after(self, batch):
        for k, g in self.grad.items():
            self.totals[k] += float(self.xp.sum(g * (self.model.params[k] - self.old[k])))

    def result(self):
        groups = {}
        for k, v in self.totals.items():            # h0.attn.w_qkv -> attention, h1.mlp.w_fc -> mlp, ...
            name = k.split(".")[1] if k.startswith("h") and "." in k else k.split(".")[0]
            name = {"attn": "attention", "ln1": "layer norms", "ln2": "layer norms", "lnf": "layer norms",
                    "wte": "token embedding", "wpe": "position embedding", "w_out": "output layer"}.get(name, name)
            groups[name] = groups.get(name, 0.0) + v
        return dict(start=self.start, end=self.margin(), shares=dict(sorted(groups.items(), key=lambda kv: -abs(kv[1]))))


def decoder_split(model, data):
    """One-layer models, exactly: the mean unseen margin split by the context token whose row of Y carries it.

    logits = f @ Y, so margin_i = sum_u f_i[u] (Y[u, a_i] - mean over the alphabet of Y[u, .]) over the
    context tokens u: the question's entity ("entity row") and the relation (or padding) tokens. Also the
    theory's check on the learned output-value matrix: on the held-out block, the diagonal
    Y[q_i, a_i] minus the mean off-diagonal Y[q_i, a_j] (0: Y cannot tell the held-out answers apart).
    """
    rows = data.groups[data.val_group]                                           # [.., q, rel, a]
    f, _, _ = model.per_sentence(rows)                                           # (n, M) float64
    Y = to_numpy(model.decoder(model.params)).astype(np.float64)                 # (M, M)
    answers, entity = rows[:, -1], rows[:, -3]                                   # (n,) a and q
    alphabet_mean = Y[:, data.answer_alphabets(rows)].mean(-1).T                 # (n, M) mean_c Y[u, c]
    per_token = f * (Y[:, answers].T - alphabet_mean)                            # (n, M) sums to margin_i
    on_entity = per_token[np.arange(len(rows)), entity]                          # (n,)
    block = Y[np.ix_(entity, answers)]                                           # (n, n) held-out block
    off = (block.sum(1) - np.diag(block)) / max(len(rows) - 1, 1)               # (n,) mean off-diagonal
    return dict(margin_entity_row=float(on_entity.mean()),
                margin_other_rows=float((per_token.sum(1) - on_entity).mean()),
                ov_diagonal_minus_off=float((np.diag(block) - off).mean()))
