"""One gradient check for every layer and every model.

The hand-written backward is compared with autograd differentiating the SAME
forward function (written against ``xp``; here ``xp = autograd.numpy``), in
float64, because float32's 1e-7 resolution is too coarse to tell a right
gradient from a slightly wrong one.

The relative error of a parameter is ``|hand - auto| / (|hand| + |auto|)``
with Frobenius norms: 0 for a perfect match, 1/3 for a missing factor of 2,
1 for a gradient of the wrong sign, and for a transposed matrix anything up to 1
depending on how far the true gradient is from symmetric (0.2 to 0.7 in the tests).
"""
import numpy as np

from .backend import to_numpy

DEFAULT_TOL = 1e-7


def relative_error(hand, auto):
    hand, auto = np.asarray(hand, dtype=np.float64), np.asarray(auto, dtype=np.float64)
    denom = np.linalg.norm(hand) + np.linalg.norm(auto)
    return 0.0 if denom == 0 else float(np.linalg.norm(hand - auto) / denom)


def compare_gradients(hand_grads, auto_grads, tol=DEFAULT_TOL, title=None, out=print):
    """Print one aligned line per parameter and return (all_ok, rows).

    rows: list of dicts with name, shape, max_abs_diff, rel_error, ok.
    """
    rows = []
    for name, auto in auto_grads.items():
        hand = to_numpy(hand_grads[name])
        auto = np.asarray(auto)
        if hand.shape != auto.shape:
            rows.append(dict(name=name, shape=auto.shape, max_abs_diff=float("inf"),
                             rel_error=float("inf"), ok=False))
            continue
        err = relative_error(hand, auto)
        rows.append(dict(name=name, shape=auto.shape, rel_error=err, ok=bool(err < tol),
                         max_abs_diff=float(np.max(np.abs(hand - auto))) if hand.size else 0.0))
    if out is not None:
        if title:
            out(title)
        out(f"  {'parameter':<22} {'shape':<16} {'max|diff|':>10} {'rel.err':>10}  result")
        for r in rows:
            out(f"  {r['name']:<22} {str(tuple(r['shape'])):<16} {r['max_abs_diff']:>10.2e} "
                f"{r['rel_error']:>10.2e}  {'OK' if r['ok'] else 'FAIL'}")
    return all(r["ok"] for r in rows), rows


def check_model(model, tokens, tol=DEFAULT_TOL, out=print, seed=0):
    """Check every parameter gradient of ``model.loss_and_grads`` against autograd.

    The model is copied to float64 on NumPy first. Dropout masks (if any) are
    drawn from the same seed for both passes, so both see one network.
    """
    import autograd                      # imported here: training never needs it
    import autograd.numpy as anp
    m = model.copy(dtype=np.float64, backend="numpy")
    _, hand = m.loss_and_grads(tokens, rng=np.random.default_rng(seed))

    def loss_of(params):
        loss, _ = m.forward(params, np.asarray(tokens), anp, rng=np.random.default_rng(seed))
        return loss

    auto = autograd.grad(loss_of)(dict(m.params))
    return compare_gradients(hand, auto, tol=tol, title=f"gradient check: {m.describe()}", out=out)


def check_layer(forward, backward, inputs, wrt, tol=DEFAULT_TOL, out=print, seed=0, title=None):
    """Check one layer pair with the "fake loss" sum(out * dout) of llm.c.

    inputs: dict of keyword arguments, called as ``forward(xp, **inputs)``.
    wrt: the names of the inputs the backward differentiates, in the order
    ``backward(dout, cache)`` returns their gradients; other inputs (token
    ids, masks) are held fixed.
    """
    import autograd
    import autograd.numpy as anp
    out_np, cache = forward(np, **inputs)
    dout = np.random.default_rng(seed).standard_normal(np.shape(out_np))
    hand = backward(dout, cache)
    hand = dict(zip(wrt, hand if isinstance(hand, tuple) else (hand,)))

    def fake_loss(values):
        o, _ = forward(anp, **{**inputs, **values})
        return anp.sum(o * dout)

    auto = autograd.grad(fake_loss)({name: inputs[name] for name in wrt})
    return compare_gradients(hand, auto, tol=tol, title=title, out=out)
