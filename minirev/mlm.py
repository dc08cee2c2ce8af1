"""MLM-U: the GPT with bidirectional attention, trained to fill in masked tokens.

A factorization-agnostic objective (Kitouni et al., "The Factorization Curse",
arXiv 2406.05183): instead of predicting each token from the ones before it,
the model sees the whole sentence with a random subset of its tokens replaced
by a [MASK] token, and predicts those. The masking rate is itself drawn
uniformly for every sentence, so training covers every split of a sentence
into "given" and "to predict", the reverse question included:

    tokens  [B, <-, A]                     r ~ U(0, 1) per sentence; each token masked with prob. r
    inputs  [B, <-, M]                     (at least one token masked)
    h       = trunk(inputs, causal=False)  # (B, T, C) every position sees every position
    logits  = lnf(h) @ w_out.T             # position t predicts the token AT t (not the next one)
    loss    = mean cross-entropy over the masked positions

Evaluation (rng=None) masks the answer tokens only: [B, <-, M] -> A, the same
question the causal GPT answers. Everything else is the GPT of minirev/gpt.py;
the only new layer path is attention_forward(..., causal=False).
"""
import numpy as np

from .backend import to_backend, to_numpy
from .errors import UsageError
from .gpt import GPT
from .layers import cross_entropy_backward, cross_entropy_forward


class MaskedGPT(GPT):
    kind = "gpt-mlm"
    causal = False
    options = tuple(o for o in GPT.options if o != "loss_whole_sequence")     # its loss is the masked tokens'

    def __init__(self, vocab_size, *args, **kwargs):
        super().__init__(vocab_size, *args, **kwargs)
        self.mask_id = int(vocab_size) - 1            # the last token id is [MASK]: never in the data

    @classmethod
    def from_config(cls, cfg, dataset, seed):
        return cls(dataset.vocab_size + 1, layers=cfg.layers, width=cfg.width, heads=cfg.heads, pos=cfg.pos,
                   max_len=dataset.train.shape[1], dropout=cfg.dropout, entity_len=dataset.entity_len,
                   seed=seed, tied=cfg.tied, dtype=np.dtype(cfg.dtype), backend=cfg.backend)

    @classmethod
    def parameter_count(cls, cfg, V, P):
        return super().parameter_count(cfg, V + 1, P)           # the [MASK] token is one more

    @classmethod
    def gradcheck_example(cls, seed=0):
        """Two blocks, rotary positions, dropout, several masked tokens per sentence, O(1) weights."""
        model, tokens = super().gradcheck_example(seed)                     # builds a MaskedGPT (cls)
        return model, tokens % model.mask_id                                 # no [MASK] in the data

    def describe(self):
        return super().describe().replace("gpt [", "gpt-mlm [", 1) + "; bidirectional, masked-token loss (MLM-U)"

    def masked_positions(self, B, T, rng):  # -> (B, T) bool, host
        """Training: rate r ~ U(0, 1) per sentence, each token masked with probability r, at least one.
        rng None (evaluation): the answer tokens, the last n_target."""
        if rng is None:
            masked = np.zeros((B, T), dtype=bool)
            masked[:, T - self.n_target:] = True
            return masked
        rate = rng.random((B, 1))                                            # (B, 1)
        masked = rng.random((B, T)) < rate                                   # (B, T)
        none = np.flatnonzero(~masked.any(1))
        masked[none, rng.integers(0, T, len(none))] = True                   # a sentence with nothing to predict
        return masked

    def forward(self, params, tokens, xp, rng=None):  # (B, T) -> scalar loss
        B, T = tokens.shape
        self._check_length(T)
        host = to_numpy(tokens)
        masked = self.masked_positions(B, T, rng)                            # (B, T)
        inputs = np.where(masked, self.mask_id, host)                        # (B, T) [MASK] in place
        idx = np.flatnonzero(masked)                                         # (n,) flat masked positions
        h, c_trunk = self._trunk_forward(params, to_backend(xp, inputs), xp, rng)   # (B, T, C)
        hs = h.reshape(B * T, -1)[to_backend(xp, idx)]                       # (n, C) the masked positions
        logits, c_head = self._head_forward(params, hs[None], xp)           # (n, V)
        loss, c_ce = cross_entropy_forward(xp, logits, to_backend(xp, host.reshape(-1)[idx]))
        return loss, (xp, h.shape, idx, c_trunk, c_head, c_ce)

    def backward_into(self, cache, grads):
        xp, h_shape, idx, c_trunk, c_head, c_ce = cache
        B, T, C = h_shape
        # reverse order of forward: cross-entropy, head, the gather of masked positions, trunk
        dlogits = cross_entropy_backward(1.0, c_ce)                          # (n, V)
        dhs = self._head_backward(dlogits, c_head, grads)                    # (1, n, C)
        dh = xp.zeros((B * T, C), dtype=dhs.dtype)                           # (B*T, C)
        # forward: hs = h[idx] with distinct idx, so the gradient scatters back (unmasked positions
        # feed the loss only through attention)
        dh[to_backend(xp, idx)] = dhs[0]
        self._trunk_backward(dh.reshape(h_shape), c_trunk, grads)

    def answer_inputs(self, tokens):  # (B, T) -> (B, T): the question, its answer masked
        inputs = np.array(tokens)
        inputs[:, -self.n_target:] = self.mask_id
        return inputs

    def logits(self, tokens):  # (B, T) -> (B, L, V): the answer positions, answer masked
        tokens = self.check_tokens(tokens)
        B, T = tokens.shape
        L = self.n_target
        self._check_length(T)
        inputs = to_backend(self.xp, self.answer_inputs(tokens))
        h, _ = self._trunk_forward(self.params, inputs, self.xp, None)      # (B, T, C)
        logits, _ = self._head_forward(self.params, h[:, T - L:], self.xp)  # (B*L, V)
        return logits.reshape(B, L, -1)                                     # (B, L, V)

    def next_logits(self, prefix):
        raise UsageError("gpt-mlm fills in masked tokens; it does not continue a prefix: use logits()")

    def watch(self, *args):
        raise UsageError("--trace follows next-token logits: it is not available for --model gpt-mlm")

    trace_terms = trace_title = watch
