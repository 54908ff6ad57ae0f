"""Training speed: FRMDN against RMDN, Pyro's SVI step against a plain PyTorch loop, large D.

Timed interleaved in one process, medians over rounds, at each thread count asked for, with
Pyro's validation on (as users have it):

1. ``frmdn`` against ``rmdn``: one step of ``pf.fit`` (:func:`pyro_frmdn.infer.svi_step`, with
   ``fit``'s defaults: Pyro's ``ClippedAdam`` stepped for all parameters at once,
   ``clip_value=10``, freed memory kept) of an FRMDN with 4 affine couplings and of an RMDN with
   the same head (D 64, K 5, rank 2, LSTM 128, batch 64, T 50; the model of issue 22). Target:
   FRMDN at most 1.3x RMDN.
2. ``svi_step`` against ``plain``: the same FRMDN (a copy), trained by a plain PyTorch loop on the
   same loss, ``-m.log_prob(y).sum()``, ``backward``, ``torch.optim.Adam``. Target: at most 1.1x.

Options: ``--pyro-adam`` also times the FRMDN stepped by Pyro's ``ClippedAdam`` (one torch
optimizer per parameter, stepped from Python) against ``fit``'s joint step; ``--wall`` reports
wall-clock time on CPU (on a quiet machine; default: process CPU time); ``--profile`` prints
where an FRMDN step's extra time goes (``torch.profiler``, self time per op, FRMDN minus RMDN);
``--head`` times each step with the head's parts computed as separate products (the package's
``MixtureHead``) and as one product split after it (before); ``--large-d`` measures parameters,
step time and memory per sequence-step at large D for the coupling width of earlier releases
(``2 D``) and today's default (see :func:`pyro_frmdn.flows.default_hidden_dims`);
``--width-quality`` trains both widths at
D = 128 on a synthetic task and compares held-out NLL; ``--compile`` times one coupling's
inverse, forward and backward, as the package runs it (``_AffineInverse``) against the same
math under ``torch.compile`` (Inductor's fused loops; the first call compiles, untimed);
``--quick`` runs tiny sizes (a dry run).

    python benchmarks/training.py                        # sections 1 and 2, 1 and 2 threads
    python benchmarks/training.py --profile --threads 1
    python benchmarks/training.py --large-d --width-quality --threads 1
    python benchmarks/training.py --device cuda --threads 1
    python benchmarks/training.py --skip-speed --compile --wall --threads 1 2
"""

from __future__ import annotations

import argparse
import copy
import math
import platform
import statistics
import time
from collections.abc import Callable

import pyro
import pyro.optim
import torch
from pyro.infer import Trace_ELBO
from torch.profiler import ProfilerActivity, profile

from pyro_frmdn import FRMDN, RMDN, fit
from pyro_frmdn.coupling_kernel import _AffineInverse
from pyro_frmdn.data import make_task
from pyro_frmdn.distributions import FlowTransformedDistribution
from pyro_frmdn.experiments import cpu_name
from pyro_frmdn.flows import default_hidden_dims, uncapped_hidden_dims
from pyro_frmdn.infer import keep_freed_memory, resolve_device
from pyro_frmdn.infer.optim import JointClippedAdam
from pyro_frmdn.infer.training import svi_step
from pyro_frmdn.nn import MixtureHead

TARGETS = {"frmdn / rmdn": 1.3, "svi_step / plain": 1.1}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def pyro_step(model, y: torch.Tensor, lr: float, joint: bool = True) -> Callable[[], float]:
    """One step as ``pf.fit`` takes it with its defaults: ``svi_step`` with ``Trace_ELBO``, Pyro's
    ``ClippedAdam`` (no decay) stepped for all parameters at once as ``fit`` steps it
    (:class:`~pyro_frmdn.infer.optim.JointClippedAdam`; ``joint=False``: Pyro's own loop over
    the parameters) and every gradient element clamped to [-10, 10] (``clip_value=10``);
    ``main`` keeps freed memory in the process on CPU, as ``fit`` does."""
    elbo = Trace_ELBO()
    kind = JointClippedAdam if joint else pyro.optim.ClippedAdam
    optimizer = kind({"lr": lr, "clip_norm": math.inf, "lrd": 1.0})
    return lambda: svi_step(elbo, model, optimizer, {"y": y}, clip_value=10.0)


def plain_step(model, y: torch.Tensor, lr: float) -> Callable[[], float]:
    """The same loss and optimiser in plain PyTorch: no Pyro program, trace or param store."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def step() -> float:
        opt.zero_grad()
        loss = -model.log_prob(y).sum()
        loss.backward()
        opt.step()
        return loss.item()

    return step


def interleaved(steps: dict[str, Callable], warmup: int, n: int, rounds: int, device) -> dict:
    """Median seconds per step of each callable, (wall-clock, process CPU), timed ``n`` steps at a
    time, in turn, ``rounds`` times, after ``warmup`` untimed steps each.

    CPU time (all threads of this process) does not count time lost to other processes on a
    shared machine, so its ratios are steadier there; on CUDA only wall-clock time means much.
    """
    for step in steps.values():
        for _ in range(warmup):
            step()
    times = {name: ([], []) for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(n):
                step()
            sync(device)
            times[name][0].append((time.perf_counter() - t0) / n)
            times[name][1].append((time.process_time() - c0) / n)
    return {name: (statistics.median(w), statistics.median(c)) for name, (w, c) in times.items()}


def models(a, device) -> dict:
    head = dict(hidden_dim=a.hidden, num_components=a.K, rank=a.rank)
    torch.manual_seed(a.seed)
    frmdn = FRMDN(a.D, flow_layers=a.flow_layers, **head).to(device)
    return {"frmdn": frmdn, "rmdn": RMDN(a.D, **head).to(device)}


def speed(a, device, clock: int) -> None:
    """Sections 1 and 2: the two ratios, at each thread count."""
    y = torch.randn(a.batch, a.T, a.D, device=device)
    print(
        f"\nbatch {a.batch}, T {a.T}, D {a.D}, K {a.K}, rank {a.rank}, LSTM {a.hidden}, "
        f"FRMDN with {a.flow_layers} affine couplings; {a.rounds} rounds of {a.n} steps after "
        f"{a.warmup} warm-up steps; ms per step, medians"
    )
    print(f"{'threads':>7} {'comparison':18s} {'ms':>8} {'vs ms':>8} {'ratio':>6} {'target':>7}")
    for threads in a.threads:
        torch.set_num_threads(threads)
        pyro.clear_param_store()
        m = models(a, device)
        steps = {
            "frmdn": pyro_step(m["frmdn"], y, a.lr),
            "rmdn": pyro_step(m["rmdn"], y, a.lr),
            "plain": plain_step(copy.deepcopy(m["frmdn"]), y, a.lr),
        }
        pairs = {"frmdn / rmdn": ("frmdn", "rmdn"), "svi_step / plain": ("frmdn", "plain")}
        if a.pyro_adam:  # the same FRMDN stepped by Pyro's ClippedAdam, a copy of its own
            other = copy.deepcopy(m["frmdn"])
            other.name += "_pyro_adam"
            steps["pyro adam"] = pyro_step(other, y, a.lr, joint=False)
            pairs["joint / pyro adam"] = ("frmdn", "pyro adam")
        sec = {k: v[clock] for k, v in interleaved(steps, a.warmup, a.n, a.rounds, device).items()}
        for name, (num, den) in pairs.items():
            ratio, target = sec[num] / sec[den], TARGETS.get(name)
            verdict = "" if target is None else "meets" if ratio <= target else "misses"
            print(
                f"{threads:>7} {name:18s} {1e3 * sec[num]:8.1f} {1e3 * sec[den]:8.1f} "
                f"{ratio:6.2f} {verdict} {target or ''}",
                flush=True,
            )


def where_time_goes(a, device, clock: int) -> None:
    """Self time per op of ``a.n`` FRMDN steps minus ``a.n`` RMDN steps (torch.profiler); then,
    timed interleaved, the FRMDN's flow alone (its inverse and log-determinant on a (B, T, D)
    batch, forward and backward), its couplings' networks alone (their matrix products and
    ReLUs, forward and backward: the flow's cost without any of its elementwise work) and the
    steps with Pyro's validation off."""
    y = torch.randn(a.batch, a.T, a.D, device=device)
    per_op = {}
    m = models(a, device)
    for name, model in m.items():
        step = pyro_step(model, y, a.lr)
        for _ in range(a.warmup):
            step()
        activities = [ProfilerActivity.CPU] + (
            [ProfilerActivity.CUDA] if device.type == "cuda" else []
        )
        with profile(activities=activities) as prof:
            for _ in range(a.n):
                step()
        per_op[name] = {e.key: e.self_cpu_time_total / 1e3 / a.n for e in prof.key_averages()}
    f, r = (sum(per_op[k].values()) for k in ("frmdn", "rmdn"))
    print(
        f"\nwhere an FRMDN step's extra time goes (profiled self CPU ms per step; FRMDN "
        f"{f:.1f}, RMDN {r:.1f}, extra {f - r:.1f})"
    )
    ops = set(per_op["frmdn"]) | set(per_op["rmdn"])
    extra = {op: per_op["frmdn"].get(op, 0.0) - per_op["rmdn"].get(op, 0.0) for op in ops}
    print(f"  {'op':40s} {'FRMDN':>8} {'RMDN':>8} {'extra':>8}")
    for op in sorted(extra, key=extra.get, reverse=True)[:15]:
        f, r = per_op["frmdn"].get(op, 0.0), per_op["rmdn"].get(op, 0.0)
        print(f"  {op[:40]:40s} {f:8.2f} {r:8.2f} {extra[op]:+8.2f}")

    flow, base = m["frmdn"].flow, pyro.distributions.Normal(0.0, 1.0).expand([a.D]).to_event(1)

    def flow_alone() -> None:
        FlowTransformedDistribution(base, list(flow)).log_prob(y).sum().backward()
        flow.zero_grad(set_to_none=True)

    couplings = [t for t in flow if hasattr(t, "split_dim")]
    rows = y.reshape(-1, a.D)

    def networks_alone() -> None:
        # what no rewriting of the flow's elementwise work can remove: each coupling's network
        # (its matrix products and ReLUs) forward and backward on the (B T, D / 2) rows it reads,
        # the input's gradient wherever the flow needs it (every coupling but the first scored)
        total = 0.0
        for i, t in enumerate(couplings):
            x = rows[:, : t.split_dim]
            x = x if i == 0 else x.detach().requires_grad_()
            total = total + sum(out.sum() for out in t.nn(x))
        total.backward()
        flow.zero_grad(set_to_none=True)

    def validation(on: bool, step: Callable) -> Callable:
        return lambda: (pyro.enable_validation(on), step())

    steps = {
        "FRMDN step": validation(True, pyro_step(m["frmdn"], y, a.lr)),
        "RMDN step": validation(True, pyro_step(m["rmdn"], y, a.lr)),
        "FRMDN step, validation off": validation(False, pyro_step(m["frmdn"], y, a.lr)),
        "RMDN step, validation off": validation(False, pyro_step(m["rmdn"], y, a.lr)),
        "the flow alone (validation off)": validation(False, flow_alone),
        "the flow's networks alone": networks_alone,
    }
    sec = interleaved(steps, a.warmup, a.n, a.rounds, device)
    pyro.enable_validation(True)
    print(f"\n  {'timed interleaved, ms per step (medians)':40s}")
    for name, t in sec.items():
        print(f"  {name:40s} {1e3 * t[clock]:8.1f}")


class _OneOutputHead(MixtureHead):
    """The head as it was before the sixth session: one product for all parts, split after it
    (its backward copies the parts' gradients into one tensor). Same parameters and values."""

    def raw_parts(self, h: torch.Tensor):
        return self.linear(h).split(self.sizes, dim=-1)


def head_layout(a, device, clock: int) -> None:
    """Each model's step with the head's parts as separate products (the package's head) and as
    one product split afterwards (``_OneOutputHead``), interleaved."""
    y = torch.randn(a.batch, a.T, a.D, device=device)
    steps = {}
    for name, model in models(a, device).items():
        old = copy.deepcopy(model)
        old.name = model.name = f"{name}_head"
        old.name += "_one_output"
        old.head.__class__ = _OneOutputHead
        steps[f"{name}, parts as separate products"] = pyro_step(model, y, a.lr)
        steps[f"{name}, one product split after it"] = pyro_step(old, y, a.lr)
    sec = interleaved(steps, a.warmup, a.n, a.rounds, device)
    print(f"\n  {'the head: ms per step (medians)':48s}")
    for name, t in sec.items():
        print(f"  {name:48s} {1e3 * t[clock]:8.1f}")
    for name in ("frmdn", "rmdn"):
        new = sec[f"{name}, parts as separate products"][clock]
        old = sec[f"{name}, one product split after it"][clock]
        print(f"  {name}: separate / split {new / old:.3f}")


def memory(model, y: torch.Tensor) -> tuple[int, float]:
    """Bytes of one training forward and backward of ``model`` on ``y``: (the tensors the forward
    keeps for the backward, the peak of the allocations above those in use before, on CUDA; NaN
    on the CPU, which has no allocator statistics).
    """
    storages = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    peak = math.nan
    if y.is_cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(y.device)
        base = torch.cuda.memory_allocated(y.device)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = Trace_ELBO().differentiable_loss(model.model, model.guide, y)
    loss.backward()
    if y.is_cuda:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated(y.device) - base
    model.zero_grad(set_to_none=True)
    return sum(storages.values()), peak


def large_d(a, device, clock: int) -> None:
    """Parameters of 4 couplings, FRMDN step time and memory per sequence-step at large D."""
    print("\nlarge D: 4 affine couplings, width of earlier releases (2 D) and today's default")
    print(f"  {'D':>5} {'width':>6} {'flow params':>12}")
    for d in a.large_dims:
        for width in (uncapped_hidden_dims(d)[0], default_hidden_dims(d)[0]):
            s, n = d // 2, d - d // 2  # an affine coupling: Linear(s, w), Linear(w, 2 n)
            print(f"  {d:>5} {width:>6} {4 * (s * width + width + width * 2 * n + 2 * n):>12,}")
    print(
        f"\n  FRMDN (K {a.K}, rank {a.rank}, LSTM {a.hidden}, 4 affine couplings), svi_step, "
        f"batch {a.large_batch}; MB per sequence-step: the growth between T = "
        f"{a.large_T[0]} and {a.large_T[1]}, over the added sequence-steps, of the tensors saved "
        f"for the backward and (CUDA) of the peak over forward and backward; ms per step at T = "
        f"{a.large_T[1]}"
    )
    print(f"  {'D':>5} {'width':>6} {'factor':9s} {'ms/step':>8} {'saved MB':>9} {'peak MB':>8}")
    for d in a.large_dims:
        widths = [None] if d > a.max_uncapped else [uncapped_hidden_dims(d), None]
        for width in widths:
            for factor in ("per_step", "shared"):
                pyro.clear_param_store()
                torch.manual_seed(a.seed)
                m = FRMDN(
                    d,
                    hidden_dim=a.hidden,
                    num_components=a.K,
                    rank=a.rank,
                    factor_mode=factor,
                    flow_hidden_dims=width,
                ).to(device)
                sizes = []
                for t in a.large_T:
                    y = torch.randn(a.large_batch, t, d, device=device)
                    memory(m, y)  # the first pass allocates what stays (gradients, caches)
                    sizes.append(memory(m, y))
                step = pyro_step(m, y, a.lr)
                sec = interleaved({"s": step}, 1, 1, a.sweep_rounds, device)["s"][clock]
                added = a.large_batch * (a.large_T[1] - a.large_T[0]) * 2**20
                saved, peak = ((x1 - x0) / added for x0, x1 in zip(*sizes, strict=True))
                w = m.config["flow_hidden_dims"][0]
                print(f"  {d:>5} {w:>6} {factor:9s} {1e3 * sec:8.1f} {saved:9.2f} {peak:8.2f}")
                del m, step


def coupling_inverse(y, split, low, high, w0, b0, w1, b1):
    """One affine coupling's inverse written in plain tensor operations (what ``torch.compile``
    traces): ``x = [y1, (y2 - mu) exp(-s)]``, ``s`` clamped with its gradient passed unchanged."""
    y1, y2 = y[..., :split], y[..., split:]
    out = torch.nn.functional.linear(torch.relu(torch.nn.functional.linear(y1, w0, b0)), w1, b1)
    mu, s = out.split(out.shape[-1] // 2, -1)
    s = s + (s.clamp(low, high) - s).detach()
    return torch.cat([y1, (y2 - mu) * torch.exp(-s)], -1), s.sum(-1)


def compiled_coupling(a, device, clock: int) -> None:
    """One coupling of the benchmark's FRMDN on its (B T, D) rows, inverse and log-determinant,
    forward and backward (gradients for y and the weights): the package's fused function against
    ``torch.compile`` of :func:`coupling_inverse`, interleaved, at each thread count."""
    torch.manual_seed(a.seed)
    t = next(t for t in models(a, device)["frmdn"].flow if hasattr(t, "split_dim"))
    weights = [p for layer in t.nn.layers for p in (layer.weight, layer.bias)]
    clip = (t.log_scale_min_clip, t.log_scale_max_clip)
    y0 = torch.randn(a.batch * a.T, a.D, device=device)
    g_x, g_logdet = torch.randn_like(y0), torch.randn(y0.shape[0], device=device)
    compiled = torch.compile(coupling_inverse, dynamic=False)

    def run(fn) -> list[torch.Tensor]:
        y = y0.clone().requires_grad_()
        for w in weights:
            w.grad = None
        x, logdet = fn(y, t.split_dim, *clip, *weights)
        torch.autograd.backward([x, logdet], [g_x, g_logdet])
        return [v.detach() for v in (x, logdet, y.grad, *(w.grad for w in weights))]

    def ours(y, split, low, high, *w):
        return _AffineInverse.apply(y, split, low, high, None, *w)

    start = time.perf_counter()
    first = run(compiled)  # compiles the forward and the backward
    seconds = time.perf_counter() - start
    gap = max(
        float((p - q).abs().max() / q.abs().max().clamp_min(1e-30))
        for p, q in zip(first, run(ours), strict=True)
    )
    print(
        f"\none coupling ({y0.shape[0]} rows, D {a.D}, width {weights[0].shape[0]}), inverse, "
        f"forward and backward: torch.compile took {seconds:.0f} s to "
        f"compile; largest relative difference from ours {gap:.1e}"
    )
    print(f"  {'threads':>7} {'ours ms':>8} {'compiled ms':>12} {'compiled / ours':>16}")
    for threads in a.threads:
        torch.set_num_threads(threads)
        sec = interleaved(
            {"ours": lambda: run(ours), "compiled": lambda: run(compiled)},
            a.warmup,
            10 * a.n,
            a.rounds,
            device,
        )
        o, c = sec["ours"][clock], sec["compiled"][clock]
        print(f"  {threads:>7} {1e3 * o:8.2f} {1e3 * c:12.2f} {c / o:16.3f}")


def lifted_banana(d: int, n: int, seed: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The 2-D ``banana`` task lifted to ``d`` dims by a fixed random two-layer map,
    ``y = tanh(z A) B + 0.05 eps``, standardised; 4/5 of the ``n`` sequences to train on, the
    rest to score."""
    g = torch.Generator().manual_seed(1)
    z = make_task("banana", n=n, steps=24, seed=seed)
    lift_a, lift_b = torch.randn(2, 32, generator=g), torch.randn(32, d, generator=g) / 32**0.5
    y = torch.tanh(z @ lift_a) @ lift_b
    y = ((y + 0.05 * torch.randn(y.shape, generator=g)) / y.std()).to(device)
    return y[: len(y) * 4 // 5], y[len(y) * 4 // 5 :]


def trained_nll(
    train, val, epochs: int, seed: int, device, precision: str = "32-true", **options
) -> tuple[FRMDN, float]:
    """An FRMDN (hidden 64, K 3, rank 2, ``options``) fitted on ``train`` (``fit``'s
    ``precision``) with the same seed, epochs and learning rate as every other in these
    comparisons; its held-out NLL on ``val`` in nats per dim, scored in float32."""
    pyro.clear_param_store()
    torch.manual_seed(seed)
    d = train.shape[-1]
    m = FRMDN(d, hidden_dim=64, num_components=3, rank=2, **options).to(device)
    fit(m, train, epochs=epochs, batch_size=32, lr=3e-3, seed=seed, progress=False,
        precision=precision)  # fmt: skip
    with torch.no_grad():
        return m, -float(m.log_prob(val).mean()) / (d * val.shape[1])


def width_quality(a, device) -> None:
    """Held-out NLL (nats per dim) at D = 128 of coupling widths 128 (default) and 256 (2 D).

    The data: the 2-D ``banana`` task lifted to 128 dims by a fixed random two-layer map,
    ``y = tanh(z A) B + 0.05 eps``; same seeds, epochs and learning rate for both widths.
    """
    d = 128
    train, val = lifted_banana(d, a.quality_n, a.seed, device)
    print(f"\nwidth and quality at D = {d} (banana lifted; {len(train)} train, {len(val)} val)")
    print(f"  {'width':>6} {'seed':>4} {'flow params':>12} {'val NLL nats/dim':>17}")
    for width in ([128], [256]):
        for seed in range(a.quality_seeds):
            m, nll = trained_nll(train, val, a.quality_epochs, seed, device, flow_hidden_dims=width)
            params = sum(p.numel() for p in m.flow.parameters())
            print(f"  {width[0]:>6} {seed:>4} {params:>12,} {nll:17.4f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64, help="sequences per batch")
    p.add_argument("--steps-per-seq", "-T", dest="T", type=int, default=50, help="T, steps")
    p.add_argument("--dim", "-D", dest="D", type=int, default=64, help="D, size of y_t")
    p.add_argument("--hidden", type=int, default=128, help="LSTM size")
    p.add_argument("--components", "-K", dest="K", type=int, default=5, help="K")
    p.add_argument("--rank", type=int, default=2)
    p.add_argument("--flow-layers", type=int, default=4, help="affine couplings of the FRMDN")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per path")
    p.add_argument("--n", type=int, default=3, help="timed steps per path per round")
    p.add_argument("--rounds", type=int, default=9, help="alternations (medians over them)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch CPU threads")
    p.add_argument("--profile", action="store_true", help="where FRMDN's extra time goes")
    p.add_argument("--head", action="store_true", help="the head's parts as one product or four")
    p.add_argument("--large-d", action="store_true", help="parameters, time, memory at large D")
    p.add_argument("--large-dims", type=int, nargs="+", default=[1024, 4096])
    p.add_argument("--max-uncapped", type=int, default=1024, help="largest D for width 2 D")
    p.add_argument("--large-batch", type=int, default=4)
    p.add_argument("--large-T", type=int, nargs=2, default=[8, 16])
    p.add_argument("--sweep-rounds", type=int, default=3)
    p.add_argument("--width-quality", action="store_true", help="held-out NLL of two widths")
    p.add_argument("--quality-n", type=int, default=640, help="sequences (4/5 train)")
    p.add_argument("--quality-epochs", type=int, default=15)
    p.add_argument("--quality-seeds", type=int, default=2)
    p.add_argument("--compile", action="store_true", help="a coupling under torch.compile")
    p.add_argument("--skip-speed", action="store_true", help="only the optional sections")
    p.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    p.add_argument("--quick", action="store_true", help="tiny sizes, one round: a dry run")
    p.add_argument("--wall", action="store_true", help="wall-clock time on CPU (a quiet machine)")
    p.add_argument(
        "--pyro-adam", action="store_true", help="also the FRMDN stepped by Pyro's ClippedAdam"
    )
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if a.quick:
        a.batch, a.T, a.D, a.hidden, a.threads = 4, 5, 8, 16, a.threads[:1]
        a.warmup, a.n, a.rounds, a.sweep_rounds = 1, 1, 1, 1
        a.large_dims, a.max_uncapped, a.large_batch, a.large_T = [64], 64, 2, [2, 4]
        a.quality_n, a.quality_epochs, a.quality_seeds = 20, 1, 1
    device = resolve_device(a.device)
    if device.type == "cpu":
        keep_freed_memory()  # as fit(keep_memory=True), its default, does
    clock = 0 if device.type == "cuda" or a.wall else 1  # CPU time on CPU: steadier when shared
    pyro.enable_validation(True)
    pyro.set_rng_seed(a.seed)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    print(
        f"# {device.type}: {name}; torch {torch.__version__}, pyro {pyro.__version__}, "
        f"python {platform.python_version()}; Pyro validation on; times: "
        f"{'wall-clock' if clock == 0 else 'process CPU'}"
    )
    if not a.skip_speed:
        speed(a, device, clock)
    torch.set_num_threads(a.threads[0])
    if a.profile:
        where_time_goes(a, device, clock)
    if a.head:
        head_layout(a, device, clock)
    if a.large_d:
        large_d(a, device, clock)
    if a.width_quality:
        width_quality(a, device)
    if a.compile:
        compiled_coupling(a, device, clock)


if __name__ == "__main__":
    main()
