"""Network pieces that map features to distributions."""

from .boosted_guide import BoostedGuideFlow
from .conv import ConvDecoder, ConvEncoder, check_frame_shape
from .mixture_head import FACTOR_MODES, MixtureHead
from .pixels import PIXEL_LIKELIHOODS, PixelLikelihood
from .sprites import SpriteDecoder

__all__ = [
    "FACTOR_MODES",
    "PIXEL_LIKELIHOODS",
    "BoostedGuideFlow",
    "ConvDecoder",
    "ConvEncoder",
    "MixtureHead",
    "PixelLikelihood",
    "SpriteDecoder",
    "check_frame_shape",
]
