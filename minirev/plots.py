"""The figures, drawn with matplotlib's object-oriented API.

Every figure is a ``matplotlib.figure.Figure`` saved straight to a PNG file: no
pyplot, so no screen is needed, no figure is left open, and the user's own
backend (a notebook's inline one, ``MPLBACKEND``) is never changed. matplotlib
itself is imported when the first figure is drawn, not with minirev: importing
it takes longer than many a run, and a run without figures never needs it.
"""
import os

import numpy as np

from .machinery.files import atomic_write
from .measures import logit_matrix


def _figure(**kwargs):
    from matplotlib.figure import Figure                        # matplotlib only when drawing
    return Figure(**kwargs)


def _save(fig, path, tight=True):
    """Written atomically (a temporary file, then a rename): a failed write leaves no half figure.
    tight=False: the figure set its own margins (tight_layout measures every label first)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if tight:
        fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, dpi=110, format="png"))
    return path


# --------------------------------------------------------------------------- an experiment's run

def run_nll_figure(name, result, runs, out_dir):
    """The NLL curves of every seed of a run of experiment `name`."""
    model, dataset = runs[0]["model"], runs[0]["dataset"]
    return plot_nll_curves([r["trainer"].history for r in runs], result["final"]["log_vocab"],
                           os.path.join(out_dir, f"{name}_nll.png"),
                           f"{name}: {model.kind}, {len(dataset.train)} training sentences",
                           val_label=f"validation ({dataset.val_group})", log_alphabet=result["final"]["log_alphabet"])


def run_heatmaps(name, run, out_dir, ncols):
    """logit(entity j | entity i) for every group of the run's data: with the relation token, and without
    it (the public code's way, a position the loss never trains)."""
    paths = []
    for with_rel, suffix, how in ((True, "", "given entity AND relation token, the question the loss trains"),
                                  (False, "_no_relation", "given the entity alone: how the paper's public code reads "
                                                          "them,\nat a position the loss never trains")):
        mats = {group: logit_matrix(run["model"], g, with_rel) for group, g in run["dataset"].groups.items()}
        paths.append(plot_heatmaps(mats, os.path.join(out_dir, f"{name}_heatmaps{suffix}.png"),
                                   f"logit(entity j | entity i), {how}", ncols=ncols))
    return paths


# --------------------------------------------------------------------------- the figures


def plot_bilinear(results, log_m, path):
    """Left: training and reversal loss per embedding dimension. Right: forward vs reverse weight."""
    fig = _figure(figsize=(12, 4.5))
    ax1, ax2 = fig.subplots(1, 2)
    from matplotlib import colormaps
    colors = colormaps["viridis"](np.linspace(0, 0.9, len(results)))
    for r, c in zip(results, colors):
        steps = [h["step"] for h in r["history"]]
        ax1.plot(steps, [h["train_nll"] for h in r["history"]], color=c, label=f"{r['label']}: training")
        ax1.plot(steps, [h["val_nll"] for h in r["history"]], color=c, ls="--", label=f"{r['label']}: reversal")
        ax2.plot(steps, [h["forward_weight"] for h in r["history"]], color=c, label=f"{r['label']}: W(x->y)")
        ax2.plot(steps, [h["reverse_weight"] for h in r["history"]], color=c, ls="--", label=f"{r['label']}: W(y->x)")
    ax1.axhline(log_m, color="gray", lw=1, ls=":", label=f"log m = {log_m:.2f} (uniform guess)")
    ax1.set(xlabel="gradient step", ylabel="cross-entropy (nats)", yscale="log",
            title="Bilinear model: training loss falls, reversal loss does not")
    ax2.axhline(0, color="gray", lw=1, ls=":")
    ax2.set(xlabel="gradient step", ylabel="effective weight u_a^T Theta u_b",
            title="Held-out pairs: forward weight grows, reverse stays ~0")
    ax1.legend(fontsize=7, ncol=2)
    ax2.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def plot_nll_curves(histories, log_vocab, path, title, val_label="validation (unseen direction)", log_alphabet=None):
    """Training and validation NLL over epochs; mean and min-max band when several seeds ran."""
    fig = _figure(figsize=(7, 5.2))
    # margins in inches: the title above, the label left, the label and the two-row legend below
    fig.subplots_adjust(left=0.8 / 7, right=1 - 0.2 / 7, top=1 - 0.4 / 5.2, bottom=1.1 / 5.2)
    ax = fig.subplots()
    n = min(len(h) for h in histories)
    epochs = [r["epoch"] for r in histories[0][:n]]
    # training wide and solid, validation dashed on top: where the two coincide (no curse) both stay visible
    curves = [("train_nll", "training", "C0", "-", 2.6), ("val_nll", val_label, "C3", "--", 1.4)]
    if "val_first_nll" in histories[0][0]:          # answers of several tokens: the first token's too
        curves.append(("val_first_nll", val_label + ", first answer token", "C1", "-.", 1.4))
    for key, label, color, style, width in curves:
        values = np.array([[r[key] for r in h[:n]] for h in histories])          # (seeds, evals)
        ax.plot(epochs, values.mean(0), color=color, ls=style, lw=width,
                label=label + (f" (mean of {len(histories)} seeds, band: min to max)" if len(histories) > 1 else ""))
        if len(histories) > 1:
            ax.fill_between(epochs, values.min(0), values.max(0), color=color, alpha=0.2)
    ax.axhline(log_vocab, color="gray", ls="--", lw=1, label=f"log |V| = {log_vocab:.2f} (uniform guess)")
    if log_alphabet is not None:
        ax.axhline(log_alphabet, color="gray", ls=":", lw=1,
                   label=f"log {np.exp(log_alphabet):.0f} = {log_alphabet:.2f} (uniform within the answer's alphabet)")
    ax.set(xlabel="epoch", ylabel="negative log-likelihood (nats)", title=title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=8, frameon=False)  # below: covers no curve
    return _save(fig, path, tight=False)


def plot_heatmaps(matrices, path, title, ncols=2):
    """One heatmap per group: matrices is {subtitle: (n, n) array}; rows = given, columns = answer."""
    from matplotlib.ticker import MaxNLocator
    n = len(matrices)
    nrows = (n + ncols - 1) // ncols
    width, height = 4.2 * ncols, 3.8 * nrows                   # inches
    title += "\n(each panel has its own colour scale: compare the diagonal with its own panel)"
    fig = _figure(figsize=(width, height))
    # margins in inches (the title's lines above, the labels left and below, the colour scales right), set
    # here: tight_layout would measure every tick label first, which takes longer than drawing them
    fig.subplots_adjust(left=0.65 / width, right=1 - 0.55 / width, bottom=0.5 / height,
                        top=1 - (0.45 + 0.19 * (title.count("\n") + 1)) / height, wspace=0.45, hspace=0.3)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for k, (ax, (name, m)) in enumerate(zip(axes.flat, matrices.items())):
        im = ax.imshow(m, cmap="viridis", aspect="auto", interpolation="nearest")
        ticks = range(0, len(m), 20)                            # few tick labels: each one costs a text layout
        ax.set(title=name, xticks=ticks, yticks=ticks)
        if k % ncols == 0:
            ax.set_ylabel("given entity i")
        if k + ncols >= n:                                      # the lowest panel of its column
            ax.set_xlabel("answer entity j")
        fig.colorbar(im, ax=ax, fraction=0.046, ticks=MaxNLocator(5))
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path, tight=False)


def plot_similarity(sim, path, title):
    fig = _figure(figsize=(6, 5))
    ax = fig.subplots()
    im = ax.imshow(sim, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set(xlabel="token", ylabel="token")
    ax.set_title(title, fontsize=9, wrap=True)
    fig.colorbar(im, ax=ax)
    return _save(fig, path)


def plot_cures(rows, path, title):
    """One line per row: each seed's unseen NLL (dots), their mean and min-max (bar), and the row's two
    yardsticks, log |V| (grey tick) and log(alphabet) (black tick)."""
    fig = _figure(figsize=(11, 0.42 * len(rows) + 1.8))
    ax = fig.subplots()
    # colour AND marker say the verdict (Okabe-Ito colours, readable with red-green colour blindness)
    look = {"broken": ("#009E73", "o"), "cursed": ("#D55E00", "X")}
    for y, r in enumerate(rows):
        vals = [run["val_nll"] for run in r["runs"]]
        color, marker = look.get(r["verdict"].split()[0], ("#E69F00", "^"))
        ax.plot([min(vals), max(vals)], [y, y], color=color, lw=2, alpha=0.6)
        ax.scatter(vals, [y] * len(vals), s=22, color=color, marker=marker, zorder=3)
        ax.scatter([np.mean(vals)], [y], marker="D", s=40, facecolors="none", edgecolors="k", zorder=4)
        for x, c in ((r["log_vocab"], "0.6"), (r["log_alphabet"], "k")):
            ax.plot([x, x], [y - 0.35, y + 0.35], color=c, lw=1.5)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{r['intervention']} ({r['model']})" for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")                            # an NLL is > 0; cured rows sit far below the yardsticks
    ax.set(xlabel="unseen (held-out reverse) NLL in nats; each seed: green circle broken, vermilion cross cursed, "
                  "orange triangle other;\nmean: diamond; ticks: log|V| (grey) and log(alphabet) (black), "
                  "the row's two yardsticks",
           title=title)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)
