"""What a trained model is measured by, beyond its loss: plain functions of a model and a dataset.

    alphabet_rank(model, dataset)        where the right answer ranks within its alphabet
    logit_matrix(model, group)           logit(answer j | sentence i), the heatmaps' matrices
    held_out_pairs(dataset)              (trained, never trained reverse) sentences to watch
    chain_step_by_step(model, dataset)   chain of thought: A -> B, then B -> C, against the direct A ~> C
    embedding_similarity(model, dataset) cosine similarity of the learned entity embeddings
"""
import numpy as np

from .backend import to_numpy
from .errors import UsageError


def held_out_pairs(dataset, count=2, controls=False):
    """(seen sentence, unseen sentence) of the first held-out pairs, preferring ones trained forward.

    controls=True adds a third sentence to each pair, a control for the unseen one: its
    prefix with another answer of the same alphabet, drawn at random (seeded by the data's seed).
    """
    seen, unseen = dataset.groups["val seen"], dataset.groups["val unseen"]
    order = sorted(range(len(seen)), key=lambda i: seen[i, dataset.entity_len] != 0)
    pairs = [(seen[i], unseen[i]) for i in order[:count]]
    if not controls:
        return pairs
    L, with_controls = dataset.entity_len, []
    for k, (trained, reverse) in enumerate(pairs):
        answer = reverse[-L:]
        words = next(w for w in (dataset.info["x_words"], dataset.info["y_words"]) if (w == answer).all(1).any())
        others = words[~(words == answer).all(1)]                                # the alphabet's other words
        rng = np.random.default_rng([dataset.info.get("seed", 0), k])          # one seeded stream per pair
        control = np.concatenate([reverse[:-L], others[rng.integers(len(others))]])
        with_controls.append((trained, reverse, control))
    return with_controls


def alphabet_rank(model, dataset):
    """Where the right answer ranks among its alphabet's tokens, on the validation group.

    val_rank: the mean rank of the right first answer token (1 = best; chance is
    (a + 1) / 2 for an alphabet of a tokens); val_top1: how often it ranks first.
    """
    rows = dataset.groups[dataset.val_group]
    logits = to_numpy(model.logits(rows))[:, 0, :]                                 # (n, V)
    candidates = np.take_along_axis(logits, dataset.answer_alphabets(rows), 1)     # (n, a)
    right = logits[np.arange(len(rows)), rows[:, -model.n_target]]                 # (n,)
    rank = 1 + (candidates > right[:, None]).sum(1)                                 # (n,)
    return dict(val_rank=float(rank.mean()), val_top1=float((rank == 1).mean()))


def logit_matrix(model, group, with_relation=True, limit=60):
    """M[i, j] = logit(first token of answer j | sentence i's prefix), for up to `limit` sentences.

    with_relation=False reads the logits given the entity alone, as the public
    code did (a position the loss never trains).
    """
    group = np.asarray(group)[:limit]
    L = model.n_target
    tokens = group if with_relation else np.concatenate([group[:, :L], group[:, -L:]], 1)
    logits = to_numpy(model.logits(tokens))[:, 0, :]                               # (n, V)
    return logits[:, group[:, -L]]                                                 # (n, n)


def chain_step_by_step(model, dataset):
    """Accuracy of chain of thought on the validation triples: A -> B (argmax), then B -> C."""
    first = dataset.groups["B given A (val)"]                        # [a, ->, b]
    second = dataset.groups["C given B (val)"]                       # [b, ->, c]
    L = dataset.entity_len
    b_hat = to_numpy(model.logits(first)).argmax(-1)                 # (n, L) greedy B, token by token
    step2 = np.concatenate([b_hat, second[:, L:L + 1], second[:, -L:]], 1)
    c_hat = to_numpy(model.logits(step2)).argmax(-1)                 # (n, L)
    direct = to_numpy(model.logits(dataset.groups["C given A (val)"])).argmax(-1)
    return dict(step_by_step_acc=float((c_hat == second[:, -L:]).all(1).mean()),
                b_acc=float((b_hat == first[:, -L:]).all(1).mean()),
                direct_acc=float((direct == second[:, -L:]).all(1).mean()))


def embedding_similarity(model, dataset, limit=60):
    """Cosine similarity of the learned embeddings of the entity tokens, and its mean |off-diagonal|."""
    if "wte" not in model.params:
        raise UsageError("the embeddings experiment needs learned token embeddings: use --model gpt")
    tokens = np.unique(np.concatenate([dataset.info["x_words"].ravel(), dataset.info["y_words"].ravel()]))
    E = to_numpy(model.params["wte"]).astype(np.float64)[tokens]                  # (n, C)
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    sim = E @ E.T                                                                   # (n, n)
    off = np.abs(sim[~np.eye(len(sim), dtype=bool)])
    rng = np.random.default_rng(0)
    R = rng.standard_normal(E.shape)
    R /= np.linalg.norm(R, axis=1, keepdims=True)
    off_random = np.abs((R @ R.T)[~np.eye(len(sim), dtype=bool)])
    return sim[:limit, :limit], float(off.mean()), float(off_random.mean())
