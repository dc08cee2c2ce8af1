"""Model 3: a GPT-2-style decoder with hand-written backprop (the paper's experiments).

Shapes: B = batch, T = positions, C = width, H = heads, D = C // H (head dim),
V = vocabulary, L = entity_len (answer tokens scored), P = max_len.

    x = wte[tokens] + wpe[:T]                  # (B, T, C)  (no wpe for pos "none"/"rotary")
    for each block h0, h1, ...:                # pre-LayerNorm, as GPT-2
        x = x + drop(attn(ln1(x)))             # rotary (if any) turns q and k inside attn
        x = x + drop(mlp(ln2(x)))              # mlp = w_proj(gelu(w_fc(.))), hidden 4C
    logits = lnf(x) @ w_out.T                  # (B, T, V)  its own output matrix, as the paper's code runs
                                               # (tied=True: lnf(x) @ wte.T, GPT-2's tying)

Dropout (GPT-2's embd/attn/resid pdrop, all equal to ``dropout``) draws its
masks on the host from the ``rng`` passed to forward, always in the same
order, so two passes with equally seeded rngs see the same network.
"""
import math

import numpy as np

from .backend import to_backend
from .errors import UsageError, whole
from .layers import (attention_backward, attention_forward, cross_entropy_backward, cross_entropy_forward,
                     dropout_backward, dropout_forward, dropout_mask, embedding_backward, embedding_forward,
                     gelu_backward, gelu_forward, layernorm_backward, layernorm_forward, linear_backward,
                     linear_forward, position_embedding_backward, position_embedding_forward, residual_backward,
                     residual_forward, rotary_tables, unembedding_backward, unembedding_forward)
from . import gpt_trace
from .model import Model, check_size
from .optim import SGD, AdamW

POS = ("none", "absolute", "rotary")


def block_forward(xp, x, p, h, n_head, rope, drop, causal=True):  # (B, T, C) -> (B, T, C)
    """One transformer block; p[h + "..."] are its parameters, drop(shape) a dropout mask."""
    B, T, C = x.shape
    a, c_ln1 = layernorm_forward(xp, x, p[h + "ln1.g"], p[h + "ln1.b"])      # (B, T, C)
    a, c_attn = attention_forward(xp, a, p[h + "attn.w_qkv"], p[h + "attn.b_qkv"],
                                  p[h + "attn.w_proj"], p[h + "attn.b_proj"],
                                  n_head, rope, drop((B, n_head, T, T)), causal)  # (B, T, C)
    a, c_d1 = dropout_forward(xp, a, drop((B, T, C)))                       # (B, T, C)
    x, c_r1 = residual_forward(xp, x, a)                                    # (B, T, C)
    m, c_ln2 = layernorm_forward(xp, x, p[h + "ln2.g"], p[h + "ln2.b"])      # (B, T, C)
    m, c_fc = linear_forward(xp, m, p[h + "mlp.w_fc"], p[h + "mlp.b_fc"])    # (B, T, 4C)
    m, c_gelu = gelu_forward(xp, m)                                         # (B, T, 4C)
    m, c_proj = linear_forward(xp, m, p[h + "mlp.w_proj"], p[h + "mlp.b_proj"])  # (B, T, C)
    m, c_d2 = dropout_forward(xp, m, drop((B, T, C)))                       # (B, T, C)
    x, c_r2 = residual_forward(xp, x, m)                                    # (B, T, C)
    return x, (c_ln1, c_attn, c_d1, c_r1, c_ln2, c_fc, c_gelu, c_proj, c_d2, c_r2)


def block_backward(dx, cache, h, grads):  # (B, T, C) -> (B, T, C); fills grads[h + "..."]
    """The backwards write each gradient into grads[name] when that array exists (in training,
    a view of the model's flat gradient buffer), else into a new array stored there."""
    c_ln1, c_attn, c_d1, c_r1, c_ln2, c_fc, c_gelu, c_proj, c_d2, c_r2 = cache
    g = grads

    def into(*names):  # the arrays to write these gradients into (None: new ones)
        return [g.get(h + name) for name in names]
    # the layers of block_forward, undone in reverse order
    dx, dm = residual_backward(dx, c_r2)                                    # (B, T, C) each
    dm = dropout_backward(dm, c_d2)
    dm, g[h + "mlp.w_proj"], g[h + "mlp.b_proj"] = \
        linear_backward(dm, c_proj, *into("mlp.w_proj", "mlp.b_proj"))      # (B, T, 4C)
    dm = gelu_backward(dm, c_gelu)                                          # (B, T, 4C)
    dm, g[h + "mlp.w_fc"], g[h + "mlp.b_fc"] = \
        linear_backward(dm, c_fc, *into("mlp.w_fc", "mlp.b_fc"))            # (B, T, C)
    dm, g[h + "ln2.g"], g[h + "ln2.b"] = layernorm_backward(dm, c_ln2, *into("ln2.g", "ln2.b"))  # (B, T, C)
    dx = dx + dm                         # x fed both the sum and the MLP branch: the paths add
    dx, da = residual_backward(dx, c_r1)
    da = dropout_backward(da, c_d1)
    da, g[h + "attn.w_qkv"], g[h + "attn.b_qkv"], g[h + "attn.w_proj"], g[h + "attn.b_proj"] = \
        attention_backward(da, c_attn, *into("attn.w_qkv", "attn.b_qkv", "attn.w_proj", "attn.b_proj"))  # (B, T, C)
    da, g[h + "ln1.g"], g[h + "ln1.b"] = layernorm_backward(da, c_ln1, *into("ln1.g", "ln1.b"))  # (B, T, C)
    return dx + da                                                          # (B, T, C)


class GPT(Model):
    """GPT-2 (HuggingFace) shrunk to taste: pre-LN blocks, gelu_new, dropout 0.1.

    The output layer is its own matrix "w_out" (V, C) by default, because that is
    how the paper's public code runs (docs/paper.md says why). tied=True reuses the
    token embedding "wte" instead, as GPT-2 does: the two directions of a fact then
    share a parameter, and the reverse direction partly leaks through it.
    """
    kind = "gpt"
    default_lr = 0.01
    default_optimizer = "adamw"
    options = ("layers", "width", "heads", "pos", "dropout", "tied", "freeze_embeddings", "loss_whole_sequence")
    causal = True         # each position attends to itself and earlier ones (minirev/mlm.py: all)

    def __init__(self, vocab_size, layers=2, width=64, heads=4, pos="absolute", max_len=16,
                 dropout=0.1, entity_len=1, seed=0, tied=False, loss_whole_sequence=False, dtype=np.float32,
                 backend="numpy"):
        for name, value in (("vocab_size", vocab_size), ("layers", layers), ("width", width),
                            ("heads", heads), ("max_len", max_len), ("entity_len", entity_len)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise UsageError(f"gpt: {name} must be an integer >= 1, got {value!r}")
        seed = whole("gpt", "seed", seed)
        if width % heads:
            raise UsageError(f"gpt: width {width} is not divisible by heads {heads}; choose a "
                             f"width that is a multiple of {heads} (e.g. {heads * -(-width // heads)})")
        if pos not in POS:
            raise UsageError(f"gpt: unknown pos {pos!r}; choose one of {', '.join(POS)}")
        if pos == "rotary" and (width // heads) % 2:
            raise UsageError(f"gpt: rotary positions rotate pairs of channels, so the head dim "
                             f"width/heads = {width // heads} must be even; change width or heads")
        if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
            raise UsageError(f"gpt: dropout must be a number in [0, 1), got {dropout!r}; "
                             "e.g. 0.1, or 0 for none")
        check_size("gpt", self.count(vocab_size, max_len, width, layers, tied),
                   "use a smaller width, layers or vocabulary")
        config = dict(vocab_size=int(vocab_size), layers=int(layers), width=int(width), heads=int(heads),
                      pos=pos, max_len=int(max_len), dropout=float(dropout),
                      entity_len=int(entity_len), seed=seed, tied=bool(tied))
        if loss_whole_sequence:          # (only when set: the config of an answer-only model stays as it was)
            config["loss_whole_sequence"] = True

        # GPT-2's init, drawn on the host: weights N(0, 0.02), the two projections that
        # write into the residual stream N(0, 0.02 / sqrt(2 * layers)), biases 0, LN gains 1
        rng = np.random.default_rng(seed)
        C, std, proj_std = width, 0.02, 0.02 / math.sqrt(2 * layers)
        p = {"wte": rng.normal(0, std, (vocab_size, C))}                   # (V, C)
        if pos == "absolute":
            p["wpe"] = rng.normal(0, std, (max_len, C))                     # (P, C)
        for l in range(layers):
            h = f"h{l}."
            p[h + "ln1.g"], p[h + "ln1.b"] = np.ones(C), np.zeros(C)        # (C,)
            p[h + "attn.w_qkv"] = rng.normal(0, std, (C, 3 * C))            # (C, 3C)
            p[h + "attn.b_qkv"] = np.zeros(3 * C)                           # (3C,)
            p[h + "attn.w_proj"] = rng.normal(0, proj_std, (C, C))          # (C, C)
            p[h + "attn.b_proj"] = np.zeros(C)                              # (C,)
            p[h + "ln2.g"], p[h + "ln2.b"] = np.ones(C), np.zeros(C)        # (C,)
            p[h + "mlp.w_fc"] = rng.normal(0, std, (C, 4 * C))              # (C, 4C)
            p[h + "mlp.b_fc"] = np.zeros(4 * C)                             # (4C,)
            p[h + "mlp.w_proj"] = rng.normal(0, proj_std, (4 * C, C))       # (4C, C)
            p[h + "mlp.b_proj"] = np.zeros(C)                               # (C,)
        p["lnf.g"], p["lnf.b"] = np.ones(C), np.zeros(C)                    # (C,)
        if not tied:
            p["w_out"] = rng.normal(0, std, (vocab_size, C))               # (V, C) own output layer
        super().__init__(p, vocab_size, dtype=dtype, backend=backend, config=config)
        self.n_layer, self.n_head, self.pos = int(layers), int(heads), pos
        self.max_len, self.dropout, self.n_target = int(max_len), float(dropout), int(entity_len)
        self.out_name = "wte" if tied else "w_out"         # the matrix of the output layer
        self.loss_whole_sequence = bool(loss_whole_sequence)

    @classmethod
    def from_config(cls, cfg, dataset, seed):
        return cls(dataset.vocab_size, layers=cfg.layers, width=cfg.width, heads=cfg.heads, pos=cfg.pos,
                   max_len=dataset.train.shape[1], dropout=cfg.dropout, entity_len=dataset.entity_len,
                   seed=seed, tied=cfg.tied, loss_whole_sequence=cfg.loss_whole_sequence,
                   dtype=np.dtype(cfg.dtype), backend=cfg.backend)

    @staticmethod
    def make_optimizer(cfg):
        """AdamW, as the paper's code trains its GPT; --optimizer sgd for plain SGD (cfg resolved: its decay filled).

        --freeze-embeddings: learning rate 0 for wte and wpe, which the optimisers skip (no decay either),
        as the paper's code's requires_grad = False; their gradients are still computed, and unused."""
        embeddings = ("wte", "wpe") if cfg.pos == "absolute" else ("wte",)
        frozen = {name: 0.0 for name in embeddings} if cfg.freeze_embeddings else {}
        if cfg.optimizer == "sgd":
            return SGD(cfg.lr, weight_decay=cfg.weight_decay, lrs=frozen)
        return AdamW(lr=cfg.lr, weight_decay=cfg.weight_decay, lrs=frozen)

    @classmethod
    def parameter_count(cls, cfg, V, P):
        return cls.count(V, P, cfg.width, cfg.layers, cfg.tied)

    @staticmethod
    def count(V, P, C, layers, tied):  # the parameters of GPT(V, layers, C, max_len=P, tied=tied)
        return V * C * (1 if tied else 2) + P * C + layers * (12 * C ** 2 + 13 * C) + 2 * C

    @classmethod
    def activation_count(cls, cfg, B, V, P):
        # per block ~16 (B, T, C) tensors and 3 (B, H, T, T); logits (B, T, V) x 3
        return cfg.layers * B * P * (16 * cfg.width + 3 * cfg.heads * P) + 3 * B * P * V

    @classmethod
    def gradcheck_example(cls, seed=0):
        """Two blocks, rotary positions, dropout and two-token answers: every path of the model.

        O(1) random parameters instead of GPT-2's tiny init, under which attention is
        nearly uniform and a wrong attention gradient would hardly show.
        """
        rng = np.random.default_rng(seed)
        model = cls(13, layers=2, width=16, heads=4, pos="rotary", max_len=5, entity_len=2, dropout=0.1,
                    seed=seed)
        model.params = {k: (rng.normal(0, 0.5, v.shape) + k.endswith(".g")).astype(model.dtype)
                        for k, v in model.params.items()}
        return model, rng.integers(0, 13, (12, 5))

    def describe(self):
        return (f"gpt [{self.dtype.name}, {self.backend}]: {self.n_layer} layers, width {self.params['wte'].shape[1]}, "
                f"{self.n_head} heads, {self.pos} positions, "
                f"{'tied output layer (wte)' if self.out_name == 'wte' else 'untied output layer (w_out)'}, "
                f"dropout {self.dropout}; {self.num_params():,} parameters")

    # ---- every update readable: see minirev/gpt_trace.py -----------------------------------
    def watch(self, pairs, name):
        return gpt_trace.watch(self, pairs, name)

    def trace_title(self, pairs, name):
        return gpt_trace.title(pairs, name)

    def trace_terms(self, tokens, pairs, optimizer, name, exact=True):
        return gpt_trace.terms(self, tokens, pairs, optimizer, name, exact)

    # ---- the trunk: embeddings and blocks, (B, T) -> (B, T, C) ----------------------------
    def _check_length(self, T, answers=True):
        if self.pos == "absolute" and T > self.max_len:
            raise UsageError(f"gpt: sentences of {T} tokens are longer than the positional table "
                             f"(max_len={self.max_len}); increase max_len to at least {T}")
        if answers and T <= self.n_target:
            raise UsageError(f"gpt: sentences of {T} tokens leave no context before the "
                             f"{self.n_target} answer tokens; use sentences longer than entity_len")

    def _trunk_forward(self, params, tokens, xp, rng):  # (B, T) -> (B, T, C)
        B, T = tokens.shape
        C, H, dt = params["wte"].shape[1], self.n_head, params["wte"].dtype
        self._check_length(T, answers=False)

        def drop(shape):  # a fresh mask from rng (or None: no dropout), in forward order
            return dropout_mask(rng, shape, self.dropout, xp, dt)

        x, c_tok = embedding_forward(xp, tokens, params["wte"])             # (B, T, C)
        c_pos = None
        if self.pos == "absolute":
            x, c_pos = position_embedding_forward(xp, x, params["wpe"])     # (B, T, C)
        rope = rotary_tables(T, C // H, dt, xp) if self.pos == "rotary" else None  # (T, D) x 2
        x, c_drop = dropout_forward(xp, x, drop((B, T, C)))                 # (B, T, C)
        c_blocks = []
        for l in range(self.n_layer):
            x, c = block_forward(xp, x, params, f"h{l}.", H, rope, drop, self.causal)  # (B, T, C)
            c_blocks.append(c)
        return x, (c_tok, c_pos, c_drop, c_blocks)

    def _trunk_backward(self, dx, cache, grads):  # (B, T, C) -> fills grads (the head's part already there)
        c_tok, c_pos, c_drop, c_blocks = cache
        # the layers of _trunk_forward, undone in reverse order: blocks last to first,
        # embedding dropout, positions, tokens
        for l in reversed(range(self.n_layer)):
            dx = block_backward(dx, c_blocks[l], f"h{l}.", grads)            # (B, T, C)
        dx = dropout_backward(dx, c_drop)
        if c_pos is not None:
            dx, grads["wpe"] = position_embedding_backward(dx, c_pos, grads.get("wpe"))  # (B, T, C), (P, C)
        if self.out_name == "wte":
            # tied: wte is used twice (output layer and input lookup), so the lookup's gradient
            # adds to the output layer's, which _head_backward wrote there
            grads["wte"] += embedding_backward(dx, c_tok)                   # (V, C)
        else:
            grads["wte"] = embedding_backward(dx, c_tok, grads.get("wte"))  # (V, C)

    # ---- the head: final LayerNorm and the output layer, (B, n, C) -> (B*n, V) ---------------
    def _head_forward(self, params, x, xp):
        B, n, C = x.shape
        x, c_lnf = layernorm_forward(xp, x, params["lnf.g"], params["lnf.b"])  # (B, n, C)
        logits, c_out = unembedding_forward(xp, x.reshape(B * n, C), params[self.out_name])  # (B*n, V)
        return logits, (x.shape, c_lnf, c_out)

    def _head_backward(self, dlogits, cache, grads):  # (B*n, V) -> dx (B, n, C); fills grads
        x_shape, c_lnf, c_out = cache
        g = grads
        # reverse order: output layer, then the final LayerNorm
        dx, g[self.out_name] = unembedding_backward(dlogits, c_out, g.get(self.out_name))  # (B*n, C), (V, C)
        dx, g["lnf.g"], g["lnf.b"] = \
            layernorm_backward(dx.reshape(x_shape), c_lnf, g.get("lnf.g"), g.get("lnf.b"))  # (B, n, C)
        return dx                                                           # (B, n, C)

    # ---- the model interface ---------------------------------------------------------------
    def forward_logits(self, params, tokens, xp, rng=None):  # (B, T) -> (B, T, V)
        B, T = tokens.shape
        h, c_trunk = self._trunk_forward(params, tokens, xp, rng)           # (B, T, C)
        logits, c_head = self._head_forward(params, h, xp)                  # (B*T, V)
        return logits.reshape(B, T, -1), (c_trunk, c_head)                  # (B, T, V)

    def backward_logits(self, dlogits, cache):  # (B, T, V) -> grads like params
        c_trunk, c_head = cache
        grads = {}
        # reverse order of forward_logits: head, then trunk
        dh = self._head_backward(dlogits.reshape(-1, dlogits.shape[-1]), c_head, grads)
        self._trunk_backward(dh, c_trunk, grads)
        return {k: grads[k] for k in self.params}

    def forward(self, params, tokens, xp, rng=None):  # (B, T) -> scalar loss
        """Mean cross-entropy of the last L tokens, each predicted from the positions before it
        (loss_whole_sequence: of the last T - 1, every token but the first, as the paper's code's option)."""
        B, T = tokens.shape
        L = T - 1 if self.loss_whole_sequence else self.n_target           # the tokens scored
        self._check_length(T)
        h, c_trunk = self._trunk_forward(params, tokens, xp, rng)           # (B, T, C)
        # only positions T-L-1 .. T-2 predict scored tokens: the head runs on those alone
        logits, c_head = self._head_forward(params, h[:, T - L - 1:T - 1], xp)  # (B*L, V)
        loss, c_ce = cross_entropy_forward(xp, logits, tokens[:, T - L:].reshape(-1))
        return loss, (xp, h.shape, L, c_trunk, c_head, c_ce)

    def backward_into(self, cache, grads):
        xp, h_shape, L, c_trunk, c_head, c_ce = cache
        T = h_shape[1]
        # reverse order of forward: cross-entropy, head, the slice of scored positions, trunk
        dlogits = cross_entropy_backward(1.0, c_ce)                         # (B*L, V)
        dh_answer = self._head_backward(dlogits, c_head, grads)             # (B, L, C)
        dh = xp.zeros(h_shape, dtype=dh_answer.dtype)                       # (B, T, C)
        dh[:, T - L - 1:T - 1] = dh_answer          # other positions feed the loss only via attention
        self._trunk_backward(dh, c_trunk, grads)

    def logits(self, tokens):  # (B, T) -> (B, L, V): the logits that predict the answer
        tokens = to_backend(self.xp, self.check_tokens(tokens))
        B, T = tokens.shape
        L = self.n_target
        self._check_length(T)
        # causal, and no dropout here: the last token is context for no scored prediction, so the
        # trunk runs on the first T-1 positions only (the same numbers, a third less work at T = 3)
        context = tokens[:, :T - 1] if self.causal else tokens
        h, _ = self._trunk_forward(self.params, context, self.xp, None)     # (B, T-1, C)
        logits, _ = self._head_forward(self.params, h[:, T - L - 1:T - 1], self.xp)  # (B*L, V)
        return logits.reshape(B, L, -1)                                     # (B, L, V)

    def next_logits(self, prefix):  # (B, T) -> (B, V): the next-token logits after a prefix
        prefix = to_backend(self.xp, self.check_tokens(prefix))
        h, _ = self._trunk_forward(self.params, prefix, self.xp, None)      # (B, T, C)
        logits, _ = self._head_forward(self.params, h[:, -1:], self.xp)     # (B, V)
        return logits
