"""Seeds side by side (minirev/machinery/parallel.py): processes here, or a Dask cluster; the same numbers as one by one.

Run only these with: pytest tests/test_parallel.py
"""
import os

import numpy as np
import pytest

import minirev.demo

from minirev.config import RunConfig
from minirev.errors import UsageError
from minirev.running import run_experiment
from minirev.machinery.parallel import BLAS_VARS, blas_threads, cores, run_all
from records import first_difference

pytestmark = pytest.mark.experiments

SWEEP = RunConfig(layers=1, width=16, heads=2, vocab=40, epochs=3, seeds=2, batch_size=32)


def outcome(result, runs):
    """Everything a run computed (not its wall time or how it was run), for exact comparison."""
    final = {k: v for k, v in result["final"].items() if k != "seconds"}
    params = [{k: np.array(v) for k, v in r["model"].params.items()} for r in runs]
    return final, result["history"], result["runs"], params


def assert_identical(a, b):
    (fa, ha, ra, pa), (fb, hb, rb, pb) = a, b
    assert fa == fb, f"the final numbers must agree to the last bit: {first_difference([fa], [fb])}"
    assert ha == hb, f"the histories must agree to the last bit: {first_difference(ha, hb)}"
    assert ra == rb, f"the per-seed results must agree to the last bit: {first_difference(ra, rb)}"
    assert len(pa) == len(pb) == 2, f"want the final parameters of 2 runs on each side, got {len(pa)} and {len(pb)}"
    for run, (x, y) in enumerate(zip(pa, pb)):
        assert x.keys() == y.keys(), f"run {run}: the parameter names differ: {sorted(x.keys() ^ y.keys())}"
        for k in x:
            assert np.array_equal(x[k], y[k]), (
                f"run {run}: final parameter {k} differs, max |difference| {np.abs(x[k] - y[k]).max():.3e}")


@pytest.fixture(scope="module")
def serial():
    return outcome(*run_experiment(SWEEP.replace(jobs=1), out=None))


def test_two_processes_give_bit_identical_results(serial):
    lines = []
    parallel = outcome(*run_experiment(SWEEP.replace(jobs=2), out=lines.append))
    assert_identical(serial, parallel)
    seeds = [r["seed"] for r in parallel[2]]
    assert seeds[0] == SWEEP.seed and seeds[1] == SWEEP.seed + 1, (
        f"results in seed order: want seeds {[SWEEP.seed, SWEEP.seed + 1]}, got {seeds}")
    shown = [line for line in lines if line.startswith("2 runs, epoch")]
    assert shown, "no progress display ('2 runs, epoch...') was printed; printed:\n" + "\n".join(lines)
    assert shown[-1].startswith("2 runs, epoch 3/3"), (
        f"one display with both runs: the last should start '2 runs, epoch 3/3', got {shown[-1]!r}")
    assert any(line.startswith("model: gpt") for line in lines), (
        "the first run's summary ('model: gpt ...') reaches this process; printed:\n" + "\n".join(lines))


def read_settings(item, report):
    report(("say", [f"worker {item}"]))
    return {v: os.environ.get(v) for v in BLAS_VARS}, np.geterr()["over"]


def test_each_worker_gets_its_share_of_the_cores_and_our_numpy_error_settings():
    said, before = [], {v: os.environ.get(v) for v in BLAS_VARS}
    with np.errstate(over="ignore"):                  # as the command line runs (a diverged loss is named, not warned)
        found = run_all(read_settings, [0, 1], jobs=2, on_message=said.append)
    want = ({v: str(blas_threads(2)) for v in BLAS_VARS}, "ignore")
    assert len(found) == 2, f"two items, two answers: got {len(found)}"
    for item, got in enumerate(found):
        assert got == want, (
            f"worker {item}: want {blas_threads(2)} BLAS threads in {', '.join(BLAS_VARS)} "
            f"and np.geterr over='ignore', got {got}")
    assert blas_threads(2) * 2 <= max(cores(), 2), (
        f"2 workers x {blas_threads(2)} BLAS threads each is more than the {cores()} cores")
    assert blas_threads(1) == blas_threads(2) == 1, (
        f"every worker runs one BLAS thread, as the serial run does (its sums in one order): got "
        f"{blas_threads(1)} for 1 job, {blas_threads(2)} for 2 jobs")
    reports = sorted(m[1][0] for m in said)
    assert reports == ["worker 0", "worker 1"], (
        f"reports reach the parent: want ['worker 0', 'worker 1'], got {reports}")
    after = {v: os.environ.get(v) for v in BLAS_VARS}
    assert after == before, (
        "this process's settings are restored: "
        + ", ".join(f"{v} {before[v]!r} -> {after[v]!r}" for v in BLAS_VARS if after[v] != before[v]))


def test_a_dask_local_cluster_gives_the_serial_results(serial):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp", dashboard_address=None,
                                  silence_logs=50) as cluster:
        with distributed.Client(cluster) as client:
            started = len(client.scheduler_info()["workers"])
            assert started == 2, f"the LocalCluster should start 2 workers, it has {started}"
            lines = []
            result, runs = run_experiment(SWEEP.replace(scheduler=cluster.scheduler_address), out=lines.append)
            workers = {w["id"] for w in client.scheduler_info()["workers"].values()}
    assert_identical(serial, outcome(result, runs))
    assert len(workers) == 2, f"the run should still see 2 workers, it saw {sorted(workers)}"
    assert any(line.startswith("2 runs, epoch 3/3") for line in lines), (
        "progress ('2 runs, epoch 3/3') comes back from the workers; printed:\n" + "\n".join(lines))


def test_scheduler_refuses_what_only_works_here():
    for option in (dict(trace=2), dict(save="somewhere"), dict(resume="somewhere")):
        with pytest.raises(UsageError, match="without --scheduler"):
            SWEEP.replace(seeds=1, scheduler="tcp://127.0.0.1:8786", **option).validate()
    with pytest.raises(UsageError, match="--jobs must be a whole number >= 1"):
        SWEEP.replace(jobs=0).validate()
    assert SWEEP.resolved().jobs == 1, "from Python the default is this process: a script needs no __main__ guard"


def test_the_command_line_runs_seeds_on_every_core_by_default(monkeypatch):
    seen = {}
    monkeypatch.setattr(minirev.demo.commands, "experiment", lambda cfg, out, json_path: seen.update(jobs=cfg.jobs))
    minirev.demo.main(["reversal", "--seeds", "2"])
    assert seen["jobs"] == cores(), f"python -m minirev.demo: one process per core ({cores()}), got {seen['jobs']}"
    minirev.demo.main(["reversal", "--seeds", "2", "--jobs", "1"])
    assert seen["jobs"] == 1, "an explicit --jobs 1 is kept"


def test_a_gpu_run_on_a_cluster_comes_back_on_the_host(monkeypatch):
    """--backend cupy --scheduler: the workers train on their GPUs (here the CPU stand-in, tests/fake_xp.py)
    and the runs come back as NumPy models, so the machine that asked needs no GPU."""
    distributed = pytest.importorskip("distributed")
    import minirev.backend
    from fake_xp import fake_cupy
    real = minirev.backend.get_xp
    for module in ("minirev.backend", "minirev.model"):
        monkeypatch.setattr(f"{module}.get_xp", lambda backend="numpy": fake_cupy if backend == "cupy" else real(backend))
    cfg = SWEEP.replace(backend="cupy", epochs=1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp", dashboard_address=None,
                                  silence_logs=50) as cluster:
        result, runs = run_experiment(cfg.replace(scheduler=cluster.scheduler_address), out=None)
    here = run_experiment(cfg.replace(jobs=1), out=None)
    for i, r in enumerate(runs):
        assert r["model"].backend == "numpy", f"run {i} came back with backend {r['model'].backend!r}, want 'numpy'"
        assert isinstance(r["model"].params.flat, np.ndarray), (
            f"run {i}: the parameters came back as {type(r['model'].params.flat).__name__}, want a NumPy array")
        assert r["trainer"].model is r["model"], f"run {i}: the trainer holds another model than the run's"
    assert result["history"] == here[0]["history"], "the stand-in on the workers computes what it computes here"
