"""Network pieces that map features to distributions."""

from .mixture_head import FACTOR_MODES, MixtureHead

__all__ = ["FACTOR_MODES", "MixtureHead"]
