"""DiscretizedLogistic: normalised bin masses against the logistic CDF, samples on the levels."""

import pytest
import torch

from pyro_frmdn.distributions import DiscretizedLogistic


@pytest.mark.parametrize("loc, scale", [(0.5, 0.1), (0.0, 0.01), (1.3, 2.0), (0.2, 1e-4)])
def test_discretized_logistic_is_a_normalised_bin_mass(loc, scale):
    levels = 9
    d = DiscretizedLogistic(*torch.tensor([loc, scale], dtype=torch.float64), levels)
    grid = torch.arange(levels, dtype=torch.float64) / (levels - 1)
    lp = d.log_prob(grid)
    assert torch.isfinite(lp).all()
    assert float(lp.exp().sum()) == pytest.approx(1.0, abs=1e-12)
    # against the logistic CDF by hand (in float64 it is exact enough away from the tails)
    half = 0.5 / (levels - 1)
    cdf = torch.sigmoid((torch.cat([grid - half, grid[-1:] + half]) - loc) / scale)
    cdf[0], cdf[-1] = 0.0, 1.0
    manual = cdf[1:] - cdf[:-1]
    assert torch.allclose(lp.exp(), manual, atol=1e-12)


def test_discretized_logistic_samples_lie_on_the_levels_with_the_right_frequencies():
    d = DiscretizedLogistic(torch.full((20000,), 0.4), torch.full((20000,), 0.2), levels=5)
    x = d.sample()
    k = (x * 4).round()
    assert torch.equal(x * 4, k)
    freq = torch.bincount(k.long(), minlength=5).double() / len(k)
    probs = (
        DiscretizedLogistic(torch.tensor(0.4), torch.tensor(0.2), 5)
        .log_prob(torch.arange(5.0) / 4)
        .exp()
    )
    assert torch.allclose(freq, probs.double(), atol=0.015)
    assert d.expand((3, 20000)).batch_shape == (3, 20000)
