"""The data generators reproduce the public code's splits (seed 1234)."""
import numpy as np
import pytest

from minirev.data import chain_data, incontext_data, pairs_data, reversal_data
from minirev.errors import UsageError

pytestmark = pytest.mark.data


@pytest.mark.parametrize("vocab, entity_len, n_train, n_val", [
    (800, 1, 340, 60), (400, 1, 170, 30), (200, 1, 85, 15), (800, 2, 680, 120)])
def test_reversal_split_sizes_match_the_public_code(vocab, entity_len, n_train, n_val):
    d = reversal_data(vocab, entity_len, seed=1234)
    assert (len(d.train), len(d.groups["val unseen"])) == (n_train, n_val)
    assert d.vocab_size == vocab + 2 and d.train.shape[1] == 2 * entity_len + 1


def test_reversal_sentences_are_consistent():
    d = reversal_data(800, 1, seed=1234)
    L = 1
    train = {tuple(s) for s in d.train}
    for seen, unseen in zip(d.groups["val seen"], d.groups["val unseen"]):
        assert tuple(seen) in train and tuple(unseen) not in train, "exactly one direction of a held-out pair is trained"
        assert {seen[L], unseen[L]} == {0, 1}, "one sentence uses '->', the other '<-'"
        assert seen[0] == unseen[-1] and seen[-1] == unseen[0], "the unseen sentence is the seen one reversed"
    for fwd, bwd in zip(d.groups["train forward"], d.groups["train backward"]):
        assert fwd[1] == 0 and bwd[1] == 1 and fwd[0] == bwd[2] and fwd[2] == bwd[0]
    entities = d.train[:, [0, 2]]
    assert entities.min() >= 2 and entities.max() <= 801, "entities are ids 2..vocab+1"
    assert len(np.unique(d.groups["val unseen"], axis=0)) == 60


def test_reversal_same_seed_same_data_and_different_seed_differs():
    a, b, c = reversal_data(seed=1234), reversal_data(seed=1234), reversal_data(seed=1)
    assert np.array_equal(a.train, b.train) and not np.array_equal(a.train, c.train)


def test_chain_and_incontext_sizes():
    c = chain_data(800, seed=1234)
    assert (len(c.train), len(c.groups["C given A (val)"])) == (540, 60)
    i = incontext_data(800, seed=1234)
    assert (len(i.train), len(i.groups["val"])) == (700, 300)
    assert (i.train[:, 0] == i.train[:, -1]).all() and (i.train[:, 2] == i.train[:, 4]).all()


def test_pairs_data_holds_out_reverse_sentences():
    d = pairs_data(vocab=200, pairs=50, held_out=10, seed=0)
    assert len(d.train) == 90 and len(d.groups["reversal"]) == 10
    train = {tuple(s) for s in d.train}
    for y, x in d.groups["reversal"]:
        assert (x, y) in train and (y, x) not in train


@pytest.mark.parametrize("make, message", [
    (lambda: reversal_data(vocab=3), "too small"),
    (lambda: reversal_data(vocab=0), "vocab must be a positive integer"),
    (lambda: chain_data(vocab=4), "too small"),
    (lambda: incontext_data(vocab=50), "too small for 100 x and 10 y tokens"),
    (lambda: pairs_data(vocab=10, pairs=6, held_out=2), "too small for 6 pairs"),
])
def test_too_small_vocabulary_is_a_clear_error(make, message):
    with pytest.raises(UsageError, match=message):
        make()


def test_relation_pairs_data_is_the_one_layer_experiment_of_the_paper():
    from minirev.data import relation_pairs_data
    d = relation_pairs_data(pairs=100, both=70)
    assert d.vocab_size == 202 and len(d.train) == 170 and len(d.groups["held-out reverse"]) == 30
    train = {tuple(s) for s in d.train}
    for b, rel, a in d.groups["held-out reverse"]:
        assert rel == 1 and (a, 0, b) in train and (b, 1, a) not in train
    with pytest.raises(UsageError, match="trained both ways must be between 0 and 100"):
        relation_pairs_data(pairs=100, both=101)
