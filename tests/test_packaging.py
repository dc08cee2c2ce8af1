"""What a new user installs: the command, the version written once, the metadata, the extras, the licence.

Run only these with: pytest -m structure
"""
import ast
import os
import re
import subprocess
import sys

import pytest

import minirev

pytestmark = pytest.mark.structure

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VERSION_FILE = "minirev/_version.py"
# CFF is plain YAML and cannot read the version from Python: it repeats it, and a test below checks it agrees
VERSION_COPIES = {"CITATION.cff"}
# the fixed design: these three and nothing else at run time (the floors are someone else's to test)
RUNTIME = {"numpy", "autograd", "matplotlib"}
EXTRAS = {"test", "lessons", "cluster", "gpu", "hf"}
# CuPy's wheels are built per CUDA major version; a bare "cupy" is a source build that needs a CUDA toolkit
CUPY_WHEEL = re.compile(r"cupy-cuda1[1-3]x")
# what [project] in pyproject.toml says, by the name setup() would take it under
SETUP_KEYWORDS = {"name", "version", "description", "long_description", "long_description_content_type",
                  "python_requires", "install_requires", "extras_require", "entry_points", "classifiers",
                  "license", "packages", "author"}


def run(*args):
    """python -m ARGS from this checkout, as a new user runs it."""
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=ROOT))


def read(name):
    with open(os.path.join(ROOT, name), encoding="utf-8") as f:
        return f.read()


def requirement_name(requirement):
    """'dask[distributed]>=2' -> 'dask'; PEP 503 normalised."""
    return re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


@pytest.fixture(scope="module")
def project():
    """pyproject.toml, parsed (tomllib: Python 3.11 and newer)."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11 or newer")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def setup_keywords():
    """The keyword arguments setup.py passes to setup(), by name, as AST nodes."""
    tree = ast.parse(read("setup.py"))
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "setup"]
    assert len(calls) == 1, f"setup.py should call setup() once, found {len(calls)} calls"
    return {k.arg: k.value for k in calls[0].keywords}


# ---- the command line ------------------------------------------------------------------------------

def test_python_m_minirev_is_the_same_command_line_as_minirev_demo():
    package, demo = run("minirev", "--help"), run("minirev.demo", "--help")
    assert package.returncode == 0, f"python -m minirev --help exited {package.returncode}:\n{package.stderr}"
    assert "reversal" in package.stdout and "--version" in package.stdout, package.stdout
    assert package.stdout == demo.stdout, "python -m minirev and python -m minirev.demo print different --help"


def test_python_m_minirev_reaches_the_commands():
    proc = run("minirev", "reversal", "--help")
    assert proc.returncode == 0, f"python -m minirev reversal --help exited {proc.returncode}:\n{proc.stderr}"
    assert "--epochs" in proc.stdout, proc.stdout


def test_version_option_prints_the_package_version():
    proc = run("minirev", "--version")
    assert proc.returncode == 0, f"python -m minirev --version exited {proc.returncode}:\n{proc.stderr}"
    assert proc.stdout.strip() == f"minirev {minirev.__version__}", \
        f"--version printed {proc.stdout.strip()!r}, expected 'minirev {minirev.__version__}'"


def test_the_console_script_runs_the_demo_main(project):
    scripts = project["project"].get("scripts", {})
    assert scripts.get("minirev") == "minirev.demo:main", f"[project.scripts] minirev is {scripts.get('minirev')!r}"
    from minirev import demo
    assert callable(demo.main)


# ---- the version, written once ---------------------------------------------------------------------

def test_the_version_is_a_plain_literal_setuptools_reads_without_importing():
    tree = ast.parse(read(VERSION_FILE))
    assigns = [n for n in tree.body if isinstance(n, ast.Assign)
               and any(getattr(t, "id", None) == "__version__" for t in n.targets)]
    assert len(assigns) == 1, f"{VERSION_FILE} should assign __version__ once, found {len(assigns)}"
    value = assigns[0].value
    assert isinstance(value, ast.Constant) and isinstance(value.value, str), \
        f"{VERSION_FILE}: __version__ must be a string literal (setuptools then reads it without importing NumPy)"
    assert value.value == minirev.__version__, f"{VERSION_FILE} says {value.value}, minirev says {minirev.__version__}"
    assert re.fullmatch(r"\d+\.\d+\.\d+", value.value), f"version {value.value!r} is not X.Y.Z"


def test_pyproject_and_setup_read_the_version_from_the_one_file(project):
    assert "version" not in project["project"], "pyproject.toml writes the version: read it from minirev/_version.py"
    assert "version" in project["project"].get("dynamic", []), "pyproject.toml: version should be dynamic"
    attr = project["tool"]["setuptools"]["dynamic"]["version"]
    assert attr == {"attr": "minirev._version.__version__"}, f"the dynamic version reads {attr}"
    assert "version" not in setup_keywords(), "setup.py passes a version: it is written in minirev/_version.py"


def repository_files():
    """The files git knows of or would add (tracked, and untracked but not ignored), builds left out."""
    try:
        proc = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                              capture_output=True, text=True)
    except OSError:
        pytest.skip("git is not installed")
    if proc.returncode != 0:
        pytest.skip("not a git checkout: " + proc.stderr.strip())
    # build/ and dist/: what `pip install .` and `python -m build` leave behind, copies of the package
    return [p for p in proc.stdout.splitlines() if os.path.isfile(os.path.join(ROOT, p))
            and p.split("/")[0] not in ("build", "dist")]


def test_only_one_file_holds_the_version_literal():
    literal = re.compile(r"(?<![\w.])" + re.escape(minirev.__version__) + r"(?![\w.])")
    holders = set()
    for path in repository_files():
        with open(os.path.join(ROOT, path), "rb") as f:
            if literal.search(f.read().decode("utf-8", errors="ignore")):
                holders.add(path)
    assert VERSION_FILE in holders, f"{VERSION_FILE} does not hold {minirev.__version__}"
    others = holders - {VERSION_FILE} - VERSION_COPIES
    assert not others, (f"the version {minirev.__version__} is also written in {sorted(others)}: "
                        f"read it from {VERSION_FILE} (minirev.__version__) instead")


# ---- the metadata: pyproject.toml is the one place ---------------------------------------------------

def test_setup_py_repeats_nothing_pyproject_states():
    repeated = set(setup_keywords()) & SETUP_KEYWORDS
    assert not repeated, f"setup.py passes {sorted(repeated)}: that is pyproject.toml's [project], write it there"


def test_setup_and_pyproject_agree_on_dependencies_and_extras(project):
    """Where setup.py does state them (it should not, see above), they must be pyproject's."""
    meta = project["project"]
    given = setup_keywords()
    for keyword, ours in (("install_requires", meta["dependencies"]),
                          ("extras_require", meta["optional-dependencies"])):
        if keyword in given:
            assert ast.literal_eval(given[keyword]) == ours, f"setup.py's {keyword} differs from pyproject.toml"
    names = {requirement_name(r) for r in meta["dependencies"]}
    assert names == RUNTIME, f"the run-time dependencies are {sorted(names)}, the design allows {sorted(RUNTIME)}"
    assert set(meta["optional-dependencies"]) == EXTRAS, f"extras {sorted(meta['optional-dependencies'])}"


def test_the_extras_carry_what_their_readme_line_promises(project):
    extras = {name: {requirement_name(r) for r in reqs} for name, reqs in project["project"]["optional-dependencies"].items()}
    assert "pytest" in extras["test"], extras["test"]
    assert {"notebook", "jupytext"} <= extras["lessons"], f"lessons: {extras['lessons']} (jupyter notebook needs notebook)"
    assert "dask" in extras["cluster"], extras["cluster"]


def test_the_gpu_extra_names_an_installable_cupy_wheel(project):
    gpu = [requirement_name(r) for r in project["project"]["optional-dependencies"]["gpu"]]
    assert gpu, "the gpu extra is empty"
    for name in gpu:
        assert CUPY_WHEEL.fullmatch(name), (f"gpu extra names {name!r}: CuPy installs from the per-CUDA wheels "
                                            "cupy-cuda11x / cupy-cuda12x / cupy-cuda13x, not 'cupy'")


def test_the_classifiers_match_requires_python(project):
    meta = project["project"]
    listed = sorted(tuple(map(int, c.rsplit(":: ", 1)[1].split("."))) for c in meta["classifiers"]
                    if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c))
    assert listed and listed == [(3, minor) for minor in range(listed[0][1], listed[-1][1] + 1)], listed
    assert meta["requires-python"] == ">=%d.%d" % listed[0], \
        f"requires-python {meta['requires-python']} but the oldest classifier is {listed[0]}"
    assert "Topic :: Scientific/Engineering :: Artificial Intelligence" in meta["classifiers"]


# ---- licence and citation ----------------------------------------------------------------------------

def test_the_licence_is_mit_and_declared_the_way_setuptools_accepts(project):
    text = read("LICENSE")
    assert text.startswith("MIT License") and "The minirev authors" in text, text[:200]
    meta = project["project"]
    assert meta["license"] == "MIT" and "LICENSE" in meta.get("license-files", []), (meta["license"], meta.get("license-files"))
    # setuptools >= 77 refuses a "License ::" classifier next to an SPDX licence expression (PEP 639)
    refused = [c for c in meta["classifiers"] if c.startswith("License ::")]
    assert not refused, f"remove {refused}: `license = \"MIT\"` says it, and setuptools refuses both"


def test_the_citation_names_the_paper_and_this_version():
    text = read("CITATION.cff")
    assert re.search(r"^cff-version: 1\.2\.0$", text, re.M), "CITATION.cff: cff-version 1.2.0"
    assert "2405.04669" in text and "10.48550/arXiv.2405.04669" in text, "CITATION.cff must name arXiv 2405.04669"
    version = re.search(r"^version:\s*[\"']?([^\"'\s]+)", text, re.M)
    assert version and version.group(1) == minirev.__version__, \
        f"CITATION.cff says version {version and version.group(1)}, minirev is {minirev.__version__}"


def test_the_citation_parses_as_yaml_with_the_seven_authors():
    yaml = pytest.importorskip("yaml")
    cff = yaml.safe_load(read("CITATION.cff"))
    paper = cff["preferred-citation"]
    assert cff["license"] == "MIT" and cff["title"] == "minirev" and str(cff["version"]) == minirev.__version__
    assert [a["family-names"] for a in paper["authors"]] == \
        ["Zhu", "Huang", "Zhang", "Jordan", "Jiao", "Tian", "Russell"], paper["authors"]
    assert paper["year"] == 2024 and "Reversal Curse" in paper["title"], paper
