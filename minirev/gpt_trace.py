"""The GPT's trace: the watched logits of held-out pairs, and who moved them.

For each (trained, unseen) pair the trace watches logit(answer | prefix) of
both sentences. The account of a change is first order and split by
parameter tensor: change of logit ~ sum over tensors of <d logit / d tensor,
update of tensor>. It works with any optimiser, since it reads the update
that was made.
"""
import numpy as np

from .backend import to_numpy


def labels(pairs, name):
    out = []
    for seen, unseen in pairs:
        out += [f"logit({name(seen[-1:])[1:-1]} | {name(seen[:-1])[1:-1]}) trained",
                f"logit({name(unseen[-1:])[1:-1]} | {name(unseen[:-1])[1:-1]}) unseen"]
    return out


def sentences_of(pairs):
    return np.asarray([s for pair in pairs for s in pair])                      # (k, T)


def watch(model, pairs, name):
    sentences = sentences_of(pairs)
    answers = sentences[:, -model.n_target]
    logits = to_numpy(model.logits(sentences))[:, 0, :]                        # (k, V)
    return {label: float(logits[i, answers[i]]) for i, label in enumerate(labels(pairs, name))}


def title(pairs, name):
    return ("trace: watched logits, and each parameter tensor's first-order share of their change\n"
            "  (first order: it approaches the actual change as the updates get small; AdamW's first steps move "
            "every weight by about lr, large next to GPT-2's 0.02 init, so early steps are explained only "
            "roughly; a smaller --lr gives a closer account)")


def terms(model, tokens, pairs, optimizer, name):
    """Called before a step: the gradients of the watched logits; returns the account of the step."""
    xp, L = model.xp, model.n_target
    sentences = sentences_of(pairs)
    pos, answers = sentences.shape[1] - L - 1, sentences[:, -L]
    grads = []
    for i in range(len(sentences)):              # one backward per watched logit
        logits, cache = model.forward_logits(model.params, xp.asarray(sentences), xp)
        seed = np.zeros(logits.shape, dtype=model.dtype)
        seed[i, pos, answers[i]] = 1                                           # d logit_i / d logits
        grads.append(model.backward_logits(xp.asarray(seed), cache))

    def account(old):
        result = {}
        for label, g in zip(labels(pairs, name), grads):
            parts = [(k, float(xp.sum(g[k] * (model.params[k] - old[k])))) for k in g]
            result[label] = sorted(parts, key=lambda p: -abs(p[1]))
        return result
    return account
