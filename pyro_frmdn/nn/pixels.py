"""The law of a frame given a decoder's output maps: Bernoulli, Gaussian or discretised logistic."""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..deprecation import refuse_unknown, renamed
from ..distributions import DiscretizedLogistic, promote

__all__ = ["PIXEL_LIKELIHOODS", "PixelLikelihood"]

PIXEL_LIKELIHOODS = ("bernoulli", "gaussian", "logistic")
"""The laws of a pixel that :class:`PixelLikelihood` offers."""


class PixelLikelihood(nn.Module):
    r"""The law of a frame given a decoder's output maps: batch ``(...)``, event ``(C, H, W)``.

    - ``"bernoulli"``: binary pixels; one map per channel, the logits.
    - ``"gaussian"``: :math:`\mathcal N(\mu, \sigma_c^2)` on values in ``[0, 1]``, one map per
      channel (the means) and a learned standard deviation per channel. A density: dequantise
      integer pixels first (:func:`~pyro_frmdn.data.dequantize`) for a bits/dim.
    - ``"logistic"``: a :class:`~pyro_frmdn.distributions.DiscretizedLogistic` per pixel on
      ``levels`` levels, two maps per channel (location and scale). A probability of the integer
      pixels: bits/dim directly.

    Arguments:
        likelihood: one of :data:`PIXEL_LIKELIHOODS` (``kind`` before version 0.2).
        channels: C.
        levels: pixel levels of ``"logistic"``.
        min_scale: floor of the scales (``"gaussian"``, ``"logistic"``).
    """

    def __init__(
        self,
        likelihood: str | None = None,
        channels: int = 1,
        levels: int = 256,
        min_scale: float = 1e-3,
        **deprecated,
    ):
        super().__init__()
        likelihood = renamed("PixelLikelihood", deprecated, "kind", "likelihood", likelihood)
        refuse_unknown("PixelLikelihood", deprecated)
        if likelihood not in PIXEL_LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {PIXEL_LIKELIHOODS}, got {likelihood!r}")
        self.likelihood, self.channels, self.levels = likelihood, channels, levels
        self.min_scale = min_scale
        self.maps_per_channel = 2 if likelihood == "logistic" else 1
        if likelihood == "gaussian":
            self.log_scale = nn.Parameter(torch.full((channels,), math.log(0.1)))
        else:
            self.register_parameter("log_scale", None)

    @property
    def discrete(self) -> bool:
        """Whether ``log_prob`` is a probability of discrete pixels (then bits/dim = NLL / ln 2)."""
        return self.likelihood != "gaussian"

    def _split(self, maps: Tensor) -> tuple[Tensor, Tensor | None]:
        expected = self.maps_per_channel * self.channels
        if maps.shape[-3] != expected:
            raise ValueError(f"the decoder gave {maps.shape[-3]} maps; expected {expected}")
        if self.maps_per_channel == 1:
            return maps, None
        return maps.chunk(2, dim=-3)

    def forward(self, maps: Tensor) -> dist.TorchDistribution:
        first, second = self._split(promote(maps))  # the law in float32, under autocast too
        if self.likelihood == "bernoulli":
            d = dist.Bernoulli(logits=first)
        elif self.likelihood == "gaussian":
            scale = self.log_scale.exp().clamp(min=self.min_scale)[:, None, None]
            d = dist.Normal(first, scale.expand_as(first))
        else:
            scale = F.softplus(second) + self.min_scale
            d = DiscretizedLogistic(first, scale, self.levels)
        return d.to_event(3)

    def frame(self, maps: Tensor) -> Tensor:
        """The frame to show, ``(..., C, H, W)`` in ``[0, 1]``: the pixel probabilities
        (Bernoulli) or the locations, clamped."""
        first, _ = self._split(maps)
        return torch.sigmoid(first) if self.likelihood == "bernoulli" else first.clamp(0, 1)

    def prepare(self, frames: Tensor) -> Tensor:
        """Frames as the likelihood scores them: uint8 levels become ``x / 255``; floats must lie
        in ``[0, 1]``, and be 0 or 1 for ``"bernoulli"``."""
        if frames.dtype == torch.uint8:
            if self.likelihood == "bernoulli":
                raise ValueError(
                    "the Bernoulli likelihood needs binary frames: pass floats of 0 and 1 "
                    "(e.g. (frames > 127).float()), not uint8 levels"
                )
            if self.likelihood == "logistic" and self.levels != 256:
                raise ValueError(f"uint8 frames have 256 levels; the likelihood has {self.levels}")
            return frames.float() / 255.0
        if not frames.is_floating_point():
            raise ValueError(f"frames must be uint8 or floating point, got {frames.dtype}")
        if not bool(torch.isfinite(frames).all()):
            raise ValueError("frames have NaN or Inf values (at unmasked steps)")
        if bool((frames < 0).any()) or bool((frames > 1).any()):
            raise ValueError(
                f"float frames must lie in [0, 1]; got values in "
                f"[{float(frames.min())}, {float(frames.max())}]"
            )
        if self.likelihood == "bernoulli" and not bool(((frames == 0) | (frames == 1)).all()):
            raise ValueError("the Bernoulli likelihood needs binary frames (values 0 and 1)")
        return frames
