"""The per-update trace: which training sentence (or parameter tensor) moved which weight.

    trace = Trace(model, watch, terms, steps=3)
    Trainer(model, optimizer, dataset, trace=trace).run(epochs)
    trace.records                       # the same numbers that were printed

Each model says what to watch and how to split a change (``watch`` and
``trace_terms``, one signature for every model); the Trainer calls
``before`` and ``after`` around each of the first ``steps`` updates.
"""


class Trace:
    """Watches quantities across the first `steps` updates and explains each change.

    watch():        dict name -> current value (e.g. "W(12->57)": 3.1)
    terms(batch):   called before a step; dict name -> [(label, contribution), ...]
                    predicting that step's change, or a function of the parameters
                    before the step, called after it (for accounts that need the update).
    """

    def __init__(self, model, watch, terms, steps=3, top=4, out=print):
        self.model, self.watch, self.terms = model, watch, terms
        self.steps, self.top, self.out = steps, top, out
        self.records = []

    def before(self, batch, step):
        self._active = step <= self.steps
        if self._active:
            self._step = step
            self._before = self.watch()
            self._old = {k: v.copy() for k, v in self.model.params.items()}
            self._terms = self.terms(batch)

    def after(self, batch):
        if not self._active:
            return
        after = self.watch()
        terms = self._terms(self._old) if callable(self._terms) else self._terms
        record = {"step": self._step, "quantities": {}}
        for name, before in self._before.items():
            parts = terms.get(name, [])
            record["quantities"][name] = dict(before=before, after=after[name], change=after[name] - before,
                                              explained=float(sum(v for _, v in parts)), terms=parts)
        self.records.append(record)
        if self.out is not None:
            self.print_record(record)

    def print_record(self, record, out=None):
        out = out or self.out or print
        out(f"step {record['step']}")
        for name, q in record["quantities"].items():
            out(f"  {name:<16} {q['before']:+9.4f} -> {q['after']:+9.4f}   change {q['change']:+.3e}"
                     f"   sum of terms {q['explained']:+.3e}")
            if not q["terms"]:
                out("      no term at all: nothing in this step moves it")
            for label, value in q["terms"][:self.top]:
                out(f"      {value:+.3e}  {label}")
            rest = q["terms"][self.top:]
            if rest:
                out(f"      {sum(v for _, v in rest):+.3e}  ({len(rest)} more terms, each no larger)")
