"""Two-dimensional toy densities for flows, generated from a seed (no download).

The usual benchmark shapes of the flow literature (as in FFJORD, Grathwohl et al. 2019, and in
Giaquinto & Banerjee 2020): eight Gaussians on a circle, two moons, a pinwheel, a checkerboard and
concentric rings. Each generator returns ``(n, 2)`` float32 points roughly within ``[-4, 4]²``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["TOY2D", "checkerboard", "eight_gaussians", "moons", "pinwheel", "rings", "toy2d"]


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def eight_gaussians(n: int, seed: int = 0, radius: float = 2.8, std: float = 0.35) -> Tensor:
    """Eight equal Gaussians of std ``std`` centred on a circle of radius ``radius``."""
    g = _generator(seed)
    angle = torch.randint(0, 8, (n,), generator=g) * (2 * math.pi / 8)
    centres = radius * torch.stack([angle.cos(), angle.sin()], dim=-1)
    return centres + std * torch.randn(n, 2, generator=g)


def moons(n: int, seed: int = 0, noise: float = 0.1) -> Tensor:
    """Two interleaved half circles (upper one centred at 0, lower one at (1, 0.5)), plus
    Gaussian noise of std ``noise``, scaled by 2 and centred."""
    g = _generator(seed)
    upper = torch.rand(n, generator=g) < 0.5
    t = math.pi * torch.rand(n, generator=g)
    x = torch.where(upper, t.cos(), 1 - t.cos())
    y = torch.where(upper, t.sin(), 0.5 - t.sin())
    points = torch.stack([x, y], dim=-1) + noise * torch.randn(n, 2, generator=g)
    return 2 * (points - torch.tensor([0.5, 0.25]))


def pinwheel(
    n: int,
    seed: int = 0,
    arms: int = 5,
    radial_std: float = 0.3,
    tangential_std: float = 0.1,
    rate: float = 0.25,
) -> Tensor:
    """``arms`` curved arms: a point at radius r on arm k is rotated by ``k·2π/arms + rate·r``
    (Johnson et al. 2016's pinwheel), scaled by 2."""
    g = _generator(seed)
    arm = torch.randint(0, arms, (n,), generator=g)
    r = 1 + radial_std * torch.randn(n, generator=g)
    t = tangential_std * torch.randn(n, generator=g)
    angle = arm * (2 * math.pi / arms) + rate * r.exp()
    c, s = angle.cos(), angle.sin()
    return 2 * torch.stack([c * r - s * t, s * r + c * t], dim=-1)


def checkerboard(n: int, seed: int = 0, cells: int = 4, size: float = 2.0) -> Tensor:
    """Uniform on the black squares of a ``cells × cells`` checkerboard of squares of side
    ``size`` centred at the origin (half of the board's area)."""
    g = _generator(seed)
    i = torch.randint(0, cells, (n,), generator=g)
    j = 2 * torch.randint(0, cells // 2, (n,), generator=g) + (i % 2)
    cell = torch.stack([i, j], dim=-1).float()
    return size * (cell + torch.rand(n, 2, generator=g) - cells / 2)


def rings(n: int, seed: int = 0, radii=(0.75, 1.5, 2.25, 3.0), noise: float = 0.08) -> Tensor:
    """Concentric circles of the given radii, points spread over each in proportion to its
    length, with Gaussian noise of std ``noise``."""
    g = _generator(seed)
    radii = torch.tensor(radii)
    ring = torch.multinomial(radii / radii.sum(), n, replacement=True, generator=g)
    angle = 2 * math.pi * torch.rand(n, generator=g)
    r = radii[ring]
    return torch.stack([r * angle.cos(), r * angle.sin()], dim=-1) + noise * torch.randn(
        n, 2, generator=g
    )


TOY2D = {
    "8gaussians": eight_gaussians,
    "moons": moons,
    "pinwheel": pinwheel,
    "checkerboard": checkerboard,
    "rings": rings,
}
"""The 2-D toy densities by name, as :func:`toy2d` takes them."""


def toy2d(name: str, n: int = 2000, seed: int = 0) -> Tensor:
    """``n`` points ``(n, 2)`` of the toy density ``name`` (one of :data:`TOY2D`).

    Example:
        >>> toy2d("moons", 5, seed=1).shape
        torch.Size([5, 2])
        >>> torch.equal(toy2d("rings", 10, seed=3), toy2d("rings", 10, seed=3))
        True
    """
    if name not in TOY2D:
        raise ValueError(f"unknown toy density {name!r}; choose one of {sorted(TOY2D)}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return TOY2D[name](n, seed=seed)
