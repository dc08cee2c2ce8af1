"""The one-layer transformer of the paper (section 4, Y/Z reparameterisation).

Run only these checks with:  pytest -m one_layer

1. the hand-written backward agrees with autograd (and a wrong one does not);
2. the reversal curse: with Z frozen, a held-out pair's Y[B, A] never moves
   and p(A | B <-) ends below the uniform guess 1/M;
3. the trace explains every update of Y entry by entry, sentence by sentence;
4. bad input gets a one-line UsageError.
"""
import numpy as np
import pytest

from minirev.data import relation_pairs_data
from minirev.errors import UsageError
from minirev.gradcheck import check_model
from minirev.one_layer import OneLayer, watch_keys
from minirev.optim import SGD

pytestmark = pytest.mark.one_layer

# The reversal data of the paper's one-layer experiment (section 4): token 0 is "->", token 1 is "<-",
# A_i = 2 + i, B_i = 102 + i; the first 70 pairs are trained both ways.
FWD, BWD = 0, 1
DATA = relation_pairs_data(pairs=100, both=70)
N_PAIRS, N_BOTH, M = 100, 70, DATA.vocab_size
A, B = DATA.info["A"], DATA.info["B"]
HELD_OUT = np.arange(N_BOTH, N_PAIRS)      # trained only as "A -> B"
STEPS = 100


def reversal_sentences():
    return DATA.train                                                            # (170, 3)


def p_answer(model, sentences):
    """p(last token | the rest) for each sentence."""
    probs = model.logits(sentences)[:, 0, :].astype(np.float64)
    probs = np.exp(probs - probs.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    return probs[np.arange(len(sentences)), sentences[:, -1]]


def sgd_for(tokens, lr_Z=0.0):
    # eta_Y = 1 on the SUM of the sentence losses (as the theory writes gradient descent);
    # minirev's loss is the MEAN, so the same step is lr = (number of sentences).
    return SGD(lr=float(len(tokens)), lrs={"Z": lr_Z})


# ------------------------------------------------------------------ 1. gradient check

@pytest.mark.parametrize("T", [3, 5], ids=["T=3", "T=5"])
def test_backward_matches_autograd(T):
    rng = np.random.default_rng(T)
    tokens = rng.integers(0, 6, size=(8, T))   # 6 tokens for 8 x T slots: repeats inside sentences
    tokens = np.concatenate([tokens, tokens[:2]])                  # and whole repeated sentences
    context = tokens[:, :-1]
    assert any(len(set(row)) < T - 1 for row in context.tolist()), "want a token repeated in a context"
    model = OneLayer(vocab_size=9, seed=1, init_scale=0.5)
    ok, rows = check_model(model, tokens, tol=1e-7)
    assert ok, f"hand-written backward disagrees with autograd for T={T}: {rows}"


@pytest.mark.parametrize("mistake", ["dY transposed", "dZ doubled"])
def test_gradient_check_catches_a_wrong_backward(mistake):
    model = OneLayer(vocab_size=9, seed=1, init_scale=0.5)
    right = model.backward

    def wrong(cache):
        grads = right(cache)
        if mistake == "dY transposed":
            return {"Y": grads["Y"].T, "Z": grads["Z"]}
        return {"Y": grads["Y"], "Z": 2 * grads["Z"]}

    model.backward = wrong       # an instance attribute: the check's float64 copy keeps it
    tokens = np.random.default_rng(0).integers(0, 9, size=(6, 3))
    ok, rows = check_model(model, tokens, tol=1e-7)
    assert not ok, f"the gradient check did not notice a backward with {mistake}: {rows}"


# ------------------------------------------------------------------ 2. the reversal curse

@pytest.fixture(scope="module")
def reversal_run():
    """Train Y only (Z frozen at 0: uniform attention), full batch, 100 steps."""
    tokens = reversal_sentences()
    model = OneLayer(vocab_size=M)
    Y0 = model.host_params()["Y"].copy()
    opt = sgd_for(tokens)
    Y_AB = [Y0[A, B]]
    for _ in range(STEPS):
        _, grads = model.loss_and_grads(tokens)
        opt.step(model.params, grads)
        Y_AB.append(model.host_params()["Y"][A, B])
    held_out_reverse = DATA.groups["held-out reverse"]                          # [B, <-, A], pairs 70..99
    result = dict(model=model, Y0=Y0, Y=model.host_params()["Y"], Y_AB=np.array(Y_AB),
                  p_train=p_answer(model, tokens), p_held_out=p_answer(model, held_out_reverse))
    print(f"\nreversal, {STEPS} steps: train p(correct) {result['p_train'].mean():.3f}, "
          f"held-out p(A | B <-) {result['p_held_out'].mean():.2e} (1/M = {1 / M:.2e}), "
          f"Y[A,B] {result['Y_AB'][-1].mean():.2f}, "
          f"held-out Y[B,A] max |.| {np.abs(result['Y'][B[HELD_OUT], A[HELD_OUT]]).max()}")
    return result


def test_attention_stays_uniform_when_Z_is_frozen(reversal_run):
    attn = reversal_run["model"].attention(reversal_sentences())
    assert np.array_equal(attn, np.full_like(attn, 0.5)), "Z = 0 must give b = (1/2, 1/2)"


def test_training_sentences_are_learned(reversal_run):
    p = reversal_run["p_train"].mean()
    assert p > 0.9, f"mean p(correct) on the 170 training sentences is only {p:.3f} (lesson 4 measures 0.978)"


def test_forward_weight_Y_AB_grows_every_step(reversal_run):
    growth = np.diff(reversal_run["Y_AB"], axis=0)                  # (STEPS, N_PAIRS)
    stalled = np.argwhere(~(growth > 0))[:1]               # for the message: the first (step, pair) that did not rise
    assert (growth > 0).all(), "Y[A, B] must rise at every step for every pair" + "".join(
        f"; pair {p} (Y[{A[p]},{B[p]}]) moved by {growth[s, p]:+.3e} at step {s + 1}" for s, p in stalled)
    assert reversal_run["Y_AB"][-1].mean() > 5, (
        f"Y[A, B] should be large after 100 steps (lesson 4 measures 11.8), mean {reversal_run['Y_AB'][-1].mean():.3f}")


def test_held_out_reverse_weight_never_moves(reversal_run):
    before = reversal_run["Y0"][B[HELD_OUT], A[HELD_OUT]]
    after = reversal_run["Y"][B[HELD_OUT], A[HELD_OUT]]
    # for the message: the first held-out pair whose Y[B, A] is not the same bits
    moved = [i for i in range(len(after)) if after[i:i + 1].tobytes() != before[i:i + 1].tobytes()][:1]
    assert after.tobytes() == before.tobytes(), (
        "Y[B, A] of a held-out pair changed: row B is never in a context, so it never gets a gradient" + "".join(
            f"; pair {HELD_OUT[i]}: Y[{B[HELD_OUT[i]]},{A[HELD_OUT[i]]}] went {before[i]!r} -> {after[i]!r}"
            for i in moved))


def test_held_out_reverse_is_below_uniform(reversal_run):
    p = reversal_run["p_held_out"]
    assert (p < 1 / M).all(), (
        f"p(A | B <-) of held-out pairs should fall BELOW 1/M = {1 / M:.2e}: max {p.max():.2e} "
        "(Y[<-, A] is pushed down, Y[B, A] stays 0)")


# ------------------------------------------------------------------ 3. the trace

@pytest.fixture(scope="module")
def trained_float64():
    """A float64 model after a few steps that train both Y and Z."""
    tokens = reversal_sentences()
    model = OneLayer(vocab_size=M, dtype=np.float64)
    opt = sgd_for(tokens, lr_Z=20.0)
    for _ in range(5):
        _, grads = model.loss_and_grads(tokens)
        opt.step(model.params, grads)
    return model, tokens


def pairs_of(*ab):
    """The trace's (trained sentence, never-trained reverse) pairs for (A, B) token pairs."""
    return [(np.array([a, FWD, b]), np.array([b, BWD, a])) for a, b in ab]


def optimizer(lrs):
    return SGD(lr=lrs["Y"], lrs={"Z": lrs["Z"]})


def one_step(model, tokens, lrs):
    """A stepped twin; the original is left as it was."""
    twin = model.copy()
    twin.params = {k: v.copy() for k, v in twin.params.items()}   # copy() may share same-dtype arrays
    _, grads = twin.loss_and_grads(tokens)
    optimizer(lrs).step(twin.params, grads)
    return twin


def test_trace_of_Y_sums_to_the_actual_step(trained_float64):
    model, tokens = trained_float64
    ab = [(int(A[i]), int(B[i])) for i in (0, 69, 70, 99)]
    lrs = {"Y": float(len(tokens)), "Z": 20.0}
    terms = model.trace_terms(tokens, pairs_of(*ab), optimizer(lrs), DATA.sentence)
    before = model.watch(pairs_of(*ab))
    after = one_step(model, tokens, lrs).watch(pairs_of(*ab))
    for a, b in ab:
        for key in watch_keys(a, b)[:3]:                          # the three Y entries
            predicted = sum(v for _, v in terms[key])
            actual = after[key] - before[key]
            assert abs(predicted - actual) <= 1e-12 * max(1.0, abs(before[key])), (
                f"{key}: the sentence terms sum to {predicted!r} but the step moved it by {actual!r}")


def test_trace_of_attention_is_first_order(trained_float64):
    """The attention terms are a linearisation: their error shrinks like eta_Z^2."""
    model, tokens = trained_float64
    a, b = int(A[0]), int(B[0])
    key = watch_keys(a, b)[3]
    errors = []
    for eta_Z in (4.0, 1.0):
        lrs = {"Y": float(len(tokens)), "Z": eta_Z}
        predicted = sum(v for _, v in model.trace_terms(tokens, pairs_of((a, b)), optimizer(lrs), DATA.sentence)[key])
        actual = one_step(model, tokens, lrs).watch(pairs_of((a, b)))[key] - model.watch(pairs_of((a, b)))[key]
        assert actual != 0 and abs(predicted - actual) < 0.05 * abs(actual), (
            f"{key} at eta_Z={eta_Z}: first-order prediction {predicted:.3e} vs actual change {actual:.3e}")
        errors.append(abs(predicted - actual))
    assert errors[1] < errors[0] / 10, f"a 4x smaller step should cut the error ~16x: {errors}"


def test_trace_terms_are_labelled_and_sorted(trained_float64):
    model, tokens = trained_float64
    a, b = int(A[0]), int(B[0])
    terms = model.trace_terms(tokens, pairs_of((a, b)), optimizer({"Y": 1.0, "Z": 1.0}), DATA.sentence)
    assert terms[f"Y[{a},{b}]"] == [(f"[{a} -> {b}]", terms[f"Y[{a},{b}]"][0][1])], \
        f"Y[A, B] is moved by the sentence 'A -> B' alone, got the terms {terms[f'Y[{a},{b}]'][:3]}"
    for key, listed in terms.items():
        sizes = [abs(v) for _, v in listed]
        assert sizes == sorted(sizes, reverse=True) and all(sizes), (
            f"{key}: terms not nonzero and largest-first: {listed[:5]}")


def test_trace_of_a_held_out_pair(trained_float64):
    model, tokens = trained_float64
    a, b = int(A[HELD_OUT[0]]), int(B[HELD_OUT[0]])
    terms = model.trace_terms(tokens, pairs_of((a, b)), optimizer({"Y": float(len(tokens)), "Z": 20.0}),
                              DATA.sentence)
    assert terms[f"Y[{b},{a}]"] == [], (
        f"no sentence may move Y[B, A] of a held-out pair, got {terms[f'Y[{b},{a}]'][:3]}")
    pushes = terms[f"Y[<-,{a}]"]
    assert pushes, f"every '<-' sentence should push Y[<-, {a}] down, but no sentence moves it"
    for label, v in pushes:
        assert v < 0, f"every '<-' sentence should push Y[<-, {a}] down (A never follows '<-'): {label} pushes {v:+.3e}"
    for label, _ in pushes:
        assert " <- " in label, f"only backward sentences read '<-', but {label} moves Y[<-, {a}]"


# ------------------------------------------------------------------ 4. bad input

def test_token_outside_vocabulary_is_a_usage_error():
    model = OneLayer(vocab_size=5)
    with pytest.raises(UsageError, match="outside the vocabulary"):
        model.loss_and_grads(np.array([[1, 2, 5]]))
    with pytest.raises(UsageError, match="outside the vocabulary"):
        model.attention(np.array([[1, -1, 2]]))


def test_sentence_shorter_than_two_tokens_is_a_usage_error():
    model = OneLayer(vocab_size=5)
    with pytest.raises(UsageError, match="at least 2 tokens"):
        model.loss_and_grads(np.array([[1], [2]]))
    with pytest.raises(UsageError, match="at least 2 tokens"):
        model.logits(np.array([[3]]))
