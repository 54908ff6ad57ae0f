"""Per-data-set preparation: dequantised steps, seeded; the levels that name a digit source."""

import pytest
import torch

from pyro_frmdn.data import logit_transform
from pyro_frmdn.data.prepare import dequantized_steps, digit_rows


def test_dequantized_steps_lie_in_their_cells_and_are_seeded():
    pixels = torch.randint(0, 17, (4, 8, 8))
    v = dequantized_steps(pixels, levels=17, seed=3)
    assert ((v >= pixels / 17) & (v < (pixels + 1) / 17)).all()
    assert torch.equal(v, dequantized_steps(pixels, levels=17, seed=3))
    assert not torch.equal(v, dequantized_steps(pixels, levels=17, seed=4))
    z = dequantized_steps(pixels, levels=17, logit_lambda=0.05, seed=3)
    assert torch.equal(z, logit_transform(v, 0.05))


def test_digit_rows_need_a_known_number_of_levels():
    with pytest.raises(ValueError, match=r"or 256 \(MNIST\) levels, got levels=4"):
        digit_rows("train", 10, levels=4)
