"""Convolutional encoders and decoders of frames, and the pixel likelihoods of a decoder's output.

The networks follow the VAE of World Models (Ha & Schmidhuber 2018): stride-2 convolutions with
4×4 kernels and ReLUs, channels 32, 64, 128, 256 at 64×64 pixels. Here every layer halves (or, in
the decoder, doubles) the height and width exactly, so any frame whose sides divide by
``2 ** len(channels)`` works.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions import constraints
from pyro.nn import DenseNN
from torch import Tensor, nn

__all__ = [
    "PIXEL_LIKELIHOODS",
    "ConvDecoder",
    "ConvEncoder",
    "DiscretizedLogistic",
    "PixelLikelihood",
    "SpriteDecoder",
    "check_frame_shape",
]

PIXEL_LIKELIHOODS = ("bernoulli", "gaussian", "logistic")


def check_frame_shape(frame_shape, num_layers: int) -> tuple[int, int, int]:
    """Validate ``(C, H, W)`` for ``num_layers`` stride-2 layers; return it as a tuple of ints."""
    shape = tuple(int(s) for s in frame_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"frame_shape must be (channels, height, width), got {frame_shape}")
    step = 2**num_layers
    if shape[1] % step or shape[2] % step:
        raise ValueError(
            f"frame height and width must divide by 2**{num_layers} = {step} "
            f"({num_layers} stride-2 layers); got {shape[1]}×{shape[2]}"
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


class SpriteDecoder(nn.Module):
    r"""Latents ``(..., D)`` to maps ``(..., maps, H, W)`` of frames drawn as K sprites: what each
    object looks like, and where it is.

    The latent of a frame is K blocks :math:`(w_k, u_k)` of ``D / K`` numbers: ``what_dim``
    numbers :math:`w_k` and two :math:`u_k`. A multilayer perceptron (shared by the sprites)
    draws sprite k, an ``S × S`` map of intensities :math:`s_k \in [0, 1]` per channel, from
    :math:`w_k`, as AIR's glimpse decoder does; a spatial transformer (Jaderberg et al. 2015)
    places its centre at :math:`\tanh(u_k)` (x then y, in the frame's normalised coordinates, -1
    and 1 being the outer edges), bilinearly, zero outside the sprite; the layers combine as
    independent ink,

    .. math::
        p = 1 - \prod_{k=1}^K \bigl(1 - s_k(\text{placed})\bigr).

    This is the what/where split of AIR (Eslami et al. 2016) and DDPAE (Hsieh et al. 2018) with a
    fixed number of objects: a translating object keeps its :math:`w_k` and moves its
    :math:`u_k`, so a model of the latent dynamics only has to move two numbers per object, and
    the decoder draws every object sharp wherever it is put. Suited to objects on a dark
    background (Moving MNIST); the canvas has no background of its own.

    The maps match :class:`PixelLikelihood` of ``likelihood``: ``"bernoulli"``, the logits of
    :math:`p` (clamped to ``[eps, 1 - eps]``); ``"gaussian"``, :math:`p` (the means);
    ``"logistic"``, :math:`p` (the locations) and a learned scale per channel.

    Arguments:
        latent_dim: D, a multiple of ``num_sprites`` with at least 3 numbers per sprite.
        frame_shape: ``(C, H, W)``.
        num_sprites: K.
        sprite_size: S (pixels, at most ``min(H, W)``).
        likelihood: which maps to give (one of :data:`PIXEL_LIKELIHOODS`).
        hidden: the perceptron's hidden sizes (ReLU).
        eps: the clamp of ``"bernoulli"`` probabilities.

    Example:
        >>> dec = SpriteDecoder(8, (1, 16, 16), num_sprites=2, sprite_size=8, hidden=(4,))
        >>> dec(torch.randn(3, 5, 8)).shape
        torch.Size([3, 5, 1, 16, 16])
    """

    def __init__(
        self,
        latent_dim: int,
        frame_shape,
        num_sprites: int = 2,
        sprite_size: int = 16,
        likelihood: str = "bernoulli",
        hidden=(256, 512),
        eps: float = 1e-4,
    ):
        super().__init__()
        if likelihood not in PIXEL_LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {PIXEL_LIKELIHOODS}, got {likelihood!r}")
        if num_sprites < 1 or latent_dim % num_sprites or latent_dim // num_sprites < 3:
            raise ValueError(
                f"latent_dim must be num_sprites × (what_dim + 2) with what_dim >= 1; got "
                f"latent_dim={latent_dim}, num_sprites={num_sprites}"
            )
        c, h, w = self.frame_shape = check_frame_shape(frame_shape, 0)
        if not 1 <= sprite_size <= min(h, w):
            raise ValueError(f"sprite_size must be in [1, {min(h, w)}], got {sprite_size}")
        self.num_sprites, self.sprite_size, self.likelihood, self.eps = (
            num_sprites, sprite_size, likelihood, eps,
        )  # fmt: skip
        self.what_dim = latent_dim // num_sprites - 2
        self.sprite = DenseNN(self.what_dim, list(hidden), param_dims=[c * sprite_size**2])
        if likelihood == "logistic":
            self.raw_scale = nn.Parameter(torch.full((c,), -3.0))
        else:
            self.register_parameter("raw_scale", None)

    def layout(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """``z (..., D)`` to ``(what (..., K, what_dim), centres (..., K, 2))``, the centres as x, y
        in ``[-1, 1]``."""
        blocks = z.reshape(*z.shape[:-1], self.num_sprites, self.what_dim + 2)
        return blocks[..., : self.what_dim], torch.tanh(blocks[..., self.what_dim :])

    def canvas(self, z: Tensor) -> Tensor:
        """The composited intensities :math:`p`, ``(..., C, H, W)`` in ``[0, 1]``."""
        flat, batch = _flat(z, 1)
        what, centres = self.layout(flat)
        n, k = what.shape[:2]
        c, h, w = self.frame_shape
        sprites = torch.sigmoid(self.sprite(what)).reshape(n * k, c, self.sprite_size, -1)
        # output point v samples the sprite at (v - centre) / size, sizes as fractions of the frame
        size = centres.new_tensor([self.sprite_size / w, self.sprite_size / h])
        shift = -centres.reshape(n * k, 2, 1) / size[:, None]
        theta = torch.cat([torch.diag(1 / size).expand(n * k, 2, 2), shift], -1)
        grid = F.affine_grid(theta, (n * k, c, h, w), align_corners=False)
        placed = F.grid_sample(sprites, grid, align_corners=False).reshape(n, k, c, h, w)
        ink = 1 - torch.prod(1 - placed, dim=1)
        return ink.reshape(*batch, c, h, w)

    def forward(self, z: Tensor) -> Tensor:
        p = self.canvas(z)
        if self.likelihood == "bernoulli":
            return torch.logit(p, eps=self.eps)
        if self.likelihood == "gaussian":
            return p
        return torch.cat([p, self.raw_scale[:, None, None].expand_as(p)], dim=-3)


class DiscretizedLogistic(dist.TorchDistribution):
    r"""A logistic distribution discretised to ``levels`` values ``k / (L - 1)`` on ``[0, 1]``.

    The probability of level :math:`k` is the logistic mass of its bin; the two end bins take the
    tails (Salimans et al. 2017, PixelCNN++, with one component):

    .. math::
        P(k) = \sigma\!\left(\frac{x_k + h - \mu}{s}\right)
             - \sigma\!\left(\frac{x_k - h - \mu}{s}\right), \qquad
        x_k = \frac{k}{L - 1},\; h = \frac{1}{2 (L - 1)},

    with :math:`\sigma(\cdot)` replaced by 1 above the top bin and 0 below the bottom one. The
    log-probability is computed as :math:`\log\sigma(a) + \log\sigma(-b) + \log(1 - e^{b - a})`,
    stable for any scale. Being a probability of a discrete value, :math:`-\log P / \ln 2` is a
    code length in bits: per pixel, exactly the bits/dim of the literature.

    Arguments:
        loc: :math:`\mu`, in the units of ``[0, 1]``.
        scale: :math:`s > 0`.
        levels: :math:`L \ge 2` (256 for 8-bit pixels).

    Example:
        >>> d = DiscretizedLogistic(torch.tensor(0.5), torch.tensor(0.1), levels=4)
        >>> d.log_prob(torch.arange(4) / 3.0).exp().sum()
        tensor(1.0000)
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.unit_interval
    has_rsample = False

    def __init__(self, loc: Tensor, scale: Tensor, levels: int = 256, validate_args=None):
        if levels < 2:
            raise ValueError(f"levels must be >= 2, got {levels}")
        self.loc, self.scale = torch.broadcast_tensors(loc, scale)
        self.levels = int(levels)
        super().__init__(self.loc.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(DiscretizedLogistic, _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc, new.scale = self.loc.expand(batch_shape), self.scale.expand(batch_shape)
        new.levels = self.levels
        super(DiscretizedLogistic, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        top = self.levels - 1
        k = (value * top).round().clamp(0, top)
        half = 0.5 / top
        upper = (k / top + half - self.loc) / self.scale  # a
        lower = (k / top - half - self.loc) / self.scale  # b
        log_cdf_upper = -F.softplus(-upper)  # log σ(a)
        log_sf_lower = -F.softplus(lower)  # log(1 - σ(b))
        width = 1.0 / (top * self.scale)  # a - b
        inner = log_cdf_upper + log_sf_lower + torch.log(-torch.expm1(-width))
        return torch.where(k == 0, log_cdf_upper, torch.where(k == top, log_sf_lower, inner))

    def sample(self, sample_shape=torch.Size()) -> Tensor:
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            u = torch.rand(shape, dtype=self.loc.dtype, device=self.loc.device)
            u = u.clamp(1e-6, 1 - 1e-6)
            x = self.loc + self.scale * (torch.log(u) - torch.log1p(-u))
            top = self.levels - 1
            return (x * top).round().clamp(0, top) / top


class PixelLikelihood(nn.Module):
    r"""The law of a frame given a decoder's output maps: batch ``(...)``, event ``(C, H, W)``.

    - ``"bernoulli"``: binary pixels; one map per channel, the logits.
    - ``"gaussian"``: :math:`\mathcal N(\mu, \sigma_c^2)` on values in ``[0, 1]``, one map per
      channel (the means) and a learned standard deviation per channel. A density: dequantise
      integer pixels first (:func:`~pyro_frmdn.data.dequantize`) for a bits/dim.
    - ``"logistic"``: a :class:`DiscretizedLogistic` per pixel on ``levels`` levels, two maps per
      channel (location and scale). A probability of the integer pixels: bits/dim directly.

    Arguments:
        kind: one of :data:`PIXEL_LIKELIHOODS`.
        channels: C.
        levels: pixel levels of ``"logistic"``.
        min_scale: floor of the scales (``"gaussian"``, ``"logistic"``).
    """

    def __init__(self, kind: str, channels: int, levels: int = 256, min_scale: float = 1e-3):
        super().__init__()
        if kind not in PIXEL_LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {PIXEL_LIKELIHOODS}, got {kind!r}")
        self.kind, self.channels, self.levels, self.min_scale = kind, channels, levels, min_scale
        self.maps_per_channel = 2 if kind == "logistic" else 1
        if kind == "gaussian":
            self.log_scale = nn.Parameter(torch.full((channels,), math.log(0.1)))
        else:
            self.register_parameter("log_scale", None)

    @property
    def discrete(self) -> bool:
        """Whether ``log_prob`` is a probability of discrete pixels (then bits/dim = NLL / ln 2)."""
        return self.kind != "gaussian"

    def _split(self, maps: Tensor) -> tuple[Tensor, Tensor | None]:
        expected = self.maps_per_channel * self.channels
        if maps.shape[-3] != expected:
            raise ValueError(f"the decoder gave {maps.shape[-3]} maps; expected {expected}")
        if self.maps_per_channel == 1:
            return maps, None
        return maps.chunk(2, dim=-3)

    def forward(self, maps: Tensor) -> dist.TorchDistribution:
        first, second = self._split(maps)
        if self.kind == "bernoulli":
            d = dist.Bernoulli(logits=first)
        elif self.kind == "gaussian":
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
        return torch.sigmoid(first) if self.kind == "bernoulli" else first.clamp(0, 1)

    def prepare(self, frames: Tensor) -> Tensor:
        """Frames as the likelihood scores them: uint8 levels become ``x / 255``; floats must lie
        in ``[0, 1]``, and be 0 or 1 for ``"bernoulli"``."""
        if frames.dtype == torch.uint8:
            if self.kind == "bernoulli":
                raise ValueError(
                    "the Bernoulli likelihood needs binary frames: pass floats of 0 and 1 "
                    "(e.g. (frames > 127).float()), not uint8 levels"
                )
            if self.kind == "logistic" and self.levels != 256:
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
        if self.kind == "bernoulli" and not bool(((frames == 0) | (frames == 1)).all()):
            raise ValueError("the Bernoulli likelihood needs binary frames (values 0 and 1)")
        return frames
