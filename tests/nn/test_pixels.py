"""PixelLikelihood: the law of a frame for each kind, the frames it shows, its input checks."""

import pytest
import torch

from pyro_frmdn.nn import PixelLikelihood


def test_pixel_likelihoods_shapes_and_input_checks():
    maps = torch.randn(2, 3, 6, 4, 4)
    for kind, per in (("bernoulli", 1), ("gaussian", 1), ("logistic", 2)):
        px = PixelLikelihood(kind, 3)
        d = px(maps[:, :, : 3 * per])
        assert d.batch_shape == (2, 3) and d.event_shape == (3, 4, 4)
        frame = px.frame(maps[:, :, : 3 * per])
        assert (
            frame.shape == (2, 3, 3, 4, 4) and float(frame.min()) >= 0 and float(frame.max()) <= 1
        )
    px = PixelLikelihood("logistic", 3)
    assert torch.equal(
        px.prepare(torch.tensor([0, 255], dtype=torch.uint8)), torch.tensor([0.0, 1.0])
    )
    with pytest.raises(ValueError, match="expected 6"):
        px(maps[:, :, :3])
    with pytest.raises(ValueError, match="lie in \\[0, 1\\]"):
        px.prepare(torch.tensor([1.5]))
    with pytest.raises(ValueError, match="binary frames"):
        PixelLikelihood("bernoulli", 1).prepare(torch.tensor([0.5]))
    with pytest.raises(ValueError, match="not uint8"):
        PixelLikelihood("bernoulli", 1).prepare(torch.tensor([255], dtype=torch.uint8))
    with pytest.raises(ValueError, match="likelihood must be one of"):
        PixelLikelihood("poisson", 1)
