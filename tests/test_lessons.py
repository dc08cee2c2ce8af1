"""The lessons, run as a student runs them: as scripts, top to bottom.

Run only these checks with:  pytest -m lessons

Every lessons/NN_*.py runs in fast mode (MINIREV_FAST=1) from a foreign
working directory, with its figures sent to a temporary folder. It must exit
cleanly, every exercise check it prints must say OK, and every figure it
announces must be a non-empty PNG in that folder. The blank variants (written
by ``python lessons/exercise.py blank``) must still run, saying "not done yet".
"""
import glob
import os
import py_compile
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.lessons

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LESSONS_DIR = os.path.join(ROOT, "lessons")
LESSONS = sorted(glob.glob(os.path.join(LESSONS_DIR, "[0-9][0-9]_*.py")))
TIMEOUT = 60          # seconds per lesson in fast mode; they take a few
BLANK_RUNS = ("02_bilinear_by_hand.py", "04_one_layer_transformer.py")


def run_lesson(path, out, cwd):
    env = dict(os.environ, MINIREV_FAST="1", MINIREV_LESSON_OUT=str(out), MPLBACKEND="Agg")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        proc = subprocess.run([sys.executable, path], cwd=str(cwd), env=env, capture_output=True,
                              text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{os.path.basename(path)} did not finish in {TIMEOUT} s in fast mode (MINIREV_FAST=1)")
    tail = (proc.stdout[-1500:] + "\n--- stderr ---\n" + proc.stderr[-3000:])
    assert proc.returncode == 0, f"{os.path.basename(path)} exited with {proc.returncode}:\n{tail}"
    return proc.stdout


def exercise_lines(stdout):
    """[(name, verdict)] of every 'exercise NAME: VERDICT' line."""
    return re.findall(r"^exercise (.+?): (.*)$", stdout, flags=re.M)


def test_lessons_are_found():
    assert len(LESSONS) >= 4, f"expected lessons/NN_topic.py files in {LESSONS_DIR}, found {LESSONS}"


@pytest.mark.parametrize("path", LESSONS, ids=[os.path.basename(p)[:-3] for p in LESSONS])
def test_lesson_runs_in_fast_mode(path, tmp_path):
    out, cwd = tmp_path / "figures", tmp_path / "elsewhere"
    cwd.mkdir()
    stdout = run_lesson(path, out, cwd)
    name = os.path.basename(path)

    checks = exercise_lines(stdout)
    assert checks, f"{name} printed no 'exercise NAME: ...' line: every lesson has at least one exercise"
    wrong = [f"{n}: {v}" for n, v in checks if v != "OK"]
    assert not wrong, f"{name}: the shipped solutions must pass their own checks, but: {wrong}"

    figures = re.findall(r"^figure: (.+)$", stdout, flags=re.M)
    assert figures, f"{name} printed no 'figure: <path>' line: every lesson saves at least one figure"
    for fig in figures:
        assert os.path.isfile(fig), f"{name} announced {fig}, which does not exist"
        assert os.path.abspath(fig).startswith(str(out)), (
            f"{name} saved {fig} outside MINIREV_LESSON_OUT={out}: use exercise.out_dir(...)")
        with open(fig, "rb") as f:
            head = f.read(8)
        assert head == b"\x89PNG\r\n\x1a\n" and os.path.getsize(fig) > 1000, f"{fig} is not a non-empty PNG"


@pytest.fixture(scope="module")
def blank_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("blank")
    proc = subprocess.run([sys.executable, os.path.join(LESSONS_DIR, "exercise.py"), "blank", str(folder)],
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, f"python lessons/exercise.py blank failed:\n{proc.stdout}\n{proc.stderr}"
    return folder


@pytest.mark.parametrize("path", LESSONS, ids=[os.path.basename(p)[:-3] for p in LESSONS])
def test_blank_variant_has_its_solutions_removed(path, blank_dir):
    name = os.path.basename(path)
    blank = blank_dir / name
    assert blank.is_file(), f"the blank writer did not write {name}"
    with open(path, encoding="utf-8") as f:
        original = f.read()
    text = blank.read_text(encoding="utf-8")
    assert "# SOLUTION" in original, f"{name} has no line marked '# SOLUTION': no exercise to blank out"
    assert "# SOLUTION" not in text, f"blank {name} still contains solution lines"
    assert 'raise NotImplementedError("exercise: your code here")' in text
    py_compile.compile(str(blank), cfile=str(blank_dir / (name + "c")), doraise=True)


@pytest.mark.parametrize("name", BLANK_RUNS)
def test_blank_lesson_runs_and_says_not_done_yet(name, blank_dir, tmp_path):
    if not (blank_dir / name).is_file():
        pytest.skip(f"{name} does not exist")
    stdout = run_lesson(str(blank_dir / name), tmp_path / "figures", tmp_path)
    verdicts = [v for _, v in exercise_lines(stdout)]
    assert verdicts and all(v == "not done yet" for v in verdicts), (
        f"blank {name}: every exercise check should say 'not done yet', got {verdicts}")


def load_check(monkeypatch):
    """exercise.check, imported without letting exercise.py touch this process's environment."""
    monkeypatch.setattr(os, "environ", dict(os.environ))
    monkeypatch.syspath_prepend(LESSONS_DIR)
    from exercise import check
    return check


@pytest.mark.parametrize("mistake, says", [
    ("transposed", "transposed"),
    ("doubled", "factor 2"),
    ("negated", "wrong sign"),
    ("divided by 7", "factor 1/7"),
    ("a row short", "shape"),
])
def test_check_says_what_is_wrong(mistake, says, monkeypatch, capsys):
    import numpy as np
    check = load_check(monkeypatch)
    e = np.random.default_rng(0).standard_normal((4, 4))
    wrong = {"transposed": e.T, "doubled": 2 * e, "negated": -e, "divided by 7": e / 7, "a row short": e[:3]}[mistake]
    assert not check("x", wrong, e)
    line = capsys.readouterr().out.strip()
    assert line.startswith("exercise x: FAIL") and says in line, f"for an answer {mistake}, check printed: {line}"


def test_check_says_ok_and_not_done_yet(monkeypatch, capsys):
    import numpy as np
    check = load_check(monkeypatch)
    e = np.arange(6.0).reshape(2, 3)

    def not_done():
        raise NotImplementedError("exercise: your code here")

    assert check("x", lambda: e.copy(), e) and capsys.readouterr().out.strip() == "exercise x: OK"
    assert not check("x", not_done, e) and capsys.readouterr().out.strip() == "exercise x: not done yet"
