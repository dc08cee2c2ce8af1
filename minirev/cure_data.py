"""The interventions that change the data: each takes the reversal Dataset and returns a new one.

    data = reversal_data(800, 1, seed)                      # [x, ->, y] and [y, <-, x]
    identity_bridge(data)                                   # + [e, id, e] for every entity e
    identity_bridge(data, form="composition")               # + [x, ->, <-, x], [y, <-, ->, y]; forward facts x2
    reverse_training(data)                                  # + every training sentence read backwards

The evaluation groups stay the same questions (padded like the training
sentences where a form needs a longer sentence), so every row of the cures
table answers the same held-out reverse questions. New tokens take the next
free ids, and ``vocab_size`` grows to cover them.
"""
from dataclasses import replace

import numpy as np

from .data import BWD, FWD
from .errors import UsageError

FORMS = ("naive", "composition")


def entities(data):
    """Every entity of the data set, held-out ones included: (2 pairs, L) token ids."""
    return np.concatenate([data.info["x_words"], data.info["y_words"]])


def identity_bridge(data, form="naive", upweight=2):
    """The Identity Bridge (Ma, Huang, Zhu, Sojoudi, arXiv 2602.02470): "A is A" sentences for every entity.

    naive:        [e, id, e] with a new relation token "id" for every entity e.
    composition:  the identity written as the forward relation followed by the reverse one,
                  [x, ->, <-, x] ("the <- of the -> of x is x") and [y, <-, ->, y]; these are one token
                  longer, so every other sentence gets a new padding token in front. The forward
                  facts of the held-out pairs (trained one way only) appear `upweight` times.
                  (The paper's exact composition sentences could not be checked here: this is our form.)
    """
    if form not in FORMS:
        raise UsageError(f"unknown identity-bridge form {form!r}: choose one of {', '.join(FORMS)}")
    new = data.vocab_size                                        # the "id" token, or the padding token
    x, y = data.info["x_words"], data.info["y_words"]            # (n, L) each
    col = lambda t, n: np.full((n, 1), t)                       # noqa: E731
    if form == "naive":
        e = entities(data)
        bridge = np.concatenate([e, col(new, len(e)), e], 1)     # (2n, 2L + 1) [e, id, e]
        train = np.concatenate([data.train, bridge])
        groups = dict(data.groups, identity=bridge)
    else:
        bridge = np.concatenate([np.concatenate([x, col(FWD, len(x)), col(BWD, len(x)), x], 1),   # [x, ->, <-, x]
                                 np.concatenate([y, col(BWD, len(y)), col(FWD, len(y)), y], 1)])  # [y, <-, ->, y]
        pad = lambda rows: np.concatenate([col(new, len(rows)), rows], 1)   # noqa: E731  [pad, ...]
        extra = np.concatenate([data.groups["val seen"]] * (upweight - 1)) if upweight > 1 else data.train[:0]
        train = np.concatenate([pad(data.train), pad(extra), bridge])
        groups = {**{k: pad(v) for k, v in data.groups.items()}, "identity": bridge}
    return replace(data, train=train.astype(np.int64), groups={k: v.astype(np.int64) for k, v in groups.items()},
                   vocab_size=data.vocab_size + 1, info=dict(data.info, bridge=form, new_token=new))


def reverse_training(data):
    """Reverse training (Golovneva et al., arXiv 2403.13799): every training sentence also read backwards.

    Entity-preserving: [a1 a2, ->, b1 b2] also as [b1 b2, ->, a1 a2] (the entities keep their inner
    order; the relation token is kept as it is), a second "language" in the same vocabulary. For
    entity length 1 this is plain token reversal.
    """
    L = data.entity_len
    first, relation, second = data.train[:, :L], data.train[:, L:-L], data.train[:, -L:]
    if relation.shape[1] != 1:
        raise UsageError(f"reverse training expects sentences [entity, relation, entity] of 2 x {L} + 1 tokens, "
                         f"got {data.train.shape[1]}")
    reversed_copy = np.concatenate([second, relation, first], 1)
    return replace(data, train=np.concatenate([data.train, reversed_copy]).astype(np.int64),
                   info=dict(data.info, reversed=True))


RECIPES = {"none": lambda data: data, "bridge": identity_bridge, "reverse": reverse_training}


def apply(recipe, data):
    """recipe = (name, keyword arguments), e.g. ("bridge", {"form": "composition"})."""
    name, kwargs = recipe
    if name not in RECIPES:
        raise UsageError(f"unknown data recipe {name!r}: choose one of {', '.join(RECIPES)}")
    return RECIPES[name](data, **kwargs)
