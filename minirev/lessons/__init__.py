"""What every lesson shares: fast mode, the figure folder, and the exercise checks.

A lesson needs only the installed package (pip install "minirev[lessons]"):

    from minirev.lessons import FAST, check, figure, lesson, save_figure

    OUT = lesson("02_bilinear_by_hand")   # names the lesson; returns its figure folder, created:
                          $MINIREV_LESSON_OUT/02_bilinear_by_hand (default: output/02_bilinear_by_hand
                          beside the lesson: its script's folder, or the notebook's folder in Jupyter)
    FAST                  True when MINIREV_FAST=1: smaller sizes, fewer steps
    figure(path)          prints "figure: <path>" (and shows it inline in Jupyter)
    save_figure(fig, path)    tight layout, save (dpi 110), close, then figure(path)
    check(name, answer, expected, args=(), then=None)
                          calls your function answer(*args) on copies of args (then `then` on its
                          result, if given) and prints one line:
                          "exercise NAME: OK", "exercise NAME: FAIL: <what is wrong>; hint: ..."
                          or, while the function still raises NotImplementedError,
                          "exercise NAME: not done yet". It returns nothing, so a notebook
                          shows only that line.
    check_prediction(name, answer, observed, labels=None)
                          the same for a prediction made before a run: "FAIL: you predicted ...,
                          the run gives ..."

Exercises are blank: each is a function in the lesson whose body raises
NotImplementedError. Replace the raise with your code and run the cell again.
Whatever you write, the lesson goes on with the package's own answer, so a
wrong or missing answer never breaks what follows.

Solutions live apart, in minirev/lessons/solutions/NN_topic.py, one function per
exercise, with the same name as in the lesson. Read them after trying.
Run a lesson with its solutions filled in:

    MINIREV_SOLUTIONS=1 python lessons/02_bilinear_by_hand.py

Each solutions file also lists MISTAKES: common wrong answers and the hint
the check gives when your answer matches one of them. MINIREV_PLANT=1 makes
every check also feed itself each listed mistake and print the verdict (the
tests use it to show that every mistake gets its hint). Both are read at each
check, so setting them in a running kernel (os.environ) takes effect at once.
"""
import copy
import importlib.util
import os
import sys

import numpy as np   # (after minirev/__init__.py, which asks for one BLAS thread: the lessons' matrices are small)


def _flag(name):
    return os.environ.get(name, "") not in ("", "0")


HERE = os.path.dirname(os.path.abspath(__file__))
FAST = _flag("MINIREV_FAST")
_current = {"lesson": None}


def lesson(name):
    """Name the running lesson (its solutions file is solutions/<name>.py); return its figure folder."""
    _current["lesson"] = name
    return out_dir(name)


def _lesson_folder():
    """The running lesson's folder: the notebook's (a kernel's working folder) or the script's."""
    main = sys.modules.get("__main__")
    if "ipykernel" in sys.modules or not getattr(main, "__file__", None):
        return os.getcwd()
    return os.path.dirname(os.path.abspath(main.__file__))


def out_dir(name):
    """The folder for this lesson's figures (created)."""
    path = os.path.join(os.environ.get("MINIREV_LESSON_OUT") or os.path.join(_lesson_folder(), "output"), name)
    os.makedirs(path, exist_ok=True)
    return path


def save_figure(fig, path):
    """Lay out, save and close a matplotlib figure, then announce it (see figure)."""
    import matplotlib.pyplot as plt
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    figure(path)


def summary_figure(summary, path, xlabel, title, yardstick="log|V| of that setting"):
    """One bar per setting: its unseen NLL, green below the setting's log|V|, red above."""
    import matplotlib.pyplot as plt
    names = list(summary)
    fig, ax = plt.subplots(figsize=(10, 4.2))
    y = np.arange(len(names))
    values = [summary[n]["unseen"] for n in names]
    colors = ["C2" if v < summary[n]["log_v"] else "C3" for n, v in zip(names, values)]
    log_v = [summary[n]["log_v"] for n in names]
    ax.barh(y, values, color=colors)
    ax.scatter(values, y, marker="o", s=18, color=colors, zorder=3)   # a near-0 bar is too thin to see: a dot marks it
    ax.scatter(log_v, y, marker="|", s=400, color="black", label=yardstick)
    for yi, v, lv in zip(y, values, log_v):
        at = lv + 0.15 if abs(v - lv) < 0.8 else v + 0.15            # right of the bar, clear of the marker
        ax.text(at, yi, f"{v:.2f}", va="center", fontsize=8)
    ax.tick_params(axis="y", length=0)                               # no tick mark to read as a minus sign
    ax.set_xlim(0, max(values + log_v) * 1.12 + 0.3)
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=8)
    ax.invert_yaxis()
    ax.set(xlabel=xlabel, title=title)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def figure(path):
    """Announce a saved figure; inside Jupyter, also show it."""
    print(f"figure: {path}")
    if "ipykernel" in sys.modules:
        from IPython.display import Image, display
        display(Image(filename=path))


# ----------------------------------------------------------------------------- solutions

def solutions_module(name=None):
    """minirev/lessons/solutions/<lesson>.py as a module, or None if there is none."""
    name = name or _current["lesson"]
    path = os.path.join(HERE, "solutions", f"{name}.py")
    if name is None or not os.path.isfile(path):
        return None
    spec = importlib.util.spec_from_file_location(f"solutions_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_loaded = {}


def _solutions():
    name = _current["lesson"]
    if name not in _loaded:
        _loaded[name] = solutions_module(name)
    return _loaded[name]


def _mistakes(name):
    module = _solutions()
    return list(getattr(module, "MISTAKES", {}).get(name, [])) if module else []


# ----------------------------------------------------------------------------- what is wrong

def _num(x):
    """A number as a check prints it: 6 significant digits, and 0 never as -0."""
    return f"{float(x) + 0.0:.6g}" if float(x) != 0 else "0"


def _clean_factor(k):
    """'1/90 of', '7 times', 'minus 1/2 of', or None unless k is a whole number, its inverse, or minus one."""
    sign = "minus " if k < 0 else ""
    k = abs(k)
    for n in range(2, 1001):
        if abs(k - n) < 1e-6 * n:
            return f"{sign}{n} times"
        if abs(k - 1 / n) < 1e-6 / n:
            return f"{sign}1/{n} of"
    return None


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
        if v.size == e.size and close(v.reshape(e.shape), e):
            return f"the right numbers in the wrong shape {v.shape}, expected {e.shape}"
        return f"shape {v.shape}, expected {e.shape}"
    if not np.isfinite(v).all():
        return "contains NaN or inf"
    if close(v, e):
        return None
    if v.ndim == 2 and v.shape[0] == v.shape[1] and close(v.T, e):
        return "transposed (yours is the expected matrix, flipped)"
    scalar = v.size == 1
    numbers = f"yours {_num(v.ravel()[0])}, expected {_num(e.ravel()[0])}" if scalar else ""
    if close(v, -e):
        return f"{numbers}: the wrong sign" if scalar else "wrong sign (yours is minus the expected array)"
    k = float((v * e).sum() / (e * e).sum()) if (e * e).sum() > 0 else 0.0
    words = _clean_factor(k) if k and close(v, k * e) else None     # a ratio only when it is a clean factor
    if words:
        if scalar:
            return f"{numbers}: yours is {words} the expected value"
        return f"off by a factor {words.rsplit(' ', 1)[0]} (yours is {words} the expected array)"
    if scalar:
        return numbers
    wrong = ~np.isclose(v, e, rtol=rtol, atol=atol)
    if v.ndim == 1:
        idx = np.flatnonzero(wrong)
        shown = ", ".join(f"[{i}] yours {_num(v[i])}, expected {_num(e[i])}" for i in idx[:4])
        more = f" (and {len(idx) - 4} more)" if len(idx) > 4 else ""
        return f"{len(idx)} of {v.size} entries wrong: {shown}{more}"
    first = tuple(int(i) for i in np.argwhere(wrong)[0])
    return (f"{int(wrong.sum())} of {v.size} entries wrong, the first at index {first} "
            f"(yours {_num(v[first])}, expected {_num(e[first])}); max difference {np.abs(v - e).max():.3g}")


def _copy(args):
    """Copies of the arguments, so an answer cannot change what the next one sees (objects that
    cannot be copied are passed as they are)."""
    out = []
    for a in args:
        try:
            out.append(copy.deepcopy(a))
        except Exception:
            out.append(a)
    return tuple(out)


def _value(answer, args, then):
    value = answer(*args) if callable(answer) else answer
    return then(value) if then is not None else value


def verdict(value, expected, mistakes=(), args=(), then=None, rtol=1e-6, atol=1e-9, problem_of=None):
    """'OK', or 'FAIL: <what is wrong>' with the hint of the first listed mistake it matches."""
    problem_of = problem_of or (lambda v, e: what_is_wrong(v, e, rtol, atol))
    problem = problem_of(value, expected)
    if problem is None:
        return "OK"
    for hint, wrong in mistakes:
        try:
            planted = _value(wrong, _copy(args), then)
        except Exception:  # a mistake that cannot run on these inputs matches nothing
            continue
        if what_is_wrong(value, planted, rtol, atol) is None:
            return f"FAIL: {problem}; hint: {hint}"
    return f"FAIL: {problem}"


def _yours(answer):
    """Your function, or with MINIREV_SOLUTIONS=1 the one of the same name in the solutions file."""
    if not (_flag("MINIREV_SOLUTIONS") and callable(answer)):
        return answer
    module = _solutions()
    if module is None or not hasattr(module, answer.__name__):
        raise RuntimeError(f"MINIREV_SOLUTIONS=1 but minirev/lessons/solutions/{_current['lesson']}.py has no "
                           f"function {answer.__name__}")
    return getattr(module, answer.__name__)


def _attempt(answer, args, then):
    """(value, None) or (None, the line to print) when the answer is not done or crashed."""
    try:
        value = answer(*_copy(args)) if callable(answer) else answer
    except NotImplementedError:
        return None, "not done yet"
    except Exception as error:  # the student's code crashed: say how, keep the lesson going
        return None, f"FAIL: your code raised {type(error).__name__}: {error}"
    try:
        return (then(value) if then is not None else value), None
    except Exception as error:  # e.g. a matrix of the wrong shape, used by the check
        return None, f"FAIL: your answer could not be used ({type(error).__name__}: {error}); check its shape and type"


def check(name, answer, expected, args=(), then=None, rtol=1e-6, atol=1e-9, problem_of=None):
    """Check an exercise: a function called with copies of `args` (or a value); prints one line.

    `then` turns the function's result into what is compared. Returns nothing: in a
    notebook the printed line is the cell's only output.
    """
    mistakes = _mistakes(name)
    value, line = _attempt(_yours(answer), args, then)
    if line is None:
        line = verdict(value, expected, mistakes, args, then, rtol, atol, problem_of)
    print(f"exercise {name}: {line}")
    if _flag("MINIREV_PLANT"):
        for hint, wrong in mistakes:
            try:
                planted = _value(wrong, _copy(args), then)
                said = verdict(planted, expected, mistakes, args, then, rtol, atol, problem_of)
            except Exception as error:
                said = f"the planted mistake raised {type(error).__name__}: {error}"
            print(f"planted mistake in {name} | {hint} | {said}")


def what_the_prediction_missed(predicted, observed, labels=None):
    """None if the prediction is what the run gave, else 'you predicted ..., the run gives ...'."""
    try:
        p, o = np.asarray(predicted, dtype=np.float64).ravel(), np.asarray(observed, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        return f"a prediction is a number or a list of numbers, got {type(predicted).__name__}"
    if p.shape != o.shape:
        return f"predict {o.size} value{'s' * (o.size > 1)}, you gave {p.size}"
    if (p == o).all():
        return None
    if o.size == 1:
        return f"you predicted {_num(p[0])}, the run gives {_num(o[0])}"
    labels = labels or [f"[{i}]" for i in range(o.size)]
    wrong = [f"{labels[i]}: you predicted {_num(p[i])}, the run gives {_num(o[i])}" for i in np.flatnonzero(p != o)]
    return f"{len(wrong)} of {o.size} predictions differ from the run: " + "; ".join(wrong)


def check_prediction(name, answer, observed, labels=None):
    """Check a prediction (a function of no arguments returning numbers) against what the run gave."""
    check(name, answer, observed, problem_of=lambda p, o: what_the_prediction_missed(p, o, labels))
