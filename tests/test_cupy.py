"""The real GPU: every model's loss and gradients on CuPy against NumPy, and a short training run.

Skipped, with the reason printed, when CuPy is not installed or no GPU is usable
(``pytest -rs`` shows it). On a machine with a GPU: pip install -e ".[gpu,test]",
then pytest tests/test_cupy.py -v  (or run benchmarks/gpu_check.sh, which does it all).

float64 on the GPU must agree with NumPy to rounding (1e-10); float32 to 1e-4,
since GPU reductions add in a different order than the CPU's BLAS.

Run only the backend checks with: pytest -m backend
"""
import numpy as np
import pytest

cupy = pytest.importorskip("cupy", reason="CuPy is not installed (pip install -e \".[gpu]\")")

from minirev.backend import get_xp, to_numpy                  # noqa: E402
from minirev.bilinear import Bilinear                         # noqa: E402
from minirev.data import reversal_data                        # noqa: E402
from minirev.errors import UsageError                         # noqa: E402
from minirev.gpt import GPT                                   # noqa: E402
from minirev.one_layer import OneLayer                        # noqa: E402
from minirev.optim import AdamW                               # noqa: E402
from minirev.train import Trainer                             # noqa: E402

try:
    get_xp("cupy")
    NO_GPU = None
except UsageError as e:
    NO_GPU = str(e)

pytestmark = [pytest.mark.backend, pytest.mark.skipif(NO_GPU is not None, reason=NO_GPU or "")]

TOL = {"float64": 1e-10, "float32": 1e-4}


def relative_error(a, b):
    """minirev.gradcheck's measure, |a - b| / (|a| + |b|); written out so GPU images without autograd run this."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if denom == 0 else float(np.linalg.norm(a - b) / denom)


def bilinear(dim, dtype):
    model = Bilinear(30, dim=dim, seed=0, dtype=dtype)
    model.params["Theta"] = np.random.default_rng(1).standard_normal(model.params["Theta"].shape).astype(dtype)
    return model, np.random.default_rng(2).integers(0, 30, (12, 2))


def gpt(pos, dtype):
    data = reversal_data(vocab=40, entity_len=2)
    model = GPT(data.vocab_size, layers=2, width=16, heads=4, pos=pos, max_len=data.train.shape[1],
                dropout=0.2, entity_len=2, seed=0, dtype=dtype)
    return model, data.train[:12]


MODELS = {
    "bilinear-gaussian": lambda dt: bilinear(16, dt),
    "bilinear-onehot": lambda dt: bilinear(None, dt),
    "one-layer": lambda dt: (OneLayer(30, seed=0, init_scale=0.5, dtype=dt),
                             np.random.default_rng(2).integers(0, 30, (12, 4))),
    "gpt-absolute": lambda dt: gpt("absolute", dt),
    "gpt-rotary": lambda dt: gpt("rotary", dt),
    "gpt-none": lambda dt: gpt("none", dt),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", MODELS)
def test_loss_and_gradients_on_the_gpu_match_numpy(name, dtype):
    host, tokens = MODELS[name](np.dtype(dtype))
    device = host.copy(backend="cupy")
    for k, v in device.params.items():
        assert isinstance(v, cupy.ndarray), f"{name}: copy(backend='cupy') left {k} on the host ({type(v).__name__})"
    loss_h, grads_h = host.loss_and_grads(tokens, rng=np.random.default_rng(0))
    loss_d, grads_d = device.loss_and_grads(tokens, rng=np.random.default_rng(0))
    tol = TOL[dtype]
    assert abs(loss_d - loss_h) <= tol * abs(loss_h), f"{name} {dtype}: loss {loss_d} on the GPU, {loss_h} on NumPy"
    for k in grads_h:
        assert isinstance(grads_d[k], cupy.ndarray), f"{name}: gradient {k} is not a GPU array"
        err = relative_error(to_numpy(grads_d[k]), grads_h[k])
        assert err < tol, f"{name} {dtype}: gradient {k} differs from NumPy's by rel. error {err:.1e} (bound {tol})"


def test_a_short_training_run_on_the_gpu_matches_numpy():
    data = reversal_data(vocab=40, entity_len=2)
    trainers = {}
    for backend in ("numpy", "cupy"):
        model = GPT(data.vocab_size, layers=2, width=16, heads=4, max_len=5, dropout=0.1, entity_len=2,
                    dtype=np.float64).copy(backend=backend)
        trainers[backend] = Trainer(model, AdamW(lr=0.01), data, batch_size=16, seed=0)
        trainers[backend].run(3)
    host, device = trainers["numpy"], trainers["cupy"]
    assert device.history[-1]["train_nll"] < device.history[0]["train_nll"], (
        f"training on the GPU did not lower the loss: {device.history[0]['train_nll']:.4f} at epoch "
        f"{device.history[0]['epoch']}, {device.history[-1]['train_nll']:.4f} at epoch {device.history[-1]['epoch']}")
    for h, d in zip(host.history, device.history):
        assert d["train_nll"] == pytest.approx(h["train_nll"], rel=1e-8), (
            f"training NLL at epoch {h['epoch']}: {d['train_nll']!r} on the GPU, {h['train_nll']!r} on NumPy "
            "(rel. 1e-8)")
