"""python -m minirev.demo sweep (minirev/sweep.py): the appendix's axes, a verdict per cell, on processes or Dask.

Run only these with: pytest tests/test_sweep.py
"""
import json
import os
import signal

import pytest

import minirev.demo
from minirev.errors import UsageError
from minirev.sweep import AXES, CELLS, QUICK, run_sweep
from minirev.train import Trainer

pytestmark = pytest.mark.experiments

TWO = ["base", "pos=rotary"]          # two quick cells: enough to compare the ways of running them


def numbers(result):
    """What the sweep computed, not how long it took."""
    return [{k: v for k, v in c.items() if k not in ("seconds", "estimated_seconds", "config")}
            for c in result["cells"]]


@pytest.fixture(scope="module")
def serial():
    return run_sweep(seeds=2, quick=True, cells=TWO, jobs=1, out=None)


def test_every_axis_of_the_appendix_is_a_cell_of_the_sweep():
    for cells in (CELLS, QUICK):
        axes = {c.axis for c in cells}
        assert axes == set(AXES), f"the sweep's axes should be {AXES}, got {sorted(axes)}"
    labels = {(c.axis, c.label) for c in CELLS}
    for want in [("layers / width", w) for w in ("1 / 20", "2 / 64", "1 / 768", "24 / 20")] + \
            [("vocabulary", v) for v in ("200", "400", "800")] + [("entity length", n) for n in "123"] + \
            [("positions", p) for p in ("none", "absolute", "rotary")] + [("embeddings", "frozen")]:
        assert want in labels, f"the appendix's cell {want} is missing from the sweep"


def test_a_cell_holds_every_seed_its_yardsticks_and_a_verdict(serial):
    keys = [c["key"] for c in serial["cells"]]
    assert set(keys) == set(TWO) and keys.count("base") == len(AXES), (
        f"the base run sits on every axis and the rotary cell on one: got {keys}")
    for c in serial["cells"]:
        assert len(c["val_nll"]) == len(c["train_nll"]) == len(c["val_rank"]) == 2, f"{c['key']}: one per seed"
        assert c["log_vocab"] > c["log_alphabet"] > 0, f"{c['key']}: both yardsticks, log|V| above log a"
        assert c["verdict"].startswith("training NLL"), f"{c['key']}: the reversal verdict, got {c['verdict']!r}"
    by_key = {c["key"]: c for c in serial["cells"]}
    assert by_key["base"]["val_nll"] != by_key["pos=rotary"]["val_nll"], "rotary positions changed nothing"


@pytest.mark.slow       # starting worker processes costs seconds; tests/test_parallel.py covers --jobs itself
def test_two_processes_give_the_serial_numbers(serial):
    parallel = run_sweep(seeds=2, quick=True, cells=TWO, jobs=2, out=None)
    assert numbers(parallel) == numbers(serial), "the sweep on 2 processes must give the serial numbers exactly"


def test_a_dask_local_cluster_gives_the_serial_numbers(serial):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp", dashboard_address=None,
                                  silence_logs=50) as cluster:
        on_dask = run_sweep(seeds=2, quick=True, cells=TWO, scheduler=cluster.scheduler_address, out=None)
    assert numbers(on_dask) == numbers(serial), "the sweep on a Dask cluster must give the serial numbers exactly"


def test_an_unknown_cell_is_refused_naming_the_cells():
    with pytest.raises(UsageError, match="unknown sweep cell 'pos=learned'.*pos=rotary"):
        run_sweep(quick=True, cells=["pos=learned"], out=None)


def test_the_command_line_prints_the_table_and_writes_the_figure_and_json(tmp_path, capsys):
    path = tmp_path / "sweep.json"
    status = minirev.demo.main(["sweep", "--quick", "--seeds", "1", "--cells", "base", "--jobs", "1",
                                "--out", str(tmp_path), "--json", str(path)])
    printed = capsys.readouterr().out
    assert status == 0, f"exit status {status}; printed:\n{printed}"
    assert "estimated training time" in printed, "the sweep estimates its time before it starts"
    assert "unseen NLL" in printed and "log|V|" in printed, f"the table's header is missing:\n{printed}"
    assert (tmp_path / "sweep.png").exists(), "the figure sweep.png was not written"
    cells = json.loads(path.read_text())["cells"]
    assert {c["key"] for c in cells} == {"base"}, f"the JSON should hold the one cell run, got {cells}"


def test_a_stop_ends_the_sweep_and_keeps_the_cells_finished(tmp_path, monkeypatch, capsys):
    """SIGTERM in the second cell's training: that cell is left out, no later cell starts, the first is written,
    and the exit status is 143 (a sweep that went on to the next cell after each stop could not be stopped)."""
    real, started = Trainer.train_step, []

    def train_step(self, batch):
        loss = real(self, batch)
        if self.step == 1:
            started.append(self)
            if len(started) == 2:                        # the second cell's first step
                os.kill(os.getpid(), signal.SIGTERM)
        return loss
    monkeypatch.setattr(Trainer, "train_step", train_step)
    path = tmp_path / "sweep.json"
    status = minirev.demo.main(["sweep", "--quick", "--seeds", "1", "--cells", "base,pos=rotary,pos=none",
                                "--jobs", "1", "--out", str(tmp_path), "--json", str(path)])
    printed = capsys.readouterr().out
    assert status == 143, f"a sweep stopped by SIGTERM exits 143, got {status}; printed:\n{printed}"
    assert len(started) == 2, f"no cell may start after the stop: {len(started)} cells trained"
    result = json.loads(path.read_text())
    assert {c["key"] for c in result["cells"]} == {"base"} and result["stopped_by"] == "SIGTERM", (
        f"the JSON holds the one cell finished and says why it ended: {[c['key'] for c in result['cells']]}, "
        f"stopped_by {result['stopped_by']!r}")
    assert "interrupted by SIGTERM" in printed and (tmp_path / "sweep.png").exists(), printed
