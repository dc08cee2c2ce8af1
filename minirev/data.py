"""The data sets of the paper, as integer token arrays.

A sentence is one row of token ids. The models score the last ``entity_len``
tokens of a row (the answer), given the tokens before it.

The multi-layer data sets reproduce the public code's generators (GitHub
marlo-z/reversal_curse_analysis) draw for draw: they use NumPy's legacy
``RandomState`` seeded once, in the same order of calls, so seed 1234 gives
the very sentences and the very train/validation split of the paper's runs.
(``RandomState`` is still an explicit generator object, never global state.)
"""
import math
from dataclasses import dataclass, field

import numpy as np

from .errors import UsageError, readable

DATA_LIMIT = 10 ** 9       # bytes: the largest word table a generator may build

FWD, BWD, THEN = 0, 1, 1          # relation tokens: "->", "<-"; the chain's "~>" reuses id 1
RELATION_NAMES = {"reversal": {0: "->", 1: "<-"}, "chain": {0: "->", 1: "~>"},
                  "incontext": {0: "->", 1: "<-", 2: "<=>"}, "pairs": {}}


@dataclass
class Dataset:
    """Training sentences plus named evaluation groups, all (N, T) int arrays.

    groups: e.g. "train forward", "train backward", "val seen", "val unseen".
    val_group: the group whose loss is *the* validation loss of the experiment.
    """
    name: str
    train: np.ndarray
    groups: dict
    vocab_size: int                   # the model's vocabulary, special tokens included
    entity_len: int = 1
    val_group: str = "val unseen"
    info: dict = field(default_factory=dict)

    def token_name(self, t):
        return RELATION_NAMES[self.name].get(int(t), str(int(t)))

    def sentence(self, row):
        return "[" + " ".join(self.token_name(t) for t in row) + "]"

    def answer_alphabets(self, rows):  # (n, T) -> (n, a)
        """For each sentence, the tokens its first answer token is drawn from (its alphabet).

        A model that knew the alphabet and nothing about the pair would score
        log(alphabet size) per answer token: a stricter yardstick than log |V|.
        """
        alphabets = self.info["alphabets"]
        first = np.asarray(rows)[:, -self.entity_len]
        found = [next(a for a in alphabets if t in a) for t in first]
        return np.stack(found)

    def log_alphabet(self):
        """The NLL of a uniform guess within the answer's alphabet, per answer token (as the NLL is)."""
        return float(self.info.get("log_alphabet", np.log(len(self.info["alphabets"][0]))))

    def summary(self):
        sizes = ", ".join(f"{k} {len(v)}" for k, v in self.groups.items())
        return f"{self.name} data: {len(self.train)} training sentences ({sizes}); vocabulary {self.vocab_size}"


def _check_positive(**sizes):
    for name, value in sizes.items():
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise UsageError(f"{name} must be a positive integer, got {value!r}")


def _words(rs, alphabet, entity_len):
    """All entity_len-token words over an alphabet, in shuffled order.

    Row i is the i-th tuple of itertools.product(alphabet, repeat=entity_len)
    (the public code's enumeration): the digits of i in base |alphabet|, so the
    shuffle, and every draw after it, is the same; built without Python tuples.
    """
    A = len(alphabet)
    index = np.arange(A ** entity_len)                                        # (A^L,)
    digits = (index[:, None] // A ** np.arange(entity_len - 1, -1, -1)) % A   # (A^L, L) most significant first
    words = np.asarray(alphabet)[digits]
    rs.shuffle(words)
    return words


def _check_table_size(vocab, entity_len, alphabets):
    """The generators enumerate every word (alphabet^entity_len of them, as the public code does) of
    `alphabets` alphabets (0: a permutation of the vocabulary only): refuse, before allocating,
    tables over DATA_LIMIT bytes."""
    A = vocab // 4
    words = A ** entity_len if entity_len * math.log2(max(A, 2)) < 80 else 2 ** 80
    # at the peak: the tables already drawn, and the index, digits and words of the one being built
    nbytes = 8 * vocab + 8 * words * (alphabets * entity_len + entity_len + 1)
    what = f"with --entity-len {entity_len} enumerates {A}^{entity_len} words per alphabet" if alphabets \
        else "draws from a permutation of the whole vocabulary"
    if nbytes > DATA_LIMIT:
        raise UsageError(f"--vocab {vocab} {what}, about {readable(nbytes)}, over the data limit of "
                         f"{readable(DATA_LIMIT)}: use a smaller --entity-len or --vocab")


def reversal_data(vocab=800, entity_len=1, seed=1234, split=0.7):
    """The reversal experiment: "x -> y" and "y <- x" for n entity pairs.

    70% of pairs are trained in both directions; for the other 30% one random
    direction is trained and the other is the validation set ("val unseen").
    vocab 800, entity length 1: 200 pairs, 340 training and 60 validation sentences.
    """
    _check_positive(vocab=vocab, entity_len=entity_len)
    alphabet_size = vocab // 4
    if alphabet_size < 2:
        raise UsageError(f"vocabulary {vocab} is too small for the reversal data: it needs at least "
                         "2 tokens per alphabet (use --vocab 8 or more; the paper uses 800)")
    _check_table_size(vocab, entity_len, 2)
    rs = np.random.RandomState(seed)
    x_alphabet, y_alphabet = rs.choice(vocab, (2, alphabet_size), replace=False) + 2
    x_words = _words(rs, x_alphabet, entity_len)
    y_words = _words(rs, y_alphabet, entity_len)
    size = min(len(x_words), round(2 * alphabet_size))
    x_words = x_words[rs.choice(len(x_words), size=size, replace=False)]
    y_words = y_words[rs.choice(len(y_words), size=size, replace=False)]
    forward = np.concatenate([x_words, np.full((size, 1), FWD), y_words], axis=1)   # [x, ->, y]
    backward = np.concatenate([y_words, np.full((size, 1), BWD), x_words], axis=1)  # [y, <-, x]

    order = np.arange(size)
    rs.shuffle(order)
    cutoff = round(size * split)
    both, held = order[:cutoff], order[cutoff:]
    if entity_len == 3:               # as the public code: the first 100 pairs both ways, 50 held out
        both, held = both[:100], held[:50]
    if len(held) == 0 or len(both) == 0:
        raise UsageError(f"vocabulary {vocab} gives {size} pairs, too few for a train/validation split: "
                         "use --vocab 8 or more")
    seen, unseen = [], []
    for i in held:                    # one direction of each held-out pair is trained, at random
        if rs.randint(2):
            seen.append(forward[i]), unseen.append(backward[i])
        else:
            seen.append(backward[i]), unseen.append(forward[i])
    seen, unseen = np.array(seen), np.array(unseen)
    train = np.concatenate([np.stack([forward[both], backward[both]], 1).reshape(-1, forward.shape[1]), seen])
    groups = {
        "train forward": forward[both],
        "train backward": backward[both],
        "val seen": seen,
        "val unseen": unseen,
    }
    return Dataset("reversal", train.astype(np.int64), {k: v.astype(np.int64) for k, v in groups.items()},
                   vocab_size=vocab + 2, entity_len=entity_len,
                   info=dict(vocab=vocab, seed=seed, pairs=size, x_words=x_words, y_words=y_words,
                             alphabets=[np.sort(x_alphabet), np.sort(y_alphabet)]))


def chain_data(vocab=800, entity_len=1, seed=1234, split=0.7):
    """The chain-of-thought experiment: "x -> y", "y -> z" and the direct "x ~> z".

    70% of triples train all three sentences; the other 30% train the two
    steps only, and their direct "x ~> z" is the validation set.
    vocab 800: 200 triples, 540 training and 60 validation sentences.
    """
    _check_positive(vocab=vocab, entity_len=entity_len)
    alphabet_size = vocab // 4
    if alphabet_size < 2:
        raise UsageError(f"vocabulary {vocab} is too small for the chain data: use --vocab 8 or more")
    _check_table_size(vocab, entity_len, 3)
    rs = np.random.RandomState(seed)
    xa, ya, za = rs.choice(vocab, (3, alphabet_size), replace=False) + 2
    words = [_words(rs, a, entity_len) for a in (xa, ya, za)]
    size = min(len(words[0]), round(2 * alphabet_size))
    x, y, z = [w[rs.choice(len(w), size=size, replace=False)] for w in words]
    col = lambda t: np.full((size, 1), t)                        # noqa: E731
    x0y = np.concatenate([x, col(FWD), y], 1)                    # [x, ->, y]
    y0z = np.concatenate([y, col(FWD), z], 1)                    # [y, ->, z]
    x1z = np.concatenate([x, col(THEN), z], 1)                   # [x, ~>, z]
    order = np.arange(size)
    rs.shuffle(order)
    cutoff = round(size * split)
    tr, va = order[:cutoff], order[cutoff:]
    if len(va) == 0 or len(tr) == 0:
        raise UsageError(f"vocabulary {vocab} gives {size} triples, too few to split: use --vocab 8 or more")
    train = np.concatenate([np.stack([x0y[tr], y0z[tr], x1z[tr]], 1).reshape(-1, x0y.shape[1]),
                            np.stack([x0y[va], y0z[va]], 1).reshape(-1, x0y.shape[1])])
    groups = {"B given A (train)": x0y[tr], "C given B (train)": y0z[tr], "C given A (train)": x1z[tr],
              "B given A (val)": x0y[va], "C given B (val)": y0z[va], "C given A (val)": x1z[va]}
    return Dataset("chain", train.astype(np.int64), {k: v.astype(np.int64) for k, v in groups.items()},
                   vocab_size=vocab + 2, entity_len=entity_len, val_group="C given A (val)",
                   info=dict(vocab=vocab, seed=seed, triples=size, alphabets=[np.sort(a) for a in (xa, ya, za)]))


def related_chain_data(vocab=800, alphabet=600, n_train=200, n_val=50, seed=1234):
    """The chain of thought with related tokens (the public code's train_chain_related_tokens):
    entities of two tokens (x i), (y i), (z i), with x, y, z three fixed tokens and i one of `alphabet`.

    Sentences [x i -> y i], [y i -> z i], [x i ~> z i]; the first n_train i train all three, the next
    n_val train the two steps and validate [x i ~> z i]: 700 training and 50 validation sentences.
    The split follows the order the ids are drawn in (the public code shuffles an index it never uses);
    the vocabulary is vocab + 3, as the public code's (its last id is never used).
    """
    _check_positive(vocab=vocab, alphabet=alphabet, n_train=n_train, n_val=n_val)
    if alphabet < n_train + n_val or vocab < alphabet + 3:
        raise UsageError(f"the related-tokens chain needs an alphabet of at least n_train + n_val = {n_train + n_val} "
                         f"tokens and a vocabulary of at least alphabet + 3 = {alphabet + 3}, got alphabet {alphabet} "
                         f"and vocabulary {vocab}: use --vocab {max(vocab, alphabet + 3)} or more")
    rs = np.random.RandomState(seed)
    ids = rs.choice(vocab, alphabet + 3, replace=False) + 2
    x, y, z, i = ids[0], ids[1], ids[2], ids[3:]
    col = lambda t: np.full((len(i), 1), t)                      # noqa: E731
    x0y = np.concatenate([col(x), i[:, None], col(FWD), col(y), i[:, None]], 1)     # [x i -> y i]
    y0z = np.concatenate([col(y), i[:, None], col(FWD), col(z), i[:, None]], 1)     # [y i -> z i]
    x1z = np.concatenate([col(x), i[:, None], col(THEN), col(z), i[:, None]], 1)    # [x i ~> z i]
    tr, va = np.arange(n_train), np.arange(n_train, n_train + n_val)
    train = np.concatenate([np.stack([x0y[tr], y0z[tr], x1z[tr]], 1).reshape(-1, 5),
                            np.stack([x0y[va], y0z[va]], 1).reshape(-1, 5)])
    groups = {"B given A (train)": x0y[tr], "C given B (train)": y0z[tr], "C given A (train)": x1z[tr],
              "B given A (val)": x0y[va], "C given B (val)": y0z[va], "C given A (val)": x1z[va]}
    # the first answer token is one of the fixed x, y, z, the second one of the alphabet: a model that knew
    # only that would score (log 3 + log alphabet) / 2 per answer token
    return Dataset("chain", train.astype(np.int64), {k: v.astype(np.int64) for k, v in groups.items()},
                   vocab_size=vocab + 3, entity_len=2, val_group="C given A (val)",
                   info=dict(vocab=vocab, seed=seed, triples=n_train + n_val, fixed=(x, y, z),
                             alphabets=[np.sort([x, y, z])], log_alphabet=(math.log(3) + math.log(alphabet)) / 2,
                             alphabet_note=f"log 3 for the first answer token (x, y or z), log {alphabet} "
                                           "for the second (i), averaged"))


def incontext_data(vocab=800, n_x=100, n_y=10, seed=1234, split=0.7):
    """The in-context experiment: [x, ->, y, <=>, y, <-, x], answer the last x.

    The fact "x -> y" is stated in the sentence itself; 7 of each x's 10
    sentences train and 3 validate (700/300 for 100 x and 10 y tokens).
    """
    _check_positive(vocab=vocab, n_x=n_x, n_y=n_y)
    _check_table_size(vocab, 1, 0)
    if n_x + n_y > vocab:
        raise UsageError(f"vocabulary {vocab} is too small for {n_x} x and {n_y} y tokens: "
                         f"use --vocab {n_x + n_y} or more")
    rs = np.random.RandomState(seed)
    tokens = rs.choice(vocab, n_x + n_y, replace=False) + 3
    xs, ys = tokens[:n_x], tokens[n_x:]
    n_train = int(n_y * split)
    if n_train == 0 or n_train == n_y:
        raise UsageError(f"{n_y} y tokens cannot be split {split:.0%}/{1 - split:.0%}: use 2 or more")
    train, val = [], []
    for x in xs:
        rows = np.array([[x, 0, y, 2, y, 1, x] for y in ys])
        rows = rs.permutation(rows)
        train.extend(rows[:n_train])
        val.extend(rows[n_train:])
    train, val = np.array(train, dtype=np.int64), np.array(val, dtype=np.int64)
    return Dataset("incontext", train, {"train": train, "val": val}, vocab_size=vocab + 3,
                   val_group="val", info=dict(vocab=vocab, seed=seed, n_x=n_x, n_y=n_y,
                                              alphabets=[np.sort(xs), np.sort(ys)]))


def pairs_data(vocab=200, pairs=50, held_out=10, seed=0):
    """The bilinear model's data (paper section 3): sentences [x, y] of n pairs.

    Training: x_i -> y_i for every pair, and y_i -> x_i for the pairs not held
    out. Test ("reversal"): y_i -> x_i for the held-out pairs.
    """
    _check_positive(vocab=vocab, pairs=pairs)
    if not isinstance(held_out, (int, np.integer)) or not 0 <= held_out <= pairs:
        raise UsageError(f"held-out pairs must be between 0 and the number of pairs ({pairs}), got {held_out!r}")
    _check_table_size(vocab, 1, 0)
    if 2 * pairs > vocab:
        raise UsageError(f"vocabulary {vocab} is too small for {pairs} pairs of distinct tokens: "
                         f"use a vocabulary of at least {2 * pairs} or fewer pairs")
    rng = np.random.default_rng(seed)
    ids = rng.permutation(vocab)[:2 * pairs]
    x, y = ids[:pairs], ids[pairs:]
    kept = pairs - held_out
    forward = np.stack([x, y], 1)
    backward = np.stack([y, x], 1)
    train = np.concatenate([forward, backward[:kept]])
    groups = {"train": train, "reversal": backward[kept:]}
    return Dataset("pairs", train.astype(np.int64), {k: v.astype(np.int64) for k, v in groups.items()},
                   vocab_size=vocab, val_group="reversal", info=dict(seed=seed, pairs=pairs, held_out=held_out))


def relation_pairs_data(pairs=100, both=70):
    """The data of the one-layer reversal result (arXiv 2405.04669, section 4): [A_i -> B_i] for every pair,
    [B_i <- A_i] for the first `both` pairs; the held-out group is [B_i <- A_i] of the others.

    Tokens: 0 "->", 1 "<-", A_i = 2 + i, B_i = 2 + pairs + i; vocabulary M = 2 pairs + 2
    (100 pairs: M = 202, 170 training sentences).
    """
    _check_positive(pairs=pairs)
    if not isinstance(both, (int, np.integer)) or not 0 <= both <= pairs:
        raise UsageError(f"pairs trained both ways must be between 0 and {pairs}, got {both!r}")
    A = 2 + np.arange(pairs)
    B = A + pairs
    forward = np.stack([A, np.full(pairs, FWD), B], 1)                  # [A, ->, B]
    backward = np.stack([B, np.full(pairs, BWD), A], 1)                 # [B, <-, A]
    train = np.concatenate([forward, backward[:both]]).astype(np.int64)
    return Dataset("reversal", train, {"train": train, "held-out reverse": backward[both:].astype(np.int64)},
                   vocab_size=2 * pairs + 2, val_group="held-out reverse", info=dict(A=A, B=B, both=both))
