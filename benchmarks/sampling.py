"""Generation speed: ``FRMDN.sample`` against the step-by-step path it replaced and against scoring.

For each model configuration, three things of the same size (N sequences of T steps) are timed,
interleaved in one process, medians over repeats, at each thread count asked for:

- ``sample``: ``m.sample(N, T)``, one RNN step at a time, drawing only the chosen component;
- ``stepwise``: the path before (``m.step`` builds the step's mixture, flow and bits as
  distribution objects, ``temper`` copies them, ``.sample()`` draws all K components), kept here
  as the "before" of the comparison;
- ``log_prob``: one teacher-forced ``m.log_prob(y)`` of a (N, T, D) batch, under ``no_grad``:
  the floor a sequential sampler is measured against.

Reported: milliseconds per call, steps per second (T / time) and the ratios. The default model is
the one of issue 22: D = 64, K = 5, r = 2, 4 affine couplings, LSTM 128.

    python benchmarks/sampling.py                          # N 256, T 100, 1 and 2 threads
    python benchmarks/sampling.py --device cuda --threads 1
    python benchmarks/sampling.py --quick                  # tiny sizes: a check that it runs
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import pyro
import torch

from pyro_frmdn import FRMDN
from pyro_frmdn.distributions import temper
from pyro_frmdn.experiments import cpu_name
from pyro_frmdn.infer import resolve_device

CONFIGS = {
    "covariance r=2": dict(rank=2, parameterization="covariance"),
    "precision r=2": dict(rank=2, parameterization="precision"),
    "diagonal": dict(rank=0),
}


@torch.no_grad()
def stepwise_sample(m: FRMDN, num: int, steps: int) -> torch.Tensor:
    """``m.sample(num, steps)`` as it was before issue 22: a distribution per step, all K drawn."""
    state, y, out = m.initial_state(num), None, []
    for _ in range(steps):
        d, state = m.step(state, y)
        y = temper(d, 1.0, 1.0).sample()
        out.append(y)
    return torch.stack(out, dim=1)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def interleaved(
    calls: dict[str, Callable[[], object]], repeats: int, device
) -> dict[str, tuple[float, float]]:
    """Median seconds of each call, wall-clock and process CPU time, the calls taking turns
    ``repeats`` times after one warm-up call each.

    CPU time (all threads of this process) does not count time lost to other processes on a
    shared machine, so its ratios are steadier there; on CUDA only wall-clock time means much.
    """
    for call in calls.values():
        call()
    times = {name: ([], []) for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            call()
            sync(device)
            times[name][0].append(time.perf_counter() - t0)
            times[name][1].append(time.process_time() - c0)
    return {name: (statistics.median(w), statistics.median(c)) for name, (w, c) in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num", "-N", type=int, default=256, help="sequences per call")
    p.add_argument("--steps", "-T", type=int, default=100, help="steps per sequence")
    p.add_argument("--dim", "-D", type=int, default=64)
    p.add_argument("--components", "-K", type=int, default=5)
    p.add_argument("--hidden", type=int, default=128, help="LSTM size")
    p.add_argument("--flow-layers", type=int, default=4, help="affine couplings")
    p.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch CPU threads")
    p.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    p.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: a dry run")
    a = p.parse_args()
    if a.quick:
        a.num, a.steps, a.dim, a.hidden, a.repeats, a.threads = 8, 5, 4, 16, 1, a.threads[:1]
    device = resolve_device(a.device)
    pyro.enable_validation(True)  # as users have it
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    print(
        f"# {device.type}: {name}; torch {torch.__version__}, pyro {pyro.__version__}, "
        f"python {platform.python_version()}; Pyro validation on"
    )
    print(
        f"# N {a.num}, T {a.steps}, D {a.dim}, K {a.components}, LSTM {a.hidden}, "
        f"{a.flow_layers} affine couplings; medians of {a.repeats} interleaved repeats"
    )
    clock = 0 if device.type == "cuda" else 1
    print(f"# times: {'wall-clock' if clock == 0 else 'process CPU'} ms per call (medians)")
    print(
        f"\n{'threads':>7} {'config':16s} {'sample':>9} {'stepwise':>9} {'log_prob':>9}"
        f" {'sample steps/s':>15} {'stepwise/sample':>16} {'sample/log_prob':>16}"
    )
    for threads in a.threads:
        torch.set_num_threads(threads)
        for config in a.configs:
            torch.manual_seed(0)
            m = FRMDN(
                a.dim,
                hidden_dim=a.hidden,
                num_components=a.components,
                flow_layers=a.flow_layers,
                **CONFIGS[config],
            ).to(device)
            y = torch.randn(a.num, a.steps, a.dim, device=device)
            calls = {
                "sample": lambda m=m: m.sample(a.num, a.steps),
                "stepwise": lambda m=m: stepwise_sample(m, a.num, a.steps),
                "log_prob": lambda m=m, y=y: torch.no_grad()(m.log_prob)(y),
            }
            sec = {k: v[clock] for k, v in interleaved(calls, a.repeats, device).items()}
            s, w, lp = sec["sample"], sec["stepwise"], sec["log_prob"]
            print(
                f"{threads:>7} {config:16s} {1e3 * s:>9.1f} {1e3 * w:>9.1f} {1e3 * lp:>9.1f}"
                f" {a.steps / s:>15.0f} {w / s:>15.2f}x {s / lp:>15.2f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
