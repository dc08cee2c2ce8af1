"""The bilinear theorem (arXiv 2405.04669, section 3) as a number: eps_min over the whole run.

The theorem: with high probability over the embeddings, at every step t,

    L_rev(t) / L_rev(0)  >=  (L(t) / L(0)) ** eps,

with eps small when the embedding dimension d is large (d polynomial in the number
of pairs n). L is the training loss, L_rev the loss of the held-out reverse
sentences. Taking logs (log(L(t)/L(0)) < 0 once training has started), the bound
holds at step t for every eps >= log(L_rev(t)/L_rev(0)) / log(L(t)/L(0)), so the
smallest eps that makes it hold at EVERY step is

    eps_min = max(0, max_t log(L_rev(t)/L_rev(0)) / log(L(t)/L(0))).

eps_min = 0: the reversal loss never fell below its start. A training loss above its
start at some step, with the reversal loss below its own, would leave no eps >= 0 at
all: eps_min is then inf, and the claim fails.

Training in the effective weights, so that large d costs nothing. The model is
logit(y | x) = u_x^T Theta u_y (minirev/bilinear.py), with U (m, d) fixed and
Theta (d, d) started at 0. Its gradient is U^T S U, where S (m, m) holds in row a the
sum of the logit gradients of the sentences that start with a:

    dlogits_i = (p(. | x_i) - onehot(y_i)) / B,        S[a, :] = sum_{i: x_i = a} dlogits_i,

because logit_i = u_{x_i}^T Theta U^T. So one step Theta <- Theta - lr U^T S U moves
the effective weights W = U Theta U^T (m, m), W[a, b] = u_a^T Theta u_b, by

    W <- W - lr K S K,          K = U U^T (m, m), K[a, b] = <u_a, u_b>, the overlaps.

A step costs O(m^3) whatever d is, and d enters only through K. The reverse weight of
a held-out pair, W[y, x], changes by -lr sum_a K[y, a] (S K)[a, x]: y starts no
training sentence, so every a in the sum is ANOTHER token and K[y, a] is an overlap
of two different embeddings, ~1/sqrt(d) (exactly 0 for one-hot, where K = I).
Only the rows of W that some sentence reads are kept (the tokens that start a
training or a held-out sentence). ``tests/test_theory.py`` checks this form against
the d x d update of minirev's Bilinear model.

Shapes: k runs side by side (embedding seeds and dimensions), B training sentences,
F tokens that start one, R rows of W kept, m tokens in the vocabulary.
"""
import math

import numpy as np

from .bilinear import embeddings
from .data import pairs_data
from .layers import softmax_forward

ONE_HOT = None
VOCAB, LR, HELD_OUT_SHARE = 200, 20.0, 0.2      # the bilinear experiment's settings: 10 of 50 pairs held out
SMALL = 0.01                                     # "eps small": the yardstick for the smallest sufficient d


def overlaps(vocab, dims, seeds):
    """K = U U^T (k, m, m) for every (dim, seed), one-hot (dim None) once: the runs' only difference."""
    runs = [(dim, seed) for dim in dims for seed in (seeds if dim is not ONE_HOT else seeds[:1])]
    K = []
    for dim, seed in runs:
        U = embeddings(vocab, dim, seed)                                        # (m, d) the Bilinear model's own
        K.append(U @ U.T)                                                       # (m, m) K[a, b] = <u_a, u_b>
    return runs, np.stack(K)


def nll(logits, targets):  # (k, N, m), (N,) -> (k,)
    """Mean -log softmax(logits)[target] of each run, by log sum exp."""
    shifted = logits - logits.max(axis=-1, keepdims=True)                      # (k, N, m)
    logz = np.log(np.exp(shifted).sum(axis=-1))                                 # (k, N)
    return (logz - shifted[:, np.arange(len(targets)), targets]).mean(axis=1)


def descend(K, data, lr, steps):
    """Full-batch gradient descent on the pairs data in the effective weights: W <- W - lr K S K.

    Returns (tokens of the rows kept, W of those rows (k, R, m) at the end, the training and the
    reversal loss of every run at every step (k, steps + 1) each).
    """
    x, y = data.train[:, 0], data.train[:, 1]                                   # (B,) sentences x -> y
    held = data.groups["reversal"]                                              # (H, 2) y -> x never trained
    starts = np.unique(x)                                                       # (F,)
    rows = np.unique(np.concatenate([starts, held[:, 0]]))                      # (R,)
    first = (starts[:, None] == x[None, :]).astype(np.float64)                  # (F, B) 1: sentence i starts with a
    K_rows = K[:, rows][:, :, starts]                                           # (k, R, F) K[r, a]
    train_row, held_row = np.searchsorted(rows, x), np.searchsorted(rows, held[:, 0])
    W = np.zeros((len(K), len(rows), K.shape[-1]))                              # (k, R, m) Theta = 0
    train, reversal = [], []
    for t in range(steps + 1):
        logits = W[:, train_row]                                                # (k, B, m) W[x_i, :]
        train.append(nll(logits, y))
        reversal.append(nll(W[:, held_row], held[:, 1]))
        if t == steps:
            break
        dlogits, _ = softmax_forward(np, logits)                                # (k, B, m) p(. | x_i)
        dlogits[:, np.arange(len(y)), y] -= 1
        dlogits /= len(y)                                                       # (p - onehot(y_i)) / B
        S = first @ dlogits                                                     # (k, F, m) S[a, :]
        W -= lr * K_rows @ (S @ K)                                              # (k, R, m) W - lr K S K
    return rows, W, np.array(train).T, np.array(reversal).T


def eps_min(train, reversal):  # (k, T), (k, T) -> (k,), (k,)
    """The smallest eps >= 0 with reversal(t)/reversal(0) >= (train(t)/train(0))^eps at every step,
    and the step where it is reached (0 when eps_min is 0)."""
    log_train = np.log(train[:, 1:] / train[:, :1])                             # (k, T-1)
    log_rev = np.log(reversal[:, 1:] / reversal[:, :1])                         # (k, T-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        needed = np.where(log_train < 0, log_rev / log_train, 0.0)              # the eps step t needs
    needed[(log_train >= 0) & (log_rev < 0)] = np.inf                           # no eps >= 0 holds there
    worst = needed.argmax(axis=1)
    eps = np.maximum(needed.max(axis=1), 0.0)
    return eps, np.where(eps > 0, worst + 1, 0)


def vocab_for(pairs):
    """The vocabulary m: the experiment's 200 tokens, or 2n when the pairs need more tokens than that."""
    return max(VOCAB, 2 * pairs)


def run_bound(pairs, dims, seeds, steps, lr=LR, data_seed=0):
    """eps_min of every (n, d, embedding seed): a list of rows, one per n and d (one-hot: one seed)."""
    results = []
    for n in pairs:
        vocab = vocab_for(n)
        data = pairs_data(vocab, n, max(1, round(HELD_OUT_SHARE * n)), data_seed)
        runs, K = overlaps(vocab, dims, seeds)
        _, _, train, reversal = descend(K, data, lr, steps)
        eps, at = eps_min(train, reversal)
        for dim in dims:
            mine = [i for i, (d, _) in enumerate(runs) if d == dim]
            results.append(dict(pairs=n, vocab=vocab, dim=dim, label="one-hot" if dim is ONE_HOT else f"d={dim}",
                                seeds=[runs[i][1] for i in mine], eps_min=eps[mine].tolist(),
                                at_step=at[mine].tolist(), train_end=train[mine, -1].tolist(),
                                reversal_end=reversal[mine, -1].tolist(),
                                train=train[mine].mean(0).tolist(), reversal=reversal[mine].mean(0).tolist()))
    return results


def fit_slope(results, n):
    """Slope and intercept of log(worst eps_min) against log d over the Gaussian dimensions of n with
    eps_min > 0 for some seed (None if fewer than two), and the smallest d whose worst eps_min <= SMALL."""
    rows = [r for r in results if r["pairs"] == n and r["dim"] is not ONE_HOT]
    worst = [(r["dim"], max(r["eps_min"])) for r in rows]
    fit = [(d, e) for d, e in worst if 0 < e < math.inf]
    slope = np.polyfit(np.log([d for d, _ in fit]), np.log([e for _, e in fit]), 1).tolist() if len(fit) > 1 else None
    enough = [d for d, e in worst if e <= SMALL]
    return slope, min(enough) if enough else None
