"""The command line: clear one-line errors, no partial files, reproducible JSON, Ctrl-C."""
import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

from minirev import demo
from minirev.experiments import Experiment
from minirev.config import RunConfig
from minirev.errors import UsageError
from minirev.running import run_experiment

pytestmark = pytest.mark.cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT)        # a child process imports this checkout's minirev

TINY = ["--vocab", "40", "--layers", "1", "--width", "16", "--heads", "2", "--epochs", "3"]

BAD = [  # (arguments, what the one-line message must mention)
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    ([], "required: COMMAND"),
    (["reversal", "--epocs", "3"], "unrecognized arguments: --epocs"),
    (["reversal", "--epoch", "3"], "unrecognized arguments: --epoch"),
    (["reversal", "--epochs", "x"], "--epochs: expected a whole number"),
    (["reversal", "--epochs", "0"], "--epochs: must be at least 1"),
    (["reversal", "--epochs", "-5"], "--epochs: must be at least 1"),
    (["reversal", "--epochs", "2.5"], "--epochs: expected a whole number"),
    (["reversal", "--layers", "0"], "--layers: must be at least 1"),
    (["reversal", "--batch-size", "0"], "--batch-size: must be at least 1"),
    (["reversal", "--entity-len", "0"], "--entity-len: must be at least 1"),
    (["reversal", "--width", "30", "--heads", "4"], "width 30 is not divisible by heads 4"),
    (["reversal", "--vocab", "3"], "vocabulary 3 is too small"),
    (["reversal", "--lr", "nan"], "--lr: must be a finite number > 0"),
    (["reversal", "--lr", "-1"], "--lr: must be a finite number > 0"),
    (["reversal", "--lr", "0"], "--lr: must be a finite number > 0"),
    (["reversal", "--weight-decay", "-0.1"], "--weight-decay: must be a finite number >= 0"),
    (["reversal", "--dropout", "1"], "--dropout: must be in [0, 1)"),
    (["reversal", "--dropout", "-0.1"], "--dropout: must be a finite number >= 0"),
    (["reversal", "--pos", "sinusoidal"], "invalid choice: 'sinusoidal'"),
    (["reversal", "--model", "transformer"], "invalid choice: 'transformer'"),
    (["reversal", "--backend", "tpu"], "invalid choice: 'tpu'"),
    (["reversal", "--backend", "cupy"], "CuPy"),
    (["reversal", "--out", "a_file/figures"], "cannot be written"),
    (["reversal", "--json", "missing_folder/out.json"], "does not exist"),
    (["reversal", "--resume", "no_such_run"], "no such folder"),
    (["reversal", "--resume", "empty_folder"], "no state.json inside"),
    (["reversal", "--seeds", "2", "--save", "ck"], "use them with --seeds 1"),
    (["reversal", "--model", "bilinear", "--entity-len", "2"], "use --entity-len 1"),
    (["chain", "--vocab", "4"], "too small"),
    (["incontext", "--vocab", "50"], "too small for 100 x and 10 y tokens"),
    (["bilinear", "--dims", "0"], "--dims: must be at least 1"),
    (["bilinear", "--dims", "16,abc"], "--dims: expected a whole number"),
    (["bilinear", "--held-out", "60"], "held-out pairs must be between 0 and the number of pairs"),
    (["bilinear", "--vocab", "50"], "too small for 50 pairs"),
    (["bilinear", "--lr", "inf"], "--lr: must be a finite number > 0"),
    (["gradcheck", "--model", "foo"], "invalid choice: 'foo'"),
    (["reversal", *TINY, "--lr", "1e30"], "training diverged"),
    # ---- issue 15: outputs that are not ours to replace, checked before any training
    (["reversal", *TINY, "--json", "/dev/null"], "is a device or other special file, not a regular file"),
    (["reversal", *TINY, "--json", "readonly.json"], "is read-only (mode 444)"),
    (["reversal", *TINY, "--json", "/proc/version"], "is read-only"),
    (["reversal", *TINY, "--json", "empty_folder"], "is a folder, not a regular file"),
    (["reversal", *TINY, "--json", "link.json"], "is a link, not a regular file"),
    (["reversal", *TINY, "--json", "x" * 300 + ".json"], "over the file system's 255"),
    (["reversal", *TINY, "--out", "y" * 300], "over the file system's 255"),
    (["reversal", *TINY, "--json", "new\nline.json"], "contains a control character"),
    (["reversal", *TINY, "--save", "ck\nx"], "contains a control character"),
    (["reversal", *TINY, "--json", ""], "--json was given an empty path"),
    (["reversal", *TINY, "--save", ""], "--save was given an empty path"),
    (["reversal", *TINY, "--resume", ""], "--resume was given an empty path"),
    (["reversal", *TINY, "--save", "a_file"], "choose another with --save"),
    (["reversal", *TINY, "--save", "ck"], "already holds the checkpoint of a gpt run at epoch 2"),
    (["reversal", *TINY, "--resume", "ck", "--json", "ck/state.json"], "would replace a file of the checkpoint"),
    (["reversal", *TINY, "--save", "ck", "--overwrite", "--json", "ck/arrays-000000002.npz"],
     "would replace a file of the checkpoint"),
    (["reversal", *TINY, "--resume", "readonly_ck"], "the checkpoint folder is read-only"),
    (["reversal", *TINY, "--save-every", "2"], "add --save DIR"),
    (["embeddings", *TINY, "--model", "bilinear"], "use --model gpt"),
    # ---- --paper and the options it sets
    (["reversal", "--paper", "--layers", "3"], "--paper sets --layers 24, but --layers 3 was given"),
    (["reversal", "--paper", "--width", "16"], "--paper sets --width 768"),
    (["reversal", "--paper", "--heads", "2"], "--paper sets --heads 12"),
    (["reversal", "--paper", "--model", "bilinear"], "--paper sets --model gpt"),
    (["reversal", "--paper", "--dropout", "0"], "--paper sets --dropout 0.1"),
    # ---- sizes refused with the estimate before anything is allocated
    (["reversal", "--entity-len", "4"], "enumerates 200^4 words per alphabet, about 166 GB, over the data limit"),
    (["reversal", "--entity-len", "10"], "over the data limit of 1 GB"),
    (["reversal", "--vocab", "99999999999999999999"], "would need about"),
    (["reversal", "--vocab", "100000000"], "would need about"),
    (["reversal", "--layers", "99999999999999999999"], "would need about"),
    (["reversal", "--width", "100000", "--heads", "1"], "would need about 3.85 TB"),
    (["reversal", "--seeds", "99999999999999999999"], "--seeds: must be at most 1000"),
    (["reversal", "--seed", "4294967296"], "--seed: must be at most 4294967295"),
    (["reversal", "--epochs", "10000000"], "--epochs: must be at most 1000000"),
    (["bilinear", "--dims", "onehot", "--vocab", "1000000"], "would need about"),
    (["bilinear", "--dims", "99999999999999999999"], "would need about"),
    (["bilinear", "--held-out", "0"], "--held-out: must be at least 1"),
    # ---- divergence with a finite loss
    (["reversal", *TINY, "--dtype", "float64", "--lr", "1e30"], "above 100 x log|V|"),
    (["reversal", "--vocab", "40", "--epochs", "3", "--model", "one-layer", "--lr", "1e30"], "training diverged"),
]


def describe(args):
    """A short test id for a BAD row: the arguments joined, TINY's run size as "TINY", long or empty ones shown."""
    if not args:
        return "(no arguments)"
    if args[1:1 + len(TINY)] == TINY:
        args = [args[0], "TINY", *args[1 + len(TINY):]]
    words = []
    for word in args:
        if word == "":
            word = '""'
        elif len(word) > 30:
            word = f"{word[:3]}...({len(word)} chars)"
        words.append(word)
    return " ".join(words)


@pytest.fixture(scope="module")
def another_run(tmp_path_factory):
    """The checkpoint of an earlier run (2 epochs), copied into each work folder."""
    folder = tmp_path_factory.mktemp("another") / "ck"
    run_experiment(RunConfig(layers=1, width=16, heads=2, vocab=40, epochs=2, save=str(folder)), out=None)
    return folder


@pytest.fixture
def workdir(tmp_path, monkeypatch, another_run):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "empty_folder").mkdir()
    (tmp_path / "readonly.json").write_text("{}")
    (tmp_path / "readonly.json").chmod(0o444)
    (tmp_path / "link.json").symlink_to(tmp_path / "a_file")
    for name in ("ck", "readonly_ck"):
        shutil.copytree(another_run, tmp_path / name)
    (tmp_path / "ck" / "arrays-notes.txt").write_text("the user's own file")
    (tmp_path / "readonly_ck" / "state.json").chmod(0o444)
    return tmp_path


def snapshot(folder):
    """Every path under `folder` with its mode and bytes: a failed run must change none of them."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            st = os.lstat(path)
            data = open(path, "rb").read() if stat.S_ISREG(st.st_mode) else os.readlink(path) \
                if stat.S_ISLNK(st.st_mode) else None
            found[os.path.relpath(path, folder)] = (st.st_mode, data)
    return found


@pytest.mark.parametrize("args, message", BAD, ids=[describe(a) for a, _ in BAD])
def test_bad_invocation_gives_one_line_and_leaves_no_files(args, message, workdir, capsys):
    if "cupy" in args and importlib.util.find_spec("cupy") is not None:
        pytest.skip("CuPy is installed here: this case is about a machine without it")
    before = snapshot(workdir)
    try:
        code = demo.main(args)
    except SystemExit as e:             # argparse's usage errors
        code = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code in (1, 2), f"minirev {' '.join(args)}: exit status {code}, want 1 or 2; stderr: {err}"
    assert len(err) == 1, f"expected one line of error, got: {err}"
    assert message in err[0], f"the message should mention {message!r}: {err[0]}"
    assert "Traceback" not in err[0], f"a refusal is a message, not a traceback: {err[0]}"
    after = snapshot(workdir)
    changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    assert after == before, f"a failed run must not leave, change or remove a file: {changed}"


def test_a_real_process_prints_no_traceback(workdir):
    proc = subprocess.run([sys.executable, "-m", "minirev.demo", "reversal", "--width", "30", "--heads", "4"],
                          capture_output=True, text=True, env=ENV)
    assert proc.returncode == 2, (
        f"python -m minirev.demo reversal --width 30 --heads 4: exit status {proc.returncode}, want 2")
    assert proc.stderr.strip().count("\n") == 0, f"expected one line of error, got:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, f"a real process must print no traceback, got:\n{proc.stderr}"


def test_matplotlib_is_imported_only_to_draw():
    """Importing the package or the command line, or asking for --help, loads no matplotlib (about a second of a
    short run's start): each figure function imports it when it draws."""
    code = ("import sys, minirev, minirev.demo, contextlib, io\n"
            "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
            "    minirev.demo.main(['reversal', '--help'])\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib')[:3])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, check=True)
    assert proc.stdout.strip() == "[]", f"matplotlib was imported before any figure: {proc.stdout.strip()}"


def run_json(workdir, name, *extra, in_process=False):
    """The bytes of the JSON a process writes (in_process: this one), up to its closing "run" block."""
    args = ["reversal", *TINY, "--dropout", "0.1", "--json", name, "--out", name + "-figures", *extra]
    if in_process:
        assert demo.main(args) == 0, f"{' '.join(args)} failed"
    else:
        subprocess.run([sys.executable, "-m", "minirev.demo", *args], check=True, capture_output=True, text=True,
                       cwd=workdir, env=ENV)
    results, run = (workdir / name).read_bytes().split(b'\n "run": ')
    assert b"seconds" in run, f"{name}: the closing \"run\" block should hold the timing: {run!r}"
    assert name.encode() in run, f"{name}: the closing \"run\" block should hold the output path: {run!r}"
    assert b"seconds" not in results, f"{name}: the timing must appear only in the closing \"run\" block"
    return results


def test_same_seed_in_two_processes_gives_byte_identical_results_and_another_seed_differs(workdir):
    a, b = run_json(workdir, "a.json"), run_json(workdir, "b.json")
    c = run_json(workdir, "c.json", "--seed", "7", in_process=True)      # another seed: no new process needed
    where = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    assert a == b, (
        f"the same seed in two processes gave other bytes, first at byte {where}: "
        f"{a[max(0, where - 40):where + 40]!r} vs {b[max(0, where - 40):where + 40]!r}")
    a, c = json.loads(a.rstrip(b",") + b"}"), json.loads(c.rstrip(b",") + b"}")
    assert a["history"] != c["history"], "--seed 7 gave the same history as the default seed"
    missing = {"config", "history", "final"} - set(a)
    assert not missing, f"the JSON lacks {sorted(missing)}"
    missing = {"train_nll", "val_nll", "val_seen_nll", "log_vocab"} - set(a["final"])
    assert not missing, f"the JSON's \"final\" lacks {sorted(missing)}"
    missing = {"epoch", "train_nll", "val_nll"} - set(a["history"][0])
    assert not missing, f"the JSON's history records lack {sorted(missing)}"


def test_ctrl_c_stops_cleanly_and_still_writes_results(workdir, monkeypatch, capsys):
    from minirev.train import Trainer
    real = Trainer.run_epoch

    def interrupted_at_epoch_3(self, stop=None):
        if self.epoch == 2:
            raise KeyboardInterrupt
        real(self, stop)
    monkeypatch.setattr(Trainer, "run_epoch", interrupted_at_epoch_3)
    code = demo.main(["reversal", *TINY[:-1], "10", "--json", "r.json", "--out", "figs"])
    printed = capsys.readouterr()
    assert code == 130, f"an interrupted run should exit 130 (SIGINT) after writing its results, got {code}: {printed.err}"
    result = json.loads((workdir / "r.json").read_text())
    assert result["interrupted"] is True, (
        f"the JSON should say \"interrupted\": true, got {result.get('interrupted')!r}")
    assert result["final"]["epochs"] == 2, (
        f"interrupted in epoch 3: the results are of epoch 2, got {result['final']['epochs']}")
    figures = sorted(os.listdir(workdir / "figs"))
    assert figures == ["reversal_heatmaps.png", "reversal_heatmaps_no_relation.png", "reversal_nll.png"], (
        f"the interrupted run should still draw its three figures, found {figures}")
    assert "interrupted at epoch 2" in printed.out, (
        f"the run should say 'interrupted at epoch 2'; it printed:\n{printed.out}")


def test_trace_prints_each_tensor_share_of_the_watched_logits(workdir, capsys):
    code = demo.main(["reversal", *TINY[:-1], "1", "--trace", "1", "--out", "figs"])
    printed = capsys.readouterr()
    assert code == 0, f"minirev reversal --trace 1 exited with {code}: {printed.err}"
    for word in ("unseen", "trained", "w_out", "step 1"):
        assert word in printed.out, f"the trace should mention {word!r}; it printed:\n{printed.out}"


def command_help(capsys, *command):
    with pytest.raises(SystemExit) as info:
        demo.main([*command, "--help"])
    assert info.value.code == 0, f"{' '.join(command)} --help exited with {info.value.code}"
    return capsys.readouterr().out


def parser_options(command):
    """The option strings of a command's parser: what its --help must list."""
    sub = demo.build_parser().commands[command]
    return sorted(o for a in sub._actions for o in a.option_strings if o.startswith("--") and o != "--help")


COMMANDS = [*Experiment.registry, "bilinear", "gradcheck", "cures"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_lists_every_option_of_the_command_with_its_help(command, capsys):
    text = command_help(capsys, command)
    options = parser_options(command)
    assert options, f"{command} has no options to document"
    for option in options:
        assert option in text, f"{command} --help does not list {option}"
    sub = demo.build_parser().commands[command]
    silent = [a.option_strings[0] for a in sub._actions if a.option_strings and not a.help]
    assert not silent, f"{command}: these options have no help text: {silent}"


@pytest.mark.parametrize("command", list(Experiment.registry))
def test_an_experiments_help_groups_its_options(command, capsys):
    text = command_help(capsys, command)
    for group in ("model", "data", "training", "running", "output"):
        assert f"{group} options:" in text, f"{command} --help has no '{group} options' section:\n{text}"
    model_part = text.split("model options:")[1].split("data options:")[0]
    assert "--layers LAYERS" in model_part and "--epochs EPOCHS" not in model_part, \
        "--layers is a model option, --epochs is not"


def test_the_top_level_help_lists_each_command_once(capsys):
    text = command_help(capsys)
    for command in COMMANDS:
        lines = [line for line in text.splitlines() if line.split()[:1] == [command]]
        assert len(lines) == 1, f"{command} is listed {len(lines)} times in --help:\n{text}"


@pytest.mark.parametrize("argv, message", [
    pytest.param(["reversl"], "did you mean reversal?", id="command reversl"),
    pytest.param(["reversal", "--epoch", "3"], "did you mean --epochs?", id="option --epoch"),
    pytest.param(["reversal", "--model", "gtp"], "did you mean gpt?", id="model gtp"),
    pytest.param(["cures", "--seed", "1", "--quik"], "did you mean --quick?", id="cures --quik"),
])
def test_a_misspelling_gets_a_suggestion_in_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        demo.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1, f"want one line and exit 2, got {info.value.code}: {err}"
    assert err[0].startswith("minirev: error: "), f"the error should start 'minirev: error: ': {err[0]}"
    assert message in err[0], f"the error should suggest {message!r}: {err[0]}"


def test_every_error_has_the_same_prefix(capsys):
    """argparse's own errors and minirev's: "minirev: error: ", never "python -m minirev.demo reversal: error:"."""
    with pytest.raises(SystemExit):
        demo.main(["reversal", "--epochs", "zero"])
    parse_error = capsys.readouterr().err
    code = demo.main(["reversal", "--model", "one-layer", "--layers", "3"])
    run_error = capsys.readouterr().err
    assert code == 2, f"minirev reversal --model one-layer --layers 3 should exit with 2, got {code}: {run_error}"
    for kind, err in (("argparse's", parse_error), ("minirev's", run_error)):
        assert err.startswith("minirev: error: "), f"{kind} error should start 'minirev: error: ': {err!r}"
        assert err.count("\n") == 1, f"{kind} error should be one line: {err!r}"


@pytest.mark.parametrize("argv, message", [
    pytest.param(["--model", "one-layer", "--layers", "6", "--tied"], "--layers, --tied do not apply to --model "
                 "one-layer", id="one-layer --layers --tied"),
    pytest.param(["--model", "one-layer", "--layers", "2"], "--layers does not apply", id="one-layer --layers 2"),
    pytest.param(["--model", "gpt", "--lr-z", "1"], "--lr-z does not apply to --model gpt", id="gpt --lr-z"),
    pytest.param(["--model", "bilinear", "--heads", "8"], "it takes --width", id="bilinear --heads"),
    pytest.param(["--paper", "--layers", "2"], "--paper sets --layers 24, but --layers 2 was given",
                 id="paper --layers 2 (the default)"),
])
def test_an_option_the_run_would_not_use_is_refused(argv, message, capsys, tmp_path):
    code = demo.main(["reversal", *argv, "--out", str(tmp_path), "--json", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert code == 2, f"minirev reversal {' '.join(argv)} should exit with 2, got {code}: {err}"
    assert message in err, f"the error should mention {message!r}: {err}"
    assert err.count("\n") == 1, f"the error should be one line: {err!r}"
    written = sorted(p.name for p in tmp_path.iterdir())
    assert not written, f"nothing is written for a refused run, found {written}"


@pytest.mark.parametrize("experiment", [e for e, cls in Experiment.registry.items() if not cls.traceable])
def test_trace_is_refused_where_there_are_no_reversal_pairs(experiment, capsys):
    code = demo.main([experiment, "--trace", "3"])
    err = capsys.readouterr().err
    assert code == 2, f"minirev {experiment} --trace 3 should exit with 2, got {code}: {err}"
    assert "--trace watches held-out reversal pairs" in err, (
        f"the error should say '--trace watches held-out reversal pairs': {err}")


def test_the_api_makes_the_same_checks():
    with pytest.raises(UsageError, match="--layers does not apply to --model one-layer"):
        RunConfig(model="one-layer", layers=6).resolved()
    with pytest.raises(UsageError, match="--paper sets --layers 24"):
        RunConfig(paper=True, layers=2).resolved()
    with pytest.raises(UsageError, match="RunConfig has no field 'layer'; did you mean layers?"):
        RunConfig(layer=2)
    stored = RunConfig(model="one-layer", lr_z=0.5).resolved().to_dict()
    assert RunConfig.from_dict(stored).resolved().lr_z == 0.5, "a stored config reads back (its defaults not given)"


def test_gradcheck_command_prints_one_ok_line_per_parameter(capsys):
    code = demo.main(["gradcheck"])
    out = capsys.readouterr().out
    assert code == 0, f"minirev gradcheck exited with {code}; it printed:\n{out}"
    assert "all gradients match autograd" in out, f"minirev gradcheck should end 'all gradients match autograd':\n{out}"
    failed = [line for line in out.splitlines() if "FAIL" in line]
    assert not failed, "these gradients fail the check:\n" + "\n".join(failed)
    for name in ("Theta", "Y ", "Z ", "wte", "h1.attn.w_qkv", "lnf.g"):
        assert any(line.strip().startswith(name.strip()) and line.rstrip().endswith("OK")
                   for line in out.splitlines()), f"no OK line for {name}"
    assert demo.main(["gradcheck", "--model", "bilinear", "--tol", "1e-30"]) == 1, "an impossible bound must fail"
