"""A frame decoder that draws K sprites, each from its own what-latent at its own where-latent."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pyro.nn import DenseNN
from torch import Tensor, nn

from .conv import _flat, check_frame_shape
from .pixels import PIXEL_LIKELIHOODS

__all__ = ["SpriteDecoder"]


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
