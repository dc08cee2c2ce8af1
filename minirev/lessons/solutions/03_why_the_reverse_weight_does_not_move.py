"""Solutions of lesson 3. Try the exercise first: the lesson checks your own answer."""
import numpy as np


def my_term(U, Theta, sentence, a, b, lr, B):
    xi, yi = sentence
    logits = U[xi] @ Theta @ U.T                                # (m,) logit(v | x_i) for every v
    p = np.exp(logits - logits.max())                           # (m,)
    p /= p.sum()                                                # p(v | x_i)
    g = (p @ U - U[yi]) / B                                     # (d,) g_i = (E_p u_v - u_{y_i}) / B
    return -lr * (U[a] @ U[xi]) * (g @ U[b])                    # -lr <u_a, u_{x_i}> <g_i, u_b>


def _g(U, Theta, xi, yi):
    logits = U[xi] @ Theta @ U.T
    p = np.exp(logits - logits.max())
    p /= p.sum()
    return p @ U - U[yi]                                        # without the 1/B


# Common wrong answers, and the hint the check gives when yours matches one.
MISTAKES = {
    "one term of the change of W(y->x)": [
        ("g_i carries the 1/B of the mean loss, once: did you divide by B twice?",
         lambda U, Th, s, a, b, lr, B: -lr * (U[a] @ U[s[0]]) * (_g(U, Th, *s) @ U[b]) / B ** 2),
        ("g_i carries the 1/B of the mean loss: you left it out",
         lambda U, Th, s, a, b, lr, B: -lr * (U[a] @ U[s[0]]) * (_g(U, Th, *s) @ U[b])),
        ("g_i = E_p u_v - u_{y_i} (expected minus right), and a step goes AGAINST the gradient: -lr",
         lambda U, Th, s, a, b, lr, B: lr * (U[a] @ U[s[0]]) * (_g(U, Th, *s) @ U[b]) / B),
        ("a and b swapped: the first factor is <u_a, u_{x_i}>, the READ token against a",
         lambda U, Th, s, a, b, lr, B: -lr * (U[b] @ U[s[0]]) * (_g(U, Th, *s) @ U[a]) / B),
    ],
}
