"""The low-rank mixture likelihood under ``torch.compile`` (issue 22's GPU path), against eager.

On the GPU the eager kernel is bound by kernel launches, not bytes (the first H200 run:
45-245× the memory floor, slower than Pyro's stock path). ``torch.compile`` fuses the
elementwise work into a few generated kernels; ``mode="reduce-overhead"`` also replays them as
one CUDA graph. Variants, each a function of the mixture's tensors returning ``log_prob(y).sum()``:

- ``stock``, ``ours``: eager, Pyro's validation on (as users have it);
- ``ours-noval``: eager, validation off (what the compiled variants run: validation reads
  tensor values in Python, which would break the graph);
- ``ours-inductor``, ``ours-inductor-noval``: the kernel ``"inductor"`` (the density written out
  per entry for ranks 1-8, compiled by ``torch.compile``; the mixture around it eager), with
  and without validation;
- ``ours-compile``, ``ours-graphs``: the whole loss through ``torch.compile``, default and
  ``"reduce-overhead"``;
- ``stock-compile``: Pyro's stock path compiled.

Times: medians of ``--reps`` calls (device events on CUDA) after warm-up calls that include the
compilation (reported); forward with autograd recording, then forward + backward. Values:
max relative difference of the loss and every gradient against float64 eager stock.

    python benchmarks/likelihood_compile.py --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import pyro
import torch

sys.path.insert(0, str(Path(__file__).parent))
from likelihood import floor_bytes, inputs, mixture  # beside

from pyro_frmdn.distributions._lowrank import use_kernel

VARIANTS = (
    "stock", "ours", "ours-noval", "ours-inductor", "ours-inductor-noval", "ours-compile",
    "ours-graphs", "stock-compile",
)  # fmt: skip
VALIDATED = ("stock", "ours", "ours-inductor")


def function(variant: str):
    kind = "stock" if variant.startswith("stock") else "ours"
    name = "inductor" if "inductor" in variant else "auto"

    def loss(logits, loc, factor, diag, y):
        with use_kernel(name):
            return mixture(kind, logits, loc, factor, diag).log_prob(y).sum()

    if variant.endswith("compile"):
        return torch.compile(loss)
    if variant.endswith("graphs"):
        return torch.compile(loss, mode="reduce-overhead")
    return loss


def timed(fn, reps: int, device: str) -> float:
    """Median seconds of ``fn()`` over ``reps`` calls."""
    times = []
    for _ in range(reps):
        if device.startswith("cuda"):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def run(variant: str, params, reps: int, device: str, reference) -> dict:
    pyro.enable_validation(variant in VALIDATED)
    fn = function(variant)
    graphs = variant.endswith("graphs")

    def call():
        if graphs:
            torch.compiler.cudagraph_mark_step_begin()
        return fn(*params)

    def both():
        for p in params[:4]:
            p.grad = None
        call().backward()

    t0 = time.perf_counter()
    for _ in range(3):  # compiles the forward and the backward
        both()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    warm = time.perf_counter() - t0
    loss = call().detach().clone()
    both()
    grads = [p.grad.detach().clone() for p in params[:4]]
    error = max(
        [rel(loss, reference[0])] + [rel(g, r) for g, r in zip(grads, reference[1], strict=True)]
    )
    out = {"warm_s": warm, "fwd": timed(call, reps, device), "fwd_bwd": timed(both, reps, device)}
    return {**out, "error": error}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--dims", type=int, nargs="+", default=[64, 1024])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--K", type=int, default=10)
    p.add_argument("--rank", type=int, default=4)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--budget", type=float, default=1e9, help="seconds; later variants skipped")
    a = p.parse_args()
    start = time.perf_counter()
    card = torch.cuda.get_device_name() if a.device.startswith("cuda") else "cpu"
    b, t, k, r = a.batch, a.steps, a.K, a.rank
    print(f"# {card}; torch {torch.__version__}, pyro {pyro.__version__}; B={b} T={t} K={k} r={r}")
    print(f"{'D':>5} {'variant':>14} {'warm-up s':>9} {'fwd ms':>8} {'fwd+bwd ms':>10} "
          f"{'vs stock fwd':>12} {'fwd+bwd':>8} {'floor x':>8} {'rel err':>9}")  # fmt: skip
    for d in a.dims:
        params = inputs(b, t, d, k, r, a.device)
        pyro.enable_validation(False)
        p64 = [x.detach().double().requires_grad_() for x in params[:4]]
        lp = mixture("stock", *p64).log_prob(params[4].double()).sum()
        lp.backward()
        reference = (lp.detach(), [x.grad for x in p64])
        del p64, lp
        floor = floor_bytes(b, t, d, k, r, backward=True) / 3.8e12  # the H200's measured copy
        rows = {}
        for v in a.variants:
            if time.perf_counter() - start > a.budget:
                print(f"{d:>5} {v:>14}  skipped: over the --budget of {a.budget:.0f} s")
                continue
            try:
                rows[v] = run(v, params, a.reps, a.device, reference)
            except Exception as err:  # a compile failure is a result here: print it, go on
                print(f"{d:>5} {v:>14}  failed: {type(err).__name__}: {str(err)[:300]}")
                continue
            s, x = rows.get("stock"), rows[v]
            vs = f"{s['fwd'] / x['fwd']:11.2f}x {s['fwd_bwd'] / x['fwd_bwd']:7.2f}x" if s else ""
            print(f"{d:>5} {v:>14} {x['warm_s']:9.1f} {1e3 * x['fwd']:8.2f} "
                  f"{1e3 * x['fwd_bwd']:10.2f} {vs:>21} {x['fwd_bwd'] / floor:7.1f}x "
                  f"{x['error']:9.1e}")  # fmt: skip
        del params
    pyro.enable_validation(True)


if __name__ == "__main__":
    main()
