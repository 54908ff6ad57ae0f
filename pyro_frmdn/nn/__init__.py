"""Network pieces that map features to distributions."""

from .attention import AttentionWindow, Window, encode_texts, one_hot_text
from .boosted_guide import BoostedGuideFlow
from .conv import ConvDecoder, ConvEncoder, check_frame_shape
from .mixture_head import FACTOR_MODES, MixtureHead
from .pixels import PIXEL_LIKELIHOODS, PixelLikelihood
from .sprites import SpriteDecoder
from .window_lstm import WindowTrace, window_lstm

__all__ = [
    "FACTOR_MODES",
    "PIXEL_LIKELIHOODS",
    "AttentionWindow",
    "BoostedGuideFlow",
    "ConvDecoder",
    "ConvEncoder",
    "MixtureHead",
    "PixelLikelihood",
    "SpriteDecoder",
    "Window",
    "WindowTrace",
    "check_frame_shape",
    "encode_texts",
    "one_hot_text",
    "window_lstm",
]
