"""What the GPT's exact trace costs, and how many quadrature nodes it needs.

    python benchmarks/trace_bench.py [--steps 5] [--pairs 3] [--threads N] [--skip-nodes] [--skip-time]

1. nodes: the default demo (python -m minirev.demo reversal: GPT, AdamW lr 0.01,
   batch 64, dropout 0.1, seed 1234) is trained for --steps updates; for each
   update, the largest |residual| / |change| over the watched logits when
   Gbar is integrated with n Gauss-Legendre nodes, n = 4 .. 64 (and the same
   for SGD with lr 1). The trace starts at minirev.gpt_trace.POINTS nodes and
   doubles them until |residual| <= TOL |change|.
2. time: the same demo trained for one epoch (6 steps) without and with a trace
   of the first --steps updates of --pairs held-out pairs plus their controls;
   the difference is what the trace adds. Each run once: no repeats, the
   machine is shared.
"""
import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def node_study(steps, pairs, optimizer, lr):
    import numpy as np
    from minirev import gpt_trace
    from minirev.config import RunConfig
    from minirev.measures import held_out_pairs
    from minirev.running import make_dataset, make_model, make_optimizer
    from minirev.train import Trainer

    cfg = RunConfig(optimizer=optimizer, lr=lr).resolved()
    data = make_dataset(cfg)
    model, opt = make_model(cfg, data), make_optimizer(cfg)
    sentences = gpt_trace.sentences_of(held_out_pairs(data, pairs, controls=True))
    counts = (4, 8, 16, 32, 64)
    print(f"\n{opt.name}, lr {cfg.lr}: largest |residual| / |change| over {len(sentences)} watched logits")
    print(f"{'step':>4} " + "".join(f"{n:>10} nodes" for n in counts))

    class Probe:                          # a trace that keeps the parameters around each step
        def before(self, batch, step, rng=None):
            self.old = {k: v.astype(np.float64) for k, v in model.params.items()}

        def after(self, batch):
            twin = model.copy(dtype=np.float64)
            delta = {k: twin.params[k] - self.old[k] for k in self.old}
            f0 = gpt_trace.logit_values(twin, self.old, sentences)
            f1 = gpt_trace.logit_values(twin, twin.params, sentences)
            worst = []
            for n in counts:
                _, shares, _ = gpt_trace.path_shares(twin, self.old, delta, sentences, n)
                worst.append(np.max(np.abs(f1 - f0 - shares.sum(1)) / np.abs(f1 - f0)))
            self.rows.append(worst)

    probe = Probe()
    probe.rows = []
    trainer = Trainer(model, opt, data, batch_size=cfg.batch_size, seed=cfg.seed, trace=probe)
    while len(probe.rows) < steps:
        trainer.run_epoch()
    for step, worst in enumerate(probe.rows[:steps], 1):
        print(f"{step:>4} " + "".join(f"{w:>16.1e}" for w in worst))


def timing(steps, pairs):
    from minirev.config import RunConfig
    from minirev.running import make_dataset, make_model, make_optimizer, make_trace
    from minirev.train import Trainer

    cfg = RunConfig().resolved()
    seconds = {}
    for traced in (False, True):
        data = make_dataset(cfg)
        model, opt = make_model(cfg, data), make_optimizer(cfg)
        trace = make_trace(model, data, opt, steps, out=None, count=pairs) if traced else None
        trainer = Trainer(model, opt, data, batch_size=cfg.batch_size, seed=cfg.seed, trace=trace)
        t0 = time.perf_counter()
        trainer.run_epoch()
        seconds[traced] = time.perf_counter() - t0
    points = [r["quantities"][next(iter(r["quantities"]))]["points"] for r in trace.records]
    print(f"\none epoch of the default demo ({trainer.step} steps): {seconds[False]:.2f} s untraced, "
          f"{seconds[True]:.2f} s with the trace of {steps} steps, {pairs} pairs + controls "
          f"({3 * pairs} logits; nodes per step {points}): the trace adds {seconds[True] - seconds[False]:.2f} s")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--threads", type=int, help="BLAS threads (set before NumPy loads)")
    p.add_argument("--skip-nodes", action="store_true")
    p.add_argument("--skip-time", action="store_true")
    args = p.parse_args()
    if args.threads:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    if not args.skip_nodes:
        node_study(args.steps, args.pairs, None, None)
        node_study(args.steps, args.pairs, "sgd", 1.0)
    if not args.skip_time:
        timing(args.steps, args.pairs)


if __name__ == "__main__":
    main()
