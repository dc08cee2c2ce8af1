"""Solutions of lesson 6. Try the exercise first: the lesson checks your own answer."""
import numpy as np


def tensor_share(model, old_params, new_params, sentence, name):
    logits, cache = model.forward_logits(old_params, sentence[None, :], np)   # (1, T, V)
    seed = np.zeros_like(logits)                                             # (1, T, V)
    seed[0, -2, sentence[-1]] = 1.0                     # d logit / d logits: 1 at the answer logit
    grads = model.backward_logits(seed, cache)          # d logit / d every tensor
    return float(np.sum(grads[name] * (new_params[name] - old_params[name])))


def _share(model, old, new, sentence, name, position=-2, at_new=False, sign=1.0):
    params = new if at_new else old
    logits, cache = model.forward_logits(params, sentence[None, :], np)
    seed = np.zeros_like(logits)
    seed[0, position, sentence[-1]] = 1.0
    grads = model.backward_logits(seed, cache)
    return sign * float(np.sum(grads[name] * (new[name] - old[name])))


# Common wrong answers, and the hint the check gives when yours matches one.
MISTAKES = {
    "share of wte": [
        ("the answer is predicted at the LAST PREFIX position, T-2 (index -2), not at the answer's own position",
         lambda m, o, n, s, name: _share(m, o, n, s, name, position=-1)),
        ("take d logit / d W at the OLD parameters, before the step", 
         lambda m, o, n, s, name: _share(m, o, n, s, name, at_new=True)),
        ("the update is new - old, not old - new", lambda m, o, n, s, name: _share(m, o, n, s, name, sign=-1.0)),
    ],
}
