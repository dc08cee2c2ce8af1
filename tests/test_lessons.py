"""The lessons, run as a student runs them: as scripts and as notebooks, top to bottom.

Run only these checks with:  pytest -m lessons

Every lessons/NN_*.py runs twice in fast mode (MINIREV_FAST=1), from a foreign
working directory, with its figures sent to a temporary folder:

* as a script with its solutions filled in (MINIREV_SOLUTIONS=1) and every
  planted mistake fed to its check (MINIREV_PLANT=1): it must exit cleanly,
  every exercise check must say OK, every planted mistake must FAIL with its
  own hint, and every figure it announces must be a non-empty PNG;
* as its notebook (lessons/NN_*.ipynb, executed by nbclient in a python3
  kernel started in the notebook's folder, as Jupyter does, where __file__
  is not defined), blank: it must run to the end, every check saying "not
  done yet", with its figures shown inline.

The runs are started together (as many at a time as there are CPUs) and
shared by the tests. Other tests: every notebook is in sync with its .py
(jupytext), no lesson ships a solution, and the check's messages.
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

NOTEBOOK_RUNNER = r"""
import sys, nbformat
from nbclient import NotebookClient
path, out = sys.argv[1], sys.argv[2]
nb = nbformat.read(path, as_version=4)
NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": sys.argv[3]}}).execute()
nbformat.write(nb, out)
"""


def _env(out, **extra):
    env = dict(os.environ, MINIREV_FAST="1", MINIREV_LESSON_OUT=str(out), MPLBACKEND="Agg",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("MINIREV_SOLUTIONS", None)
    env.pop("MINIREV_PLANT", None)
    env.update(extra)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    return env


def _run(cmd, env, cwd):  # no time limit: a loaded machine is slow, not wrong (speed lives in benchmarks/)
    proc = subprocess.run(cmd, cwd=str(cwd), env=env, capture_output=True, text=True)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """name -> {"script": (rc, stdout, stderr, figure folder), "notebook": (rc, stdout, stderr, executed path)}."""
    base = tmp_path_factory.mktemp("lessons")
    cwd = base / "elsewhere"
    cwd.mkdir()
    jobs = []
    for path, name in zip(LESSONS, NAMES):
        fig = base / "script" / name
        jobs.append((name, "script", [sys.executable, path],
                     _env(fig, MINIREV_SOLUTIONS="1", MINIREV_PLANT="1"), cwd, fig))
        nb_out = base / f"{name}.executed.ipynb"
        jobs.append((name, "notebook", [sys.executable, "-c", NOTEBOOK_RUNNER, path[:-3] + ".ipynb", str(nb_out),
                                         LESSONS_DIR], _env(base / "notebook" / name), cwd, nb_out))
    results = {name: {} for name in NAMES}

    def work(job):
        name, kind, cmd, env, where, extra = job
        results[name][kind] = _run(cmd, env, where) + (extra,)

    jobs.reverse()                               # the later lessons take longest: start them first
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        list(pool.map(work, jobs))
    return results


def exercise_lines(stdout):
    """[(name, verdict)] of every 'exercise NAME: VERDICT' line."""
    return re.findall(r"^exercise (.+?): (.*)$", stdout, flags=re.M)


def test_lessons_are_found():
    assert len(LESSONS) == 9, f"expected the 9 lessons lessons/NN_topic.py in {LESSONS_DIR}, found {NAMES}"


@pytest.mark.parametrize("name", NAMES)
def test_lesson_with_solutions(name, runs):
    rc, stdout, stderr, figures_dir = runs[name]["script"]
    assert rc == 0, f"{name} (MINIREV_SOLUTIONS=1) exited with {rc}:\n{stdout[-1500:]}\n--- stderr ---\n{stderr[-3000:]}"
    checks = exercise_lines(stdout)
    wrong = [f"{n}: {v}" for n, v in checks if v != "OK"]
    assert not wrong, f"{name}: the solutions must pass their own checks, but: {wrong}"
    figures = re.findall(r"^figure: (.+)$", stdout, flags=re.M)
    assert figures, f"{name} printed no 'figure: <path>' line: every lesson saves at least one figure"
    for fig in figures:
        assert os.path.abspath(fig).startswith(str(figures_dir)), f"{name} saved {fig} outside MINIREV_LESSON_OUT"
        with open(fig, "rb") as f:
            head = f.read(8)
        assert head == b"\x89PNG\r\n\x1a\n" and os.path.getsize(fig) > 1000, f"{fig} is not a non-empty PNG"


@pytest.mark.parametrize("name", NAMES)
def test_every_planted_mistake_gets_its_hint(name, runs):
    """The check is fed each wrong answer listed in solutions/NAME.py and must give that answer's hint."""
    rc, stdout, stderr, _ = runs[name]["script"]
    assert rc == 0, f"{name} failed: {stderr[-2000:]}"
    sys.path.insert(0, LESSONS_DIR)
    try:
        from exercise import solutions_module
        listed = getattr(solutions_module(name), "MISTAKES", {})
    finally:
        sys.path.remove(LESSONS_DIR)
    planted = re.findall(r"^planted mistake in (.+?) \| (.+?) \| (.*)$", stdout, flags=re.M)
    seen = {(n, h) for n, h, _ in planted}
    for exercise_name, mistakes in listed.items():
        for hint, _ in mistakes:
            assert (exercise_name, hint) in seen, f"{name}: the mistake '{hint}' of '{exercise_name}' was never planted"
    for exercise_name, hint, verdict in planted:
        assert verdict.startswith("FAIL") and f"hint: {hint}" in verdict, (
            f"{name}, exercise {exercise_name}: a planted mistake should FAIL with the hint '{hint}', got: {verdict}")


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_blank_in_a_kernel(name, runs):
    for module in ("nbclient", "nbformat", "ipykernel"):
        pytest.importorskip(module, reason='pip install -e ".[lessons]" to run the notebooks')
    rc, stdout, stderr, executed = runs[name]["notebook"]
    assert rc == 0, f"{name}.ipynb did not run to the end in a python3 kernel:\n{stderr[-4000:]}"
    with open(executed, encoding="utf-8") as f:
        nb = json.load(f)
    text, images = [], 0
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            text.append("".join(output.get("text", "")))
            images += "image/png" in output.get("data", {})
    for exercise_name, verdict in exercise_lines("".join(text)):
        assert verdict == "not done yet", (
            f"{name}.ipynb, blank: every check should say 'not done yet', but {exercise_name} says {verdict!r}")
    assert images, f"{name}.ipynb showed no figure inline"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_in_sync_with_its_script(name):
    jupytext = pytest.importorskip("jupytext")
    path = os.path.join(LESSONS_DIR, name)
    assert os.path.isfile(path + ".ipynb"), (f"{name}.ipynb is missing: "
                                             f"jupytext --to ipynb --set-kernel python3 lessons/{name}.py")
    ours, theirs = jupytext.read(path + ".py"), jupytext.read(path + ".ipynb")
    cells = lambda nb: [(c.cell_type, c.source.strip()) for c in nb.cells]  # noqa: E731
    assert cells(ours) == cells(theirs), (f"lessons/{name}.ipynb is out of sync with its .py: run "
                                          f"jupytext --to ipynb --set-kernel python3 lessons/{name}.py")
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
    assert os.path.isfile(os.path.join(LESSONS_DIR, "solutions", name + ".py")), f"solutions/{name}.py is missing"


def _check(monkeypatch):
    """exercise.check, imported without letting exercise.py touch this process's environment."""
    monkeypatch.setattr(os, "environ", dict(os.environ))
    monkeypatch.syspath_prepend(LESSONS_DIR)
    import exercise
    monkeypatch.setattr(exercise, "SOLUTIONS", False)
    monkeypatch.setattr(exercise, "PLANT", False)
    return exercise


@pytest.mark.parametrize("mistake, says", [
    ("transposed", "transposed"),
    ("doubled", "factor 2"),
    ("negated", "wrong sign"),
    ("divided by 7", "factor 1/7"),
    ("a row short", "shape"),
], ids=["transposed", "doubled", "negated", "divided by 7", "a row short"])
def test_check_says_what_is_wrong(mistake, says, monkeypatch, capsys):
    import numpy as np
    check = _check(monkeypatch).check
    e = np.random.default_rng(0).standard_normal((4, 4))
    wrong = {"transposed": e.T, "doubled": 2 * e, "negated": -e, "divided by 7": e / 7, "a row short": e[:3]}[mistake]
    ok = check("x", wrong, e)
    line = capsys.readouterr().out.strip()
    assert not ok, f"check passed an answer {mistake}: it printed {line}"
    assert line.startswith("exercise x: FAIL") and says in line, f"for an answer {mistake}, check printed: {line}"


def test_check_gives_scalar_factors_and_wrong_entries(monkeypatch, capsys):
    check = _check(monkeypatch).check
    for yours, expected, says in [(0.0104849 / 90, 0.0104849, "yours is 1/90 of the expected value"),
                                  (7 * 0.5, 0.5, "yours is 7 times the expected value")]:
        ok = check("x", yours, expected)
        line = capsys.readouterr().out
        assert not ok, f"check passed {yours!r} for an expected {expected!r}: it printed {line}"
        assert says in line, f"for {yours!r} instead of {expected!r}, check should say {says!r}; it printed {line}"
    ok = check("x", [1.0, 2.0, 3.5, 4.0], [1.0, 2.0, 3.0, 4.0])
    line = capsys.readouterr().out
    assert not ok, f"check passed [1, 2, 3.5, 4] for an expected [1, 2, 3, 4]: it printed {line}"
    assert "1 of 4 entries wrong: [2] yours 3.5, expected 3" in line, line


def test_check_says_ok_not_done_yet_and_hint(monkeypatch, capsys):
    import numpy as np
    exercise = _check(monkeypatch)
    e = np.arange(6.0).reshape(2, 3)

    def not_done():
        raise NotImplementedError("exercise: your code here")

    ok = exercise.check("x", lambda: e.copy(), e)
    line = capsys.readouterr().out.strip()
    assert ok and line == "exercise x: OK", f"a right answer: check returned {ok} and printed {line!r}"
    ok = exercise.check("x", not_done, e)
    line = capsys.readouterr().out.strip()
    assert not ok and line == "exercise x: not done yet", (
        f"an exercise not done yet: check returned {ok} and printed {line!r}")
    said = exercise.verdict(e * 0, e, mistakes=[("all zeros: a missing sum?", lambda: e * 0)])
    assert said.startswith("FAIL") and said.endswith("hint: all zeros: a missing sum?"), (
        f"a listed mistake should FAIL with its hint 'all zeros: a missing sum?', the verdict is {said!r}")
