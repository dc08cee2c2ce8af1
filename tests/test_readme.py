"""The README's Python snippet as a person uses it: saved as a file and run with python, and in a notebook cell.

Run only these with: pytest -m cli
"""
import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def snippet():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = text.split("## From Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_snippet_runs_as_a_script(tmp_path):
    """A spawn pool without a __main__ guard crashes a script ("bootstrapping phase"): the API runs in-process."""
    path = tmp_path / "snippet.py"
    path.write_text(snippet())
    proc = subprocess.run([sys.executable, str(path)], cwd=tmp_path, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, f"snippet.py failed:\n{proc.stderr}"
    assert "unseen NLL, mean of 3 seeds:" in proc.stdout and proc.stdout.count("each seed:") == 1, proc.stdout


def test_the_snippet_runs_in_a_notebook_cell_and_keeps_the_inline_backend(tmp_path, monkeypatch):
    """In a kernel: the snippet runs, and after import minirev and its figures the user's own plot still shows."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    cells = [nbformat.v4.new_code_cell("import matplotlib\nbackend = matplotlib.get_backend()\nbackend"),
             nbformat.v4.new_code_cell(snippet()),
             nbformat.v4.new_code_cell("from minirev.plots import run_nll_figure\n"
                                       "run_nll_figure('reversal', result, runs, 'figs')\n"
                                       "import matplotlib.pyplot as plt\n"
                                       "assert matplotlib.get_backend() == backend, (backend, matplotlib.get_backend())\n"
                                       "plt.plot([1, 2, 3]); plt.show()")]
    nb = nbformat.v4.new_notebook(cells=cells)
    monkeypatch.setenv("PYTHONPATH", ROOT)                  # the kernel inherits this process's environment
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nbclient.NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    backend = nb.cells[0].outputs[0]["data"]["text/plain"]
    assert "inline" in backend, f"a kernel starts with the inline backend, got {backend}"
    printed = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    assert "unseen NLL, mean of 3 seeds:" in printed, printed
    shown = [o for o in nb.cells[2].outputs if "image/png" in o.get("data", {})]
    assert shown, "the user's own plt.plot(...); plt.show() after minirev drew its figures shows no image"


def test_import_and_drawing_leave_matplotlib_as_the_user_set_it(tmp_path):
    """No matplotlib.use() and no pyplot figure left open: MPLBACKEND=svg stays svg through a run that draws."""
    script = ("import matplotlib\nimport minirev\nfrom minirev import RunConfig, run_experiment\n"
              "from minirev.experiments import Experiment\n"
              "cfg = RunConfig(vocab=40, layers=1, width=8, heads=2, epochs=2)\n"
              "result, runs = run_experiment(cfg, out=None)\n"
              "Experiment.registry['reversal'].figures(result, runs, 'figs')\n"
              "import matplotlib.pyplot as plt\n"
              "print(matplotlib.get_backend(), len(plt.get_fignums()))\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=ROOT, MPLBACKEND="svg"))
    assert proc.returncode == 0, proc.stderr
    backend, open_figures = proc.stdout.split()
    assert backend == "svg", f"minirev changed the user's backend from svg to {backend}"
    assert open_figures == "0", f"{open_figures} pyplot figures left open after drawing"
    assert len(list((tmp_path / "figs").glob("*.png"))) == 3, "the reversal experiment draws three figures"
