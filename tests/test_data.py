"""The data generators reproduce the public code's splits (seed 1234)."""
import numpy as np
import pytest

from minirev.data import chain_data, incontext_data, pairs_data, reversal_data
from minirev.errors import UsageError

pytestmark = pytest.mark.data


@pytest.mark.parametrize("vocab, entity_len, n_train, n_val", [
    (800, 1, 340, 60), (400, 1, 170, 30), (200, 1, 85, 15), (800, 2, 680, 120)],
    ids=["vocab=800", "vocab=400", "vocab=200", "vocab=800,entity_len=2"])
def test_reversal_split_sizes_match_the_public_code(vocab, entity_len, n_train, n_val):
    d = reversal_data(vocab, entity_len, seed=1234)
    assert (len(d.train), len(d.groups["val unseen"])) == (n_train, n_val), (
        f"vocab {vocab}, entities of {entity_len}: {len(d.train)} training and {len(d.groups['val unseen'])} "
        f"val unseen sentences, the public code has {n_train} and {n_val}")
    assert d.vocab_size == vocab + 2 and d.train.shape[1] == 2 * entity_len + 1, (
        f"want vocabulary {vocab + 2} (with '->' and '<-') and sentences of {2 * entity_len + 1} tokens: "
        f"got {d.vocab_size} and {d.train.shape[1]}")


def test_reversal_sentences_are_consistent():
    d = reversal_data(800, 1, seed=1234)
    L = 1
    train = {tuple(s) for s in d.train}
    for seen, unseen in zip(d.groups["val seen"], d.groups["val unseen"]):
        assert tuple(seen) in train and tuple(unseen) not in train, (
            f"exactly one direction of a held-out pair is trained: seen {seen}, unseen {unseen}")
        assert {seen[L], unseen[L]} == {0, 1}, f"one sentence uses '->', the other '<-': seen {seen}, unseen {unseen}"
        assert seen[0] == unseen[-1] and seen[-1] == unseen[0], (
            f"the unseen sentence is the seen one reversed: seen {seen}, unseen {unseen}")
    for fwd, bwd in zip(d.groups["train forward"], d.groups["train backward"]):
        assert fwd[1] == 0 and bwd[1] == 1 and fwd[0] == bwd[2] and fwd[2] == bwd[0], (
            f"a trained pair should read [a -> b] and [b <- a] (-> is 0, <- is 1): forward {fwd}, backward {bwd}")
    entities = d.train[:, [0, 2]]
    assert entities.min() >= 2 and entities.max() <= 801, (
        f"entities are ids 2..vocab+1, got {entities.min()}..{entities.max()}")
    unique = len(np.unique(d.groups["val unseen"], axis=0))
    assert unique == 60, f"the 60 val unseen sentences should all differ, {unique} are distinct"


def test_reversal_same_seed_same_data_and_different_seed_differs():
    a, b, c = reversal_data(seed=1234), reversal_data(seed=1234), reversal_data(seed=1)
    assert np.array_equal(a.train, b.train), "seed 1234 twice gave other training sentences"
    assert not np.array_equal(a.train, c.train), "seed 1 gave the same training sentences as seed 1234"


def test_chain_and_incontext_sizes():
    c = chain_data(800, seed=1234)
    assert (len(c.train), len(c.groups["C given A (val)"])) == (540, 60), (
        f"chain: {len(c.train)} training and {len(c.groups['C given A (val)'])} 'C given A' sentences, want 540 and 60")
    i = incontext_data(800, seed=1234)
    assert (len(i.train), len(i.groups["val"])) == (700, 300), (
        f"incontext: {len(i.train)} training and {len(i.groups['val'])} validation sentences, want 700 and 300")
    assert (i.train[:, 0] == i.train[:, -1]).all() and (i.train[:, 2] == i.train[:, 4]).all(), (
        "incontext sentences read [x, ->, y, <=>, y, <-, x]; first that does not: "
        f"{next(s for s in i.train if s[0] != s[-1] or s[2] != s[4])}")


def test_pairs_data_holds_out_reverse_sentences():
    d = pairs_data(vocab=200, pairs=50, held_out=10, seed=0)
    assert len(d.train) == 90 and len(d.groups["reversal"]) == 10, (
        f"50 pairs with 10 held out: want 90 training and 10 reversal sentences, "
        f"got {len(d.train)} and {len(d.groups['reversal'])}")
    train = {tuple(s) for s in d.train}
    for y, x in d.groups["reversal"]:
        assert (x, y) in train and (y, x) not in train, (
            f"held-out pair: [{x} {y}] should be trained and its reverse [{y} {x}] not; "
            f"[{x} {y}] trained: {(x, y) in train}, [{y} {x}] trained: {(y, x) in train}")


@pytest.mark.parametrize("make, message", [
    pytest.param(lambda: reversal_data(vocab=3), "too small", id="reversal vocab=3"),
    pytest.param(lambda: reversal_data(vocab=0), "vocab must be a positive integer", id="reversal vocab=0"),
    pytest.param(lambda: chain_data(vocab=4), "too small", id="chain vocab=4"),
    pytest.param(lambda: incontext_data(vocab=50), "too small for 100 x and 10 y tokens", id="incontext vocab=50"),
    pytest.param(lambda: pairs_data(vocab=10, pairs=6, held_out=2), "too small for 6 pairs", id="pairs vocab=10"),
])
def test_too_small_vocabulary_is_a_clear_error(make, message):
    with pytest.raises(UsageError, match=message):
        make()


def test_relation_pairs_data_is_the_one_layer_experiment_of_the_paper():
    from minirev.data import relation_pairs_data
    d = relation_pairs_data(pairs=100, both=70)
    assert d.vocab_size == 202 and len(d.train) == 170 and len(d.groups["held-out reverse"]) == 30, (
        f"want vocabulary 202, 170 training and 30 held-out reverse sentences: got {d.vocab_size}, "
        f"{len(d.train)} and {len(d.groups['held-out reverse'])}")
    train = {tuple(s) for s in d.train}
    for b, rel, a in d.groups["held-out reverse"]:
        assert rel == 1 and (a, 0, b) in train and (b, 1, a) not in train, (
            f"held-out reverse [{b} {rel} {a}] should read '<-' (1), with [{a} -> {b}] trained and itself not")
    with pytest.raises(UsageError, match="trained both ways must be between 0 and 100"):
        relation_pairs_data(pairs=100, both=101)
