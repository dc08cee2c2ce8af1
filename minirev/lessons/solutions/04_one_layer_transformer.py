"""Solutions of lesson 4. Try the exercises first: the lesson checks your own answers."""
import math

import numpy as np


def yz_from_attention(W_Q, W_K, W_V, W_O):
    d = W_Q.shape[1]
    Z = W_Q @ W_K.T / math.sqrt(d)      # (M, M) Z[q, t] = e_q^T W_Q W_K^T e_t / sqrt(d)
    Y = W_V @ W_O                       # (M, M) logits[v] = sum_u f_u (W_V W_O)[u, v]
    return Y, Z


def my_l2norm_backward(df, c):
    norm = np.sqrt((c * c).sum(axis=1, keepdims=True))              # (B, 1) r
    f = c / norm                                                    # (B, M)
    # J^T df = (df - f (f . df)) / r: remove df's component along f, divide by r
    return (df - f * (f * df).sum(axis=1, keepdims=True)) / norm    # (B, M)


def my_softmax_backward(db, b):
    # ds_j = sum_k db_k b_k (delta_kj - b_j) = b_j (db_j - sum_k b_k db_k)
    return b * (db - (b * db).sum(axis=1, keepdims=True))           # (B, K)


def predicted_heldout_vs_uniform():
    # Y[B, :] never gets a gradient (B is never in a training context), and every
    # trained [B_j <- A_j] pushes Y[<-, A] down as a wrong answer: below 1/M.
    return -1


def _norm(c):
    return np.sqrt((c * c).sum(axis=1, keepdims=True))


# Common wrong answers, and the hint the check gives when yours matches one.
MISTAKES = {
    "Y/Z step 1, the scores Z[x_q, x_t]": [
        ("Z[q, t] has the query token as its row: W_Q W_K^T, not W_K W_Q^T",
         lambda Q, K, V, O: (V @ O, K @ Q.T / math.sqrt(Q.shape[1]))),
        ("the scores are divided by sqrt(d), the head dimension",
         lambda Q, K, V, O: (V @ O, Q @ K.T)),
        ("two things: the query token is Z's row (W_Q W_K^T, not W_K W_Q^T), and the scores are divided by sqrt(d)",
         lambda Q, K, V, O: (V @ O, K @ Q.T)),
    ],
    "Y/Z step 2, the same logits": [
        ("Y[u, v] goes from the context token u (row) to the next token v (column): W_V W_O, not its transpose",
         lambda Q, K, V, O: ((V @ O).T, Q @ K.T / math.sqrt(Q.shape[1]))),
        ("two things: Y = W_V W_O (not its transpose), and Z = W_Q W_K^T / sqrt(d) (query row, scaled)",
         lambda Q, K, V, O: ((V @ O).T, K @ Q.T)),
    ],
    "l2-normalisation backward": [
        ("I - f f^T removes the component of df along f (scaling c does not change f): you left it out",
         lambda df, c: df / _norm(c)),
        ("after removing the component along f, divide by ||c||",
         lambda df, c: df - c / _norm(c) * ((c / _norm(c)) * df).sum(axis=1, keepdims=True)),
        ("project out the UNIT vector f = c/||c||, not c itself",
         lambda df, c: (df - c * (c * df).sum(axis=1, keepdims=True)) / _norm(c)),
        ("each row is its own sentence: sum over axis=1 (the M entries of a row), with keepdims",
         lambda df, c: (df - c / _norm(c) * ((c / _norm(c)) * df).sum(axis=0, keepdims=True)) / _norm(c)),
    ],
    "softmax backward": [
        ("the softmax couples the entries: besides b * db there is the term -b (sum_k b_k db_k)",
         lambda db, b: b * db),
        ("the sum is weighted by b: sum_k b_k db_k, not sum_k db_k",
         lambda db, b: b * (db - db.sum(axis=1, keepdims=True))),
        ("each row is its own softmax: sum over axis=1, with keepdims",
         lambda db, b: b * (db - (b * db).sum(axis=0, keepdims=True))),
        ("the whole bracket is multiplied by b_j: b * (db - sum b db)",
         lambda db, b: db - (b * db).sum(axis=1, keepdims=True)),
    ],
    "held-out answer vs the uniform guess": [
        ("the reverse entry Y[B, A] is never trained, but is that all the question [B <-] reads?", lambda: 0),
        ("nothing raises Y[B, A]: B is never in a training context", lambda: 1),
    ],
}
