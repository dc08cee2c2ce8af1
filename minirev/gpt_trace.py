"""The GPT's trace: the watched logits of held-out pairs, and exactly who moved them.

For each held-out pair the trace watches three logits, logit(answer | prefix) of
    the trained sentence           e.g. [317 -> 594]
    its never-trained reverse      [594 <- 317]
    a control                      [594 <- 208]: the reverse's prefix, another answer of the same alphabet
so "the reverse logit did not move" reads against "what moved anything".

The account of one update is exact. Along the straight line from the parameters
before the step, theta, to those after it, theta + dtheta (whatever the optimiser),

    f(theta + dtheta) - f(theta) = int_0^1 grad f(theta + t dtheta) . dtheta dt
                                 = sum over tensors W of < Gbar_W, dtheta_W >,
    Gbar = int_0^1 grad f(theta + t dtheta) dt    (the gradient averaged along the step)

Gauss-Legendre quadrature (POINTS nodes or more) evaluates Gbar: one forward and one
backward of the watched logit per node, on a float64 copy of the model, so the
residual (change - sum of the shares) is the quadrature error alone. The
first-order account < grad f(theta), dtheta > is kept beside it: it is exact only
for small steps, and AdamW's first steps move every weight by about lr, large
next to GPT-2's 0.02 init.

Per sentence, under SGD only: dtheta_W = -lr_W sum_i g_i,W (g_i: sentence i's part
of the minibatch gradient), so the same integral splits exactly by sentence,
    change of f = sum_i -sum_W lr_W < Gbar_W, g_i,W >.
Each g_i is recomputed in float64 at theta with the dropout masks the step drew.
AdamW divides by running moments: its update is no sum over sentences.
"""
import copy

import numpy as np

from .backend import to_numpy

# Gauss-Legendre nodes per step, doubled (up to MAX_POINTS) until |residual| <= TOL |change|.
# Measured on the default demo (python benchmarks/trace_bench.py): AdamW's first two steps, which
# move every weight by about lr, need 32 nodes (16 leave 2e-5 and 3e-4 of the change); later ones 16.
POINTS, MAX_POINTS, TOL = 16, 128, 1e-8
ROLES = ("trained", "unseen", "control")


def labels(pairs, name, L):
    """'logit(594 | 317 ->) trained', ... : three labels per (trained, unseen, control) pair.
    The watched logit is that of the answer's first token (of L), given the prefix."""
    return [f"logit({name(s[-L:][:1])[1:-1]} | {name(s[:-L])[1:-1]}) {role}"
            for pair in pairs for role, s in zip(ROLES, pair)]


def sentences_of(pairs):
    return np.asarray([s for pair in pairs for s in pair])                      # (k, T)


def watch(model, pairs, name):
    sentences = sentences_of(pairs)
    answers = sentences[:, -model.n_target]
    logits = to_numpy(model.logits(sentences))[:, 0, :]                        # (k, V)
    return {label: float(logits[i, answers[i]]) for i, label in enumerate(labels(pairs, name, model.n_target))}


def title(pairs, name):
    return ("trace: watched logits (trained, never-trained reverse, control), each change split exactly by "
            "parameter tensor:\n  share = < gradient averaged along the update, update > (Gauss-Legendre in "
            f"float64, {POINTS} nodes or more until |residual| <= {TOL:g} |change|);\n"
            "  'first order' = < gradient at the start, update >: exact only for small steps")


def logit_gradients(twin, params, sentences):
    """The watched logits at `params` (k,) and the gradient of each, one sentence at a time (float64)."""
    pos = sentences.shape[1] - twin.n_target - 1               # the position that predicts the answer
    values, grads = [], []
    for s in sentences:
        logits, cache = twin.forward_logits(params, s[None], np)                # (1, T, V)
        seed = np.zeros_like(logits)
        seed[0, pos, s[-twin.n_target]] = 1                                     # d logit / d logits
        values.append(logits[0, pos, s[-twin.n_target]])
        grads.append(twin.backward_logits(seed, cache))
    return np.array(values), grads


def logit_values(twin, params, sentences):
    """The watched logits at `params` (k,), forward only (float64)."""
    pos, L = sentences.shape[1] - twin.n_target - 1, twin.n_target
    logits, _ = twin.forward_logits(params, sentences, np)                     # (k, T, V)
    return logits[np.arange(len(sentences)), pos, sentences[:, -L]]


def path_shares(twin, before, delta, sentences, points, keep_mean=False):
    """The logits at the last node (k,) and each one's per-tensor shares (k, tensors) of the change, by
    `points`-node Gauss-Legendre: share_W = sum over nodes t of weight * < grad_W f(theta + t dtheta), dtheta_W >.
    points=0: one node, t = 0, which gives theta's logits and the first-order shares. keep_mean: also the gradients
    averaged along the step (Gbar; at theta for points=0), flattened (k, P), for the split by sentence."""
    names = list(before)
    nodes, weights = np.polynomial.legendre.leggauss(points) if points else (np.array([-1.0]), np.array([2.0]))
    shares = np.zeros((len(sentences), len(names)))                            # (k, tensors)
    mean = np.zeros((len(sentences), sum(before[k].size for k in names))) if keep_mean else None  # (k, P)
    for x, w in zip(nodes, weights):
        t = (x + 1) / 2                                                         # the node on [0, 1]; weight w / 2
        values, grads = logit_gradients(twin, {k: before[k] + t * delta[k] for k in names}, sentences)
        for j, g in enumerate(grads):
            shares[j] += (w / 2) * np.array([np.vdot(g[k], delta[k]) for k in names])
            if keep_mean:
                mean[j] += (w / 2) * flat(g, names)
    return values, shares, mean


def flat(grads, names):
    return np.concatenate([grads[k].ravel() for k in names])                   # (P,)


class StepDraws:
    """A minibatch step's dropout draws, replayed for one sentence at a time.

    The GPT draws every mask with the batch as its first axis, in a fixed order
    (minirev/gpt.py). The first replay draws each mask at the batch's shape from a
    copy of the step's generator (the very numbers the step drew) and keeps it;
    sentence(i) then hands out row i of each mask, in the same order.
    """

    def __init__(self, rng, batch_size):
        self.rng, self.batch_size, self.masks = copy.deepcopy(rng), batch_size, []

    def sentence(self, i):
        self.i, self.n = i, 0
        return self

    def random(self, shape, dtype):
        if self.n == len(self.masks):
            self.masks.append(self.rng.random((self.batch_size, *shape[1:]), dtype=dtype))  # (B, ...)
        self.n += 1
        return self.masks[self.n - 1][self.i:self.i + 1]                        # (1, ...)


def sentence_shares(twin, before, tokens, rng, optimizer, G):
    """(B, k): sentence i's exact share -sum_W lr_W < Gbar_W, g_i,W > in each watched logit's change."""
    names = list(before)
    lr = np.concatenate([np.full(before[k].size, optimizer.lr_for(k)) for k in names])  # (P,)
    draws = None if rng is None else StepDraws(rng, len(tokens))               # None: the step had no dropout
    shares = []
    for i in range(len(tokens)):
        _, cache = twin.forward(before, tokens[i:i + 1], np, None if draws is None else draws.sentence(i))
        g_i = flat(twin.backward(cache), names) / len(tokens)   # the batch loss is the mean over B sentences
        shares.append(G @ (-lr * g_i))                                          # (k,) with G (k, P)
    return np.array(shares)


def groups_of(watched, name, L):
    """The four groups of training sentences, as they relate to one watched sentence."""
    return ("the pair's own sentence", f"sharing the first token {name(watched[:1])[1:-1]}",
            f"sharing the answer {name(watched[-L:])[1:-1]}", "other sentences")


def group_of(row, watched, own, L):
    """0..3: which group of groups_of a training sentence is in; `own` is the pair's trained sentence."""
    if np.array_equal(row, own):
        return 0
    if row[0] == watched[0]:
        return 1
    return 2 if np.array_equal(row[-L:], watched[-L:]) else 3


def terms(model, tokens, pairs, optimizer, name, exact=True):
    """Called before a step on `tokens`; returns its account, computed after the step.

    account(old, rng): `old` the parameters before the step, `rng` a copy of the
    dropout generator as the step found it. For each watched logit a dict: the
    float64 before/after/change, the per-tensor shares as terms, first_order, and
    under SGD the per-sentence shares (label, group, value). exact=False: the shares
    are first order (one backward per logit instead of one per node; the residual
    is then the first-order error).
    """
    tokens, sentences, L = np.asarray(tokens), sentences_of(pairs), model.n_target
    owns = [pair[0] for pair in pairs for _ in pair]                            # each watched sentence's pair

    def account(old, rng):
        twin = model.copy(dtype=np.float64, backend="numpy")                   # theta + dtheta, in float64
        after = twin.params
        before = {k: to_numpy(v).astype(np.float64) for k, v in old.items()}  # theta
        delta = {k: after[k] - before[k] for k in before}                      # the update the step made
        f1 = logit_values(twin, after, sentences)
        sgd = getattr(optimizer, "name", None) == "sgd"
        f0, first_shares, first_G = path_shares(twin, before, delta, sentences, 0, keep_mean=sgd and not exact)
        shares, G, points = first_shares, first_G, 0
        while exact:               # more nodes until the shares add up to the change (the residual is known)
            points = 2 * points if points else POINTS
            _, shares, G = path_shares(twin, before, delta, sentences, points, keep_mean=sgd)
            if np.all(np.abs(f1 - f0 - shares.sum(1)) <= TOL * np.abs(f1 - f0) + 1e-13) or points >= MAX_POINTS:
                break
        by_sentence = sentence_shares(twin, before, tokens, rng, optimizer, G) if sgd else None
        result = {}
        for j, label in enumerate(labels(pairs, name, L)):
            parts = sorted(zip(before, shares[j].tolist()), key=lambda p: -abs(p[1]))
            first = float(first_shares[j].sum())
            result[label] = dict(before=float(f0[j]), after=float(f1[j]), change=float(f1[j] - f0[j]),
                                 terms=parts, first_order=first, points=points)
            if sgd:
                groups = groups_of(sentences[j], name, L)
                rows = [(name(row), groups[group_of(row, sentences[j], owns[j], L)], float(by_sentence[i, j]))
                        for i, row in enumerate(tokens)]
                result[label].update(sentences=sorted(rows, key=lambda r: -abs(r[2])), groups=list(groups))
            else:
                result[label]["note"] = (f"{getattr(optimizer, 'name', 'this optimiser')}: the update divides by "
                                         "running moments, so it is no sum over sentences and has no exact "
                                         "per-sentence split (--optimizer sgd has one); the tensors' shares "
                                         "and the minibatch membership are the account")
        return result
    return account
