"""Network pieces that map features to distributions."""

from .frames import (
    PIXEL_LIKELIHOODS,
    ConvDecoder,
    ConvEncoder,
    DiscretizedLogistic,
    PixelLikelihood,
    SpriteDecoder,
    check_frame_shape,
)
from .mixture_head import FACTOR_MODES, MixtureHead

__all__ = [
    "FACTOR_MODES",
    "PIXEL_LIKELIHOODS",
    "ConvDecoder",
    "ConvEncoder",
    "DiscretizedLogistic",
    "MixtureHead",
    "PixelLikelihood",
    "SpriteDecoder",
    "check_frame_shape",
]
