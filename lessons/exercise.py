"""What every lesson shares: fast mode, the figure folder, and the exercise checks.

    from exercise import FAST, check, figure, out_dir, save_figure

    FAST                  True when MINIREV_FAST=1: smaller sizes, fewer steps (a few seconds a lesson)
    out_dir("01_the_curse")   the lesson's figure folder, created:
                          $MINIREV_LESSON_OUT/01_the_curse (default: lessons/output/01_the_curse)
    figure(path)          prints "figure: <path>" (and shows it inline in Jupyter)
    save_figure(fig, path)    tight layout, save (dpi 110), close, then figure(path)
    check(name, answer, expected, args=())
                          prints "exercise NAME: OK", "exercise NAME: FAIL: <what is wrong>" or,
                          when the answer raises NotImplementedError, "exercise NAME: not done yet"

Blank lessons, to try the exercises yourself:

    python lessons/exercise.py blank [FOLDER]     # default FOLDER: lessons/blank

copies every lesson with each line that ends in "# SOLUTION" replaced by
``raise NotImplementedError("exercise: your code here")`` (one raise per block).
"""
import glob
import os
import shutil
import sys

# The lessons multiply small matrices: one BLAS thread is faster than many, and far
# faster on a busy machine. (Only takes effect if numpy is not imported yet.)
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FAST = os.environ.get("MINIREV_FAST", "") not in ("", "0")
SOLUTION = "# SOLUTION"
BLANK = 'raise NotImplementedError("exercise: your code here")'


def out_dir(lesson):
    """The folder for this lesson's figures (created)."""
    path = os.path.join(os.environ.get("MINIREV_LESSON_OUT") or os.path.join(HERE, "output"), lesson)
    os.makedirs(path, exist_ok=True)
    return path


def save_figure(fig, path):
    """Lay out, save and close a matplotlib figure, then announce it (see figure)."""
    import matplotlib.pyplot as plt
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    figure(path)


def figure(path):
    """Announce a saved figure; inside Jupyter, also show it."""
    print(f"figure: {path}")
    if "ipykernel" in sys.modules:
        from IPython.display import Image, display
        display(Image(filename=path))


# ----------------------------------------------------------------------------- checks

def what_is_wrong(value, expected, rtol=1e-6, atol=1e-9):
    """None if value matches expected, else one line saying how it differs."""
    if value is None:
        return "your code returned None (a missing return?)"
    try:
        v, e = np.asarray(value, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    except (TypeError, ValueError):
        return f"expected a number or an array, got {type(value).__name__}"
    close = lambda a, b: a.shape == b.shape and np.allclose(a, b, rtol=rtol, atol=atol)  # noqa: E731
    if v.shape != e.shape:
        if v.ndim == 2 and close(v.T, e):
            return f"transposed: shape {v.shape}, expected {e.shape}"
        return f"shape {v.shape}, expected {e.shape}"
    if not np.isfinite(v).all():
        return "contains NaN or inf"
    if close(v, e):
        return None
    if v.ndim == 2 and v.shape[0] == v.shape[1] and close(v.T, e):
        return "transposed (yours is the expected matrix, flipped)"
    if close(v, -e):
        return "wrong sign"
    if v.size == 1:
        return f"yours {float(v.ravel()[0]):.6g}, expected {float(e.ravel()[0]):.6g}"
    k = float((v * e).sum() / (e * e).sum()) if (e * e).sum() > 0 else 0.0
    if k and close(v, k * e):
        factor = f"1/{round(1 / k)}" if abs(k) < 1 and abs(1 / k - round(1 / k)) < 1e-6 else f"{k:.4g}"
        return f"off by a factor {factor} (yours = {factor} x expected)"
    return f"max difference {np.abs(v - e).max():.3g} (largest expected entry {np.abs(e).max():.3g})"


def check(name, answer, expected, args=(), rtol=1e-6, atol=1e-9):
    """Check a student's answer: a value, or a function called with `args`. Returns True if right."""
    try:
        value = answer(*args) if callable(answer) else answer
    except NotImplementedError:
        print(f"exercise {name}: not done yet")
        return False
    except Exception as error:  # the student's code crashed: say how, keep the lesson going
        print(f"exercise {name}: FAIL: your code raised {type(error).__name__}: {error}")
        return False
    problem = what_is_wrong(value, expected, rtol, atol)
    print(f"exercise {name}: " + ("OK" if problem is None else f"FAIL: {problem}"))
    return problem is None


# ----------------------------------------------------------------------------- blank lessons

def blank_source(text):
    """The lesson with its solution lines replaced by one raise per block (indentation kept)."""
    out, in_block = [], False
    for line in text.splitlines(keepends=True):
        if line.rstrip().endswith(SOLUTION):
            if not in_block:
                indent = line[:len(line) - len(line.lstrip())]
                out.append(f"{indent}{BLANK}\n")
            in_block = True
        else:
            out.append(line)
            in_block = False
    return "".join(out)


def write_blanks(folder=None):
    """Write blank variants of every lesson (and a copy of this module) to `folder`."""
    folder = folder or os.path.join(HERE, "blank")
    os.makedirs(folder, exist_ok=True)
    written = []
    for path in sorted(glob.glob(os.path.join(HERE, "[0-9][0-9]_*.py"))):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        target = os.path.join(folder, os.path.basename(path))
        with open(target, "w", encoding="utf-8") as f:
            f.write(blank_source(text))
        written.append(target)
    shutil.copy(os.path.abspath(__file__), os.path.join(folder, "exercise.py"))
    return written


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] != "blank" or len(sys.argv) > 3:
        print("usage: python lessons/exercise.py blank [FOLDER]   (default FOLDER: lessons/blank)")
        sys.exit(2)
    paths = write_blanks(sys.argv[2] if len(sys.argv) == 3 else None)
    for p in paths:
        print(f"blank lesson: {p}")
    print(f"{len(paths)} lessons; run one with: python {paths[0] if paths else 'FOLDER/01_the_curse.py'}")
