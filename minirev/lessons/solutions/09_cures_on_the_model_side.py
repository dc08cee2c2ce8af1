"""Solutions of lesson 9. Try the exercises first: the lesson checks your own answers."""


def symmetric_step(Theta, G, lr):
    # gradient descent restricted to symmetric matrices: step along the symmetric part of G
    return Theta - lr * (G + G.T) / 2


def predicted_leaks():
    # tied: wte is shared by both directions (a route); untied: no parameter is shared.
    # (Measured in lesson 9: the printed table is the final word on this machine.)
    return [1, 0, 1, 0]


# Common wrong answers, and the hint the check gives when yours matches one.
MISTAKES = {
    "symmetric step stays symmetric": [
        ("a step along G itself leaves the symmetric matrices: use the symmetric part (G + G^T) / 2",
         lambda Theta, G, lr: Theta - lr * G),
    ],
    "symmetric step moves as gradient descent along symmetric directions": [
        ("(G + G^T) without the 1/2 moves twice as far as gradient descent along symmetric directions",
         lambda Theta, G, lr: Theta - lr * (G + G.T)),
        ("a step goes AGAINST the gradient: Theta - lr (G + G^T)/2", lambda Theta, G, lr: Theta + lr * (G + G.T) / 2),
    ],
    "which variants leak": [
        ("untied, no parameter is shared between the two directions: why would the untied ones leak?",
         lambda: [1, 1, 1, 1]),
        ("tied, wte is both y's output vector (trained by [x -> y]) and y's input vector (read by [y <-])",
         lambda: [0, 0, 0, 0]),
    ],
}
