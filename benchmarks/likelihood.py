"""Speed and memory of the low-rank mixture likelihood against Pyro's stock path and a dense one.

Prints, for each event size D, the time of ``log_prob`` and of ``log_prob`` + ``backward`` and the
peak memory of three ways to score the same mixture of K low-rank Gaussians at B x T points:

- ``ours``: ``pyro_frmdn.distributions.low_rank_mixture`` (fused kernel, hand-written gradient);
- ``stock``: ``MixtureSameFamily(Categorical, pyro.distributions.LowRankMultivariateNormal)``;
- ``dense``: ``MixtureSameFamily(Categorical, MultivariateNormal(covariance_matrix=W Wᵀ + diag))``
  (skipped where its D x D matrices would not fit the memory budget).

Each measurement runs in its own process; its peak memory is the growth of the peak resident set
over the inputs (Linux VmHWM, reset through /proc/self/clear_refs), or on CUDA the peak of
``torch.cuda.max_memory_allocated`` over the inputs. Ratios are stock / ours. Values are checked
against the stock path (target: 1e-5 relative) and both against a float64 reference.

    python benchmarks/likelihood.py                      # B=256, T=50, D=64, K=10, r=4 + D sweep
    python benchmarks/likelihood.py --sweep 16 64 --device cuda
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import pyro
import pyro.distributions as dist
import torch

from pyro_frmdn.distributions import low_rank_mixture

VARIANTS = ("ours", "stock", "dense")


def inputs(b, t, d, k, r, device, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=1.0, shift=0.0):
        x = torch.rand(*shape, generator=g) * scale + shift
        return x.to(device=device, dtype=dtype).requires_grad_()

    logits = rand(b, t, k, scale=2.0)
    loc = rand(b, t, k, d, scale=2.0, shift=-1.0)
    factor = rand(b, t, k, d, r, scale=0.6, shift=-0.3)
    diag = rand(b, t, k, d, scale=1.0, shift=0.5)
    y = torch.randn(b, t, d, generator=g).to(device=device, dtype=dtype)
    return logits, loc, factor, diag, y


def mixture(variant, logits, loc, factor, diag):
    if variant == "ours":
        return low_rank_mixture(logits, loc, factor, diag)
    if variant == "stock":
        comps = dist.LowRankMultivariateNormal(loc, factor, diag)
    else:
        comps = dist.MultivariateNormal(loc, factor @ factor.mT + torch.diag_embed(diag))
    return dist.MixtureSameFamily(dist.Categorical(logits=logits), comps)


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def reset_peak(device):
    """Start a new peak: CUDA's allocator statistics, or Linux's VmHWM (via clear_refs)."""
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return current_rss()


def current_rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS"))


def peak_bytes(device):
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated()
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM"))


def worker(variant, b, t, d, k, r, device, repeats):
    """Measure one variant in this process; print a JSON line."""
    pyro.enable_validation(False)
    params = inputs(b, t, d, k, r, device)
    logits, loc, factor, diag, y = params
    sync(device)
    base = reset_peak(device)

    def fwd():
        with torch.no_grad():
            mixture(variant, logits, loc, factor, diag).log_prob(y).sum().item()

    def fwd_bwd():
        for p in params[:4]:
            p.grad = None
        mixture(variant, logits, loc, factor, diag).log_prob(y).sum().backward()
        sync(device)

    fwd_bwd()
    peak = peak_bytes(device) - base
    times = {}
    for name, fn in (("log_prob", fwd), ("log_prob+backward", fwd_bwd)):
        fn()
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            sync(device)
            runs.append(time.perf_counter() - start)
        times[name] = sorted(runs)[len(runs) // 2]
    print(json.dumps({"peak_mb": peak / 2**20, **times}))


def measure(variant, b, t, d, k, r, device, repeats):
    cmd = [sys.executable, __file__, "--worker", variant, "--batch", str(b), "--steps", str(t)]
    cmd += ["--components", str(k), "--rank", str(r), "--device", device, "--sweep", str(d)]
    cmd += ["--repeats", str(repeats)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def check_values(b, t, d, k, r, device):
    """Max relative difference of log_prob and of gradients: ours vs stock, and both vs float64."""
    pyro.enable_validation(False)
    out = {}
    results = {}
    for variant in ("ours", "stock"):
        params = inputs(b, t, d, k, r, device)
        lp = mixture(variant, *params[:4]).log_prob(params[4])
        lp.sum().backward()
        results[variant] = (lp.detach(), [p.grad for p in params[:4]])
    params64 = inputs(b, t, d, k, r, device, dtype=torch.float64)
    lp64 = mixture("stock", *params64[:4]).log_prob(params64[4]).detach()

    def rel(a, ref):
        return ((a.double() - ref.double()).abs().max() / ref.double().abs().max()).item()

    out["log_prob ours vs stock"] = rel(results["ours"][0], results["stock"][0])
    out["log_prob ours vs float64"] = rel(results["ours"][0], lp64)
    out["log_prob stock vs float64"] = rel(results["stock"][0], lp64)
    out["gradients ours vs stock"] = max(
        rel(a, b) for a, b in zip(results["ours"][1], results["stock"][1], strict=True)
    )
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--components", type=int, default=10)
    p.add_argument("--rank", type=int, default=4)
    p.add_argument("--sweep", type=int, nargs="+", default=[16, 64, 256, 1024])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--dense-budget-gb", type=float, default=2.0)
    p.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    a = p.parse_args()
    b, t, k, r = a.batch, a.steps, a.components, a.rank
    if a.worker:
        worker(a.worker, b, t, a.sweep[0], k, r, a.device, a.repeats)
        return
    torch.set_num_threads(torch.get_num_threads())
    name = torch.cuda.get_device_name() if a.device.startswith("cuda") else "CPU"
    print(
        f"# B={b} T={t} K={k} r={r} float32 on {a.device} ({name}), "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}, pyro {pyro.__version__}"
    )
    d0 = 64 if 64 in a.sweep else a.sweep[0]
    print(f"\nvalues at D={d0} (max relative difference):")
    for key, val in check_values(b, t, d0, k, r, a.device).items():
        print(f"  {key:28s} {val:.2e}")
    header = f"{'D':>5} {'variant':>7} {'log_prob':>10} {'+backward':>10} {'peak MB':>9}"
    print(f"\n{header} {'stock/ours: fwd':>16} {'fwd+bwd':>8} {'memory':>7}")
    for d in a.sweep:
        rows = {}
        for variant in VARIANTS:
            dense_gb = 3 * b * t * k * d * d * 4 / 2**30
            if variant == "dense" and dense_gb > a.dense_budget_gb:
                print(f"{d:>5} {variant:>7}   skipped (about {dense_gb:.0f} GB of D x D matrices)")
                continue
            m = rows[variant] = measure(variant, b, t, d, k, r, a.device, a.repeats)
            if "error" in m:
                print(f"{d:>5} {variant:>7}   failed: {m['error']}")
                continue
            line = (
                f"{d:>5} {variant:>7} {m['log_prob'] * 1e3:>8.1f}ms "
                f"{m['log_prob+backward'] * 1e3:>8.1f}ms {m['peak_mb']:>9.0f}"
            )
            if variant != "ours" and "error" not in rows["ours"]:
                o = rows["ours"]
                line += (
                    f" {m['log_prob'] / o['log_prob']:>15.2f}x"
                    f" {m['log_prob+backward'] / o['log_prob+backward']:>7.2f}x"
                    f" {m['peak_mb'] / max(o['peak_mb'], 1):>6.2f}x"
                )
            print(line, flush=True)


if __name__ == "__main__":
    main()
