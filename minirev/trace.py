"""The per-update trace: which training sentence (or parameter tensor) moved which weight.

    trace = Trace(model, watch, terms, steps=3, pairs=pairs)
    Trainer(model, optimizer, dataset, trace=trace).run(epochs)
    trace.records                       # the same numbers that were printed
    trace.table()                       # ... as a list of flat dicts, for plotting

Each model says what to watch and how to split a change (``watch`` and
``trace_terms``, one signature for every model); the Trainer calls ``before``
and ``after`` around each of the first ``steps`` updates. After the last traced
step the trace prints a summary: each quantity's total change and the share of
each cause.

A model's account of one quantity is a list of (label, contribution) terms that
add up to the change, or a dict with "terms" and more (the GPT's exact account:
its own float64 before/after/change, first_order, per-sentence shares).
"""
import copy

import numpy as np


class Terms(list):
    """(label, contribution) pairs, largest first; `factors` (label -> the factors whose
    product is the contribution) and `note` (why a term is absent) are optional."""

    def __init__(self, terms=(), factors=None, note=None):
        super().__init__(terms)
        self.factors, self.note = factors or {}, note


def contains(batch, sentence):
    """Whether the (T,) sentence is a row of the (B, T) minibatch."""
    return bool((np.asarray(batch) == np.asarray(sentence)).all(axis=1).any())


def yes(flag):
    return "yes" if flag else "no"


def percent(value, total):
    return f" ({100 * value / total:.0f}%)" if total else ""


class Trace:
    """Watches quantities across the first `steps` updates and explains each change.

    watch():        dict name -> current value (e.g. "W(12->57)": 3.1), listed pair by pair
    terms(batch):   called before a step; dict name -> account (see the module doc)
                    predicting that step's change, or a function account(old, rng) of the
                    parameters before the step and a copy of the step's dropout generator,
                    called after it (for accounts that need the update).
    pairs:          the watched (trained sentence, reverse sentence, ...) tuples, in the
                    order of watch(): every line then says which of the two was in the minibatch.
    """

    def __init__(self, model, watch, terms, steps=3, top=4, out=print, pairs=None):
        self.model, self.watch, self.terms = model, watch, terms
        self.steps, self.top, self.out = steps, top, out
        self.pairs = list(pairs or [])
        self.records = []

    def before(self, batch, step, rng=None):
        self._active = step <= self.steps
        if self._active:
            self._step = step
            self._before = self.watch()
            self._old = {k: v.copy() for k, v in self.model.params.items()}
            self._rng = copy.deepcopy(rng)               # the dropout draws this step is about to make
            self._in_batch = [(contains(batch, p[0]), contains(batch, p[1])) for p in self.pairs]
            self._terms = self.terms(batch)

    def after(self, batch):
        if not self._active:
            return
        after = self.watch()
        account = self._terms(self._old, self._rng) if callable(self._terms) else self._terms
        record = {"step": self._step, "batch_size": len(batch), "quantities": {}}
        per_pair = max(1, len(after) // max(1, len(self.pairs)))      # watch() lists its quantities pair by pair
        for n, (name, before) in enumerate(self._before.items()):
            q = dict(before=before, after=after[name], change=after[name] - before)
            part = account.get(name, [])
            q.update(part if isinstance(part, dict) else
                     dict(terms=part, factors=getattr(part, "factors", {}), note=getattr(part, "note", None)))
            q["terms"] = [tuple(t) for t in q["terms"]]
            q["explained"] = float(sum(v for _, v in q["terms"]))
            q["residual"] = q["change"] - q["explained"]
            if "sentences" in q:
                q["remainder"] = q["change"] - float(sum(v for _, _, v in q["sentences"]))
            if self.pairs:
                q["trained_in_batch"], q["reverse_in_batch"] = self._in_batch[min(n // per_pair, len(self.pairs) - 1)]
            record["quantities"][name] = q
        self.records.append(record)
        if self.out is not None:
            self.print_record(record)
            if self._step == self.steps:
                self.print_summary()

    # ---- printing ----------------------------------------------------------------------------
    def print_record(self, record, out=None):
        out = out or self.out or print
        points = next(iter(record["quantities"].values()), {}).get("points")
        out(f"step {record['step']} (minibatch of {record['batch_size']}"
            + (f"; {points} quadrature nodes)" if points else ")"))
        notes = set()
        for name, q in record["quantities"].items():
            line = (f"  {name:<28} {q['before']:+8.4f} -> {q['after']:+8.4f}  change {q['change']:+.4e}  "
                    f"sum {q['explained']:+.4e}  residual {q['residual']:+.1e}")
            if q.get("first_order") is not None:
                line += f"  first order {q['first_order']:+.3e}"
            if "trained_in_batch" in q:
                line += f"  in minibatch: trained {yes(q['trained_in_batch'])}, reverse {yes(q['reverse_in_batch'])}"
            out(line)
            if q.get("note") and q["note"] not in notes:
                notes.add(q["note"])
                out(f"      ({q['note']})")
            if "sentences" in q:
                self.print_sentences(q, out)
                continue
            if not q["terms"]:
                out("      no term at all: nothing in this step moves it")
            for label, value in q["terms"][:self.top]:
                factors = q.get("factors", {}).get(label)          # (overlap, coefficient) of a bilinear term
                out(f"      {value:+.3e}  {label}"
                    + (f"   = overlap {factors[0]:+.4f} x coefficient {factors[1]:+.3e}" if factors else ""))
            rest = q["terms"][self.top:]
            if rest:
                out(f"      {sum(v for _, v in rest):+.3e}  the total of the {len(rest)} more terms")

    def print_sentences(self, q, out):
        """The per-sentence shares, grouped: the pair's own sentence, first token, answer, the others."""
        groups = {group: [] for group in q.get("groups", [])}
        for label, group, value in q["sentences"]:
            groups.setdefault(group, []).append((label, value))
        for group, rows in groups.items():
            largest = ", ".join(f"{label} {value:+.1e}" for label, value in rows[:2])
            what = "none in this minibatch" if not rows else largest if len(rows) == 1 else \
                f"{len(rows)} sentences, largest {largest}"
            out(f"      {sum(v for _, v in rows):+.3e}  {group}: {what}")
        out(f"      {q['remainder']:+.3e}  remainder: change - all sentences (quadrature, float32 rounding)")

    # ---- over all traced steps ---------------------------------------------------------------
    def summary(self):
        """name -> dict(change=total change, explained=total of the terms, causes=[(cause, total)], largest first).

        The causes are the per-sentence groups where there are per-sentence shares, else the terms' labels.
        """
        totals = {}
        for record in self.records:
            for name, q in record["quantities"].items():
                t = totals.setdefault(name, dict(change=0.0, explained=0.0, causes={}))
                t["change"] += q["change"]
                t["explained"] += q["explained"]
                parts = [(group, v) for _, group, v in q["sentences"]] if "sentences" in q else q["terms"]
                for cause, value in parts:
                    t["causes"][cause] = t["causes"].get(cause, 0.0) + value
        for t in totals.values():
            t["causes"] = sorted(t["causes"].items(), key=lambda c: -abs(c[1]))
        return totals

    def finish(self):
        """Print the summary when training stopped before the last traced step (it is printed at that step)."""
        if self.out is not None and self.records and self.records[-1]["step"] < self.steps:
            self.print_summary()

    def print_summary(self, out=None):
        out = out or self.out or print
        if not self.records:
            return
        out(f"summary of steps 1-{self.records[-1]['step']}: the total change of each watched quantity, "
            "and each cause's share of it")
        for name, t in self.summary().items():
            causes, rest = t["causes"][:self.top], t["causes"][self.top:]
            if rest:
                causes.append((f"{len(rest)} more in total", sum(v for _, v in rest)))
            shares = ", ".join(f"{cause} {value:+.2e}{percent(value, t['change'])}" for cause, value in causes)
            out(f"  {name:<28} total change {t['change']:+.4e}   " + (shares or "nothing moved it"))

    def table(self, causes=False):
        """The records as flat rows (a list of dicts), one per step and quantity;
        causes=True: one per step, quantity and cause (tensor or sentence), with "cause" and "share"
        (and "group" for the GPT's sentences under SGD)."""
        rows = []
        for record in self.records:
            for name, q in record["quantities"].items():
                row = {"step": record["step"], "quantity": name,
                       **{k: v for k, v in q.items() if isinstance(v, (int, float, bool, type(None)))}}
                if not causes:
                    rows.append(row)
                    continue
                if "sentences" in q:
                    rows += [dict(row, cause=label, group=group, share=v) for label, group, v in q["sentences"]]
                else:
                    rows += [dict(row, cause=label, share=v) for label, v in q["terms"]]
        return rows
