"""How fast is hand-written backprop? minirev against its matmul floor, autograd and PyTorch.

    python benchmarks/bench.py [--backend numpy|cupy] [--threads 1 2] [--repeat 3] [--quick] [--skip-demo]
    python benchmarks/bench.py --only gpt-6L-w256 --impls minirev floor --code /tmp/old /tmp/new --repeat 5
    python benchmarks/bench.py --profile gpt-24L-w20      # where a minirev step spends its time
    python benchmarks/bench.py --effects gpt-6L-w256 --code /tmp/old --steps 50   # each speed-up, A/B
    python benchmarks/bench.py --only gpt-2L-w64 --impls minirev hf --time-to-result 3   # against HF GPT-2

For each workload and each --threads count, the median milliseconds of one
training step (forward, backward and optimiser update) and the peak memory, for

  minirev   the hand-written backward, float32, on --backend;
  floor     the matrix products of that very step alone: one minirev step is run
            once with its arrays wrapped so that every matmul records its operands,
            then only those products are timed, at the same shapes, layouts and
            thread count. No NumPy step can beat it; minirev/floor says how much of
            the step is everything else (NumPy backend only);
  autograd  the SAME forward (``model.forward(params, tokens, autograd.numpy)``)
            differentiated by autograd, float32, then minirev's optimiser (CPU only);
  PyTorch   a from-scratch torch module of the same architecture and size, started
            from the same numbers (its initial loss is checked against minirev's),
            torch.optim.SGD / AdamW(lr=0.01, weight_decay=0.01), --threads threads
            (CUDA when --backend cupy and torch sees a GPU); skipped when torch is
            missing: pip install torch==2.13.0 (benchmark only, never a minirev dependency);
  HF        HuggingFace GPT2LMHeadModel with the paper's code's settings and torch's
            AdamW, the same step (benchmarks/hf_gpt2.py; GPT workloads only; skipped,
            in one line, without torch and transformers).

--time-to-result N times the demo's whole run (training and evaluation, no
figures) through minirev and through HF GPT-2, each in a fresh process.

Every (implementation, workload, threads) cell runs in a fresh Python process, so
a measurement neither warms up nor pollutes another; BLAS and OpenMP get exactly
--threads threads. --repeat N runs all cells N times, interleaved (round 1 of every
cell, then round 2, ...), and keeps each cell's best median: on a shared machine
the lowest is the least disturbed. --code DIR... times minirev from other
checkouts too (e.g. ``git archive COMMIT | tar -x -C DIR``), interleaved with this
one, which is how the effect of one change is measured. The load average is
printed before and after: other work on the machine inflates every column.

Peak memory is that process's peak resident set size, read by the parent with
os.wait4 (ru_maxrss); it includes the interpreter and the imported libraries,
whose share is given by the "after imports" line under the table. With
--backend cupy the GPU memory pool's size after the run is reported as well.
"""
import argparse
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.environ.get("BENCH_CODE", REPO))     # the minirev a worker times (--code)

GPT_SIZES = {"gpt-2L-w64": (2, 64, 4), "gpt-24L-w20": (24, 20, 4), "gpt-6L-w256": (6, 256, 8)}
WORKLOADS = {
    "bilinear": "bilinear d=256, m=200, 50 pairs, full batch (90)",
    "one-layer": "one-layer Y/Z, N=100 pairs, M=202, full batch (170)",
    "gpt-2L-w64": "gpt 2 layers, width 64, 4 heads, batch 64",
    "gpt-24L-w20": "gpt 24 layers, width 20, 4 heads, batch 64",
    "gpt-6L-w256": "gpt 6 layers, width 256, 8 heads, batch 64",
}
# timed steps: (minirev and PyTorch, autograd); autograd is slow on the deep models
STEPS = {"bilinear": (100, 20), "one-layer": (100, 20), "gpt-2L-w64": (50, 10),
         "gpt-24L-w20": (30, 4), "gpt-6L-w256": (20, 4)}
IMPLS = ("minirev", "floor", "autograd", "torch", "hf")
GPT_BATCH = 64


# =========================================================================== the workloads (worker side)

def minirev_workload(name, backend="numpy"):
    """(model, optimiser, list of token batches), float32, on `backend`."""
    import numpy as np
    from minirev.optim import SGD, AdamW
    if name == "bilinear":
        from minirev.bilinear import Bilinear
        from minirev.data import pairs_data
        data = pairs_data(vocab=200, pairs=50, held_out=10)
        model, opt, batches = Bilinear(200, dim=256, seed=0), SGD(20.0), [data.train]
    elif name == "one-layer":
        from minirev.data import relation_pairs_data
        from minirev.one_layer import OneLayer
        data = relation_pairs_data(pairs=100, both=70)
        model, opt, batches = OneLayer(data.vocab_size, seed=0), SGD(1.0), [data.train]                # Y and Z both trained
    else:
        from minirev.data import reversal_data
        from minirev.gpt import GPT
        layers, width, heads = GPT_SIZES[name]
        data = reversal_data(800)
        model = GPT(data.vocab_size, layers=layers, width=width, heads=heads, pos="absolute",
                    max_len=data.train.shape[1], dropout=0.0, entity_len=1, seed=0)
        order = np.random.default_rng(0).permutation(len(data.train))
        batches = [data.train[order[i:i + GPT_BATCH]] for i in range(0, len(order) - GPT_BATCH + 1, GPT_BATCH)]
        opt = AdamW(lr=0.01, weight_decay=0.01)
    if backend != "numpy":
        model = model.copy(backend=backend)
    return model, opt, batches


def torch_workload(name, device):
    """The same model in PyTorch, from minirev's initial numbers: (module, optimiser, batches)."""
    import torch
    import torch.nn.functional as F
    model, _, batches = minirev_workload(name)
    host = model.host_params()

    def param(a, transpose=False):
        t = torch.tensor(a.T.copy() if transpose else a, device=device)
        return torch.nn.Parameter(t)

    class Bilinear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("U", torch.tensor(model.U_host, dtype=torch.float32, device=device))
            self.Theta = param(host["Theta"])

        def forward(self, tokens):
            logits = self.U[tokens[:, 0]] @ self.Theta @ self.U.T
            return F.cross_entropy(logits, tokens[:, -1])

    class OneLayer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.Y, self.Z, self.M = param(host["Y"]), param(host["Z"]), host["Y"].shape[0]

        def forward(self, tokens):
            context, target = tokens[:, :-1], tokens[:, -1]
            b = torch.softmax(self.Z[context[:, -1:], context], dim=1)                     # (B, K)
            c = (b[:, :, None] * F.one_hot(context, self.M).to(b.dtype)).sum(1)         # (B, M)
            f = c / c.norm(dim=1, keepdim=True)
            return F.cross_entropy(f @ self.Y, target)

    class GPT(torch.nn.Module):
        """GPT-2: pre-LN blocks, fused qkv, tanh GELU, minirev's output layer; weights stored (out, in)."""

        def __init__(self):
            super().__init__()
            self.H, self.L = model.n_head, model.n_target
            self.p = torch.nn.ParameterDict({k.replace(".", "_"): param(v, transpose=k.endswith(("w_qkv", "w_proj", "w_fc")))
                                             for k, v in host.items()})

        def forward(self, tokens):
            p, H, L = self.p, self.H, self.L
            B, T = tokens.shape
            C = p["wte"].shape[1]
            x = p["wte"][tokens] + p["wpe"][:T]
            for l in range(model.n_layer):
                h = f"h{l}_"
                a = F.layer_norm(x, (C,), p[h + "ln1_g"], p[h + "ln1_b"])
                q, k, v = F.linear(a, p[h + "attn_w_qkv"], p[h + "attn_b_qkv"]) \
                    .reshape(B, T, 3, H, C // H).permute(2, 0, 3, 1, 4)
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
                x = x + F.linear(y, p[h + "attn_w_proj"], p[h + "attn_b_proj"])
                m = F.layer_norm(x, (C,), p[h + "ln2_g"], p[h + "ln2_b"])
                m = F.gelu(F.linear(m, p[h + "mlp_w_fc"], p[h + "mlp_b_fc"]), approximate="tanh")
                x = x + F.linear(m, p[h + "mlp_w_proj"], p[h + "mlp_b_proj"])
            x = F.layer_norm(x[:, T - L - 1:T - 1], (C,), p["lnf_g"], p["lnf_b"])   # the answer positions
            w_out = p["w_out"] if "w_out" in p else p["wte"]                       # untied (default) or tied
            return F.cross_entropy(x.reshape(-1, C) @ w_out.T, tokens[:, T - L:].reshape(-1))

    module = {"bilinear": Bilinear, "one-layer": OneLayer}.get(name, GPT)()
    if name.startswith("gpt"):
        opt = torch.optim.AdamW(module.parameters(), lr=0.01, weight_decay=0.01)
    else:
        opt = torch.optim.SGD(module.parameters(), lr=20.0 if name == "bilinear" else 1.0)
    return module, opt, [torch.tensor(b, device=device) for b in batches]


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def matmul_calls(name):
    """The operands of every matrix product of one minirev training step: [(a, b), ...], and its batches.

    The parameters are wrapped in an ndarray subclass whose __array_ufunc__ sees every
    ufunc the step calls (``a @ b`` is np.matmul, a ufunc) and copies matmul's operands
    in their memory order (order="K": a transposed view stays transposed). Everything
    computed from a wrapped array is wrapped, so the backward is seen too.
    """
    import numpy as np
    model, _, batches = minirev_workload(name)
    calls = []

    class Recorder(np.ndarray):
        def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
            plain = [x.view(np.ndarray) if isinstance(x, Recorder) else x for x in inputs]
            if "out" in kwargs:
                kwargs["out"] = tuple(o.view(np.ndarray) if isinstance(o, Recorder) else o for o in kwargs["out"])
            if ufunc is np.matmul and method == "__call__":
                calls.append((plain[0].copy(order="K"), plain[1].copy(order="K")))
            result = getattr(ufunc, method)(*plain, **kwargs)
            return result.view(Recorder) if isinstance(result, np.ndarray) else result

    params = {k: v.view(Recorder) for k, v in model.params.items()}
    _, cache = model.forward(params, batches[0], np, None)
    model.backward(cache)
    return calls, batches


def worker(impl, name, steps, warmup, backend):
    """Time `steps` training steps of one implementation on one workload; print one JSON line."""
    import minirev.gpt  # noqa: F401  (imports are part of the "after imports" baseline)
    sync, extra = (lambda: None), {}
    if impl == "minirev":
        model, opt, batches = minirev_workload(name, backend)
        if backend == "cupy":
            import cupy
            sync = cupy.cuda.Stream.null.synchronize

        def step(batch):
            loss, grads = model.loss_and_grads(batch)
            opt.step(model.params, grads)
            return loss
    elif impl == "autograd":
        import autograd
        import autograd.numpy as anp
        model, opt, batches = minirev_workload(name)                # autograd differentiates NumPy only

        def loss_of(params, tokens):
            return model.forward(params, tokens, anp, None)[0]
        grad_of = autograd.value_and_grad(loss_of)

        def step(batch):
            loss, grads = grad_of(dict(model.params), batch)           # autograd knows dicts, not subclasses
            extra["grad_dtype"] = str(next(iter(grads.values())).dtype)
            opt.step(model.params, grads)
            return float(loss)
    elif impl == "floor":
        calls, batches = matmul_calls(name)

        def step(batch):
            for a, b in calls:
                a @ b
            return float("nan")
        extra["matmuls"] = len(calls)
    elif impl == "hf":
        import torch
        import hf_gpt2                                               # benchmarks/hf_gpt2.py, beside this file
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())))
        device = "cuda" if backend == "cupy" and torch.cuda.is_available() else "cpu"
        model, _, batches = minirev_workload(name)
        step, batches = hf_gpt2.step(GPT_SIZES[name], model.vocab_size, batches, device)
        if device == "cuda":
            sync = torch.cuda.synchronize
        extra["device"] = device
    else:
        import torch
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())))
        device = "cuda" if backend == "cupy" and torch.cuda.is_available() else "cpu"
        module, opt, batches = torch_workload(name, device)
        if device == "cuda":
            sync = torch.cuda.synchronize
        extra["device"] = device

        def step(batch):
            opt.zero_grad(set_to_none=True)
            loss = module(batch)
            loss.backward()
            opt.step()
            return loss.item()
    baseline = rss_mb()
    loss0 = step(batches[0])                                         # also the first warm-up step
    for i in range(1, warmup):
        step(batches[i % len(batches)])
    sync()
    times = []
    for i in range(steps):
        t0 = time.perf_counter()
        step(batches[i % len(batches)])
        sync()
        times.append(time.perf_counter() - t0)
    if impl == "minirev" and backend == "cupy":
        import cupy
        extra["gpu_pool_mb"] = cupy.get_default_memory_pool().total_bytes() / 2 ** 20
    print(json.dumps(dict(ms=1000 * statistics.median(times), steps=steps, loss0=loss0,
                          rss_after_imports_mb=baseline, **extra)))


# =========================================================================== the parent: run and tabulate

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def run_child(args, threads, code=REPO, cwd=REPO, capture=True):
    """Run a child process with `threads` BLAS/OpenMP threads and minirev from `code`;
    return (stdout, seconds, peak RSS in MB, exit code, stderr) using os.wait4."""
    env = dict(os.environ, BENCH_CODE=code, PYTHONPATH=code + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):   # NumPy's BLAS and torch alike
        env[var] = str(threads)
    with tempfile.TemporaryFile(mode="w+") as errors:       # a file, not a pipe: it can never fill and block
        t0 = time.perf_counter()
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                                stderr=errors, text=True)
        out = proc.stdout.read() if capture else ""
        _, status, usage = os.wait4(proc.pid, 0)             # this child's own rusage (Popen.wait would hide it)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if capture:
            proc.stdout.close()
        errors.seek(0)
        err = errors.read()
    return out, seconds, usage.ru_maxrss / 1024, proc.returncode, err


def measure(impl, name, steps, warmup, backend, threads, code=REPO):
    out, _, peak, code_, err = run_child([sys.executable, os.path.abspath(__file__), "--worker", impl, name,
                                          str(steps), str(warmup), backend], threads, code)
    if code_ != 0:
        last = (err.strip().splitlines() or ["no output"])[-1]
        return dict(error=last)
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_mb"] = peak
    return result


def machine_lines(backend):
    import numpy as np
    lines = []
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or cpu
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    blas = "?"
    try:
        info = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{info.get('name', '?')} {info.get('version', '')}".strip()
    except Exception:
        pass
    lines.append(f"machine: {cpu}, {cores} cores usable ({os.cpu_count()} online), load average "
                 f"{os.getloadavg()[0]:.1f}; Python {platform.python_version()}")
    try:
        from importlib.metadata import version
        ag = version("autograd")
    except Exception:
        ag = "?"
    lines.append(f"numpy {np.__version__} (BLAS: {blas}), autograd {ag}, {torch_version()}")
    if backend == "cupy":
        try:
            import cupy
            props = cupy.cuda.runtime.getDeviceProperties(0)
            lines.append(f"GPU: {props['name'].decode()}, CuPy {cupy.__version__}")
        except Exception as e:
            lines.append(f"GPU: not usable ({type(e).__name__})")
    return lines


def torch_version():
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__, torch.get_num_threads())"],
                         capture_output=True, text=True)
    if out.returncode:
        return "torch not installed (PyTorch column skipped; pip install torch==2.13.0 to fill it)"
    v, threads = out.stdout.split()
    return f"torch {v} (default threads {threads})"


def fmt_ms(r):
    return "error" if "error" in r else f"{r['ms']:.2f}" if r["ms"] < 100 else f"{r['ms']:.0f}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=("numpy", "cupy"), default="numpy", help="minirev's array backend")
    p.add_argument("--steps", type=int, default=None,
                   help="timed steps per workload for minirev and PyTorch (autograd: a fifth, at least 2)")
    p.add_argument("--quick", action="store_true", help="few steps, a 3-epoch demo: under a minute")
    p.add_argument("--skip-demo", action="store_true", help="do not time python -m minirev.demo reversal")
    p.add_argument("--threads", type=int, nargs="+", default=[CORES],
                   help="BLAS / OpenMP threads of NumPy and PyTorch alike, one table per count "
                        "(default: the usable cores, %(default)s)")
    p.add_argument("--only", nargs="+", choices=list(WORKLOADS), help="run these workloads only")
    p.add_argument("--impls", nargs="+", choices=IMPLS, default=list(IMPLS), help="implementations to time")
    p.add_argument("--repeat", type=int, default=1,
                   help="rounds over all cells, interleaved; each cell keeps its best median (default: 1)")
    p.add_argument("--code", nargs="+", metavar="DIR",
                   help="also time minirev from these checkouts (labelled by folder name), interleaved")
    p.add_argument("--profile", choices=list(WORKLOADS), help="cProfile minirev's step on one workload, then exit")
    p.add_argument("--effects", choices=list(GPT_SIZES),
                   help="time each speed-up before/after, alternately in one process (robust to load), then exit; "
                        "with --code DIR also whole steps of DIR's minirev against this one's")
    p.add_argument("--time-to-result", type=int, metavar="ROUNDS", default=0,
                   help="also time the demo's training and evaluation (no figures) through minirev and through "
                        "HuggingFace GPT-2, each in a fresh process, ROUNDS alternating rounds per --threads count")
    p.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    p.add_argument("--worker-demo", choices=("minirev", "hf"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        impl, name, steps, warmup, backend = args.worker
        return worker(impl, name, int(steps), int(warmup), backend)
    if args.worker_demo:
        import hf_gpt2
        print(json.dumps(dict(val_nll=hf_gpt2.demo_run(args.worker_demo))))
        return 0
    if args.profile:
        return profile(args.profile, args.backend, args.steps or 20)
    if args.effects:
        return effects(args.effects, args.steps or 50, (args.code or [None])[0])

    names = args.only or list(WORKLOADS)
    impls = [i for i in args.impls if i != "torch" or not torch_version().startswith("torch not")]
    if "hf" in impls and hf_missing():
        print(hf_missing())
        impls.remove("hf")
    if args.backend != "numpy" and "floor" in impls:
        impls.remove("floor")                                # the floor replays NumPy matmuls
    codes = {"minirev": REPO, **{"minirev@" + os.path.basename(os.path.normpath(d)): os.path.abspath(d)
                                 for d in args.code or []}}
    labels = [label for i in impls for label in (codes if i == "minirev" else [i])]
    print("\n".join(machine_lines(args.backend)))
    print(f"minirev backend: {args.backend}; float32 everywhere; threads {args.threads} for NumPy's BLAS and "
          f"PyTorch alike; each cell a fresh process; median of the timed steps after "
          f"{1 if args.quick else 2} warm-up step(s); best of {args.repeat} interleaved round(s)")
    t_start = time.perf_counter()
    results = {t: {n: {} for n in names} for t in args.threads}
    for round_ in range(args.repeat):
        for threads in args.threads:
            for name in names:
                full, auto = STEPS[name]
                if args.quick:
                    full, auto = 10, 2
                if args.steps:
                    full, auto = args.steps, max(2, min(args.steps // 5, auto))
                for label in labels:
                    impl = "minirev" if label in codes else label
                    if impl == "hf" and name not in GPT_SIZES:
                        continue                                      # HuggingFace GPT-2 runs the GPT workloads
                    r = measure(impl, name, auto if impl == "autograd" else full, 1 if args.quick else 2,
                                args.backend if impl != "autograd" else "numpy", threads, codes.get(label, REPO))
                    best = results[threads][name].get(label)
                    if best is None or "error" in best or ("ms" in r and r["ms"] < best["ms"]):
                        results[threads][name][label] = r
            print(f"  round {round_ + 1}: measured {threads} thread(s) ({time.perf_counter() - t_start:.0f}s, "
                  f"load average {os.getloadavg()[0]:.1f})", file=sys.stderr)

    demo = None if args.skip_demo else run_demo(args.backend, args.quick)
    for threads in args.threads:
        print_table(results[threads], labels, threads)
    if args.time_to_result:
        time_to_result(args.threads, args.time_to_result)
    if demo:
        status = "" if demo["code"] == 0 else f"  [FAILED, exit {demo['code']}: {' '.join(demo['err'])}]"
        print(f"\ndemo: {demo['label']}: wall {demo['seconds']:.1f} s, peak RSS {demo['peak_mb']:.0f} MB{status}")
    print_targets(results, demo)
    print(f"(benchmark wall time {time.perf_counter() - t_start:.0f} s; load average (1, 5, 15 min) now "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}: other work on the machine inflates every column)")
    return 0


def run_demo(backend, quick):
    cmd = [sys.executable, "-m", "minirev.demo", "reversal", "--backend", backend]
    if quick:
        cmd += ["--epochs", "3"]
    with tempfile.TemporaryDirectory() as tmp:
        _, seconds, peak, code, err = run_child(cmd + ["--out", tmp], CORES, cwd=tmp, capture=False)
    label = "python -m minirev.demo reversal" + (" --epochs 3" if quick else "") + \
        (f" --backend {backend}" if backend != "numpy" else "")
    return dict(label=label, seconds=seconds, peak_mb=peak, code=code, err=err.strip().splitlines()[-1:])


def hf_missing():
    """None when HuggingFace GPT-2 can run here, else the one line that says what is missing (a child asks)."""
    out = subprocess.run([sys.executable, "-c", "import hf_gpt2; print(hf_gpt2.available() or '')"],
                         capture_output=True, text=True, cwd=os.path.dirname(os.path.abspath(__file__)))
    return out.stdout.strip() or (None if out.returncode == 0 else "HuggingFace GPT-2 skipped: " + out.stderr[-200:])


def time_to_result(thread_counts, rounds):
    """The demo's run through minirev and through HF GPT-2, each in a fresh process, alternately: wall seconds."""
    impls = ["minirev"] + ([] if hf_missing() else ["hf"])
    print(f"\ntime to result: the demo's training and evaluation (100 epochs, every group scored each epoch, no "
          f"figures), each in a fresh process, {rounds} alternating round(s), median wall seconds"
          + ("" if "hf" in impls else f" [{hf_missing()}]"))
    for threads in thread_counts:
        seconds = {impl: [] for impl in impls}
        for _ in range(rounds):
            for impl in impls:
                out, wall, _, code, err = run_child([sys.executable, os.path.abspath(__file__), "--worker-demo", impl],
                                                    threads)
                if code:
                    print(f"  {impl}: failed: {(err.strip().splitlines() or ['no output'])[-1]}")
                    return
                seconds[impl].append(wall)
                val = json.loads(out.strip().splitlines()[-1])["val_nll"]
        cells = ", ".join(f"{impl} {statistics.median(s):.1f} s (min {min(s):.1f})" for impl, s in seconds.items())
        ratio_ = (f"; HF/minirev {statistics.median(seconds['hf']) / statistics.median(seconds['minirev']):.2f}"
                  if "hf" in seconds else "")
        print(f"  {threads} thread(s): {cells}{ratio_} (last run's unseen NLL {val:.2f}; load average "
              f"{os.getloadavg()[0]:.1f})")


def ratio(r, num, den):
    """r[num] / r[den] in ms, or None when either is missing."""
    return r[num]["ms"] / r[den]["ms"] if "ms" in r.get(num, {}) and "ms" in r.get(den, {}) else None


def print_table(results, labels, threads):
    mine = [x for x in labels if x.startswith("minirev")]         # this checkout's, then --code's
    ratios = [(f"HF/{m}", "hf", m) for m in mine] + [(f"PyTorch/{m}", "torch", m) for m in mine] + \
             [(f"{m}/floor", m, "floor") for m in mine] + \
             [(f"autograd/{m}", "autograd", m) for m in mine]
    ratios = [x for x in ratios if x[1] in labels and x[2] in labels]
    head = f"{'workload':<12} " + " ".join(f"{x:>{max(9, len(x))}}" for x in labels) + "   " + \
        " ".join(f"{x[0]:>{max(9, len(x[0]))}}" for x in ratios)
    print(f"\n{threads} thread(s): ms per step (median), and ratios")
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        cells = [fmt_ms(r[x]) if x in r else "-" for x in labels]
        rs = [ratio(r, num, den) for _, num, den in ratios]
        print(f"{name:<12} " + " ".join(f"{c:>{max(9, len(x))}}" for c, x in zip(cells, labels)) + "   " +
              " ".join(f"{(f'{v:.2f}' if v is not None else '-'):>{max(9, len(x[0]))}}" for v, x in zip(rs, ratios)))
    for name, r in results.items():
        notes = [f"{k}: {v['error']}" for k, v in r.items() if "error" in v]
        same = f"; initial loss minirev {r['minirev']['loss0']:.5f}, PyTorch {r['torch']['loss0']:.5f}" \
            if "loss0" in r.get("minirev", {}) and "loss0" in r.get("torch", {}) else ""
        floor = f"; floor: {r['floor']['matmuls']} matmuls" if "matmuls" in r.get("floor", {}) else ""
        mem = ", ".join(f"{k} {v['peak_mb']:.0f}" for k, v in r.items() if "peak_mb" in v)
        print(f"  {name:<12} {WORKLOADS[name]}{same}{floor}; peak RSS MB: {mem}"
              + (" [" + "; ".join(notes) + "]" if notes else ""))


def print_targets(results, demo):
    """The performance targets minirev is held to (issue 24), per thread count."""
    lines = []
    for threads, res in results.items():
        for name, bound in (("gpt-2L-w64", 2.5), ("gpt-24L-w20", 2.5), ("gpt-6L-w256", 1.6)):
            s = ratio(res.get(name, {}), "hf", "minirev")
            if s is not None:
                lines.append((f"{name}, {threads} thr: HF/minirev >= {bound}", s >= bound, f"{s:.2f}"))
        for name in GPT_SIZES:
            s = ratio(res.get(name, {}), "torch", "minirev")
            if s is not None:
                lines.append((f"{name}, {threads} thr: PyTorch/minirev > 1", s > 1, f"{s:.2f}"))
        for name, bound in (("gpt-2L-w64", 2.0), ("gpt-6L-w256", 1.3)):
            s = ratio(res.get(name, {}), "minirev", "floor")
            if s is not None:
                lines.append((f"{name}, {threads} thr: minirev/floor <= {bound}", s <= bound, f"{s:.2f}"))
        for name in GPT_SIZES:
            s = ratio(res.get(name, {}), "autograd", "minirev")
            if s is not None:
                lines.append((f"{name}, {threads} thr: autograd/minirev >= 10", s >= 10, f"{s:.2f}"))
    if demo and demo["code"] == 0:
        lines.append(("demo peak RSS < 400 MB", demo["peak_mb"] < 400, f"{demo['peak_mb']:.0f} MB"))
    if lines:
        print("\ntargets:")
        for what, ok, value in lines:
            print(f"  {'met   ' if ok else 'MISSED'}  {what:<48} {value}")


def load_minirev(code, alias):
    """The minirev package of another checkout, imported under another name (one process holds both)."""
    import importlib.util
    folder = os.path.join(os.path.abspath(code), "minirev")
    for name in [m for m in sys.modules if m == alias or m.startswith(alias + ".")]:
        del sys.modules[name]                                         # a fresh load, submodules too
    spec = importlib.util.spec_from_file_location(alias, os.path.join(folder, "__init__.py"),
                                                  submodule_search_locations=[folder])
    module = importlib.util.module_from_spec(spec)
    sys.modules[alias] = module
    spec.loader.exec_module(module)
    return module


def gpt_step(pkg, name):
    """One float32 training step of a GPT workload with package `pkg` (minirev or another checkout's)."""
    import numpy as np
    layers, width, heads = GPT_SIZES[name]
    data = pkg.reversal_data(800)
    model = pkg.GPT(data.vocab_size, layers=layers, width=width, heads=heads, pos="absolute",
                    max_len=data.train.shape[1], dropout=0.0, entity_len=1, seed=0)
    opt = pkg.AdamW(lr=0.01, weight_decay=0.01)
    batch = data.train[np.random.default_rng(0).permutation(len(data.train))[:GPT_BATCH]]
    return lambda: opt.step(model.params, model.loss_and_grads(batch)[1])


def paired(rounds, cases):
    """Time each case's (before, after) alternately, `rounds` times; print medians and the median ratio."""
    for label, (before, after) in cases.items():
        for f in (before, after):
            f()                                                       # warm-up
        tb, ta = [], []
        for _ in range(rounds):
            for f, times in ((before, tb), (after, ta)):
                t0 = time.perf_counter()
                f()
                times.append(time.perf_counter() - t0)
        ratios = sorted(b / a for b, a in zip(tb, ta))
        print(f"  {label:<40} {1e3 * statistics.median(tb):9.3f} ms -> {1e3 * statistics.median(ta):9.3f} ms"
              f"   before/after {statistics.median(ratios):5.2f} (middle half {ratios[len(ratios) // 4]:.2f}"
              f"..{ratios[3 * len(ratios) // 4]:.2f})")


def effects(name, rounds, code):
    """The effect of each speed-up at one workload's shapes, before and after timed alternately in ONE
    process, so that both see the same load; then whole steps of --code's minirev against this one's."""
    import numpy as np
    import minirev
    import minirev.optim
    from minirev import layers
    layers_n, C, H = GPT_SIZES[name]
    rng = np.random.default_rng(0)

    def f32(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(np.float32)
    B, T = GPT_BATCH, 3                                               # the reversal data's sentences: 3 tokens
    x = f32(B, T, C)
    w_fc, b_fc = f32(C, 4 * C, scale=0.02), f32(4 * C)
    attn = (x, f32(C, 3 * C, scale=0.02), f32(3 * C), f32(C, C, scale=0.02), f32(C), H)
    fc_cache, attn_cache = layers.linear_forward(np, x, w_fc, b_fc)[1], layers.attention_forward(np, *attn)[1]
    d_fc, d_attn = f32(B, T, 4 * C), f32(B, T, C)
    fc_grads = [np.empty_like(w_fc), np.empty_like(b_fc)]             # where the model's buffer would be
    attn_grads = [np.empty_like(a) for a in attn[1:5]]

    def copied(backward, dout, cache, into):                          # into new arrays, then a copy into place
        def run():
            for slot, grad in zip(into, backward(dout, cache)[1:]):
                slot[...] = grad
        return run
    model = minirev.GPT(802, layers=layers_n, width=C, heads=H, max_len=T, dropout=0.0)
    _, grads = model.loss_and_grads(rng.integers(0, 802, (B, T)))
    plain = ({k: v.copy() for k, v in model.params.items()}, {k: v.copy() for k, v in grads.items()})
    loop = minirev.AdamW()

    def flat_step(chunk):
        flat = minirev.AdamW()                                        # its scratch is sized by its first step

        def step():
            minirev.optim.CHUNK = chunk
            flat.step(model.params, grads)
        return step
    print(f"\n{name}: each speed-up, before -> after, {rounds} alternating rounds in one process "
          f"(load average {os.getloadavg()[0]:.1f})")
    paired(rounds, {
        "AdamW: loop over tensors -> flat, chunked": (lambda: loop.step(*plain), flat_step(1 << 16)),
        "AdamW flat: whole buffer -> 64K chunks": (flat_step(1 << 40), flat_step(1 << 16)),
        "linear backward: copy -> write in place": (copied(layers.linear_backward, d_fc, fc_cache, fc_grads),
                                                    lambda: layers.linear_backward(d_fc, fc_cache, *fc_grads)),
        "attention backward: copy -> in place": (copied(layers.attention_backward, d_attn, attn_cache, attn_grads),
                                                 lambda: layers.attention_backward(d_attn, attn_cache, *attn_grads)),
    })
    if code:
        before = load_minirev(code, "minirev_before")
        print(f"whole training steps, and the demo's evaluation and figures: minirev from {code} -> this checkout's")
        paired(rounds, {name: (gpt_step(before, name), gpt_step(minirev, name))})
        paired(max(3, rounds // 10), {what: (demo_part(before, what), demo_part(minirev, what)) for what in DEMO_PARTS})
    return 0


DEMO_PARTS = ("demo: one evaluation (every group)", "demo: the NLL figure", "demo: the two heatmap figures")


def demo_part(pkg, what):
    """One part of `python -m minirev.demo reversal` after training, with package `pkg`: its model (one epoch trained:
    the cost is the same) on its data, figures drawn into a temporary folder."""
    run_experiment = importlib.import_module(pkg.__name__ + ".running").run_experiment
    plots = importlib.import_module(pkg.__name__ + ".plots")
    result, runs = run_experiment(pkg.RunConfig(experiment="reversal", epochs=1), out=None)
    folder = tempfile.mkdtemp()
    if what == DEMO_PARTS[0]:
        return runs[0]["trainer"].evaluate
    if what == DEMO_PARTS[1]:
        return lambda: plots.run_nll_figure("reversal", result, runs, folder)
    return lambda: plots.run_heatmaps("reversal", runs[0], folder, 2)


def profile(name, backend, steps):
    """Where minirev's training step spends its time: cProfile, top 20 functions by own time."""
    import cProfile
    import pstats
    model, opt, batches = minirev_workload(name, backend)
    for i in range(2):
        opt.step(model.params, model.loss_and_grads(batches[i % len(batches)])[1])
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    for i in range(steps):
        opt.step(model.params, model.loss_and_grads(batches[i % len(batches)])[1])
    prof.disable()
    print(f"{name}: {steps} minirev steps, {1000 * (time.perf_counter() - t0) / steps:.2f} ms per step "
          "under the profiler")
    pstats.Stats(prof).sort_stats("tottime").print_stats(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
