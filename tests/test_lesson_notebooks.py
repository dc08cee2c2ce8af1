"""The lessons as a student uses them: notebooks opened on their own, cells re-run, prose read.

Heavy, so not in the default run:  pytest -m notebooks

* The package is built into a wheel and installed (not editable) into a fresh virtual
  environment; every notebook is copied to a folder outside the repository and executed
  there in a python3 kernel of that environment, in fast mode. The kernel must import
  minirev from the wheel.
* In the same kernel, after that Run All, every cell with a check runs again, twice, alone
  (as a student re-runs the cell of an exercise), with the solutions filled in and every
  listed mistake fed to its check (MINIREV_SOLUTIONS=1, MINIREV_PLANT=1, set in the
  kernel): a check whose expected value drifts when its cell re-runs, or that reads
  something a later cell changed, fails here.
* Blank, every check says "not done yet"; no cell shows a bare repr of a return value
  (an echoed True, a list of dicts); the figures are shown inline.
* Every number the prose quotes for full mode (`x` (full mode)) is printed by the full
  run of that lesson, executed as a script.
"""
import json
import os
import re
import subprocess
import sys
import sysconfig

import pytest

from test_lessons import (LESSONS, NAMES, ROOT, exercise_lines, listed_mistakes, missing_from_output,
                          quoted_numbers, run_lessons)

pytestmark = pytest.mark.notebooks

RUNNER = r"""
import json, re, sys, nbformat
from nbclient import NotebookClient
path, out = sys.argv[1], sys.argv[2]
nb = nbformat.read(path, as_version=4)
n = len(nb.cells)
probe = nbformat.v4.new_code_cell('import minirev\nprint("minirev imported from", minirev.__file__)')
switch = nbformat.v4.new_code_cell('import os\nos.environ.update(MINIREV_SOLUTIONS="1", MINIREV_PLANT="1")')
checks = [c.source for c in nb.cells if c.cell_type == "code" and re.search(r"^ *check(_prediction)?\(", c.source, re.M)]
again = [nbformat.v4.new_code_cell(source) for source in checks for _ in range(2)]
nb.cells = [probe] + nb.cells + [switch] + again
NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": sys.argv[3]}}).execute()
cells = [[o for o in c.get("outputs", [])] for c in nb.cells]
json.dump({"probe": cells[0], "first": cells[1:n + 1], "second": cells[n + 2:]}, open(out, "w"))
"""


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    """The python of a fresh venv with minirev installed from a wheel built from this checkout."""
    for module in ("nbclient", "nbformat", "ipykernel"):
        pytest.importorskip(module, reason='pip install -e ".[lessons]" to run the notebooks')
    base = tmp_path_factory.mktemp("wheel")
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(base / "dist"), ROOT]
    try:
        from importlib.metadata import version
        if int(version("setuptools").split(".")[0]) >= 77:            # pyproject's build requirement is here
            build.insert(4, "--no-build-isolation")
    except Exception:
        pass
    subprocess.run(build, check=True, capture_output=True)
    wheel = next((base / "dist").glob("minirev-*.whl"))
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    with open(os.path.join(site, "outer.pth"), "w") as f:            # numpy, ipykernel, ... from this environment
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                    "--ignore-installed", "-q", str(wheel)], check=True, capture_output=True)
    return python, venv


def selected(request, test):
    """The lessons that the selected tests named `test` ask for (all of them, unless -k picks some)."""
    return [n for n in NAMES if any(item.name == f"{test}[{n}]" for item in request.session.items)]


@pytest.fixture(scope="module")
def notebooks(wheel_env, tmp_path_factory, request):
    python, venv = wheel_env
    names = [n for n in NAMES if n in set().union(*(selected(request, t) for t in (
        "test_notebook_runs_alone_from_the_installed_wheel", "test_notebook_blank_then_every_cell_rerun_with_solutions",
        "test_notebook_shows_no_bare_repr_and_its_figures", "test_prose_quotes_the_fast_mode_output_of_the_notebook")))]
    base = tmp_path_factory.mktemp("notebooks")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MINIREV_SOLUTIONS", "MINIREV_PLANT")}
    env.update(MINIREV_FAST="1", MINIREV_LESSON_OUT=str(base / "figures"), OPENBLAS_NUM_THREADS="1")
    from concurrent.futures import ThreadPoolExecutor

    def work(name):
        folder = base / name
        folder.mkdir()
        nb = folder / (name + ".ipynb")
        with open(os.path.join(ROOT, "lessons", name + ".ipynb"), encoding="utf-8") as f:
            nb.write_text(f.read(), encoding="utf-8")
        out = folder / "outputs.json"
        proc = subprocess.run([str(python), "-c", RUNNER, str(nb), str(out), str(folder)], cwd=str(folder),
                              env=env, capture_output=True, text=True)
        return name, (proc.returncode, proc.stderr, json.loads(out.read_text()) if out.exists() else None)

    with ThreadPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1))) as pool:
        return dict(pool.map(work, reversed(names))), venv


def text_of(outputs):
    return "".join("".join(o.get("text", "")) for cell in outputs for o in cell)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_alone_from_the_installed_wheel(name, notebooks):
    (rc, stderr, cells), venv = notebooks[0][name], notebooks[1]
    assert rc == 0 and cells, f"{name}.ipynb, copied out of the repository, did not run:\n{stderr[-4000:]}"
    where = text_of([cells["probe"]])
    assert str(venv) in where, f"{name}.ipynb's kernel did not import minirev from the wheel's venv: {where}"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_blank_then_every_cell_rerun_with_solutions(name, notebooks):
    rc, stderr, cells = notebooks[0][name]
    assert rc == 0 and cells, f"{name}.ipynb did not run:\n{stderr[-4000:]}"
    first = exercise_lines(text_of(cells["first"]))
    assert first and all(v == "not done yet" for _, v in first), (
        f"{name}.ipynb, blank: every check should say 'not done yet', got {first}")
    second = text_of(cells["second"])
    wrong = [f"{n}: {v}" for n, v in exercise_lines(second) if v != "OK"]
    assert len(exercise_lines(second)) == 2 * len(first) and not wrong, (
        f"{name}.ipynb: after Run All, each check's cell re-run (twice) with its solution must say OK, but: {wrong}")
    planted = {(n, h): v for n, h, v in re.findall(r"^planted mistake in (.+?) \| (.+?) \| (.*)$", second, re.M)}
    for exercise_name, mistakes in listed_mistakes(name).items():
        for hint, _ in mistakes:
            said = planted.get((exercise_name, hint), "never planted")
            assert said.startswith("FAIL") and f"hint: {hint}" in said, (
                f"{name}.ipynb, re-run: the mistake '{hint}' of '{exercise_name}' should get its hint, got: {said}")


@pytest.mark.parametrize("name", NAMES)
def test_notebook_shows_no_bare_repr_and_its_figures(name, notebooks):
    rc, stderr, cells = notebooks[0][name]
    assert rc == 0 and cells, f"{name}.ipynb did not run:\n{stderr[-4000:]}"
    echoed = [(i + 1, o["data"].get("text/plain", "")[:80]) for i, cell in enumerate(cells["first"]) for o in cell
              if o.get("output_type") == "execute_result"]
    assert not echoed, f"{name}.ipynb: cells (by number) whose output is a bare repr of a value: {echoed}"
    assert any("image/png" in o.get("data", {}) for cell in cells["first"] for o in cell), (
        f"{name}.ipynb showed no figure inline")


@pytest.mark.parametrize("name", NAMES)
def test_prose_quotes_the_fast_mode_output_of_the_notebook(name, notebooks):
    rc, stderr, cells = notebooks[0][name]
    assert rc == 0 and cells, f"{name}.ipynb did not run:\n{stderr[-4000:]}"
    missing = missing_from_output(quoted_numbers(name, "fast"), text_of(cells["first"]))
    assert not missing, f"{name}: the prose quotes {missing} (fast mode), which the fast notebook does not print"


@pytest.fixture(scope="module")
def full_runs(tmp_path_factory, request):
    base = tmp_path_factory.mktemp("full")
    names = selected(request, "test_prose_quotes_the_full_mode_output")
    return run_lessons([p for p, n in zip(LESSONS, NAMES) if n in names], base / "figures", base, MINIREV_FAST="0")


@pytest.mark.parametrize("name", NAMES)
def test_prose_quotes_the_full_mode_output(name, full_runs):
    stdout, error = full_runs[name]
    assert error is None, f"{name}, full mode, stopped:\n{error[-3000:]}"
    missing = missing_from_output(quoted_numbers(name, "full"), stdout)
    assert not missing, f"{name}: the prose quotes {missing} (full mode), which the full run does not print"
