"""ConvEncoder and ConvDecoder: shapes, and frame sizes the stride-2 layers cannot take."""

import pytest
import torch

from pyro_frmdn.nn import ConvDecoder, ConvEncoder


def test_encoder_and_decoder_shapes_and_frame_size_errors():
    enc = ConvEncoder((3, 16, 32), 7, channels=(4, 8))
    assert enc(torch.rand(2, 3, 3, 16, 32)).shape == (2, 3, 7)
    dec = ConvDecoder(5, (3, 16, 32), 6, channels=(4, 8))
    assert dec(torch.randn(2, 3, 5)).shape == (2, 3, 6, 16, 32)
    with pytest.raises(ValueError, match="divide by 2\\*\\*3 = 8"):
        ConvEncoder((3, 12, 12), 7, channels=(4, 8, 16))
    with pytest.raises(ValueError, match="channels, height, width"):
        ConvDecoder(5, (16, 16), 3)
