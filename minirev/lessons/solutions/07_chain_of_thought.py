"""Solutions of lesson 7. Try the exercise first: the lesson checks your own answer."""
import numpy as np


def two_step_decode(model, prompts):
    b_hat = model.next_logits(prompts).argmax(-1)                    # (n,) step 1: [a ->] -> b_hat
    second = np.stack([b_hat, prompts[:, 1]], axis=1)                # (n, 2) [b_hat ->]
    c_hat = model.next_logits(second).argmax(-1)                     # (n,) step 2: [b_hat ->] -> c_hat
    return b_hat, c_hat


def _direct_second_step(model, prompts):
    b_hat = model.next_logits(prompts).argmax(-1)
    return b_hat, model.next_logits(np.stack([prompts[:, 0], np.ones_like(b_hat)], axis=1)).argmax(-1)


# Common wrong answers, and the hint the check gives when yours matches one.
MISTAKES = {
    "two-step decoding": [
        ("the second step reads [b_hat ->], the predicted b with the relation token ->, not [a ~>]",
         _direct_second_step),
        ("take the ARGMAX over the vocabulary (axis -1) of the next-token logits",
         lambda model, prompts: (model.next_logits(prompts).argmin(-1), model.next_logits(prompts).argmin(-1))),
    ],
}
