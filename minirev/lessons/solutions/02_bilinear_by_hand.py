"""Solutions of lesson 2. Try the exercises first: the lesson checks your own answers."""
import numpy as np


def my_dlogits(p, y):
    onehot = np.eye(p.shape[1])[y]                      # (B, m) 1 at each right answer
    return (p - onehot) / len(y)                        # (B, m) the mean over B sentences gives 1/B


def my_dtheta(ux, dlogits, U):
    # logits = ux @ Theta @ U.T, so dTheta = ux.T @ dlogits @ U
    return ux.T @ (dlogits @ U)                         # (d, d)


# Common wrong answers, and the hint the check gives when yours matches one.
MISTAKES = {
    "dlogits": [
        ("the loss is the MEAN over the B sentences: dlogits carries a factor 1/B",
         lambda p, y: p - np.eye(p.shape[1])[y]),
        ("the gradient is p - onehot: the right answer is pulled UP, so its entry is negative",
         lambda p, y: (np.eye(p.shape[1])[y] - p) / len(y)),
        ("divide by the number of sentences B = len(y), not by the vocabulary size m",
         lambda p, y: (p - np.eye(p.shape[1])[y]) / p.shape[1]),
        ("the log-sum-exp term gives p; the -logit[y] term gives -onehot(y): you need both",
         lambda p, y: p / len(y)),
        ("the log-sum-exp term gives p; the -logit[y] term gives -onehot(y): you need both (yours has no p)",
         lambda p, y: -np.eye(p.shape[1])[y] / len(y)),
    ],
    "dTheta": [
        ("the sentence's first token is the LEFT factor: dTheta = ux^T (dlogits U), not its transpose",
         lambda ux, dl, U: (dl @ U).T @ ux),
        ("dlogits already carries the 1/B of the mean: do not divide by B again",
         lambda ux, dl, U: ux.T @ (dl @ U) / len(ux)),
        ("the sum over sentences is already inside ux^T (...): do not multiply by B",
         lambda ux, dl, U: ux.T @ (dl @ U) * len(ux)),
    ],
}
