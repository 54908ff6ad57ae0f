"""The 2-D toy densities of the boosting benchmark: seeded, finite, bounded; their exact
densities and entropies against Monte Carlo, a grid and a nearest-neighbour estimate."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree
from scipy.special import digamma

from pyro_frmdn.data.toy2d import TOY2D, toy2d, toy2d_entropy, toy2d_log_prob


@pytest.mark.parametrize("name", sorted(TOY2D))
def test_toy_densities_are_seeded(name):
    x = toy2d(name, 500, seed=1)
    assert x.shape == (500, 2) and bool(torch.isfinite(x).all())
    assert torch.equal(x, toy2d(name, 500, seed=1))
    assert not torch.equal(x, toy2d(name, 500, seed=2))
    assert float(x.abs().max()) < 6


def test_unknown_toy_density_raises_a_clear_error():
    with pytest.raises(ValueError, match="unknown toy density"):
        toy2d("spiral")


# -- densities and entropies ------------------------------------------------------------------

# the reference of each density: its own samples (a Monte Carlo estimate of the entropy with the
# exact density), the normalisation on a grid, and a nearest-neighbour estimate that never looks
# at the density (Kozachenko & Leonenko 1987)


@pytest.mark.parametrize("name", sorted(TOY2D))
def test_entropy_matches_a_monte_carlo_estimate_with_the_exact_density(name):
    lp = toy2d_log_prob(name, toy2d(name, 8000, seed=77))
    assert bool(torch.isfinite(lp).all())  # the samples lie in the support
    se = float(lp.std()) / math.sqrt(len(lp))
    assert abs(-float(lp.mean()) - toy2d_entropy(name)) < 4 * se + 2e-3


@pytest.mark.parametrize("name", sorted(TOY2D))
def test_densities_integrate_to_one(name):
    axis = torch.linspace(-6, 6, 241, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1).reshape(-1, 2)
    mass = float(toy2d_log_prob(name, grid).exp().sum()) * float(axis[1] - axis[0]) ** 2
    # uniform toys: a grid cell straddling an edge counts whole or not at all
    assert abs(mass - 1) < (0.1 if name in ("bars", "checkerboard") else 2e-3)


@pytest.mark.parametrize("name", sorted(TOY2D))
def test_entropy_matches_a_nearest_neighbour_estimate(name):
    x = toy2d(name, 20000, seed=78).double().numpy()
    dist, _ = cKDTree(x).query(x, k=2)  # the nearest other point
    n = len(x)
    knn = digamma(n) - digamma(1) + math.log(math.pi) + 2 * np.log(dist[:, 1]).mean()
    assert abs(knn - toy2d_entropy(name)) < 0.05


def test_closed_forms():
    assert toy2d_entropy("checkerboard") == pytest.approx(math.log(32))
    assert toy2d_entropy("bars") == pytest.approx(math.log(3.2))
    out = torch.tensor([[0.0, 0.0], [3.0, 3.0], [-1.0, -3.05]])  # off, off, on the bars
    assert torch.isinf(toy2d_log_prob("bars", out)[:2]).all()
    assert float(toy2d_log_prob("bars", out)[2]) == pytest.approx(-math.log(3.2))


def test_log_prob_refuses_bad_input():
    with pytest.raises(ValueError, match=r"x must be a tensor of shape \(N, 2\)"):
        toy2d_log_prob("moons", torch.zeros(3, 3))
    with pytest.raises(ValueError, match="unknown toy density"):
        toy2d_entropy("spiral")
