"""The array backend: every model runs on a CuPy stand-in, so the GPU path is checked without a GPU.

``tests/fake_xp.py`` builds ``fake_cupy``: CuPy's interface over NumPy, whose
arrays refuse every implicit help from NumPy (``np.exp(a)``, ``np.asarray(a)``,
``a + host_array``). The fixture below makes ``backend="cupy"`` mean that
stand-in, so the tests take the path every user takes: ``model.copy(backend="cupy")``
or ``--backend cupy``. A test here fails when a forward, a backward, an
optimiser or the training loop uses NumPy directly on backend arrays: code that
works on the CPU and breaks on a GPU.

Run only these with: pytest -m backend
"""
import sys

import numpy as np
import pytest

import minirev.backend
import minirev.demo
import minirev.model
from minirev.backend import to_numpy
from minirev.bilinear import Bilinear
from minirev.data import pairs_data, reversal_data
from minirev.experiments import Experiment
from minirev.gpt import GPT
from minirev.gradcheck import compare_gradients, relative_error
from minirev.one_layer import OneLayer
from minirev.optim import SGD, AdamW
from minirev.train import Trainer

from fake_xp import fake_cupy, is_backend_array

pytestmark = pytest.mark.backend

EXACT = 1e-10          # float64 on NumPy and on the stand-in run the very same arithmetic


@pytest.fixture
def fake_gpu(monkeypatch):
    """backend="cupy" gives the stand-in; every other name is looked up as usual."""
    real_get_xp = minirev.backend.get_xp

    def get_xp(backend="numpy"):
        return fake_cupy if backend == "cupy" else real_get_xp(backend)

    for name, module in list(sys.modules.items()):          # every minirev module that imported get_xp
        if name.startswith("minirev") and getattr(module, "get_xp", None) is real_get_xp:
            monkeypatch.setattr(module, "get_xp", get_xp)
    monkeypatch.setattr(fake_cupy, "transfers", 0)
    return fake_cupy


# ---- the models, small, in float64, with every path switched on ------------------------------

def bilinear(dim):
    model = Bilinear(30, dim=dim, seed=0, dtype=np.float64)
    model.params["Theta"] = np.random.default_rng(1).standard_normal(model.params["Theta"].shape)
    return model, np.random.default_rng(2).integers(0, 30, (12, 2))


def gpt(pos, dropout=0.2):
    data = reversal_data(vocab=40, entity_len=2)
    model = GPT(data.vocab_size, layers=2, width=16, heads=4, pos=pos, max_len=data.train.shape[1],
                dropout=dropout, entity_len=2, seed=0, dtype=np.float64)
    return model, data.train[:12]


MODELS = {
    "bilinear-gaussian": lambda: bilinear(16),
    "bilinear-onehot": lambda: bilinear(None),
    "one-layer": lambda: (OneLayer(30, seed=0, init_scale=0.5, dtype=np.float64),
                          np.random.default_rng(2).integers(0, 30, (12, 4))),
    "gpt-absolute": lambda: gpt("absolute"),
    "gpt-rotary": lambda: gpt("rotary"),
    "gpt-none": lambda: gpt("none"),
}


def assert_same(device_value, host_value, what, tol=EXACT):
    err = relative_error(to_numpy(device_value), host_value)
    assert err < tol, f"{what}: the stand-in backend gives a different result from NumPy (rel. error {err:.1e})"


def assert_on_device(arrays, what):
    host = [name for name, v in arrays.items() if not is_backend_array(v)]
    assert not host, f"{what}: {', '.join(host)} came back as host arrays, not backend arrays"


# ---- the stand-in itself: it must refuse what CuPy refuses ---------------------------------------

def test_stand_in_refuses_numpy_functions_on_backend_arrays():
    a = fake_cupy.asarray(np.arange(6.0).reshape(2, 3))
    with pytest.raises(TypeError):
        np.exp(a)
    with pytest.raises(TypeError):
        np.concatenate([a, a])
    with pytest.raises(TypeError):
        np.asarray(a)


def test_stand_in_refuses_mixing_host_and_backend_arrays():
    a = fake_cupy.asarray(np.ones(3))
    with pytest.raises(TypeError, match="mixed"):
        a + np.ones(3)
    with pytest.raises(TypeError, match="mixed"):
        np.ones(3) * a
    with pytest.raises(TypeError, match="mixed"):
        fake_cupy.where(a > 0, a, np.zeros(3))


def test_stand_in_computes_like_numpy_and_writes_in_place():
    host = np.arange(6.0).reshape(2, 3)
    a = fake_cupy.asarray(host)
    assert_same(fake_cupy.exp(a).sum(axis=0), np.exp(host).sum(axis=0), "exp then sum")
    view = a[:, 1:]
    view -= 1.0                                   # the optimisers update parameters this way
    assert a.get()[0, 1] == 0.0, "an in-place update of a view must reach the array it views"
    dw = fake_cupy.zeros((3, 2))
    fake_cupy.add.at(dw, fake_cupy.asarray([0, 0]), fake_cupy.ones((2, 2)))
    assert dw.get()[0].tolist() == [2.0, 2.0], "add.at must add repeated indices up"
    assert is_backend_array(a.sum()), "a full reduction returns a 0-d backend array, as CuPy does"


# ---- every model: the same loss and gradients, and every gradient stays on the device -------------

@pytest.mark.parametrize("name", MODELS)
def test_gradients_on_the_backend_match_numpy(fake_gpu, name):
    host, tokens = MODELS[name]()
    device = host.copy(backend="cupy")
    assert device.xp is fake_gpu, f"{name}: copy(backend='cupy') should compute with the stand-in, not {device.xp}"
    assert device.backend == "cupy", f"{name}: copy(backend='cupy') has backend {device.backend!r}"
    assert_on_device(device.params, f"{name}: copy(backend='cupy')")
    loss_h, grads_h = host.loss_and_grads(tokens, rng=np.random.default_rng(0))
    loss_d, grads_d = device.loss_and_grads(tokens, rng=np.random.default_rng(0))
    assert_on_device(grads_d, f"{name} gradients")
    assert abs(loss_d - loss_h) <= EXACT * abs(loss_h), f"{name}: loss {loss_d} on the stand-in, {loss_h} on NumPy"
    ok, rows = compare_gradients(grads_d, grads_h, tol=EXACT, title=f"{name}: stand-in backend vs NumPy")
    assert ok, f"{name}: gradients differ from NumPy's for " + \
        ", ".join(r["name"] for r in rows if not r["ok"])


@pytest.mark.parametrize("name", MODELS)
def test_logits_on_the_backend_match_numpy(fake_gpu, name):
    host, tokens = MODELS[name]()
    device = host.copy(backend="cupy")
    assert_same(device.logits(tokens), to_numpy(host.logits(tokens)), f"{name}.logits")
    assert abs(device.loss(tokens) - host.loss(tokens)) <= EXACT * host.loss(tokens), (
        f"{name}.loss: {device.loss(tokens)!r} on the stand-in, {host.loss(tokens)!r} on NumPy")
    if isinstance(host, GPT):
        assert_same(device.next_logits(tokens[:, :3]), host.next_logits(tokens[:, :3]), f"{name}.next_logits")
        logits_h, cache_h = host.forward_logits(host.params, tokens, np)
        logits_d, cache_d = device.forward_logits(device.params, fake_gpu.asarray(tokens), fake_gpu)
        dlogits = np.random.default_rng(4).standard_normal(logits_h.shape)
        grads_h = host.backward_logits(dlogits, cache_h)
        grads_d = device.backward_logits(fake_gpu.asarray(dlogits), cache_d)
        assert_on_device(grads_d, f"{name}.backward_logits")
        for k in grads_h:
            assert_same(grads_d[k], grads_h[k], f"{name}.backward_logits[{k}]")
    if isinstance(host, OneLayer):
        assert_same(fake_gpu.asarray(device.attention(tokens)), host.attention(tokens), "one-layer attention")


def test_copy_back_to_numpy_gives_host_arrays(fake_gpu):
    host, tokens = MODELS["gpt-rotary"]()
    back = host.copy(backend="cupy").copy(backend="numpy")
    for k, v in back.params.items():
        assert type(v) is np.ndarray, f"copy(backend='numpy') must give numpy arrays: {k} is a {type(v).__name__}"
    assert abs(back.loss(tokens) - host.loss(tokens)) <= EXACT * host.loss(tokens), (
        f"the round trip to the stand-in and back changed the loss: {back.loss(tokens)!r} vs {host.loss(tokens)!r}")


# ---- optimisers and the training loop ------------------------------------------------------------

@pytest.mark.parametrize("make_opt", [lambda: SGD(0.5), lambda: AdamW(lr=0.01)], ids=["sgd", "adamw"])
@pytest.mark.parametrize("name", ["bilinear-gaussian", "one-layer", "gpt-rotary"])
def test_optimizer_steps_on_the_backend_match_numpy(fake_gpu, name, make_opt):
    host, tokens = MODELS[name]()
    device = host.copy(backend="cupy")
    opt_h, opt_d = make_opt(), make_opt()
    for step in range(3):
        opt_h.step(host.params, host.loss_and_grads(tokens, rng=np.random.default_rng(step))[1])
        opt_d.step(device.params, device.loss_and_grads(tokens, rng=np.random.default_rng(step))[1])
    assert_on_device(device.params, f"{name}: parameters after {opt_d.name} steps")
    for k in host.params:
        assert_same(device.params[k], host.params[k], f"{name}: {k} after 3 {opt_d.name} steps")
    if isinstance(opt_d, AdamW):
        assert_on_device(opt_d.m, "AdamW first moments")
        state = opt_d.state_dict()
        for k, v in state.items():
            assert isinstance(v, (int, np.ndarray)), f"state_dict must be host data: {k} is a {type(v).__name__}"
        resumed = make_opt()
        resumed.load_state_dict(state, xp=fake_gpu)
        assert_on_device(resumed.v, "AdamW second moments after load_state_dict")


TRAIN_SETS = {   # (model, data, optimiser) as the experiments build them
    "bilinear": (lambda: Bilinear(30, dim=16, seed=0), lambda: pairs_data(vocab=30, pairs=10, held_out=3),
                 lambda: SGD(20.0)),
    "one-layer": (lambda: OneLayer(42, seed=0), lambda: reversal_data(vocab=40), lambda: SGD(1.0, lrs={"Z": 0.5})),
    "gpt": (lambda: GPT(42, layers=2, width=16, heads=4, pos="absolute", max_len=5, dropout=0.1, entity_len=2),
            lambda: reversal_data(vocab=40, entity_len=2), lambda: AdamW(lr=0.01)),
}


@pytest.mark.parametrize("name", TRAIN_SETS)
def test_trainer_epochs_on_the_backend_match_numpy(fake_gpu, name):
    """Two epochs of minibatch training in float32 (the default): same history, same parameters."""
    make_model, make_data, make_opt = TRAIN_SETS[name]
    data = make_data()
    runs = {}
    for backend in ("numpy", "cupy"):
        runs[backend] = Trainer(make_model().copy(backend=backend), make_opt(), data, batch_size=16, seed=0)
        runs[backend].run(2)
    host, device = runs["numpy"], runs["cupy"]
    assert_on_device(device.model.params, f"{name}: parameters after training")
    for k in host.model.params:
        assert_same(device.model.params[k], host.model.params[k], f"{name}: {k} after 2 epochs", tol=1e-6)
    for rec_h, rec_d in zip(host.history, device.history):
        assert rec_d["train_nll"] == pytest.approx(rec_h["train_nll"], rel=1e-6), \
            f"{name}: training NLL at epoch {rec_h['epoch']} differs between the stand-in and NumPy"


# ---- the experiments end to end, trace included --------------------------------------------------

def experiment_cfg(model, backend):
    """A small run; of the model options, only those the model takes (others are refused)."""
    from minirev.config import RunConfig
    from minirev.model import Model
    sizes = dict(layers=1, width=8, heads=2, pos="rotary", lr_z=0.5)
    return RunConfig(model=model, **{k: v for k, v in sizes.items() if k in Model.registry[model].options},
                     batch_size=32, epochs=2, vocab=40, trace=2, backend=backend, dtype="float64")


@pytest.mark.parametrize("model", ["gpt", "one-layer", "bilinear"])
def test_reversal_experiment_with_trace_on_the_backend(fake_gpu, model):
    from minirev.running import run_experiment
    results = {}
    for backend in ("numpy", "cupy"):
        results[backend], runs = run_experiment(experiment_cfg(model, backend), out=None)
    assert_on_device(runs[0]["model"].params, f"{model} experiment on the stand-in")
    host, device = results["numpy"], results["cupy"]
    for key, value in host["final"].items():
        if key != "seconds":
            assert device["final"][key] == pytest.approx(value, rel=1e-9, abs=1e-12), f"{model}: final {key}"
    for rec_h, rec_d in zip(host["trace"], device["trace"]):
        for q, values in rec_h["quantities"].items():
            got = rec_d["quantities"][q]
            assert got["change"] == pytest.approx(values["change"], rel=1e-6, abs=1e-12), \
                f"{model} trace step {rec_h['step']}: change of {q}"
            assert got["explained"] == pytest.approx(values["explained"], rel=1e-6, abs=1e-12), \
                f"{model} trace step {rec_h['step']}: sum of the terms of {q}"


def test_bilinear_sweep_with_trace_on_the_backend(fake_gpu):
    from minirev.bilinear_sweep import bilinear_sweep
    from minirev.config import RunConfig
    host, device = (bilinear_sweep(RunConfig(model="bilinear", vocab=30, epochs=20, seed=0, trace=2, backend=backend),
                                   [8, None], pairs=10, held_out=3, out=None)[1] for backend in ("numpy", "cupy"))
    for h, d in zip(host, device):
        assert d["reversal_end"] == pytest.approx(h["reversal_end"], rel=1e-5), f"bilinear {h['label']}"
        assert d["reverse_weights"] == pytest.approx(h["reverse_weights"], rel=1e-5, abs=1e-7), (
            f"bilinear {h['label']}: reverse weights {d['reverse_weights']} on the stand-in, "
            f"{h['reverse_weights']} on NumPy")


@pytest.mark.parametrize("command", ["reversal", "chain", "embeddings", "incontext"])
def test_command_line_runs_on_the_backend(fake_gpu, tmp_path, capsys, command):
    vocab = "120" if command == "incontext" else "40"             # incontext needs 100 x and 10 y tokens
    trace = ["--trace", "1"] if Experiment.registry[command].traceable else []   # reversal pairs only
    code = minirev.demo.main([command, "--backend", "cupy", "--vocab", vocab, "--epochs", "2", "--layers", "1",
                              "--width", "8", "--heads", "2", *trace, "--out", str(tmp_path)])
    assert code == 0, f"python -m minirev.demo {command} --backend cupy failed: {capsys.readouterr().err}"
    assert fake_gpu.transfers > 0, "the run should have moved its data to the (stand-in) device"


def test_a_run_saved_on_the_backend_resumes_on_the_backend_and_on_numpy(fake_gpu, tmp_path, capsys):
    run = ["reversal", "--vocab", "40", "--layers", "1", "--width", "8", "--heads", "2",
           "--out", str(tmp_path / "figs"), "--save", str(tmp_path / "run")]
    assert minirev.demo.main(run + ["--backend", "cupy", "--epochs", "2"]) == 0, capsys.readouterr().err
    code = minirev.demo.main(run + ["--backend", "cupy", "--epochs", "3", "--resume", str(tmp_path / "run")])
    assert code == 0, f"--resume on the stand-in backend failed: {capsys.readouterr().err}"
    # a checkpoint written from the GPU holds host arrays only: a machine without CuPy resumes it
    code = minirev.demo.main(run + ["--backend", "numpy", "--epochs", "4", "--resume", str(tmp_path / "run")])
    assert code == 0, f"--resume on NumPy of a GPU checkpoint failed: {capsys.readouterr().err}"


def test_saved_model_loads_onto_the_backend_and_onto_numpy(fake_gpu, tmp_path):
    host, tokens = MODELS["gpt-absolute"]()
    path = minirev.save_model(host.copy(backend="cupy"), str(tmp_path / "gpt.npz"))
    loaded = minirev.load_model(path, backend="cupy")
    assert_on_device(loaded.params, "a model loaded with backend='cupy'")
    assert abs(loaded.loss(tokens) - host.loss(tokens)) <= EXACT * host.loss(tokens), (
        f"loaded with backend='cupy': loss {loaded.loss(tokens)!r}, the saved model's {host.loss(tokens)!r}")
    on_host = minirev.load_model(path)
    for k, v in on_host.params.items():
        assert type(v) is np.ndarray, (
            f"load_model without a backend must give numpy arrays: {k} is a {type(v).__name__}")
    assert on_host.loss(tokens) == host.loss(tokens), (
        f"loaded onto NumPy: loss {on_host.loss(tokens)!r}, the saved model's {host.loss(tokens)!r} (want equal)")


# ---- the check can fail: a stray NumPy call is caught ---------------------------------------------

def plant(monkeypatch, original, buggy):
    """Put `buggy` wherever minirev refers to `original` (its own module and every `from .layers import`)."""
    planted = 0
    for name, module in list(sys.modules.items()):
        if name.startswith("minirev"):
            for attr, value in list(vars(module).items()):
                if value is original:
                    monkeypatch.setattr(module, attr, buggy)
                    planted += 1
    assert planted, f"{original.__name__} is not used by any minirev module: update this test"


def test_a_stray_numpy_call_in_a_forward_is_caught(fake_gpu, monkeypatch):
    """Replace xp.tanh by np.tanh inside GELU: NumPy does not notice, the stand-in (and a GPU) does."""
    import minirev.layers

    def gelu_forward_with_np(xp, x):
        t = np.tanh(minirev.layers.GELU_C * (x + 0.044715 * x * x * x))   # the bug: np, not xp
        return 0.5 * x * (1.0 + t), (xp, x, t)

    plant(monkeypatch, minirev.layers.gelu_forward, gelu_forward_with_np)      # layers and the GPT's import of it
    host, tokens = gpt("absolute", dropout=0.0)
    host.loss_and_grads(tokens)                                     # on NumPy the bug is invisible
    with pytest.raises(TypeError, match="ufunc"):
        host.copy(backend="cupy").loss_and_grads(tokens)


def test_a_host_array_mixed_into_a_backward_is_caught(fake_gpu, monkeypatch):
    """A dropout mask left on the host (no to_backend) works on NumPy and fails on a GPU."""
    import minirev.layers

    def host_mask(rng, shape, p, xp, dtype):
        return None if rng is None or p == 0 else (rng.random(shape) >= p).astype(dtype) / (1 - p)

    plant(monkeypatch, minirev.layers.dropout_mask, host_mask)
    host, tokens = gpt("none", dropout=0.2)
    host.loss_and_grads(tokens, rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match="mixed"):
        host.copy(backend="cupy").loss_and_grads(tokens, rng=np.random.default_rng(0))


def test_a_stray_numpy_call_in_the_bilinear_forward_is_caught(fake_gpu, monkeypatch):
    """Hand np instead of xp to a layer: the layer then calls np.exp on the model's arrays."""
    from minirev.layers import cross_entropy_forward

    def cross_entropy_with_np(xp, logits, targets):
        return cross_entropy_forward(np, logits, targets)               # the bug: np passed for xp

    plant(monkeypatch, cross_entropy_forward, cross_entropy_with_np)
    host, tokens = bilinear(16)
    host.loss_and_grads(tokens)
    with pytest.raises(TypeError):
        host.copy(backend="cupy").loss_and_grads(tokens)
