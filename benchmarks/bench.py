"""How fast is hand-written backprop? minirev against autograd and PyTorch, one table.

    python benchmarks/bench.py [--backend numpy|cupy] [--steps N] [--quick] [--skip-demo] [--threads N]
    python benchmarks/bench.py --profile gpt-24L-w20      # where a minirev step spends its time

On a shared or busy machine, use --threads 1: OpenBLAS and PyTorch's OpenMP
threads spin-wait, and when other processes hold the cores a 2-thread matmul
can take 100 times longer than a 1-thread one, which drowns every comparison.

For each workload, the median milliseconds of one training step (forward,
backward and optimiser update) and the peak memory, for

  minirev   the hand-written backward, float32, on --backend;
  autograd  the SAME forward (``model.forward(params, tokens, autograd.numpy)``)
            differentiated by autograd, float32, then minirev's optimiser (CPU only);
  PyTorch   a from-scratch torch module of the same architecture and size, started
            from the same numbers (its initial loss is checked against minirev's),
            torch.optim.SGD / AdamW(lr=0.01, weight_decay=0.01), all CPU threads
            (CUDA when --backend cupy and torch sees a GPU); skipped when torch is
            missing: pip install torch==2.13.0 (benchmark only, never a minirev dependency).

Every (implementation, workload) pair runs in a fresh Python process, so a
measurement neither warms up nor pollutes another. Its peak memory is that
process's peak resident set size, read by the parent with os.wait4 (ru_maxrss);
it includes the interpreter and the imported libraries, whose share is given
by the "after imports" line under the table. With --backend cupy the GPU
memory pool's size after the run is reported as well.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

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
IMPLS = ("minirev", "autograd", "torch")
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
        """GPT-2: pre-LN blocks, fused qkv, tanh GELU, tied embeddings; weights stored (out, in)."""

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
            return F.cross_entropy(x.reshape(-1, C) @ p["wte"].T, tokens[:, T - L:].reshape(-1))

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
            loss, grads = grad_of(model.params, batch)
            extra["grad_dtype"] = str(next(iter(grads.values())).dtype)
            opt.step(model.params, grads)
            return float(loss)
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

THREADS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def run_child(args, cwd=REPO, capture=True):
    """Run a child process; return (stdout, seconds, peak RSS in MB, exit code, stderr) using os.wait4."""
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):   # NumPy's BLAS and torch alike
        env[var] = str(THREADS)
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


def measure(impl, name, steps, warmup, backend):
    out, _, peak, code, err = run_child([sys.executable, os.path.abspath(__file__), "--worker", impl, name,
                                         str(steps), str(warmup), backend])
    if code != 0:
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
    global THREADS
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=("numpy", "cupy"), default="numpy", help="minirev's array backend")
    p.add_argument("--steps", type=int, default=None,
                   help="timed steps per workload for minirev and PyTorch (autograd: a fifth, at least 2)")
    p.add_argument("--quick", action="store_true", help="few steps, a 3-epoch demo: under a minute")
    p.add_argument("--skip-demo", action="store_true", help="do not time python -m minirev.demo reversal")
    p.add_argument("--threads", type=int, default=THREADS,
                   help="BLAS / OpenMP threads of NumPy and PyTorch alike (default: the usable cores, %(default)s)")
    p.add_argument("--only", nargs="+", choices=list(WORKLOADS), help="run these workloads only")
    p.add_argument("--profile", choices=list(WORKLOADS), help="cProfile minirev's step on one workload, then exit")
    p.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        impl, name, steps, warmup, backend = args.worker
        return worker(impl, name, int(steps), int(warmup), backend)
    if args.profile:
        return profile(args.profile, args.backend, args.steps or 20)

    THREADS = args.threads
    names = args.only or list(WORKLOADS)
    have_torch = not torch_version().startswith("torch not")
    print("\n".join(machine_lines(args.backend)))
    print(f"minirev backend: {args.backend}; float32 everywhere; {THREADS} BLAS/OpenMP threads for NumPy and "
          f"PyTorch alike; each cell is a fresh process; median of the timed steps after "
          f"{1 if args.quick else 2} warm-up step(s)")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if os.getloadavg()[0] > 0.5 * cores:
        print(f"WARNING: load average {os.getloadavg()[0]:.1f} on {cores} cores: other processes compete for the "
              "CPU" + (", and multithreaded BLAS slows down badly when oversubscribed (try --threads 1)"
                       if THREADS > 1 else ""))
    t_start = time.perf_counter()
    results = {}
    for name in names:
        full, auto = STEPS[name]
        if args.quick:
            full, auto = 10, 2
        if args.steps:
            full, auto = args.steps, max(2, min(args.steps // 5, auto))
        warmup = 1 if args.quick else 2
        results[name] = {"minirev": measure("minirev", name, full, warmup, args.backend),
                         "autograd": measure("autograd", name, auto, 1, "numpy")}
        results[name]["torch"] = measure("torch", name, full, warmup, args.backend) if have_torch \
            else dict(error="torch missing")
        print(f"  measured {name} ({time.perf_counter() - t_start:.0f}s)", file=sys.stderr)

    demo = None if args.skip_demo else run_demo(args.backend, args.quick)
    print_table(results, demo, args)
    print(f"(benchmark wall time {time.perf_counter() - t_start:.0f} s; load average now {os.getloadavg()[0]:.1f}: "
          f"other work on the machine inflates every column)")
    return 0


def run_demo(backend, quick):
    cmd = [sys.executable, "-m", "minirev.demo", "reversal", "--backend", backend]
    if quick:
        cmd += ["--epochs", "3"]
    with tempfile.TemporaryDirectory() as tmp:
        _, seconds, peak, code, err = run_child(cmd + ["--out", tmp], cwd=tmp, capture=False)
    label = "python -m minirev.demo reversal" + (" --epochs 3" if quick else "") + \
        (f" --backend {backend}" if backend != "numpy" else "")
    return dict(label=label, seconds=seconds, peak_mb=peak, code=code, err=err.strip().splitlines()[-1:])


def print_table(results, demo, args):
    head = (f"{'workload':<12} {'ms/step: minirev':>16} {'autograd':>9} {'PyTorch':>8}   "
            f"{'speedup vs autograd':>19} {'vs PyTorch':>10}   {'peak RSS MB: minirev':>20} {'autograd':>8} {'PyTorch':>8}")
    print()
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        m, a, t = r["minirev"], r["autograd"], r["torch"]
        sa = f"{a['ms'] / m['ms']:.2f}x" if "ms" in a and "ms" in m else "-"
        st = f"{t['ms'] / m['ms']:.2f}x" if "ms" in t and "ms" in m else "-"
        mem = [f"{x['peak_mb']:.0f}" if "peak_mb" in x else "-" for x in (m, a, t)]
        print(f"{name:<12} {fmt_ms(m):>16} {fmt_ms(a):>9} {fmt_ms(t) if 'error' not in t else '-':>8}   "
              f"{sa:>19} {st:>10}   {mem[0]:>20} {mem[1]:>8} {mem[2]:>8}")
    print()
    for name, r in results.items():
        notes = [f"{k}: {v['error']}" for k, v in r.items() if "error" in v and v["error"] != "torch missing"]
        m, a, t = r["minirev"], r["autograd"], r["torch"]
        steps = "/".join(str(x.get("steps", "-")) for x in (m, a, t))
        same = ""
        if "loss0" in m and "loss0" in t:
            same = f"; initial loss minirev {m['loss0']:.5f}, PyTorch {t['loss0']:.5f}"
        ag = f"; autograd grads {a['grad_dtype']}" if "grad_dtype" in a else ""
        gpu = f"; GPU pool {m['gpu_pool_mb']:.0f} MB" if "gpu_pool_mb" in m else ""
        dev = f"; PyTorch on {t['device']}" if "device" in t and t["device"] != "cpu" else ""
        print(f"  {name:<12} {WORKLOADS[name]}; timed steps {steps}{ag}{same}{gpu}{dev}"
              + (" [" + "; ".join(notes) + "]" if notes else ""))
    base = {k: v.get("rss_after_imports_mb") for k, v in next(iter(results.values())).items()}
    print("  peak RSS = the whole process (os.wait4 ru_maxrss); RSS after imports, before any model: "
          + ", ".join(f"{k} {v:.0f} MB" for k, v in base.items() if v is not None))
    if demo:
        status = "" if demo["code"] == 0 else f"  [FAILED, exit {demo['code']}: {' '.join(demo['err'])}]"
        print(f"\ndemo: {demo['label']}: wall {demo['seconds']:.1f} s, peak RSS {demo['peak_mb']:.0f} MB{status}")
    print_targets(results, demo)


def print_targets(results, demo):
    """The performance targets minirev is held to."""
    lines = []

    def ratio(name, other):
        r = results.get(name, {})
        if "ms" in r.get("minirev", {}) and "ms" in r.get(other, {}):
            return r[other]["ms"] / r["minirev"]["ms"]
        return None

    for name in GPT_SIZES:
        s = ratio(name, "autograd")
        if s is not None:
            lines.append((f"{name}: minirev >= 10x faster than autograd", s >= 10, f"{s:.2f}x"))
    for name, bound in (("gpt-2L-w64", 0.6), ("gpt-24L-w20", 0.6), ("gpt-6L-w256", 1.0)):
        s = ratio(name, "torch")
        if s is not None:
            lines.append((f"{name}: minirev step <= {1 / bound:.3g} x PyTorch's", s >= bound,
                          f"PyTorch/minirev = {s:.2f}"))
    if demo and demo["code"] == 0:
        lines.append(("demo peak RSS < 400 MB", demo["peak_mb"] < 400, f"{demo['peak_mb']:.0f} MB"))
    if lines:
        print("\ntargets:")
        for what, ok, value in lines:
            print(f"  {'met   ' if ok else 'MISSED'}  {what:<45} {value}")


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
