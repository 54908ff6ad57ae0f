"""Training speed: our RMDN through Pyro SVI against a hand-written PyTorch MDN-RNN loop.

Main comparison (target: the Pyro path at most 1.15x the time per step of the plain loop):

- ``pyro``: ``pyro.infer.SVI`` with ``Trace_ELBO`` on ``RMDN(rank=0).model`` / ``.guide`` and
  ``pyro.optim.Adam``, with ``pyro.enable_validation(False)``;
- ``plain``: the same network (an LSTM of the same size and one linear head, initialised with
  the RMDN's weights) and the same loss (log-sum-exp over K diagonal Gaussians, as World Models'
  MDN-RNN), ``loss.backward()`` and ``torch.optim.Adam``.

Both train on the same random batch. After a warm-up, each path runs a fixed number of steps,
alternately, several rounds; the reported numbers are medians over rounds. A second table gives
the cost of FRMDN (a 2-layer affine coupling flow on top) against RMDN with the same low-rank
mixture head (rank 4, K 5), at large D, for both ways of producing the low-rank factors
(``factor_mode="per_step"`` and ``"shared"``). With ``--profile`` (or when the Pyro path misses the
target) the extra time of the Pyro step is split by stage (see :func:`breakdown`).

    python benchmarks/training.py                       # batch 64, T 50, D 32, hidden 256, K 5
    python benchmarks/training.py --device cuda --sweep-dims 64 1024
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from collections.abc import Callable

import pyro
import pyro.optim
import torch
from pyro.infer import SVI, Trace_ELBO
from torch import Tensor, nn

from pyro_frmdn import FRMDN, RMDN
from pyro_frmdn.distributions import positive
from pyro_frmdn.experiments import cpu_name
from pyro_frmdn.infer import resolve_device

TARGET = 1.15


class PlainMDNRNN(nn.Module):
    """World Models' MDN-RNN written directly in PyTorch: LSTM, one linear head, log-sum-exp loss.

    Same parameters as ``RMDN(rank=0)``: ``start`` (y_0), ``rnn``, ``head``; the head's outputs
    are the K logits, the K x D means and the K x D raw variances (softplus + floor), in this order.
    """

    def __init__(self, obs_dim: int, hidden_dim: int, num_components: int, min_diag: float = 1e-4):
        super().__init__()
        self.k, self.d, self.min_diag = num_components, obs_dim, min_diag
        self.start = nn.Parameter(torch.zeros(obs_dim))
        self.rnn = nn.LSTM(obs_dim, hidden_dim, batch_first=True)
        self.head = nn.Linear(hidden_dim, num_components * (2 * obs_dim + 1))

    def loss(self, y: Tensor) -> Tensor:
        """The negative log-likelihood of y (B, T, D), summed over sequences and steps."""
        # teacher forcing: the RNN reads y_0 (a learned vector), y_1, ..., y_{T-1}
        prev = torch.cat([self.start.expand(y.shape[0], 1, -1), y[:, :-1]], dim=1)
        return self.nll(self.head(self.rnn(prev)[0]), y)

    def nll(self, out: Tensor, y: Tensor) -> Tensor:
        """-Σ log Σ_k π_k N(y_t; μ_k, diag σ²_k) from the head's outputs, (B, T, K(2D + 1))."""
        k, d = self.k, self.d
        logits, loc, raw = out.split([k, k * d, k * d], dim=-1)
        loc = loc.unflatten(-1, (k, d))  # (B, T, K, D)
        var = positive(raw.unflatten(-1, (k, d)), self.min_diag)
        comp = -0.5 * ((y.unsqueeze(-2) - loc).square() / var + var.log()).sum(-1)  # (B, T, K)
        comp = comp - 0.5 * d * math.log(2 * math.pi)
        return -torch.logsumexp(logits.log_softmax(-1) + comp, dim=-1).sum()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = cpu_name()
    return (
        f"{device.type}: {name} ({os.cpu_count()} cores); torch threads {torch.get_num_threads()}; "
        f"torch {torch.__version__}, pyro {pyro.__version__}, python {platform.python_version()}"
    )


def pyro_step(model: nn.Module, y: Tensor, lr: float) -> Callable[[], float]:
    """One SVI step of ``model.model``/``model.guide`` with ``pyro.optim.Adam``."""
    svi = SVI(model.model, model.guide, pyro.optim.Adam({"lr": lr}), Trace_ELBO())
    return lambda: svi.step(y)


def plain_step(m: PlainMDNRNN, y: Tensor, lr: float) -> Callable[[], float]:
    opt = torch.optim.Adam(m.parameters(), lr=lr)

    def step() -> float:
        opt.zero_grad()
        loss = m.loss(y)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def time_alternating(
    steps: dict[str, Callable[[], float]], warmup: int, n: int, rounds: int, device
) -> dict[str, tuple[float, float]]:
    """Median seconds per step of each callable, wall-clock and process CPU time, timed ``n``
    steps at a time, in turn, ``rounds`` times, after ``warmup`` untimed steps each.

    CPU time (all threads of this process) does not count time lost to other processes on a
    shared machine, so its ratios are steadier there; on CUDA only wall-clock time means much.
    """
    for step in steps.values():
        for _ in range(warmup):
            step()
    sync(device)
    times = {name: ([], []) for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(n):
                step()
            sync(device)
            times[name][0].append((time.perf_counter() - t0) / n)
            times[name][1].append((time.process_time() - c0) / n)
    return {name: (statistics.median(w), statistics.median(c)) for name, (w, c) in times.items()}


def breakdown(rmdn: RMDN, plain: PlainMDNRNN, y: Tensor, a: argparse.Namespace, device) -> None:
    """Split the Pyro path's extra time by stage, each stage timed against its plain twin.

    Stages, obtained by differences of timed prefixes of a step: the forward pass to the loss
    outside Pyro (``-step_distribution(features(y)).log_prob(y).sum()``); what running it as a
    Pyro program adds (``Trace_ELBO.differentiable_loss``: the model's input checks, tracing,
    plates); the backward pass; the rest of a step (SVI's parameter collection and ``PyroOptim``,
    one torch Adam per parameter, against one ``torch.optim.Adam``). Then, isolated, the head
    and the likelihood alone (forward + backward from fixed RNN features): the mixture
    distribution's ``log_prob`` against the hand-written log-sum-exp.
    """
    elbo = Trace_ELBO()
    with torch.no_grad():
        h = rmdn.features(y)  # (B, T, H), a leaf for the isolated head + likelihood
    h.requires_grad_()

    def ours():
        return -rmdn.step_distribution(rmdn.features(y)).log_prob(y).sum()

    def traced():
        return elbo.differentiable_loss(rmdn.model, rmdn.guide, y)

    def with_backward(loss_fn, params):
        def run():
            loss_fn().backward()
            for p in params:
                p.grad = None

        return run

    plain_params, ours_params = [*plain.parameters(), h], [*rmdn.parameters(), h]
    steps = {
        "plain forward": lambda: plain.loss(y),
        "ours forward": ours,
        "ours forward in Trace_ELBO": traced,
        "plain forward+backward": with_backward(lambda: plain.loss(y), plain_params),
        "ours forward+backward in Trace_ELBO": with_backward(traced, ours_params),
        "plain step": plain_step(plain, y, a.lr),
        "svi.step": pyro_step(rmdn, y, a.lr),
        "plain head + likelihood": with_backward(lambda: plain.nll(plain.head(h), y), plain_params),
        "ours head + likelihood": with_backward(
            lambda: -rmdn.head(h).log_prob(y).sum(), ours_params
        ),
    }
    sec = time_alternating(steps, 2, a.n, a.rounds, device)
    clock = 0 if device.type == "cuda" else 1  # CPU time on CPU: steadier on a shared machine
    ms = {k: 1e3 * v[clock] for k, v in sec.items()}
    stages = {
        "forward to the loss, outside Pyro": (ms["ours forward"], ms["plain forward"]),
        "forward: Pyro tracing, plates, input checks": (
            ms["ours forward in Trace_ELBO"] - ms["ours forward"],
            0.0,
        ),
        "backward": (
            ms["ours forward+backward in Trace_ELBO"] - ms["ours forward in Trace_ELBO"],
            ms["plain forward+backward"] - ms["plain forward"],
        ),
        "optimizer + SVI bookkeeping": (
            ms["svi.step"] - ms["ours forward+backward in Trace_ELBO"],
            ms["plain step"] - ms["plain forward+backward"],
        ),
        "whole step": (ms["svi.step"], ms["plain step"]),
        "isolated: head + likelihood, forward + backward": (
            ms["ours head + likelihood"],
            ms["plain head + likelihood"],
        ),
    }
    what = "wall-clock" if clock == 0 else "process CPU"
    print(f"\nwhere the Pyro path's time goes ({what} ms/step, medians):")
    print(f"  {'stage':48s} {'pyro':>7s} {'plain':>7s} {'extra':>7s}")
    for name, (ours_ms, plain_ms) in stages.items():
        print(f"  {name:48s} {ours_ms:7.2f} {plain_ms:7.2f} {ours_ms - plain_ms:+7.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64, help="sequences per batch")
    p.add_argument("--steps-per-seq", "-T", dest="T", type=int, default=50, help="T, steps")
    p.add_argument("--dim", "-D", dest="D", type=int, default=32, help="D, size of y_t")
    p.add_argument("--hidden", type=int, default=256, help="LSTM size")
    p.add_argument("--components", "-K", dest="K", type=int, default=5, help="K")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps per path")
    p.add_argument("--n", type=int, default=4, help="timed steps per path per round")
    p.add_argument("--rounds", type=int, default=15, help="alternations (medians over them)")
    p.add_argument("--sweep-dims", type=int, nargs="*", default=[64, 1024], help="D for FRMDN")
    p.add_argument("--sweep-n", type=int, default=2, help="timed steps per round in the sweep")
    p.add_argument("--sweep-rounds", type=int, default=3)
    p.add_argument("--profile", action="store_true", help="split the Pyro step's time anyway")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    device = resolve_device(a.device)
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    pyro.set_rng_seed(a.seed)
    pyro.enable_validation(False)
    print(machine(device))
    print("Pyro path timed with pyro.enable_validation(False)")

    # -- RMDN through SVI against the plain loop ---------------------------------------------
    y = torch.randn(a.batch, a.T, a.D, device=device)
    rmdn = RMDN(a.D, hidden_dim=a.hidden, num_components=a.K, rank=0).to(device)
    plain = PlainMDNRNN(a.D, a.hidden, a.K).to(device)
    plain.start.data.copy_(rmdn.start.data)
    plain.rnn.load_state_dict(rmdn.rnn.state_dict())
    plain.head.load_state_dict(rmdn.head.linear.state_dict())
    with torch.no_grad():
        ours, theirs = -float(rmdn.log_prob(y).sum()), float(plain.loss(y))
    print(
        f"\nRMDN (diagonal) vs plain MDN-RNN: batch {a.batch}, T {a.T}, D {a.D}, "
        f"LSTM {a.hidden}, K {a.K}; same initial loss: {ours:.4f} vs {theirs:.4f}; "
        f"{a.rounds} rounds of {a.n} steps after {a.warmup} warm-up steps"
    )
    steps = {"pyro": pyro_step(rmdn, y, a.lr), "plain": plain_step(plain, y, a.lr)}
    sec = time_alternating(steps, a.warmup, a.n, a.rounds, device)
    ratio = sec["pyro"][0] / sec["plain"][0]
    print(f"  {'path':8s} {'steps/s':>8s} {'ms/step':>8s} {'CPU ms/step':>12s}  (medians)")
    for name, (wall, cpu) in sec.items():
        print(f"  {name:8s} {1 / wall:8.2f} {1e3 * wall:8.2f} {1e3 * cpu:12.2f}")
    verdict = "meets" if ratio <= TARGET else "misses"
    print(
        f"  time ratio pyro / plain: {ratio:.3f} wall-clock ({verdict} the target of {TARGET}), "
        f"{sec['pyro'][1] / sec['plain'][1]:.3f} CPU time"
    )
    if a.profile or ratio > TARGET:
        breakdown(rmdn, plain, y, a, device)

    # -- FRMDN against RMDN at large D ---------------------------------------------------------
    if a.sweep_dims:
        print(
            f"\nFRMDN (2 affine couplings) vs RMDN, same head (rank 4, K 5): batch {a.batch}, "
            f"T {a.T}, LSTM {a.hidden}; {a.sweep_rounds} rounds of {a.sweep_n} steps, median"
        )
        print(f"  {'D':>5s} {'factor':9s} {'RMDN st/s':>10s} {'FRMDN st/s':>11s} {'ratio':>6s}")
    for d in a.sweep_dims:
        y = torch.randn(a.batch, a.T, d, device=device)
        for factor in ("per_step", "shared"):
            pyro.clear_param_store()  # new models under the same names: no stale parameters
            head = dict(hidden_dim=a.hidden, num_components=5, rank=4, factor_mode=factor)
            models = {"rmdn": RMDN(d, **head), "frmdn": FRMDN(d, flow_layers=2, **head)}
            steps = {k: pyro_step(m.to(device), y, a.lr) for k, m in models.items()}
            sec = time_alternating(steps, 1, a.sweep_n, a.sweep_rounds, device)
            r, f = sec["rmdn"][0], sec["frmdn"][0]
            print(f"  {d:5d} {factor:9s} {1 / r:10.2f} {1 / f:11.2f} {f / r:6.2f}")
            del models, steps


if __name__ == "__main__":
    main()
