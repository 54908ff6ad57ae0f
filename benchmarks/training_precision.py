"""The FRMDN's couplings in bfloat16: step time against float32 couplings and an RMDN, and what
the rounding costs in held-out likelihood.

1. Speed, timed interleaved in one process (``training.py``'s steps: ``pf.fit``'s defaults,
   Pyro's validation on), medians over rounds, at each thread count: an FRMDN step with 4
   affine couplings in float32, the same FRMDN with ``flow_precision="bfloat16"`` (its
   couplings' networks in bfloat16, everything else in float32), and an RMDN with the same head
   (D 64, K 5, rank 2, LSTM 128, batch 64, T 50). Target of issue 22: FRMDN at most 1.3x RMDN.
   bfloat16 is fast where the hardware has it (AMX or AVX512-BF16 on CPUs, tensor cores on
   GPUs); the first line prints what this CPU has.
2. One coupling alone (``--coupling``): its inverse and log-determinant on 3,200 rows,
   forward and backward, float32 against bfloat16 (same weights), at several (D, width): where
   the products are a larger share, bfloat16 gains more.
3. Quality (``--quality``): the same FRMDN trained in float32 and in bfloat16 on the 2-D
   ``banana`` task lifted to D dims by a fixed random two-layer map, the same seeds, epochs and
   learning rate; held-out NLL in nats per dim, scored by each model as trained.
4. Mixed precision (``--mixed``): the steps of ``fit(precision="bf16-mixed")`` (under
   ``pf.infer.mixed_precision``: the LSTM and the heads' products in bfloat16, the densities
   and the flow in float32) against ``"32-true"`` steps, for the RMDN, the FRMDN, and the FRMDN
   with bfloat16 couplings too, timed interleaved; with ``--quality``, the held-out NLL of the
   FRMDN trained each way (scored in float32).

    python benchmarks/training_precision.py --threads 1 2 --quality --coupling --mixed
    python benchmarks/training_precision.py --quick          # a dry run
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import pyro
import torch
from training import interleaved, lifted_banana, pyro_step, trained_nll  # beside

from pyro_frmdn import FRMDN, RMDN
from pyro_frmdn.experiments import cpu_name
from pyro_frmdn.flows import coupling_flow
from pyro_frmdn.infer import keep_freed_memory, mixed_precision, resolve_device


def cpu_bf16() -> str:
    """The bfloat16 units this CPU reports (Linux), or why it cannot tell."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "unknown (no /proc/cpuinfo)"
    have = sorted(f for f in flags if f in ("amx_bf16", "avx512_bf16"))
    return ", ".join(have) or "none (bfloat16 emulated: slower than float32)"


def speed(a, device, clock: int) -> None:
    y = torch.randn(a.batch, a.T, a.D, device=device)
    head = dict(hidden_dim=a.hidden, num_components=a.K, rank=a.rank)
    print(
        f"\nbatch {a.batch}, T {a.T}, D {a.D}, K {a.K}, rank {a.rank}, LSTM {a.hidden}, "
        f"FRMDN with {a.flow_layers} affine couplings; {a.rounds} rounds of {a.n} steps after "
        f"{a.warmup} warm-up steps; ms per step, medians"
    )
    print(f"{'threads':>7} {'frmdn f32':>10} {'frmdn bf16':>11} {'rmdn':>8} "
          f"{'f32/rmdn':>9} {'bf16/rmdn':>10} {'bf16/f32':>9}  target 1.3")  # fmt: skip
    for threads in a.threads:
        torch.set_num_threads(threads)
        pyro.clear_param_store()
        torch.manual_seed(a.seed)
        f32 = FRMDN(a.D, flow_layers=a.flow_layers, **head).to(device)
        bf16 = FRMDN(a.D, flow_layers=a.flow_layers, flow_precision="bfloat16", **head)
        bf16.load_state_dict(f32.state_dict())  # the same weights
        bf16.name = "frmdn_bf16"
        rmdn = RMDN(a.D, **head).to(device)
        steps = {
            "f32": pyro_step(f32, y, a.lr),
            "bf16": pyro_step(bf16.to(device), y, a.lr),
            "rmdn": pyro_step(rmdn, y, a.lr),
        }
        sec = {k: v[clock] for k, v in interleaved(steps, a.warmup, a.n, a.rounds, device).items()}
        r32, r16 = sec["f32"] / sec["rmdn"], sec["bf16"] / sec["rmdn"]
        verdict = "meets" if r16 <= 1.3 else "misses"
        print(
            f"{threads:>7} {1e3 * sec['f32']:10.1f} {1e3 * sec['bf16']:11.1f} "
            f"{1e3 * sec['rmdn']:8.1f} {r32:9.2f} {r16:10.2f} {sec['bf16'] / sec['f32']:9.2f}"
            f"  bf16 {verdict}",
            flush=True,
        )


def coupling(a, device) -> None:
    print("\none coupling alone, 3,200 rows, inverse + log-det, forward and backward "
          "(ms, medians, interleaved)")  # fmt: skip
    print(f"  {'D':>5} {'width':>6} {'float32':>8} {'bfloat16':>9} {'ratio':>6}")
    for d, width in a.coupling_sizes:
        pair = {}
        for precision in (None, "bfloat16"):
            torch.manual_seed(a.seed)
            pair[precision] = coupling_flow(d, 1, hidden_dims=[width], precision=precision)[0]
        pair["bfloat16"].load_state_dict(pair[None].state_dict())
        y = torch.randn(a.rows, d, device=device)

        def run(t, y=y) -> None:
            v = y.clone().requires_grad_()  # a new tensor: the transform's cache not hit
            x = t.to(device).inv(v)
            (x.sum() + t.log_abs_det_jacobian(x, v).sum()).backward()

        steps = {str(k): (lambda t=t: run(t)) for k, t in pair.items()}
        clock = 0 if device.type == "cuda" else 1  # process CPU time on the CPU
        sec = {k: v[clock] for k, v in interleaved(steps, 3, 3, 9, device).items()}
        f32, b16 = 1e3 * sec["None"], 1e3 * sec["bfloat16"]
        print(f"  {d:>5} {width:>6} {f32:8.2f} {b16:9.2f} {b16 / f32:6.2f}", flush=True)


def in_precision(step, precision: str, device):
    """``step`` run as ``fit(precision=...)`` runs it."""

    def run():
        with mixed_precision(precision, device):
            return step()

    return run


def mixed(a, device, clock: int) -> None:
    y = torch.randn(a.batch, a.T, a.D, device=device)
    head = dict(hidden_dim=a.hidden, num_components=a.K, rank=a.rank)
    print("\nmixed precision: ms per step (medians, interleaved), each against its 32-true step")
    print(f"{'threads':>7} {'model':28s} {'32-true':>8} {'bf16-mixed':>11} {'ratio':>6}")
    for threads in a.threads:
        torch.set_num_threads(threads)
        pyro.clear_param_store()
        torch.manual_seed(a.seed)
        models = {
            "rmdn": RMDN(a.D, **head),
            "frmdn": FRMDN(a.D, flow_layers=a.flow_layers, **head),
            "frmdn, bfloat16 couplings": FRMDN(
                a.D, flow_layers=a.flow_layers, flow_precision="bfloat16", **head
            ),
        }
        steps = {}
        for i, (label, m) in enumerate(models.items()):
            m.name = f"m{i}"  # param-store names apart
            for precision in ("32-true", "bf16-mixed"):
                step = pyro_step(m.to(device), y, a.lr)
                steps[label, precision] = in_precision(step, precision, device)
        sec = {k: v[clock] for k, v in interleaved(steps, a.warmup, a.n, a.rounds, device).items()}
        for label in models:
            full, half = sec[label, "32-true"], sec[label, "bf16-mixed"]
            print(f"{threads:>7} {label:28s} {1e3 * full:8.1f} {1e3 * half:11.1f} "
                  f"{half / full:6.2f}", flush=True)  # fmt: skip
        ratio = sec["frmdn", "bf16-mixed"] / sec["rmdn", "bf16-mixed"]
        print(f"{threads:>7} frmdn / rmdn, both bf16-mixed: {ratio:.2f}", flush=True)


def quality(a, device) -> None:
    d = a.D
    train, val = lifted_banana(d, a.quality_n, a.seed, device)
    print(f"\nquality at D = {d} (banana lifted; {len(train)} train, {len(val)} val sequences)")
    print(f"  {'seed':>4} {'f32 val NLL':>12} {'bf16 val NLL':>13} {'bf16 - f32':>11}  nats/dim")
    for seed in range(a.quality_seeds):
        nll = {
            precision: trained_nll(train, val, a.quality_epochs, seed, device,
                                   flow_precision=precision)[1]
            for precision in (None, "bfloat16")
        }  # fmt: skip
        f32, b16 = nll[None], nll["bfloat16"]
        print(f"  {seed:>4} {f32:12.4f} {b16:13.4f} {b16 - f32:+11.4f}", flush=True)
    if not a.mixed:
        return
    print(f"  {'seed':>4} {'32-true val NLL':>16} {'bf16-mixed val NLL':>19} {'difference':>11}")
    for seed in range(a.quality_seeds):
        full, half = (
            trained_nll(train, val, a.quality_epochs, seed, device, precision=precision)[1]
            for precision in ("32-true", "bf16-mixed")
        )
        print(f"  {seed:>4} {full:16.4f} {half:19.4f} {half - full:+11.4f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("-T", dest="T", type=int, default=50)
    p.add_argument("-D", dest="D", type=int, default=64)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("-K", dest="K", type=int, default=5)
    p.add_argument("--rank", type=int, default=2)
    p.add_argument("--flow-layers", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--n", type=int, default=3)
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--coupling", action="store_true", help="one coupling alone, several sizes")
    p.add_argument("--coupling-sizes", type=int, nargs=2, action="append", metavar=("D", "WIDTH"))
    p.add_argument("--rows", type=int, default=3200, help="rows of the --coupling timing")
    p.add_argument("--quality", action="store_true", help="held-out NLL, float32 and bfloat16")
    p.add_argument("--mixed", action="store_true", help="fit(precision='bf16-mixed') steps")
    p.add_argument("--wall", action="store_true", help="wall-clock time on the CPU (an idle one)")
    p.add_argument("--quality-n", type=int, default=640)
    p.add_argument("--quality-epochs", type=int, default=15)
    p.add_argument("--quality-seeds", type=int, default=2)
    p.add_argument("--device", default=None)
    p.add_argument("--quick", action="store_true", help="tiny sizes, one round: a dry run")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if a.quick:
        a.batch, a.T, a.D, a.hidden, a.threads = 4, 5, 8, 16, a.threads[:1]
        a.warmup, a.n, a.rounds = 1, 1, 1
        a.quality_n, a.quality_epochs, a.quality_seeds = 20, 1, 1
        a.rows, a.coupling_sizes = 64, [(8, 16)]
    a.coupling_sizes = a.coupling_sizes or [(64, 128), (64, 512), (256, 128), (256, 512)]
    device = resolve_device(a.device)
    if device.type == "cpu":
        keep_freed_memory()  # as fit does
    clock = 0 if device.type == "cuda" or a.wall else 1
    pyro.enable_validation(True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    print(
        f"# {device.type}: {name}; bfloat16 units: {cpu_bf16() if device.type == 'cpu' else '-'}; "
        f"torch {torch.__version__}, pyro {pyro.__version__}, python {platform.python_version()}; "
        f"times: {'wall-clock' if clock == 0 else 'process CPU'}"
    )
    speed(a, device, clock)
    torch.set_num_threads(a.threads[0])
    if a.coupling:
        coupling(a, device)
    if a.mixed:
        mixed(a, device, clock)
        torch.set_num_threads(a.threads[0])
    if a.quality:
        torch.set_num_threads(a.threads[0])
        quality(a, device)


if __name__ == "__main__":
    main()
