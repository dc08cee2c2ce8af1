"""The figures of ``demo theory``, one per claim (matplotlib.figure.Figure, no pyplot; see minirev/plots.py)."""
import os

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from .plots import _save
from .theory_bilinear import ONE_HOT, SMALL, fit_slope
from .theory_transformer import FIT_FROM


def plot_eps_min(results, path):
    """Left: eps_min against d, log-log, per n (each seed a dot, the worst a line, its fit dashed).
    Right: the reversal loss ratio against the training loss ratio along the run, n = the middle one."""
    fig = Figure(figsize=(13, 5))
    ax, ax2 = fig.subplots(1, 2)
    ns = sorted({r["pairs"] for r in results})
    colors = matplotlib.colormaps["viridis"](np.linspace(0, 0.85, len(ns)))
    for n, c in zip(ns, colors):
        rows = [r for r in results if r["pairs"] == n and r["dim"] is not ONE_HOT]
        for r in rows:
            eps = [e for e in r["eps_min"] if e > 0]
            ax.scatter([r["dim"]] * len(eps), eps, color=c, s=12, alpha=0.5)
        dims = np.array([r["dim"] for r in rows])
        worst = np.array([max(r["eps_min"]) for r in rows])
        (slope, enough) = fit_slope(results, n)
        ax.plot(dims[worst > 0], worst[worst > 0], color=c, lw=1.8,
                label=f"n = {n} (m = {rows[0]['vocab']}): worst seed"
                      + (f"; fit slope {slope[0]:+.2f}" if slope else "") + f"; eps <= {SMALL} from d = {enough}")
        if slope:
            ax.plot(dims, np.exp(slope[1]) * dims ** slope[0], color=c, ls="--", lw=1)
    ax.axhline(SMALL, color="gray", ls=":", lw=1, label=f"eps = {SMALL}")
    ax.set(xscale="log", yscale="log", xlabel="embedding dimension d", ylabel="eps_min over the whole run",
           title="Bilinear model (section 3): the smallest eps for which\nL_rev(t)/L_rev(0) >= (L(t)/L(0))^eps "
                 "at every step\n(dots: each seed, eps_min = 0 not drawn; one-hot: exactly 0)")
    ax.legend(fontsize=7)
    n = ns[len(ns) // 2]
    rows = [r for r in results if r["pairs"] == n]
    for r, c in zip(rows, matplotlib.colormaps["plasma"](np.linspace(0, 0.9, len(rows)))):
        train, rev = np.array(r["train"]), np.array(r["reversal"])
        ax2.plot(train / train[0], rev / rev[0], color=c, lw=1.2, label=r["label"])
    ax2.axhline(1, color="gray", ls=":", lw=1)
    ax2.set(xscale="log", xlabel="L(t) / L(0), training loss (mean of the seeds)",
            ylabel="L_rev(t) / L_rev(0), reversal loss", title=f"n = {n}: along the run (time runs right to left)")
    ax2.invert_xaxis()
    ax2.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def plot_one_layer(runs, path):
    """Section 4.1: Y[A,B] against log t with its fit, p(A | B <-) x M, and |Y[B,A]|, every step."""
    fig = Figure(figsize=(15, 4.6))
    ax1, ax2, ax3 = fig.subplots(1, 3)
    for r in runs:
        t = np.arange(1, len(r["y_ab"]) + 1)
        c = "C0" if r["lr_z"] == 0 else "C3"
        how = "Z frozen" if r["lr_z"] == 0 else f"Z trained (lr_z {r['lr_z']:g})"
        first = r is next(q for q in runs if q["lr_z"] == r["lr_z"])
        ax1.plot(t, r["y_ab"], color=c, lw=1, label=f"{how}, seeds" if first else None)
        if first:
            ax1.plot(t[FIT_FROM - 1:], r["y_ab_intercept"] + r["y_ab_slope"] * np.log(t[FIT_FROM - 1:]), color="k",
                     ls="--", lw=1, label=f"fit a + s log t: s = {r['y_ab_slope']:.2f}, R^2 = {r['y_ab_r2']:.3f}")
        ax2.plot(t, r["p_times_m"], color=c, lw=1, label=f"{how}, seeds" if first else None)
        ax3.plot(t, r["y_ba"], color=c, lw=1, label=f"{how}, seeds" if first else None)
    ax1.set(xscale="log", xlabel="gradient step t", ylabel="Y[A,B], mean over held-out pairs",
            title="Trained direction: Y[A,B] grows like log t")
    ax2.axhline(1, color="gray", ls=":", lw=1, label="1/M (uniform guess)")
    ax2.set(xlabel="gradient step t", ylabel="max over held-out pairs of p(A | B <-) x M",
            title="Held-out reverse: p(A | B <-) stays below 1/M")
    ax3.set(xlabel="gradient step t", ylabel="max over held-out pairs of |Y[B,A]|",
            title="Y[B,A] never moves: exactly 0 at every step")
    for ax in (ax1, ax2, ax3):
        ax.legend(fontsize=7)
    return _save(fig, path)


def plot_chain(runs, path):
    """Section 4.2: the direct p(C | A ~>) x M of held-out triples at every step, against 1/M."""
    fig = Figure(figsize=(7, 4.6))
    ax = fig.subplots()
    for r in runs:
        ax.plot(np.arange(1, len(r["p_times_m"]) + 1), r["p_times_m"], lw=1, label=f"seed {r['seed']}")
    ax.axhline(1, color="gray", ls=":", lw=1, label="1/M (uniform guess)")
    r = runs[0]
    ax.set(xlabel="gradient step t", ylabel="max over held-out triples of p(C | A ~>) x M",
           title=f"Chain of thought (section 4.2): the direct A ~> C stays below 1/M;\nstep by step right "
                 f"{min(q['step_by_step_acc'] for q in runs):.0%}, training NLL {r['train_nll']:.3f} at the end\n"
                 "(from Y = Z = 0 the seeds, which only relabel the tokens, give the same curve)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def theory_figures(result, out_dir):
    return [plot_eps_min(result["bilinear"], os.path.join(out_dir, "theory_bilinear.png")),
            plot_one_layer(result["one_layer"]["reversal"], os.path.join(out_dir, "theory_one_layer.png")),
            plot_chain(result["one_layer"]["chain"], os.path.join(out_dir, "theory_chain.png"))]
