"""Convolutional encoder and decoder of frames: stride-2 convolutions, each halving the sides.

The networks follow the VAE of World Models (Ha & Schmidhuber 2018): stride-2 convolutions with
4×4 kernels and ReLUs, channels 32, 64, 128, 256 at 64×64 pixels. Here every layer halves (or, in
the decoder, doubles) the height and width exactly, so any frame whose sides divide by
``2 ** len(channels)`` works.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ConvDecoder", "ConvEncoder", "check_frame_shape"]


def check_frame_shape(frame_shape, conv_layers: int) -> tuple[int, int, int]:
    """Validate ``(C, H, W)`` for ``conv_layers`` stride-2 layers; return it as a tuple of ints."""
    shape = tuple(int(s) for s in frame_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"frame_shape must be (channels, height, width), got {frame_shape}")
    step = 2**conv_layers
    if shape[1] % step or shape[2] % step:
        raise ValueError(
            f"frame height and width must divide by 2**{conv_layers} = {step} "
            f"({conv_layers} stride-2 layers); got {shape[1]}×{shape[2]}"
        )
    return shape


def _flat(x: Tensor, event_dims: int) -> tuple[Tensor, torch.Size]:
    batch = x.shape[: x.dim() - event_dims]
    return x.reshape(-1, *x.shape[x.dim() - event_dims :]), batch


class ConvEncoder(nn.Module):
    """Frames ``(..., C, H, W)`` to features ``(..., F)``: stride-2 convolutions, then a linear map.

    Arguments:
        frame_shape: ``(C, H, W)``.
        features: ``F``.
        channels: output channels of the convolutions, one per layer.

    Example:
        >>> enc = ConvEncoder((3, 16, 16), features=10, channels=(4, 8))
        >>> enc(torch.rand(2, 5, 3, 16, 16)).shape
        torch.Size([2, 5, 10])
    """

    def __init__(self, frame_shape, features: int, channels=(32, 64, 128, 256)):
        super().__init__()
        channels = list(channels)
        if not channels or features < 1:
            raise ValueError("need at least one convolution and features >= 1")
        self.frame_shape = check_frame_shape(frame_shape, len(channels))
        c, h, w = self.frame_shape
        layers, previous = [], c
        for out in channels:
            layers += [nn.Conv2d(previous, out, 4, stride=2, padding=1), nn.ReLU()]
            previous = out
        self.convs = nn.Sequential(*layers)
        cells = (h >> len(channels)) * (w >> len(channels))
        self.linear = nn.Linear(previous * cells, features)

    def forward(self, frames: Tensor) -> Tensor:
        x, batch = _flat(frames, 3)
        return self.linear(self.convs(x).flatten(1)).reshape(*batch, -1)


class ConvDecoder(nn.Module):
    """Latents ``(..., D)`` to maps ``(..., out_channels, H, W)``: a linear map to the coarsest
    grid, then transposed stride-2 convolutions (the mirror of :class:`ConvEncoder`).

    Example:
        >>> dec = ConvDecoder(6, (3, 16, 16), out_channels=6, channels=(4, 8))
        >>> dec(torch.randn(2, 5, 6)).shape
        torch.Size([2, 5, 6, 16, 16])
    """

    def __init__(
        self, latent_dim: int, frame_shape, out_channels: int, channels=(32, 64, 128, 256)
    ):
        super().__init__()
        channels = list(channels)
        if not channels or latent_dim < 1 or out_channels < 1:
            raise ValueError("need at least one convolution, latent_dim >= 1 and out_channels >= 1")
        _, h, w = check_frame_shape(frame_shape, len(channels))
        self.grid = (channels[-1], h >> len(channels), w >> len(channels))
        self.linear = nn.Linear(latent_dim, math.prod(self.grid))
        layers = []
        for i in reversed(range(len(channels))):
            out = channels[i - 1] if i else out_channels
            layers.append(nn.ConvTranspose2d(channels[i], out, 4, stride=2, padding=1))
            if i:
                layers.append(nn.ReLU())
        self.deconvs = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        x, batch = _flat(z, 1)
        maps = self.deconvs(F.relu(self.linear(x)).reshape(-1, *self.grid))
        return maps.reshape(*batch, *maps.shape[1:])
