"""The command line: clear one-line errors, no partial files, reproducible JSON, Ctrl-C."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from minirev import demo

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
]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "empty_folder").mkdir()
    return tmp_path


@pytest.mark.parametrize("args, message", BAD, ids=[" ".join(a) or "(nothing)" for a, _ in BAD])
def test_bad_invocation_gives_one_line_and_leaves_no_files(args, message, workdir, capsys):
    if "cupy" in args and importlib.util.find_spec("cupy") is not None:
        pytest.skip("CuPy is installed here: this case is about a machine without it")
    before = sorted(os.listdir(workdir))
    try:
        code = demo.main(args)
    except SystemExit as e:             # argparse's usage errors
        code = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code in (1, 2), f"exit status {code}"
    assert len(err) == 1, f"expected one line of error, got: {err}"
    assert message in err[0], f"the message should mention {message!r}: {err[0]}"
    assert "Traceback" not in err[0]
    assert sorted(os.listdir(workdir)) == before, "a failed run must not leave files behind"


def test_a_real_process_prints_no_traceback(workdir):
    proc = subprocess.run([sys.executable, "-m", "minirev.demo", "reversal", "--width", "30", "--heads", "4"],
                          capture_output=True, text=True, env=ENV)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr


def run_json(workdir, name, *extra):
    cmd = [sys.executable, "-m", "minirev.demo", "reversal", *TINY, "--dropout", "0.1",
           "--json", name, "--out", "figs", *extra]
    subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=workdir, env=ENV)
    data = json.loads((workdir / name).read_text())
    data["final"].pop("seconds")                 # timing: the one field allowed to differ
    return data


def test_same_seed_in_two_processes_gives_identical_json_and_another_seed_differs(workdir):
    a, b = run_json(workdir, "a.json"), run_json(workdir, "b.json")
    c = run_json(workdir, "c.json", "--seed", "7")
    assert a == b
    assert a["history"] != c["history"]
    assert set(a) >= {"config", "history", "final"}
    assert set(a["final"]) >= {"train_nll", "val_nll", "val_seen_nll", "log_vocab"}
    assert set(a["history"][0]) >= {"epoch", "train_nll", "val_nll"}


def test_ctrl_c_stops_cleanly_and_still_writes_results(workdir, monkeypatch, capsys):
    from minirev.train import Trainer
    real = Trainer.run_epoch

    def interrupted_at_epoch_3(self, stop=None):
        if self.epoch == 2:
            raise KeyboardInterrupt
        real(self, stop)
    monkeypatch.setattr(Trainer, "run_epoch", interrupted_at_epoch_3)
    code = demo.main(["reversal", *TINY[:-1], "10", "--json", "r.json", "--out", "figs"])
    assert code == 0
    result = json.loads((workdir / "r.json").read_text())
    assert result["interrupted"] is True and result["final"]["epochs"] == 2
    assert sorted(os.listdir(workdir / "figs")) == ["reversal_heatmaps.png", "reversal_heatmaps_no_relation.png",
                                                     "reversal_nll.png"]
    assert "interrupted at epoch 2" in capsys.readouterr().out


def test_trace_prints_each_tensor_share_of_the_watched_logits(workdir, capsys):
    assert demo.main(["reversal", *TINY[:-1], "1", "--trace", "1", "--out", "figs"]) == 0
    out = capsys.readouterr().out
    assert "unseen" in out and "trained" in out and "w_out" in out and "step 1" in out, out


def test_help_documents_every_command():
    for command in ("reversal", "chain", "incontext", "embeddings", "bilinear", "gradcheck"):
        with pytest.raises(SystemExit) as info:
            demo.main([command, "--help"])
        assert info.value.code == 0


def test_gradcheck_command_prints_one_ok_line_per_parameter(capsys):
    assert demo.main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    assert "all gradients match autograd" in out and "FAIL" not in out
    for name in ("Theta", "Y ", "Z ", "wte", "h1.attn.w_qkv", "lnf.g"):
        assert any(line.strip().startswith(name.strip()) and line.rstrip().endswith("OK")
                   for line in out.splitlines()), f"no OK line for {name}"
    assert demo.main(["gradcheck", "--model", "bilinear", "--tol", "1e-30"]) == 1, "an impossible bound must fail"
