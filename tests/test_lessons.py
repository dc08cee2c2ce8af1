"""The lessons, checked cheaply in the default suite: each runs once as a script, fast mode.

Run only these checks with:  pytest -m lessons
The heavy checks (a real kernel per notebook, every cell re-run, the package from a
built wheel, the full-mode numbers of the prose) are tests/test_lesson_notebooks.py:
    pytest -m notebooks

Every lessons/NN_*.py but the three longest (HEAVY, left to -m notebooks) runs in fast mode (MINIREV_FAST=1) with its solutions filled
in (MINIREV_SOLUTIONS=1) and every listed mistake fed to its check (MINIREV_PLANT=1),
from a foreign working directory, figures sent to a temporary folder. The lessons
run one after another in two processes (one per core; no process per lesson pays
the imports again). Each must end cleanly, every check say OK, every planted mistake
FAIL with its own hint, every announced figure be a PNG, and every number the prose
quotes for fast mode appear in the printed output.
"""
import glob
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

pytestmark = pytest.mark.lessons

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LESSONS_DIR = os.path.join(ROOT, "lessons")
LESSONS = sorted(glob.glob(os.path.join(LESSONS_DIR, "[0-9][0-9]_*.py")))
NAMES = [os.path.basename(p)[:-3] for p in LESSONS]
# The default run keeps to its budget by leaving the three longest fast runs (lessons 6, 8, 9: about
# 20 s of CPU together) to pytest -m notebooks, which runs every lesson's checks and hints in a kernel.
HEAVY = {"06_the_curse_in_a_gpt", "08_cures_on_the_data_side", "09_cures_on_the_model_side"}
SCRIPTS = [n for n in NAMES if n not in HEAVY]

# A prose number quoted from the output, as the lessons write it: `0.8405` (full mode)
QUOTED = re.compile(r"`([-+]?[0-9][0-9.]*(?:e[-+]?[0-9]+)?)`\s+\((full|fast) mode\)")

RUNNER = r"""
import contextlib, io, json, runpy, sys, traceback
results = {}
for path in sys.argv[2:]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            runpy.run_path(path, run_name="__main__")
            error = None
        except BaseException:
            error = traceback.format_exc()
    results[path] = [out.getvalue(), error]
with open(sys.argv[1], "w") as f:
    json.dump(results, f)
"""


def lesson_env(out, **extra):
    """The environment of a lesson run: fast mode, one BLAS thread, figures in `out`, this repository's minirev."""
    env = dict(os.environ, MINIREV_FAST="1", MINIREV_LESSON_OUT=str(out), MPLBACKEND="Agg",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for name in ("MINIREV_SOLUTIONS", "MINIREV_PLANT"):
        env.pop(name, None)
    env.update(extra)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    return env


def run_lessons(paths, out, cwd, **extra):
    """{name: (stdout, error or None)} of the lessons run as scripts, in as many processes as CPUs (at most 2)."""
    workers = max(1, min(2, os.cpu_count() or 1))
    shares = [paths[::-1][i::workers] for i in range(workers)]        # the longest (the last) first, spread
    env = lesson_env(out, **extra)

    def work(i):
        result = os.path.join(str(out), f"share{i}.json")
        proc = subprocess.run([sys.executable, "-c", RUNNER, result, *shares[i]], cwd=str(cwd), env=env,
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"the lesson runner failed:\n{proc.stderr[-3000:]}"
        with open(result) as f:
            return json.load(f)

    os.makedirs(str(out), exist_ok=True)
    merged = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for part in pool.map(work, range(workers)):
            merged.update({os.path.basename(p)[:-3]: tuple(v) for p, v in part.items()})
    return merged


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("lessons")
    (base / "elsewhere").mkdir()
    paths = [p for p, n in zip(LESSONS, NAMES) if n in SCRIPTS]
    return run_lessons(paths, base / "figures", base / "elsewhere", MINIREV_SOLUTIONS="1", MINIREV_PLANT="1"), base


def exercise_lines(stdout):
    """[(name, verdict)] of every 'exercise NAME: VERDICT' line."""
    return re.findall(r"^exercise (.+?): (.*)$", stdout, flags=re.M)


def markdown_text(name):
    """The prose of a lesson: its markdown cells, comment marks removed."""
    text, markdown = [], False
    with open(os.path.join(LESSONS_DIR, name + ".py"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("# %%"):
                markdown = "[markdown]" in line
            elif markdown:
                text.append(line[2:] if line.startswith("# ") else line.lstrip("#"))
    return "".join(text)


def quoted_numbers(name, mode):
    return [number for number, m in QUOTED.findall(markdown_text(name)) if m == mode]


def missing_from_output(numbers, output):
    """The quoted numbers that the output does not print (as a whole number, not inside a longer one)."""
    return [n for n in numbers if not re.search(rf"(?<![0-9.]){re.escape(n)}(?![0-9])", output)]


def listed_mistakes(name):
    sys.path.insert(0, ROOT)
    try:
        from minirev.lessons import solutions_module
        return getattr(solutions_module(name), "MISTAKES", {})
    finally:
        sys.path.remove(ROOT)


def test_lessons_are_found():
    assert len(LESSONS) == 9, f"expected the 9 lessons lessons/NN_topic.py in {LESSONS_DIR}, found {NAMES}"


@pytest.mark.parametrize("name", SCRIPTS)
def test_lesson_with_solutions(name, runs):
    (stdout, error), figures_dir = runs[0][name], runs[1] / "figures"
    assert error is None, f"{name} (MINIREV_SOLUTIONS=1) stopped:\n{stdout[-1500:]}\n--- error ---\n{error[-3000:]}"
    checks = exercise_lines(stdout)
    assert checks, f"{name} printed no 'exercise NAME: ...' line"
    wrong = [f"{n}: {v}" for n, v in checks if v != "OK"]
    assert not wrong, f"{name}: the solutions must pass their own checks, but: {wrong}"
    figures = re.findall(r"^figure: (.+)$", stdout, flags=re.M)
    assert figures, f"{name} printed no 'figure: <path>' line: every lesson saves at least one figure"
    for fig in figures:
        assert os.path.abspath(fig).startswith(str(figures_dir)), f"{name} saved {fig} outside MINIREV_LESSON_OUT"
        with open(fig, "rb") as f:
            head = f.read(8)
        assert head == b"\x89PNG\r\n\x1a\n" and os.path.getsize(fig) > 1000, f"{fig} is not a non-empty PNG"


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_planted_mistake_gets_its_hint(name, runs):
    """The check is fed each wrong answer listed in minirev/lessons/solutions/NAME.py and must give its hint."""
    stdout, error = runs[0][name]
    assert error is None, f"{name} failed: {error[-2000:]}"
    planted = re.findall(r"^planted mistake in (.+?) \| (.+?) \| (.*)$", stdout, flags=re.M)
    seen = {(n, h) for n, h, _ in planted}
    for exercise_name, mistakes in listed_mistakes(name).items():
        for hint, _ in mistakes:
            assert (exercise_name, hint) in seen, f"{name}: the mistake '{hint}' of '{exercise_name}' was never planted"
    for exercise_name, hint, verdict in planted:
        assert verdict.startswith("FAIL") and f"hint: {hint}" in verdict, (
            f"{name}, exercise {exercise_name}: a planted mistake should FAIL with the hint '{hint}', got: {verdict}")


@pytest.mark.parametrize("name", SCRIPTS)
def test_prose_quotes_the_fast_mode_output(name, runs):
    """Each `number` (fast mode) in the prose is printed by the fast run."""
    stdout, error = runs[0][name]
    assert error is None, f"{name} failed: {error[-2000:]}"
    missing = missing_from_output(quoted_numbers(name, "fast"), stdout)
    assert not missing, f"{name}: the prose quotes {missing} (fast mode), which the fast run does not print"


def test_the_lessons_quote_numbers_of_both_modes():
    quotes = {mode: sum(len(quoted_numbers(n, mode)) for n in NAMES) for mode in ("fast", "full")}
    assert quotes["fast"] and quotes["full"], f"the prose quotes no printed number for some mode: {quotes}"


def test_the_quote_check_can_fail():
    assert QUOTED.findall("a net `0.8405` (full mode), and `-0.11`\n(fast mode)") == [("0.8405", "full"),
                                                                                        ("-0.11", "fast")]
    assert missing_from_output(["0.8405", "34.6"], "net 0.8405 and 34.68") == ["34.6"], (
        "a quoted 34.6 must not be found inside a printed 34.68")


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_in_sync_with_its_script(name):
    jupytext = pytest.importorskip("jupytext")
    path = os.path.join(LESSONS_DIR, name)
    assert os.path.isfile(path + ".ipynb"), (f"{name}.ipynb is missing: "
                                             f"jupytext --to ipynb --set-kernel python3 lessons/{name}.py")
    ours, theirs = jupytext.read(path + ".py"), jupytext.read(path + ".ipynb")
    cells = lambda nb: [(c.cell_type, c.source.strip()) for c in nb.cells]  # noqa: E731
    assert cells(ours) == cells(theirs), (f"lessons/{name}.ipynb is out of sync with its .py: run "
                                          f"jupytext --update --to ipynb --set-kernel python3 lessons/{name}.py")
    with open(path + ".ipynb", encoding="utf-8") as f:
        nb = json.load(f)
    for number, cell in enumerate(nb["cells"], 1):
        assert not cell.get("outputs"), f"{name}.ipynb has outputs (cell {number} first): commit it stripped"


@pytest.mark.parametrize("name", NAMES)
def test_no_code_hides_in_a_markdown_cell(name):
    """In a markdown cell every line is a comment: code there runs as a script but not in the notebook."""
    markdown, stray = False, []
    with open(os.path.join(LESSONS_DIR, name + ".py"), encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.startswith("# %%"):
                markdown = "[markdown]" in line
            elif markdown and line.strip() and not line.startswith("#"):
                stray.append(f"line {number}: {line.rstrip()}")
    assert not stray, f"{name}: code inside a markdown cell (a missing '# %%'?): {stray[:3]}"


@pytest.mark.parametrize("name", NAMES)
def test_lesson_ships_blank_and_cites_the_paper(name):
    with open(os.path.join(LESSONS_DIR, name + ".py"), encoding="utf-8") as f:
        text = f.read()
    assert "2405.04669" in text and "docs/paper.md" in text, f"{name} must cite arXiv 2405.04669 and docs/paper.md"
    assert "# SOLUTION" not in text, f"{name} ships an inline solution"
    others = {m for m in re.findall(r"[\w./-]*paper\.md", text, flags=re.I) if m != "docs/paper.md"}
    assert not others, f"{name} points at {others}: the paper's notes are docs/paper.md"
    assert re.search(r"measured on 2 cores:[\s#]+[0-9.]+ s full, [0-9.]+ s fast", text), f"{name}: state the measured time"
    assert os.path.isfile(os.path.join(ROOT, "minirev", "lessons", "solutions", name + ".py")), (
        f"minirev/lessons/solutions/{name}.py is missing")
    assert "from exercise" not in text, f"{name} imports exercise.py: the checker is minirev.lessons"


def test_colab_links_and_install_lines_follow_the_one_setting():
    sys.path.insert(0, LESSONS_DIR)
    try:
        import colab
    finally:
        sys.path.remove(LESSONS_DIR)
    with open(os.path.join(LESSONS_DIR, "README.md"), encoding="utf-8") as f:
        assert colab.links() in f.read(), "lessons/README.md's Colab links differ from lessons/colab.py: run it"
    for name in NAMES:
        with open(os.path.join(LESSONS_DIR, name + ".py"), encoding="utf-8") as f:
            urls = colab.INSTALL.findall(f.read())
        assert urls == [colab.install_url()], (
            f"{name}'s first cell installs from {urls}, not {colab.install_url()}: run python lessons/colab.py")


# ---- the check's messages, in-process ---------------------------------------------------------------

@pytest.fixture
def lessons_module(monkeypatch):
    """minirev.lessons with the solutions and planting switched off for this test."""
    monkeypatch.delenv("MINIREV_SOLUTIONS", raising=False)
    monkeypatch.delenv("MINIREV_PLANT", raising=False)
    monkeypatch.syspath_prepend(ROOT)
    import minirev.lessons
    return minirev.lessons


@pytest.mark.parametrize("mistake, says", [
    ("transposed", "transposed"),
    ("doubled", "factor 2"),
    ("negated", "wrong sign"),
    ("divided by 7", "factor 1/7"),
    ("a row short", "shape"),
], ids=["transposed", "doubled", "negated", "divided by 7", "a row short"])
def test_check_says_what_is_wrong(mistake, says, lessons_module, capsys):
    import numpy as np
    e = np.random.default_rng(0).standard_normal((4, 4))
    wrong = {"transposed": e.T, "doubled": 2 * e, "negated": -e, "divided by 7": e / 7, "a row short": e[:3]}[mistake]
    assert lessons_module.check("x", wrong, e) is None, "check returns nothing: a notebook would echo it"
    line = capsys.readouterr().out.strip()
    assert line.startswith("exercise x: FAIL") and says in line, f"for an answer {mistake}, check printed: {line}"


def test_check_gives_clean_scalar_factors_only(lessons_module, capsys):
    for yours, expected, says in [(0.0104849 / 90, 0.0104849, "yours is 1/90 of the expected value"),
                                  (7 * 0.5, 0.5, "yours is 7 times the expected value"),
                                  (-0.5, 0.5, "the wrong sign"),
                                  (0.02178 * 0.5, 0.5, "yours 0.01089, expected 0.5")]:
        lessons_module.check("x", yours, expected)
        line = capsys.readouterr().out.strip()
        assert line.startswith("exercise x: FAIL") and line.endswith(says), (
            f"for {yours!r} instead of {expected!r}, check should end with {says!r}; it printed {line}")
    lessons_module.check("x", -0.0, 0.0108777)
    line = capsys.readouterr().out
    assert "yours 0," in line and "-0" not in line, f"a zero answer must print as 0, not -0: {line}"
    lessons_module.check("x", [1.0, 2.0, 3.5, 4.0], [1.0, 2.0, 3.0, 4.0])
    line = capsys.readouterr().out
    assert "1 of 4 entries wrong: [2] yours 3.5, expected 3" in line, line


def test_check_says_ok_not_done_yet_and_hint(lessons_module, capsys):
    import numpy as np
    e = np.arange(6.0).reshape(2, 3)

    def not_done():
        raise NotImplementedError("exercise: your code here")

    lessons_module.check("x", lambda: e.copy(), e)
    line = capsys.readouterr().out.strip()
    assert line == "exercise x: OK", f"a right answer: check printed {line!r}"
    lessons_module.check("x", not_done, e)
    line = capsys.readouterr().out.strip()
    assert line == "exercise x: not done yet", f"an exercise not done yet: check printed {line!r}"
    said = lessons_module.verdict(e * 0, e, mistakes=[("all zeros: a missing sum?", lambda: e * 0)])
    assert said.startswith("FAIL") and said.endswith("hint: all zeros: a missing sum?"), (
        f"a listed mistake should FAIL with its hint 'all zeros: a missing sum?', the verdict is {said!r}")


def test_a_wrong_prediction_is_worded_as_a_prediction(lessons_module, capsys):
    lessons_module.check_prediction("p", lambda: -1, 1)
    line = capsys.readouterr().out.strip()
    assert line == "exercise p: FAIL: you predicted -1, the run gives 1", f"a wrong +1/0/-1 prediction: {line!r}"
    lessons_module.check_prediction("p", lambda: [1, 0], [1, 1], labels=["tied", "untied"])
    line = capsys.readouterr().out.strip()
    assert "untied: you predicted 0, the run gives 1" in line and "sign" not in line, (
        f"a wrong list of predictions must name the entry it gets wrong: {line!r}")
