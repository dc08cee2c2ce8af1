"""The cures experiment: its data recipes, the bidirectional GPT, SGD's weight decay, the verdicts,
the exact accounts, and serial = parallel. Run only these with: pytest -m cures
"""
import json

import numpy as np
import pytest

from minirev import demo, layers as L
from minirev.cure_data import identity_bridge, reverse_training
from minirev.cure_trace import MarginAccount, decoder_split
from minirev.cures import make_tasks, run_task, run_tasks, select, short_verdict
from minirev.data import reversal_data
from minirev.errors import UsageError
from minirev.gradcheck import check_layer, check_model
from minirev.mlm import MaskedGPT
from minirev.optim import SGD, AdamW
from minirev.train import Trainer
from gradients import TOL, assert_gradients_match
from records import first_difference

pytestmark = pytest.mark.cures

DATA = reversal_data(40, 1, seed=3)                     # 10 pairs: 17 training sentences, 3 held out


# ---- the bidirectional attention and MLM-U -------------------------------------------------------

def attention_inputs(T=5, C=12, H=3, seed=0):
    rng = np.random.default_rng(seed)
    return dict(x=rng.standard_normal((2, T, C)), w_qkv=0.5 * rng.standard_normal((C, 3 * C)),
                b_qkv=rng.standard_normal(3 * C), w_proj=rng.standard_normal((C, C)), b_proj=rng.standard_normal(C),
                n_head=H, rope=L.rotary_tables(T, C // H, np.float64, np),
                drop_mask=L.dropout_mask(np.random.default_rng(5), (2, H, T, T), 0.3, np, np.float64), causal=False)


def test_non_causal_attention_backward_matches_autograd():
    assert_gradients_match(check_layer(L.attention_forward, L.attention_backward, attention_inputs(),
                                       wrt=["x", "w_qkv", "b_qkv", "w_proj", "b_proj"], tol=TOL, out=None),
                           "attention causal=False")


def test_non_causal_attention_sees_later_positions_and_causal_does_not():
    inputs = dict(attention_inputs(), drop_mask=None)
    changed = dict(inputs, x=inputs["x"].copy())
    changed["x"][:, -1] += 1.0                                          # change the last position only
    for causal, moves in ((False, True), (True, False)):
        out, _ = L.attention_forward(np, **dict(inputs, causal=causal))
        out2, _ = L.attention_forward(np, **dict(changed, causal=causal))
        moved = not np.allclose(out[:, 0], out2[:, 0])
        assert moved == moves, (
            f"causal={causal}: changing the last position {'moved' if moved else 'did not move'} the output at "
            f"position 0 (want {'moved' if moves else 'unchanged'}); max |change| "
            f"{np.abs(out[:, 0] - out2[:, 0]).max():.2e}")


def test_masked_gpt_gradients_match_autograd():
    model, tokens = MaskedGPT.gradcheck_example(seed=1)
    assert_gradients_match(check_model(model, tokens, tol=TOL, out=None, seed=2), "gpt-mlm")


def test_masking_draws_at_least_one_token_and_evaluation_masks_only_the_answer():
    model = MaskedGPT(DATA.vocab_size + 1, layers=1, width=8, heads=2, max_len=3)
    drawn = model.masked_positions(500, 3, np.random.default_rng(0))
    assert drawn.any(1).all(), (
        f"every sentence must have at least one masked token; {int((~drawn.any(1)).sum())} of {len(drawn)} have none")
    assert 0.3 < drawn.mean() < 0.7, (
        f"a uniform rate masks about half: masked fraction {drawn.mean():.3f}, want in (0.3, 0.7)")
    evaluated = model.masked_positions(4, 3, None)
    assert (evaluated == [False, False, True]).all(), (
        f"without an rng (evaluation) only the answer is masked: want [False, False, True] in every row, "
        f"got\n{evaluated}")
    question = DATA.groups["val unseen"]
    other_answer = question.copy()
    other_answer[:, -1] = question[::-1, -1]
    assert np.array_equal(model.logits(question), model.logits(other_answer)), (
        "the answer must be hidden: swapping the answers of 'val unseen' changed the logits, max |change| "
        f"{np.abs(model.logits(question) - model.logits(other_answer)).max():.2e}")


# ---- SGD's weight decay ---------------------------------------------------------------------------

def test_sgd_weight_decay_shrinks_by_one_minus_lr_times_decay():
    p = {"w": np.ones(3)}
    SGD(2.0, weight_decay=0.1).step(p, {"w": np.full(3, 0.5)})
    assert np.allclose(p["w"], 0.8 * 1.0 - 2.0 * 0.5), (
        f"lr 2, decay 0.1, grad 0.5 from w = 1: want (1 - 2 x 0.1) x 1 - 2 x 0.5 = -0.2, got {p['w'].tolist()}")
    p = {"w": np.ones(3)}
    SGD(2.0).step(p, {"w": np.full(3, 0.5)})
    assert np.allclose(p["w"], 0.0), f"no decay by default: want 1 - 2 x 0.5 = 0, got {p['w'].tolist()}"


def test_sgd_refuses_a_decay_that_would_zero_or_flip_the_weights():
    with pytest.raises(UsageError, match="lr x weight decay = 1 >= 1"):
        SGD(10.0, weight_decay=0.1)
    with pytest.raises(UsageError, match="below 1 / lr"):
        SGD(1.0, lrs={"Y": 100.0}, weight_decay=0.02)


# ---- the data recipes ------------------------------------------------------------------------------

def test_identity_bridge_adds_every_entity_with_a_new_relation_token():
    bridged = identity_bridge(DATA)
    new = DATA.vocab_size
    bridge = bridged.train[len(DATA.train):]
    assert bridged.vocab_size == new + 1, (
        f"the bridge adds one relation token: vocabulary {bridged.vocab_size}, want {DATA.vocab_size} + 1")
    assert (bridge[:, 1] == new).all(), (
        f"every bridge sentence uses the new relation token {new}: got relations {sorted(set(bridge[:, 1].tolist()))}")
    assert (bridge[:, 0] == bridge[:, 2]).all(), (
        f"a bridge sentence is [x, is, x]; these rows are not:\n{bridge[bridge[:, 0] != bridge[:, 2]]}")
    held_out = set(DATA.groups["val unseen"][:, 0])
    assert held_out <= set(bridge[:, 0]), (
        f"held-out entities get their identity sentence too; missing: {sorted(held_out - set(bridge[:, 0]))}")
    assert np.array_equal(bridged.groups["val unseen"], DATA.groups["val unseen"]), (
        "the bridge must leave the 'val unseen' questions as they were")


def test_composition_bridge_pads_the_facts_and_upweights_the_one_way_facts():
    comp = identity_bridge(DATA, form="composition", upweight=3)
    pad = DATA.vocab_size
    n, seen = len(DATA.train), len(DATA.groups["val seen"])
    assert comp.train.shape == (n + 2 * seen + 20, 4), (
        f"{n} facts + 2 x {seen} upweighted one-way facts + 20 bridges, 4 tokens each: "
        f"want {(n + 2 * seen + 20, 4)}, got {comp.train.shape}")
    assert (comp.train[:n + 2 * seen, 0] == pad).all(), (
        f"the facts are padded in front with token {pad}: first tokens "
        f"{sorted(set(comp.train[:n + 2 * seen, 0].tolist()))}")
    assert (comp.groups["val unseen"][:, 0] == pad).all(), (
        f"the 'val unseen' questions are padded with token {pad} too: first tokens "
        f"{sorted(set(comp.groups['val unseen'][:, 0].tolist()))}")
    x = comp.train[n + 2 * seen]                                        # [x, ->, <-, x]
    assert list(x[1:3]) == [0, 1], f"a composition bridge is [x, ->, <-, x]: relations {list(x[1:3])}, want [0, 1]"
    assert x[0] == x[3], f"a composition bridge starts and ends with the same entity: got {list(x)}"
    with pytest.raises(UsageError, match="unknown identity-bridge form"):
        identity_bridge(DATA, form="A is A")


def test_reverse_training_keeps_entities_in_order():
    data = reversal_data(40, 2, seed=3)
    rev = reverse_training(data)
    a, b = data.train[0, :2], data.train[0, 3:]
    copy = rev.train[len(data.train)]
    assert list(copy) == [*b, data.train[0, 2], *a], (
        f"entity-preserving: [b1 b2, rel, a1 a2] = {[*b, data.train[0, 2], *a]}, got {list(copy)} "
        f"for the sentence {list(data.train[0])}")
    assert len(rev.train) == 2 * len(data.train), (
        f"each sentence plus its reversed copy: {len(rev.train)} sentences, want 2 x {len(data.train)}")
    assert rev.vocab_size == data.vocab_size, (
        f"reversing adds no token: vocabulary {rev.vocab_size}, want {data.vocab_size}")


# ---- the verdicts and the accounts -------------------------------------------------------------------

def test_verdicts_hold_for_every_seed():
    la = 3.0
    got = short_verdict([0.1, 0.1], [4.0, 5.0], [0.0, 0.0], la)
    assert got == "cursed", f"both seeds above log a = 3 with accuracy 0: want 'cursed', got {got!r}"
    got = short_verdict([0.1, 0.1], [1.0, 2.0], [0.9, 0.8], la)
    assert got == "broken", f"both seeds below log a = 3 with high accuracy: want 'broken', got {got!r}"
    got = short_verdict([0.1, 0.1], [1.0, 4.0], [0.9, 0.0], la)
    assert got.startswith("mixed (1/2 seeds below"), (
        f"one seed below log a, one above: want 'mixed (1/2 seeds below...', got {got!r}")
    got = short_verdict([0.1, 0.1], [1.0, 2.0], [0.9, 0.2], la)
    assert got.startswith("mixed (2/2 seeds below log a; 1/2"), (
        f"both below log a, one accurate: want 'mixed (2/2 seeds below log a; 1/2...', got {got!r}")
    got = short_verdict([0.1, 0.9], [1.0, 2.0], [0.9, 0.9], la)
    assert got == "not learned (training NLL up to 0.90 > 0.5)", (
        f"a seed with training NLL 0.9 > 0.5: want 'not learned (training NLL up to 0.90 > 0.5)', got {got!r}")


def test_one_layer_split_is_exact():
    task = make_tasks(select(["bridge-f"]), seeds=1, quick=True)[0]
    from minirev.cure_data import apply
    from minirev.running import make_dataset, make_model
    data = apply(task["recipe"], make_dataset(task["cfg"], 5))
    model = make_model(task["cfg"], data, 5)
    opt = SGD(10.0)
    for _ in range(20):
        opt.step(model.params, model.loss_and_grads(data.train)[1])
    rows = data.groups["val unseen"]
    logits = model.logits(rows)[:, 0, :].astype(np.float64)
    margin = logits[np.arange(len(rows)), rows[:, -1]] - np.take_along_axis(logits, data.answer_alphabets(rows), 1).mean(1)
    split = decoder_split(model, data)
    total = split["margin_entity_row"] + split["margin_other_rows"]
    assert abs(total - margin.mean()) < 1e-4, (
        f"the split must add up to the margin: entity row {split['margin_entity_row']:.6f} + other rows "
        f"{split['margin_other_rows']:.6f} = {total:.6f}, the margin computed directly {margin.mean():.6f} "
        "(bound 1e-4)")


def test_gpt_account_adds_up_to_about_the_actual_change():
    model = MaskedGPT(DATA.vocab_size + 1, layers=1, width=16, heads=2, max_len=3, dropout=0.0, seed=0)
    account = MarginAccount(model, DATA)
    Trainer(model, AdamW(lr=0.001), DATA, batch_size=8, trace=account).run(5)
    acc = account.result()
    change, shares = acc["end"] - acc["start"], sum(acc["shares"].values())
    assert change != 0, f"5 steps of AdamW should move the margin: start {acc['start']!r}, end {acc['end']!r}"
    assert abs(shares - change) < 0.2 * abs(change), (
        f"the tensors' shares should add up to within 20% of the actual change: shares sum to {shares:.4f}, "
        f"change {change:.4f}; shares {acc['shares']}")


# ---- the theory's prediction, and the runs ---------------------------------------------------------

def test_the_bridge_breaks_the_curse_in_the_factorized_model_only():
    tasks = make_tasks(select(["bridge-1l", "bridge-f"]), seeds=1, quick=True)
    combined, factorized = [run_task(t) for t in tasks]
    assert combined["val_top1"] == 0.0, (
        f"bridge-1l (combined weights): the curse stays, top-1 on the unseen direction {combined['val_top1']}, want 0")
    assert combined["ov_diagonal_minus_off"] < 1e-3, (
        f"bridge-1l: the bridge should not grow an OV diagonal: diagonal - off "
        f"{combined['ov_diagonal_minus_off']:.2e}, want < 1e-3")
    assert factorized["val_top1"] > 0.5, (
        f"bridge-f (factorized): the bridge breaks the curse, top-1 on the unseen direction {factorized['val_top1']}, "
        "want > 0.5")
    assert factorized["ov_diagonal_minus_off"] > 1.0, (
        f"bridge-f: the bridge grows an OV diagonal: diagonal - off "
        f"{factorized['ov_diagonal_minus_off']:.3f}, want > 1")


def test_parallel_runs_give_the_same_numbers_as_serial_ones():
    """A GPT with dropout (its masks come from the seed) and a one-layer model, each for two seeds."""
    tasks = [dict(t, cfg=t["cfg"].replace(epochs=5)) for t in make_tasks(select(["baseline", "combined"]), 2, quick=True)]
    parallel, serial = run_tasks(tasks, jobs=2), run_tasks(tasks, jobs=1)
    assert parallel == serial, f"2 processes and 1 gave different numbers: {first_difference(parallel, serial, what='row')}"
    assert parallel[0]["val_nll"] != parallel[1]["val_nll"], (
        f"two seeds should give two validation NLLs, both gave {parallel[0]['val_nll']!r}")


def test_cures_command_writes_table_figure_and_json(tmp_path, capsys):
    path = tmp_path / "cures.json"
    code = demo.main(["cures", "--quick", "--rows", "combined,reverse-1l", "--seeds", "2", "--jobs", "1",
                      "--out", str(tmp_path), "--json", str(path)])
    printed = capsys.readouterr().out
    assert code == 0, f"minirev cures --quick exited with {code}; it printed:\n{printed}"
    assert (tmp_path / "cures.png").exists(), (
        f"no cures.png in --out; found {sorted(p.name for p in tmp_path.iterdir())}")
    rows = json.loads(path.read_text())["rows"]
    assert [r["verdict"] for r in rows] == ["cursed", "broken"], (
        f"verdicts of combined, reverse-1l: want ['cursed', 'broken'], got {[r['verdict'] for r in rows]}; "
        f"it printed:\n{printed}")
    assert [len(r["runs"]) for r in rows] == [2, 2], (
        f"--seeds 2: each row keeps 2 runs, got {[len(r['runs']) for r in rows]}")


def test_an_unknown_row_is_one_line(capsys):
    code = demo.main(["cures", "--rows", "homeopathy"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, f"minirev cures --rows homeopathy should exit with 2, got {code}: {err}"
    assert len(err) == 1, f"expected one line of error, got {len(err)}: {err}"
    assert "unknown row(s) homeopathy" in err[0], f"the message should mention 'unknown row(s) homeopathy': {err[0]}"
