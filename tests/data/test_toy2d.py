"""The 2-D toy densities of the boosting benchmark: seeded, finite, bounded."""

import pytest
import torch

from pyro_frmdn.data.toy2d import TOY2D, toy2d


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
