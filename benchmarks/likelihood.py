"""Speed and memory of the low-rank mixture likelihood against Pyro's stock path, by D.

Scores the same mixture of K low-rank Gaussians at B x T points four ways:

- ``ours``: ``pyro_frmdn.distributions.low_rank_mixture`` (the compiled one-pass CPU kernel when
  Numba is installed, else the torch kernel);
- ``ours-torch``: the same with the torch kernel (batched tensor operations; what CUDA runs);
- ``stock``: ``MixtureSameFamily(Categorical, pyro.distributions.LowRankMultivariateNormal)``;
- ``dense``: ``MixtureSameFamily(Categorical, MultivariateNormal(W Wᵀ + diag))``, where its
  D x D matrices fit (``--dense-budget-gb``).

Timing: every variant in one process, interleaved (A, B, C, A, B, C, ...), medians of
``--repeats`` rounds, for ``log_prob`` and ``log_prob`` + ``backward``, at each thread count of
``--threads``, with Pyro's argument validation on as users have it (``--no-validation`` turns it
off); the distribution is built inside the timed region, as in training. Ratios are stock /
variant. ``--busy`` runs a second process beside the measurement that streams memory and keeps a
core busy, as a shared machine does.

Memory floor: the bytes a forward pass must read (the factor, means, diagonals, logits, values)
and write, and for forward + backward also the gradients it must write, over the streaming
bandwidth measured here (a large ``copy_``); the multiple is time / floor. The table's multiples
come from the interleaved rounds, where ``ours`` runs right after the stock path (at D = 256
that path's temporaries, gigabytes, leave the next call of ours 30-40% slower, without page
faults); the "alone" lines measure ``ours`` in rounds of its own, each round with the bandwidth
measured again beside it (the median of the rounds' multiples), so that a neighbour's load moves
both alike: the multiple of the kernel itself, as training runs it.

Peak memory: each variant once in its own process (growth of the peak resident set, Linux VmHWM
reset through /proc/self/clear_refs, or CUDA's max_memory_allocated).

Values are checked against the stock path and against a float64 dense reference.

    python benchmarks/likelihood.py                        # B=256 T=50 K=10 r=4, D = 16 64 256
    python benchmarks/likelihood.py --sweep 64 --threads 1 2 --busy
    python benchmarks/likelihood.py --device cuda --sweep 64 256 1024
    python benchmarks/likelihood.py --quick                # a smoke run (tiny sizes)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import subprocess
import sys
import time

import pyro
import pyro.distributions as dist
import torch

from pyro_frmdn.distributions import low_rank_mixture
from pyro_frmdn.distributions._lowrank import use_kernel
from pyro_frmdn.distributions._lowrank_cpu import AVAILABLE as COMPILED
from pyro_frmdn.infer import keep_freed_memory

VARIANTS = ("ours", "ours-torch", "stock", "dense")


def inputs(b, t, d, k, r, device, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=1.0, shift=0.0):  # in place: no temporaries to raise the peak
        x = torch.rand(*shape, generator=g).mul_(scale).add_(shift)
        return x.to(device=device, dtype=dtype).requires_grad_()

    logits = rand(b, t, k, scale=2.0)
    loc = rand(b, t, k, d, scale=2.0, shift=-1.0)
    factor = rand(b, t, k, d, r, scale=0.6, shift=-0.3)
    diag = rand(b, t, k, d, scale=1.0, shift=0.5)
    y = torch.randn(b, t, d, generator=g).to(device=device, dtype=dtype)
    return logits, loc, factor, diag, y


def mixture(variant, logits, loc, factor, diag):
    if variant in ("ours", "ours-torch"):
        return low_rank_mixture(logits, loc, factor, diag)
    if variant == "stock":
        comps = dist.LowRankMultivariateNormal(loc, factor, diag)
    else:
        comps = dist.MultivariateNormal(loc, factor @ factor.mT + torch.diag_embed(diag))
    return dist.MixtureSameFamily(dist.Categorical(logits=logits), comps)


def kernel(variant):
    return use_kernel("torch" if variant == "ours-torch" else "auto")


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def runners(variant, params, device):
    logits, loc, factor, diag, y = params

    def fwd():
        with kernel(variant), torch.no_grad():
            mixture(variant, logits, loc, factor, diag).log_prob(y).sum().item()

    def fwd_bwd():
        for p in params[:4]:
            p.grad = None
        with kernel(variant):
            mixture(variant, logits, loc, factor, diag).log_prob(y).sum().backward()
        sync(device)

    return {"log_prob": fwd, "log_prob+backward": fwd_bwd}


def bandwidth(device) -> float:
    """Streaming bandwidth in bytes/s: a 256 MiB copy, best of five."""
    a = torch.empty(64 * 2**20, device=device).fill_(1.0)
    b = torch.empty_like(a)
    best = float("inf")
    for _ in range(6):
        sync(device)
        start = time.perf_counter()
        b.copy_(a)
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * a.numel() * a.element_size() / best


def floor_bytes(b, t, d, k, r, backward: bool) -> int:
    """Bytes that must move (float32): read every argument once; write every gradient once."""
    read = b * t * (k * (d * r + 2 * d + 1) + d)
    write = b * t * k * (d * r + 2 * d + 1) if backward else 0
    return 4 * (read + write)


def interleaved(variants, b, t, d, k, r, device, repeats):
    """Median seconds per (variant, measurement), the variants run in turn in each round."""
    params = inputs(b, t, d, k, r, device)
    fns = {v: runners(v, params, device) for v in variants}
    times = {(v, m): [] for v in variants for m in ("log_prob", "log_prob+backward")}
    for v in variants:  # warm-up: compilation, first-touch of buffers
        for fn in fns[v].values():
            fn()
    for _ in range(repeats):
        for m in ("log_prob", "log_prob+backward"):
            for v in variants:
                start = time.perf_counter()
                fns[v][m]()
                sync(device)
                times[v, m].append(time.perf_counter() - start)
    return {key: statistics.median(vals) for key, vals in times.items()}


def rss(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))


def memory_worker(variant, b, t, d, k, r, device):
    """Peak memory of one forward + backward of one variant, in this fresh process; print JSON.

    A tiny call first (same dtypes and layouts: compiled code loaded), then the inputs; the peak
    is the growth of the peak (CUDA: max_memory_allocated; CPU: the resident set's high-water
    mark VmHWM) over what the inputs hold, freed memory returned to the OS as usual.
    """
    runners(variant, inputs(2, 2, d, k, r, device), device)["log_prob+backward"]()
    params = inputs(b, t, d, k, r, device)
    fns = runners(variant, params, device)
    sync(device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = rss("VmRSS")
        if rss("VmHWM") > base + 2**20:  # an earlier peak would hide this one
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
    fns["log_prob+backward"]()
    sync(device)
    peak = torch.cuda.max_memory_allocated() if device.startswith("cuda") else rss("VmHWM")
    print(json.dumps({"peak_mb": (peak - base) / 2**20}))


def memory(variant, b, t, d, k, r, device):
    cmd = [sys.executable, __file__, "--memory-worker", variant, "--batch", str(b)]
    cmd += ["--steps", str(t), "--components", str(k), "--rank", str(r), "--device", device]
    cmd += ["--sweep", str(d)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return float("nan")
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]


def check_values(b, t, d, k, r, device):
    """Max relative difference of log_prob and gradients: ours vs stock, and vs float64."""
    out, results = {}, {}
    for variant in ("ours", "ours-torch", "stock"):
        params = inputs(b, t, d, k, r, device)
        with kernel(variant):
            lp = mixture(variant, *params[:4]).log_prob(params[4])
            lp.sum().backward()
        results[variant] = (lp.detach(), [p.grad for p in params[:4]])
    params64 = inputs(b, t, d, k, r, device, dtype=torch.float64)
    lp64 = mixture("stock", *params64[:4]).log_prob(params64[4]).detach()

    def rel(a, ref):
        return ((a.double() - ref.double()).abs().max() / ref.double().abs().max()).item()

    for v in ("ours", "ours-torch"):
        out[f"log_prob {v} vs stock"] = rel(results[v][0], results["stock"][0])
        out[f"log_prob {v} vs float64"] = rel(results[v][0], lp64)
        out[f"gradients {v} vs stock"] = max(
            rel(a, g) for a, g in zip(results[v][1], results["stock"][1], strict=True)
        )
    out["log_prob stock vs float64"] = rel(results["stock"][0], lp64)
    return out


def alone(b, t, d, k, r, device, repeats, thread_counts, threads):
    """Median multiples of the floor of ``ours`` at ``threads``, in rounds of its own: each round
    measures the bandwidth (the best over ``thread_counts``, as the table's floor), then a
    forward and a forward + backward. Returns ({measurement: multiple}, median bandwidth)."""
    params = inputs(b, t, d, k, r, device)
    fns = runners("ours", params, device)
    for fn in fns.values():
        fn()
    multiples = {m: [] for m in fns}
    speeds = []
    for _ in range(repeats):
        per = []
        for n in thread_counts:
            torch.set_num_threads(n)
            per.append(bandwidth(device))
        torch.set_num_threads(threads)
        speeds.append(max(per))
        for m, fn in fns.items():
            start = time.perf_counter()
            fn()
            sync(device)
            floor = floor_bytes(b, t, d, k, r, m != "log_prob") / speeds[-1]
            multiples[m].append((time.perf_counter() - start) / floor)
    return {m: statistics.median(v) for m, v in multiples.items()}, statistics.median(speeds)


def busy():
    """A neighbour: streams memory and keeps one core busy until killed."""
    torch.set_num_threads(1)
    a = torch.randn(16 * 2**20)
    while True:
        a.mul_(1.0000001).add_(1e-7)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--components", type=int, default=10)
    p.add_argument("--rank", type=int, default=4)
    p.add_argument("--sweep", type=int, nargs="+", default=[16, 64, 256])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--dense-budget-gb", type=float, default=1.0)
    p.add_argument("--no-validation", action="store_true")
    p.add_argument("--busy", action="store_true", help="measure beside a busy process")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    p.add_argument("--memory-only", action="store_true", help="only the peak-memory processes")
    p.add_argument(
        "--fresh-pages",
        action="store_true",
        help="leave glibc returning freed memory to the OS (fit keeps it: keep_freed_memory)",
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    p.add_argument("--memory-worker", choices=VARIANTS, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.quick:
        a.batch, a.steps, a.sweep, a.repeats, a.threads = 8, 10, [16], 2, [1]
    b, t, k, r = a.batch, a.steps, a.components, a.rank
    pyro.enable_validation(not a.no_validation)
    if a.memory_worker:
        memory_worker(a.memory_worker, b, t, a.sweep[0], k, r, a.device)
        return
    if not a.fresh_pages:
        keep_freed_memory()  # as fit does for CPU training, for every variant alike
    name = torch.cuda.get_device_name() if a.device.startswith("cuda") else "CPU"
    if a.memory_only:
        print(f"# B={b} T={t} K={k} r={r} float32 on {a.device} ({name}): peak memory of")
        print("# log_prob + backward over the inputs, each variant in a fresh process")
        for d in a.sweep:
            dense_gb = 3 * b * t * k * d * d * 4 / 2**30
            variants = [v for v in VARIANTS if v != "dense" or dense_gb <= a.dense_budget_gb]
            peaks = {v: memory(v, b, t, d, k, r, a.device) for v in variants}
            print(f"D={d}: " + ", ".join(f"{v} {mb:.0f} MB" for v, mb in peaks.items()))
        return
    neighbour = None
    if a.busy:
        neighbour = mp.get_context("spawn").Process(target=busy, daemon=True)
        neighbour.start()
    try:
        per_thread = {}
        for threads in a.threads:  # one thread streams less than the machine can
            torch.set_num_threads(threads)
            per_thread[threads] = bandwidth(a.device)
        bw = max(per_thread.values())
        print(
            f"# B={b} T={t} K={k} r={r} float32 on {a.device} ({name}), torch {torch.__version__},"
            f" pyro {pyro.__version__}, validation {'off' if a.no_validation else 'on'},"
            f" compiled kernel {'yes' if COMPILED else 'no (numba missing)'},"
            f" busy neighbour {'yes' if a.busy else 'no'},"
            f" freed memory {'returned to the OS' if a.fresh_pages else 'kept (as fit does)'};"
            f" streaming bandwidth {bw / 1e9:.1f} GB/s (the floor's; "
            + ", ".join(f"{n} thread(s) {v / 1e9:.1f}" for n, v in per_thread.items())
            + ")"
        )
        d0 = 64 if 64 in a.sweep else a.sweep[0]
        print(f"\nvalues at D={d0} (max relative difference):")
        for key, val in check_values(min(b, 64), t, d0, k, r, a.device).items():
            print(f"  {key:32s} {val:.2e}")
        print(
            f"\n{'D':>5} {'thr':>3} {'variant':>10} {'log_prob':>10} {'+backward':>10}"
            f" {'stock/x fwd':>11} {'fwd+bwd':>8} {'floor x fwd':>11} {'fwd+bwd':>8}"
        )
        for d in a.sweep:
            dense_gb = 3 * b * t * k * d * d * 4 / 2**30
            variants = [v for v in VARIANTS if v != "dense" or dense_gb <= a.dense_budget_gb]
            floor_f = floor_bytes(b, t, d, k, r, False) / bw
            floor_b = floor_bytes(b, t, d, k, r, True) / bw
            for threads in a.threads:
                torch.set_num_threads(threads)
                med = interleaved(variants, b, t, d, k, r, a.device, a.repeats)
                sf, sb = med["stock", "log_prob"], med["stock", "log_prob+backward"]
                for v in variants:
                    f, fb = med[v, "log_prob"], med[v, "log_prob+backward"]
                    print(
                        f"{d:>5} {threads:>3} {v:>10} {f * 1e3:>8.1f}ms {fb * 1e3:>8.1f}ms"
                        f" {sf / f:>10.2f}x {sb / fb:>7.2f}x"
                        f" {f / floor_f:>10.1f}x {fb / floor_b:>7.1f}x",
                        flush=True,
                    )
            print(
                f"{'':>5} floor: log_prob {floor_f * 1e3:.1f} ms, +backward {floor_b * 1e3:.1f} ms"
            )
            for threads in a.threads:
                times, speed = alone(b, t, d, k, r, a.device, a.repeats, a.threads, threads)
                print(
                    f"{'':>5} alone, {threads} thread(s): ours {times['log_prob']:.1f}x the floor"
                    f" forward, {times['log_prob+backward']:.1f}x forward + backward (bandwidth"
                    f" {speed / 1e9:.1f} GB/s, measured in each round)",
                    flush=True,
                )
            if not a.no_memory:
                peaks = {v: memory(v, b, t, d, k, r, a.device) for v in variants}
                line = ", ".join(f"{v} {mb:.0f} MB" for v, mb in peaks.items())
                print(f"{'':>5} peak memory of log_prob + backward: {line}")
    finally:
        if neighbour is not None:
            neighbour.kill()


if __name__ == "__main__":
    main()
