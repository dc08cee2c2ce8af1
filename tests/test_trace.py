"""The per-update trace: the GPT's exact account, per sentence under SGD, membership, controls, the bilinear factors.

A small GPT (1 layer, width 16, dropout 0.1) on the reversal data of 40 entities;
each test traces 3 steps of minibatch 8.
"""
import numpy as np
import pytest

from minirev import demo, gpt_trace
from minirev.bilinear import Bilinear
from minirev.config import RunConfig
from minirev.data import pairs_data
from minirev.measures import held_out_pairs
from minirev.running import make_dataset, make_model, make_optimizer, make_trace
from minirev.optim import SGD
from minirev.trace import Trace
from minirev.train import Trainer

pytestmark = pytest.mark.train

STEPS = 3


def traced_run(optimizer=None, tied=False, dtype="float32", full_batch=False, lr=None, wrap=None):
    """Train a small GPT for STEPS traced steps; returns (trace, dataset). wrap(terms) -> terms doctors the account."""
    cfg = RunConfig(model="gpt", layers=1, width=16, heads=2, vocab=40, batch_size=8, tied=tied, dtype=dtype,
                    optimizer=optimizer, lr=lr, full_batch=full_batch).resolved()
    data = make_dataset(cfg)
    model, opt = make_model(cfg, data), make_optimizer(cfg)
    trace = make_trace(model, data, opt, STEPS, out=None, count=2)
    if wrap:
        trace.terms = wrap(trace.terms)
    trainer = Trainer(model, opt, data, batch_size=None if full_batch else cfg.batch_size, seed=cfg.seed, trace=trace)
    while trainer.step < STEPS:
        trainer.run_epoch()
    return trace, data


def assert_adds_up(trace, tol=1e-6):
    """Every watched logit of every traced step: the per-tensor shares add up to the change."""
    assert len(trace.records) == STEPS, f"{STEPS} traced steps should leave {STEPS} records: {len(trace.records)}"
    for record in trace.records:
        for name, q in record["quantities"].items():
            assert q["change"] != 0, f"step {record['step']}: {name} did not move at all"
            assert abs(q["residual"]) <= tol * abs(q["change"]), (
                f"step {record['step']}: {name} changed by {q['change']:+.6e} but its tensors' shares "
                f"add up to {q['explained']:+.6e}")
            listed = sum(v for _, v in q["terms"])
            assert q["explained"] == pytest.approx(listed, rel=1e-12), (     # (not "add up to": that is the residual's)
                f"step {record['step']}: {name}'s 'explained' {q['explained']:+.6e} is not the sum of its listed "
                f"terms {listed:+.6e}")


@pytest.mark.parametrize("optimizer, lr", [("adamw", None), ("sgd", 1.0)], ids=["adamw", "sgd lr=1"])
@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_per_tensor_shares_add_up_to_the_change(optimizer, lr, tied):
    trace, _ = traced_run(optimizer, tied=tied, lr=lr)
    assert_adds_up(trace)
    names = {label for r in trace.records for q in r["quantities"].values() for label, _ in q["terms"]}
    assert ("w_out" in names) != tied and "wte" in names, f"tied={tied}: the output layer's tensor is {names}"


def test_first_order_misses_on_adams_first_steps():
    """AdamW's first step moves every weight by about lr: the first-order account is off, the exact one is not."""
    trace, _ = traced_run("adamw")
    misses = [abs(q["first_order"] - q["change"]) / abs(q["change"]) for q in trace.records[0]["quantities"].values()]
    assert max(misses) > 0.1, f"the first-order account should miss the first AdamW step: {misses}"


def test_exact_false_is_the_first_order_account():
    cfg = RunConfig(model="gpt", layers=1, width=16, heads=2, vocab=40, batch_size=8).resolved()
    data = make_dataset(cfg)
    model, opt = make_model(cfg, data), make_optimizer(cfg)
    pairs = held_out_pairs(data, 1, controls=True)
    trace = Trace(model, lambda: model.watch(pairs, data.sentence),
                  lambda batch: model.trace_terms(batch, pairs, opt, data.sentence, exact=False),
                  steps=1, out=None, pairs=pairs)
    Trainer(model, opt, data, batch_size=8, seed=cfg.seed, trace=trace).run_epoch()
    for name, q in trace.records[0]["quantities"].items():
        assert q["points"] == 0 and q["explained"] == pytest.approx(q["first_order"], rel=1e-12), (
            f"{name}: exact=False should use no quadrature points and explain the first-order account: "
            f"points {q['points']}, explained {q['explained']:+.6e}, first order {q['first_order']:+.6e}")
        assert abs(q["residual"]) > 1e-3 * abs(q["change"]), (
            f"{name}: AdamW's first step is too large for first order, yet the residual is only {q['residual']:+.3e} "
            f"of a change of {q['change']:+.3e}")


def test_an_account_that_leaves_out_a_tensor_fails():
    def drop_wpe(terms):
        def doctored(batch):
            account = terms(batch)

            def without_wpe(old, rng):
                result = account(old, rng)
                for q in result.values():
                    q["terms"] = [(k, v) for k, v in q["terms"] if k != "wpe"]
                return result
            return without_wpe
        return doctored
    trace, _ = traced_run("adamw", wrap=drop_wpe)
    with pytest.raises(AssertionError, match="add up to"):
        assert_adds_up(trace)


@pytest.mark.parametrize("full_batch", [False, True], ids=["minibatch", "full batch"])
def test_under_sgd_the_sentences_add_up_to_the_change(full_batch):
    """float64 training with dropout: each sentence's gradient is replayed with the step's masks."""
    trace, data = traced_run("sgd", dtype="float64", full_batch=full_batch, lr=1.0)
    for record in trace.records:
        for name, q in record["quantities"].items():
            total = sum(v for _, _, v in q["sentences"])
            assert total == pytest.approx(q["change"], rel=1e-6), (
                f"step {record['step']}: {name}'s sentence shares sum to {total:+.6e}, but it moved {q['change']:+.6e}")
            assert len(q["sentences"]) == record["batch_size"] == (len(data.train) if full_batch else (8, 8, 1)[
                record["step"] - 1]), (
                f"every sentence of the step has its share (17 sentences: batches 8, 8, 1): step {record['step']}, "
                f"{name}: {len(q['sentences'])} shares, batch size {record['batch_size']}")
            own = [v for _, group, v in q["sentences"] if group == "the pair's own sentence"]
            assert len(own) == q["trained_in_batch"], (
                f"step {record['step']}: {name}: the own sentence is in the shares iff in the batch: "
                f"{len(own)} own shares, trained_in_batch {q['trained_in_batch']}")


def test_under_adamw_there_is_no_per_sentence_split_and_it_says_so():
    trace, _ = traced_run("adamw")
    q = next(iter(trace.records[0]["quantities"].values()))
    assert "sentences" not in q and "no exact per-sentence split" in q["note"], (
        f"under AdamW the trace should list no sentence shares and say 'no exact per-sentence split': "
        f"sentences listed: {'sentences' in q}, note: {q['note']!r}")


def test_membership_says_which_watched_sentences_were_in_the_minibatch():
    minibatch, data = traced_run("adamw")
    full, _ = traced_run("adamw", full_batch=True)
    flags = [(q["trained_in_batch"], q["reverse_in_batch"]) for t in (minibatch, full)
             for r in t.records for q in r["quantities"].values()]
    assert not any(reverse for _, reverse in flags), "the reverse of a held-out pair is never trained"
    for r in full.records:
        for name, q in r["quantities"].items():
            assert q["trained_in_batch"], (
                f"full batch, step {r['step']}: {name}'s trained sentence should be in every step's batch")
    assert not all(q["trained_in_batch"] for r in minibatch.records for q in r["quantities"].values()), \
        "batches of 8 out of 17 sentences cannot hold the trained sentence every step"


def test_control_is_the_reverse_prefix_with_another_answer_of_its_alphabet():
    data = make_dataset(RunConfig(vocab=40))
    triples = held_out_pairs(data, 3, controls=True)
    for (trained, reverse, _), pair in zip(triples, held_out_pairs(data, 3)):
        assert (trained == pair[0]).all() and (reverse == pair[1]).all(), (
            f"controls=True should keep the pair: ({trained}, {reverse}) vs held_out_pairs' ({pair[0]}, {pair[1]})")
    for trained, reverse, control in triples:
        assert (control[:-1] == reverse[:-1]).all() and control[-1] != reverse[-1], (
            f"the control of {reverse} should be its prefix with another answer, got {control}")
        alphabet = data.info["x_words"] if reverse[-1] in data.info["x_words"] else data.info["y_words"]
        assert control[-1] in alphabet, f"the control's answer {control[-1]} is not in the alphabet of {reverse[-1]}"
    again = held_out_pairs(data, 3, controls=True)
    for a, b in zip(triples, again):
        assert (a[2] == b[2]).all(), f"the controls must be seeded: {a[2]} the first time, {b[2]} the second"


def test_summary_and_table_hold_the_recorded_numbers():
    trace, _ = traced_run("sgd", lr=1.0)
    summary = trace.summary()
    for name, total in summary.items():
        steps = [r["quantities"][name] for r in trace.records]
        assert total["change"] == pytest.approx(sum(q["change"] for q in steps), rel=1e-12), (
            f"summary of {name}: total change {total['change']:+.6e}, the steps' changes sum to "
            f"{sum(q['change'] for q in steps):+.6e}")
        causes_total = sum(v for _, v in total["causes"])
        assert causes_total == pytest.approx(sum(q["change"] - q["remainder"] for q in steps)), (
            f"summary of {name}: its causes sum to {causes_total:+.6e}, the steps' change less remainder to "
            f"{sum(q['change'] - q['remainder'] for q in steps):+.6e}")
    rows = trace.table()
    assert len(rows) == STEPS * len(summary), (
        f"table(): one row per step and quantity, {STEPS} x {len(summary)}, got {len(rows)}")
    first = trace.records[0]["quantities"][rows[0]["quantity"]]
    assert rows[0]["change"] == first["change"] and rows[0]["first_order"] == first["first_order"], (
        f"table()'s first row {rows[0]} should hold step 1's change {first['change']!r} "
        f"and first order {first['first_order']!r}")
    causes = trace.table(causes=True)
    shares = sum(len(q["sentences"]) for r in trace.records for q in r["quantities"].values())
    assert len(causes) == shares, f"table(causes=True): one row per sentence share, {shares}, got {len(causes)}"


def test_bilinear_terms_print_both_factors_and_why_the_reverse_has_none():
    data = pairs_data(vocab=30, pairs=8, held_out=2, seed=0)
    x, y = (int(t) for t in data.groups["reversal"][0][::-1])
    pair = [(np.array([x, y]), np.array([y, x]))]
    lines = []
    for dim in (None, 6):
        model, opt = Bilinear(30, dim, dtype=np.float64), SGD(5.0)
        terms = model.trace_terms(data.train, pair, opt)
        for name, listed in terms.items():
            for label, value in listed:
                overlap, coefficient = listed.factors[label]
                assert overlap * coefficient == pytest.approx(value, rel=1e-12), (
                    f"dim {dim}, {name}, term {label}: overlap {overlap!r} x coefficient {coefficient!r} "
                    f"is not the term {value!r}")
        assert terms[f"W({y}->{x})"].note.startswith(f"no training sentence starts with {y}"), (
            f"dim {dim}: the reverse weight's note should say why nothing moves it, got {terms[f'W({y}->{x})'].note!r}")
        assert terms[f"W({x}->{y})"].note is None, (
            f"dim {dim}: the forward weight has terms and needs no note, got {terms[f'W({x}->{y})'].note!r}")
        trace = Trace(model, lambda: model.watch(pair), lambda batch: model.trace_terms(batch, pair, opt),
                      steps=1, top=2, out=lines.append, pairs=pair)
        Trainer(model, opt, data, trace=trace).run(1)
    text = "\n".join(lines)
    for phrase in (f"no training sentence starts with {y}", "overlap", "the total of the", "more terms",
                   "in minibatch: trained yes, reverse no"):
        assert phrase in text, f"the printed trace lacks {phrase!r}; it reads:\n{text}"


def test_command_line_traces_sgd_by_sentence(tmp_path, capsys):
    code = demo.main(["reversal", "--vocab", "40", "--layers", "1", "--width", "16", "--heads", "2", "--epochs", "1",
                      "--optimizer", "sgd", "--lr", "1", "--full-batch", "--trace", "3", "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0, f"the traced command exited with {code}:\n{err}"
    for phrase in ("minibatch of 17", "the pair's own sentence", "remainder", "control"):
        assert phrase in out, f"the command's trace lacks {phrase!r}; it printed:\n{out}"
    assert out.count("summary of steps 1-1") == 1, (
        f"one full-batch step of 3 traced: the summary comes at the end, once; "
        f"printed {out.count('summary of steps 1-1')} times")


def test_command_line_refuses_an_unknown_optimizer(capsys):
    with pytest.raises(SystemExit) as info:
        demo.main(["reversal", "--optimizer", "adam"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "invalid choice: 'adam'" in err, (
        f"--optimizer adam should exit with 2 and say \"invalid choice: 'adam'\": exit {info.value.code}, said:\n{err}")


def test_labels_name_the_watched_first_token_of_a_multi_token_answer():
    data = make_dataset(RunConfig(vocab=40, entity_len=2))
    triple = held_out_pairs(data, 1, controls=True)[0]
    trained = triple[0]                                          # [a1 a2 -> b1 b2]: the logit of b1 is watched
    label = gpt_trace.labels([triple], data.sentence, 2)[0]
    assert label == f"logit({trained[3]} | {data.sentence(trained[:3])[1:-1]}) trained", (
        f"a two-token answer's label should name its first token {trained[3]}, got {label!r}")
