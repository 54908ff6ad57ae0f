"""Shared test setup: Pyro's argument validation on, a fixed seed and an empty param store."""

import numpy as np
import pyro
import pytest
import torch
from pyro.distributions.testing.gof import multinomial_goodness_of_fit


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Tests use tiny tensors: torch's thread pool only costs time, a lot on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _pyro_test_state():
    pyro.enable_validation(True)
    pyro.set_rng_seed(0)
    pyro.clear_param_store()
    yield
    pyro.clear_param_store()


def _binned_goodness_of_fit(samples, log_prob, lo, hi, cells=10, nodes=8, min_count=5.0):
    """Pearson's test of 2-D ``samples`` against cell probabilities integrated from ``log_prob``.

    Pyro's ``auto_goodness_of_fit`` in two or more dims transforms nearest-neighbour distances,
    which are not independent (mutual nearest neighbours share one): exact samples of a 2-D
    standard normal get p < 0.01 in about 15-20% of seeds. Binning is calibrated. The box
    ``[lo, hi]`` is cut into ``cells x cells`` cells, each integrated with a ``nodes x nodes``
    Gauss-Legendre rule; cells expecting fewer than ``min_count`` samples are left out and the
    test is run on the truncated counts.
    """
    x, w = (torch.from_numpy(a) for a in np.polynomial.legendre.leggauss(nodes))
    points, weights, index = [], [], []
    for i in range(2):
        edges = torch.linspace(float(lo[i]), float(hi[i]), cells + 1, dtype=torch.float64)
        a, b = edges[:-1, None], edges[1:, None]
        points.append(0.5 * (b - a) * x + 0.5 * (a + b))  # (cells, nodes)
        weights.append(0.5 * (b - a) * w)
        index.append(torch.bucketize(samples[:, i].contiguous().double(), edges) - 1)
    grid = torch.stack(
        torch.broadcast_tensors(points[0][:, None, :, None], points[1][None, :, None, :]), -1
    )  # (cells, cells, nodes, nodes, 2)
    density = log_prob(grid.to(samples.dtype)).double().exp()
    probs = (density * weights[0][:, None, :, None] * weights[1][None, :, None, :]).sum((-2, -1))
    inside = (index[0] >= 0) & (index[0] < cells) & (index[1] >= 0) & (index[1] < cells)
    flat = (index[0] * cells + index[1])[inside]
    counts = torch.bincount(flat, minlength=cells * cells).double()
    n = samples.shape[0]
    keep = probs.reshape(-1) * n > min_count
    return multinomial_goodness_of_fit(probs.reshape(-1)[keep], counts[keep], total_count=n)


@pytest.fixture
def binned_goodness_of_fit():
    return _binned_goodness_of_fit
