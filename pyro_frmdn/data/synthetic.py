"""Synthetic tasks with known structure, generated from a seed: no download needed."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["TASKS", "banana_sequences", "branching_trajectories", "inverse_sine", "make_task"]


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def inverse_sine(n: int = 2000, noise: float = 0.05, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Bishop's inverse problem: ``y ~ U(0, 1)``, ``x = y + 0.3 sin(2πy) + ε``; learn p(y | x).

    For x near 0.5 there are three y: regression to the mean (MSE) fails, an MDN fits.
    Returns ``(x, y)``, each ``(n, 1)``.
    """
    g = _generator(seed)
    y = torch.rand(n, 1, generator=g)
    x = y + 0.3 * torch.sin(2 * math.pi * y) + noise * torch.randn(n, 1, generator=g)
    return x, y


def branching_trajectories(
    n: int = 512, steps: int = 24, noise: float = 0.05, seed: int = 0
) -> Tensor:
    """2-D paths that go right, then at a random step turn up or down: a bimodal future.

    Returns the per-step *offsets* (dx, dy), ``(n, steps, 2)``, as handwriting models use.
    """
    g = _generator(seed)
    t = torch.arange(steps).expand(n, steps)
    branch = torch.randint(steps // 4, 3 * steps // 4, (n, 1), generator=g)
    sign = torch.randint(0, 2, (n, 1), generator=g) * 2 - 1
    dx = torch.where(t < branch, 1.0, 0.6).float()
    dy = torch.where(t < branch, 0.0, 0.8 * sign).float()
    y = torch.stack([dx, dy], dim=-1)
    return y + noise * torch.randn(n, steps, 2, generator=g)


def banana_sequences(
    n: int = 512,
    steps: int = 24,
    curvature: float = 1.0,
    rho: float = 0.8,
    noise: float = 0.1,
    seed: int = 0,
) -> Tensor:
    r"""Sequences whose every step is a banana: :math:`y_t = (u_t,\; a u_t^2 + v_t)`.

    :math:`u_t` is a Gaussian AR(1) process (:math:`u_t = \rho u_{t-1} + \sqrt{1-\rho^2}\eta_t`) and
    :math:`v_t \sim \mathcal N(0, \text{noise}^2)`, so :math:`p(y_t \mid y_{<t})` is curved: few
    Gaussians fit it badly, but the coupling :math:`(y_1, y_2) \mapsto (y_1, y_2 - a y_1^2)` makes
    it exactly Gaussian. This is the task on which FRMDN should beat RMDN.
    Returns ``(n, steps, 2)``, roughly standardised.
    """
    g = _generator(seed)
    u = torch.empty(n, steps)
    u[:, 0] = torch.randn(n, generator=g)
    for t in range(1, steps):
        u[:, t] = rho * u[:, t - 1] + math.sqrt(1 - rho**2) * torch.randn(n, generator=g)
    v = noise * torch.randn(n, steps, generator=g)
    y2 = curvature * u.square() + v
    y = torch.stack([u, y2 - curvature], dim=-1)
    return y / torch.tensor([1.0, abs(curvature) * math.sqrt(2) + noise])


TASKS = {"branching": branching_trajectories, "banana": banana_sequences}
"""The built-in sequence tasks by name, as :func:`make_task` and the command line take them."""


def make_task(name: str, n: int = 512, steps: int = 24, seed: int = 0) -> Tensor:
    """One of the built-in sequence tasks by name (``"branching"`` or ``"banana"``)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
    return TASKS[name](n=n, steps=steps, seed=seed)
