"""The shape of the package: no import cycle, small files, every model registered and checked.

Run only these with: pytest -m structure
"""
import ast
import json
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
# every module of the package by its dotted name below minirev: "layers", "machinery.checkpoint", ...
MODULES = sorted(".".join(p.relative_to(PACKAGE).with_suffix("").parts) for p in PACKAGE.rglob("*.py")
                 if p.stem != "__init__")
MAX_LINES = 350
# the student's core: the layers, the models, the optimisers, the loop, the trace, the check, the data,
# the backend. It must never need the machinery (minirev/machinery/: checkpoints, files, limits, processes).
CORE = ["backend", "errors", "layers", "embeddings", "model", "bilinear", "one_layer", "factorized", "gpt", "gpt_trace", "mlm",
        "optim", "train", "trace", "gradcheck", "data"]


def source(module):
    return (PACKAGE / (module.replace(".", "/") + ".py")).read_text()


def top_level_imports(module):
    """The package modules `module` imports when it is loaded (imports inside functions excluded)."""
    tree = ast.parse(source(module))
    here = module.split(".")[:-1]                       # the subpackage `module` sits in
    found = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level >= 1:
            base = here[:len(here) - (node.level - 1)]
            if node.module:
                found.add(".".join(base + node.module.split(".")))
            found |= {".".join(base + (node.module.split(".") if node.module else []) + [a.name]) for a in node.names}
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


def reachable(graph, start):
    """Every module `start` loads, directly or through the modules it imports."""
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_no_import_cycle_between_package_modules():
    graph = {m: top_level_imports(m) for m in MODULES}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_can_fail():
    assert find_cycle({"model": {"checkpoint"}, "checkpoint": {"gpt"}, "gpt": {"model"}}) == \
        ["checkpoint", "gpt", "model", "checkpoint"]


def test_the_import_reader_sees_an_import_from_the_parent_package():
    assert "model" in top_level_imports("machinery.checkpoint"), "checkpoint.py imports ..model"
    assert "machinery.files" in top_level_imports("machinery.checkpoint"), "checkpoint.py imports .files"


def test_the_core_never_imports_the_machinery():
    graph = {m: top_level_imports(m) for m in MODULES}
    assert set(CORE) <= set(MODULES), f"core modules missing: {set(CORE) - set(MODULES)}"
    for module in CORE:
        machinery = sorted(m for m in reachable(graph, module) if m.startswith("machinery."))
        assert not machinery, f"minirev/{module}.py loads {', '.join(machinery)}: the core must not need the machinery"


def test_the_fence_check_sees_a_planted_import():
    graph = {"layers": {"model"}, "model": {"machinery.files"}, "machinery.files": set()}
    assert reachable(graph, "layers") == {"model", "machinery.files"}


def test_saving_and_the_models_do_not_know_each_other():
    assert "machinery.checkpoint" not in top_level_imports("model"), "the base model must not import the checkpoint code"
    models = {cls.__module__.split(".", 1)[1] for cls in Model.registry.values()}
    assert not models & top_level_imports("machinery.checkpoint"), "checkpoint.py finds models through the registry"


# Each module loaded alone, in one fresh interpreter: before each, every minirev module is forgotten and
# a stand-in for the package is put in place, so its modules load from its folder but minirev/__init__.py
# (which imports everything) never runs, and a module brings in only what it imports itself.
ALONE = """import importlib, json, sys, types
loaded = {{}}
for module in {modules!r}:
    for name in [k for k in sys.modules if k == "minirev" or k.startswith("minirev.")]:
        del sys.modules[name]
    package = types.ModuleType("minirev")
    package.__path__ = [{folder!r}]
    sys.modules["minirev"] = package
    try:
        importlib.import_module("minirev." + module)
    except Exception as e:
        loaded[module] = "FAILED: " + repr(e)
        continue
    loaded[module] = sorted(k[len("minirev."):] for k in sys.modules if k.startswith("minirev."))
print(json.dumps(loaded))
"""


def test_every_module_imports_on_its_own():
    """A missing import fails here, and a core module that pulls in the machinery is named."""
    proc = subprocess.run([sys.executable, "-c", ALONE.format(folder=str(PACKAGE), modules=MODULES)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout)
    failed = {m: v for m, v in loaded.items() if isinstance(v, str)}
    assert not failed, f"these modules do not import on their own: {failed}"
    for module in CORE:
        machinery = [m for m in loaded[module] if m.startswith("machinery")]
        assert not machinery, f"minirev.{module} loads {machinery}: the core must not need the machinery"


@pytest.mark.parametrize("module", MODULES)
def test_no_package_file_is_too_long_to_read(module):
    lines = len(source(module).splitlines())
    assert lines <= MAX_LINES, f"minirev/{module}.py has {lines} lines: split it by concept"


# ---- the registry: every model carries what a run needs ----------------------------------------

@pytest.mark.parametrize("kind", sorted(Model.registry))
def test_every_registered_model_passes_its_own_gradient_check(kind):
    model, tokens = Model.registry[kind].gradcheck_example(seed=0)
    assert_gradients_match(check_model(model, tokens, tol=TOL, out=None), f"{kind} gradcheck_example")


@pytest.mark.parametrize("kind", sorted(Model.registry))
def test_every_registered_model_has_a_learning_rate_and_builds_from_a_config(kind):
    from minirev import RunConfig
    from minirev.running import make_dataset, make_model, make_optimizer
    cls = Model.registry[kind]
    assert cls.default_lr and cls.default_lr > 0
    sizes = {k: v for k, v in dict(layers=1, width=8, heads=2).items() if k in cls.options}  # others are refused
    cfg = RunConfig(model=kind, vocab=40, **sizes).resolved()
    model = make_model(cfg, make_dataset(cfg))
    assert type(model) is cls, f"--model {kind} built a {type(model).__name__}"
    assert make_optimizer(cfg).lr == cls.default_lr, f"{kind}: the run's lr is not the model's default_lr"
    assert make_optimizer(cfg).name == cls.default_optimizer, f"{kind}: the run's optimiser is not its default"


@pytest.mark.parametrize("kind", sorted(Model.registry))
def test_every_registered_model_counts_its_parameters_for_the_memory_check(kind):
    """The count is made before anything is built: it must cover at least what the model then holds."""
    from minirev import RunConfig
    from minirev.experiments import Experiment
    from minirev.running import make_dataset, make_model
    cls = Model.registry[kind]
    sizes = {k: v for k, v in dict(layers=2, width=8, heads=2).items() if k in cls.options}
    cfg = RunConfig(model=kind, vocab=40, **sizes).resolved()
    model = make_model(cfg, make_dataset(cfg))
    V, P, _ = Experiment.registry[cfg.experiment].shape(cfg)
    counted = cls.parameter_count(cfg, V, P)
    assert counted >= model.num_params(), f"{kind}: parameter_count says {counted}, the model holds {model.num_params()}"
    assert counted <= 2 * model.num_params() + V * 8, f"{kind}: parameter_count {counted} is far above {model.num_params()}"


def test_a_planted_wrong_gradient_fails_the_registry_check():
    model, tokens = Model.registry["bilinear"].gradcheck_example(seed=0)
    real = model.backward
    model.backward = lambda cache: {k: 2 * v for k, v in real(cache).items()}    # a factor of 2
    ok, rows = check_model(model, tokens, tol=TOL, out=None)
    assert not ok and abs(rows[0]["rel_error"] - 1 / 3) < 1e-6
