"""Does a speed-up keep every bit? Train GPTs with this checkout's minirev and another's, side by side.

    mkdir /tmp/old && git archive COMMIT minirev | tar -x -C /tmp/old
    python benchmarks/same_bits.py --code /tmp/old [--steps 4]

For each variant (the benchmark's three sizes; tied; rotary; no positions and
tied; each also as gpt-mlm, the masked model), both packages build the same
model, draw the same batches and dropout masks (dropout 0.1) and take --steps
AdamW steps. The bilinear, one-layer and factorized models, which share the
softmax and cross-entropy of minirev/layers.py, take --steps AdamW steps on
their full batch. Prints, per variant, whether every loss, every gradient of
the last step and every parameter after it are equal (np.array_equal), and the
largest gradient difference otherwise. Exit code 1 when any variant differs.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import load_minirev  # noqa: E402  (the benchmarks folder is this script's own)

VARIANTS = [dict(layers=2, width=64, heads=4), dict(layers=6, width=256, heads=8),
            dict(layers=24, width=20, heads=4), dict(layers=2, width=64, heads=4, tied=True),
            dict(layers=2, width=32, heads=4, pos="rotary"), dict(layers=2, width=32, heads=4, pos="none", tied=True)]


# the models without dropout: (class, its data set, keyword arguments), each trained on the full batch
SMALL_MODELS = [("Bilinear", "pairs", dict(dim=64)), ("OneLayer", "relation pairs", dict(init_scale=0.1)),
                ("Factorized", "relation pairs", dict(init_scale=0.1))]


def train(pkg, cls, kw, data, steps):
    """(losses, gradients of the last step, parameters after it) of `steps` AdamW steps, batch 64."""
    if cls in ("GPT", "MaskedGPT"):
        vocab = data.vocab_size + (cls == "MaskedGPT")              # the masked model adds a [MASK] token
        model = getattr(pkg, cls)(vocab, max_len=data.train.shape[1], dropout=0.1, seed=1, **kw)
        batches = [data.train[64 * i:64 * (i + 1)] for i in range(steps)]
    else:
        model, batches = getattr(pkg, cls)(data.vocab_size, seed=1, **kw), [data.train] * steps
    opt, rng, losses = pkg.AdamW(), np.random.default_rng(5), []
    for batch in batches:
        loss, grads = model.loss_and_grads(batch, rng=rng)
        opt.step(model.params, grads)
        losses.append(loss)
    return losses, {k: np.array(v) for k, v in grads.items()}, model.host_params()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", required=True, metavar="DIR", help="the other checkout (a folder holding minirev/)")
    parser.add_argument("--steps", type=int, default=4, help="AdamW steps per variant, batch 64 (default: 4)")
    args = parser.parse_args(argv)
    if not os.path.isfile(os.path.join(args.code, "minirev", "__init__.py")):
        parser.error(f"--code {args.code}: no minirev/__init__.py there; e.g. git archive COMMIT minirev | tar -x -C DIR")
    if not 1 <= args.steps <= 5:
        parser.error("--steps must be 1 to 5 (the reversal data has 5 batches of 64)")
    import minirev
    import minirev.data
    other = load_minirev(args.code, "minirev_other")
    datasets = {"reversal": minirev.reversal_data(800), "pairs": minirev.pairs_data(vocab=200, pairs=50),
                "relation pairs": minirev.data.relation_pairs_data(pairs=100, both=70)}
    variants = [(cls, "reversal", kw) for cls in ("GPT", "MaskedGPT") for kw in VARIANTS] + SMALL_MODELS
    differ = 0
    for cls, data, kw in variants:
        (l0, g0, p0), (l1, g1, p1) = (train(pkg, cls, kw, datasets[data], args.steps) for pkg in (other, minirev))
        same = l0 == l1 and all(np.array_equal(g0[k], g1[k]) for k in g0) \
            and all(np.array_equal(p0[k], p1[k]) for k in p0)
        differ += not same
        gap = max(float(np.abs(g0[k] - g1[k]).max()) for k in g0)
        print(f"{cls:<10} {str(kw):<62} {'same bits' if same else f'DIFFERENT (gradients up to {gap:.1e})'}")
    print(f"{differ} of {len(variants)} variants differ from {args.code}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
