"""The shape of the package: no import cycle, small files, every model registered and checked.

Run only these with: pytest -m structure
"""
import ast
import pathlib
import subprocess
import sys

import pytest

import minirev
from minirev.gradcheck import check_model
from minirev.model import Model
from gradients import TOL, assert_gradients_match

pytestmark = pytest.mark.structure

PACKAGE = pathlib.Path(minirev.__file__).parent
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
MAX_LINES = 350


def top_level_imports(module):
    """The package modules `module` imports when it is loaded (imports inside functions excluded)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found |= {node.module} if node.module else {a.name for a in node.names}
    return found & set(MODULES)


def find_cycle(graph):
    """One import cycle as a list of modules, or None."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt, path + [nxt])
                if cycle:
                    return cycle
        state[node] = "done"

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start, [start])
            if cycle:
                return cycle


def test_no_import_cycle_between_package_modules():
    graph = {m: top_level_imports(m) for m in MODULES}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_can_fail():
    assert find_cycle({"model": {"checkpoint"}, "checkpoint": {"gpt"}, "gpt": {"model"}}) == \
        ["checkpoint", "gpt", "model", "checkpoint"]


def test_saving_and_the_models_do_not_know_each_other():
    assert "checkpoint" not in top_level_imports("model"), "the base model must not import the checkpoint code"
    models = {cls.__module__.rsplit(".", 1)[1] for cls in Model.registry.values()}
    assert not models & top_level_imports("checkpoint"), "checkpoint.py finds models through the registry"


def test_every_module_imports_on_its_own():
    """Each module in a fresh interpreter, alone: an import cycle or a missing import fails here."""
    script = "import importlib, sys\n" + "".join(
        f"[sys.modules.pop(k) for k in list(sys.modules) if k.startswith('minirev')]\n"
        f"importlib.import_module('minirev.{m}')\n" for m in MODULES)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("module", MODULES)
def test_no_package_file_is_too_long_to_read(module):
    lines = len((PACKAGE / f"{module}.py").read_text().splitlines())
    assert lines <= MAX_LINES, f"minirev/{module}.py has {lines} lines: split it by concept"


# ---- the registry: every model carries what a run needs ----------------------------------------

@pytest.mark.parametrize("kind", sorted(Model.registry))
def test_every_registered_model_passes_its_own_gradient_check(kind):
    model, tokens = Model.registry[kind].gradcheck_example(seed=0)
    assert_gradients_match(check_model(model, tokens, tol=TOL, out=None), f"{kind} gradcheck_example")


@pytest.mark.parametrize("kind", sorted(Model.registry))
def test_every_registered_model_has_a_learning_rate_and_builds_from_a_config(kind):
    from minirev import RunConfig
    from minirev.experiments import make_dataset, make_model, make_optimizer
    cls = Model.registry[kind]
    assert cls.default_lr and cls.default_lr > 0
    cfg = RunConfig(model=kind, vocab=40, layers=1, width=8, heads=2).resolved()
    model = make_model(cfg, make_dataset(cfg))
    assert type(model) is cls and make_optimizer(cfg).lr == cls.default_lr


def test_a_planted_wrong_gradient_fails_the_registry_check():
    model, tokens = Model.registry["bilinear"].gradcheck_example(seed=0)
    real = model.backward
    model.backward = lambda cache: {k: 2 * v for k, v in real(cache).items()}    # a factor of 2
    ok, rows = check_model(model, tokens, tol=TOL, out=None)
    assert not ok and abs(rows[0]["rel_error"] - 1 / 3) < 1e-6
