"""Checks of the tensors that enter a model, with errors that say what was expected and where."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["check_finite", "check_mask", "check_sequences"]


def check_finite(name: str, t: Tensor, where: Tensor | None = None) -> None:
    """Raise a ValueError naming the first NaN or Inf of ``t`` (only where ``where`` is true)."""
    bad = ~torch.isfinite(t)
    if where is not None:
        bad = bad & where
    if bool(bad.any()):
        pos = tuple(int(i) for i in bad.nonzero()[0])
        kind = "NaN" if bool(torch.isnan(t[pos])) else "Inf"
        raise ValueError(
            f"{name} has {kind} at position {pos}; all (unmasked) values must be finite"
        )


def check_mask(mask: Tensor, shape: tuple[int, int], against: str = "y") -> Tensor:
    """Validate a (B, T) ``mask`` for the tensor named ``against``; return it as bool."""
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(
            f"mask must have shape {tuple(shape)} to match {against}, got {tuple(mask.shape)}"
        )
    mask = mask.bool()
    if not bool(mask.any()):
        raise ValueError("mask is false everywhere: there is nothing to score")
    return mask


def check_sequences(
    y: Tensor, x: Tensor | None, mask: Tensor | None, obs_dim: int, input_dim: int
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Validate ``y`` (B, T, D), ``x`` (B, T, X) and ``mask`` (B, T); return y with padding zeroed.

    Values of ``y`` where ``mask`` is false are replaced by zeros, so that padding (even NaN) never
    reaches the network: it changes neither a loss nor a gradient.
    """
    if not isinstance(y, Tensor) or y.dim() != 3:
        shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise ValueError(f"y must be a tensor of shape (batch, time, {obs_dim}), got {shape}")
    b, t, d = y.shape
    if d != obs_dim:
        raise ValueError(f"y has {d} dims per step but the model was built for obs_dim={obs_dim}")
    if b == 0 or t == 0:
        raise ValueError(f"y is empty: shape {tuple(y.shape)}")
    if mask is not None:
        mask = check_mask(mask, (b, t))
        check_finite("y", y, mask.unsqueeze(-1))
        y = torch.where(mask.unsqueeze(-1), y, torch.zeros((), dtype=y.dtype, device=y.device))
    else:
        check_finite("y", y)
    if input_dim:
        if x is None:
            raise ValueError(f"the model was built with input_dim={input_dim}: pass x (B, T, X)")
        if x.dim() != 3 or x.shape[:2] != (b, t) or x.shape[-1] != input_dim:
            raise ValueError(
                f"x must have shape {(b, t, input_dim)} to match y, got {tuple(x.shape)}"
            )
        check_finite("x", x)
    elif x is not None:
        raise ValueError("x was given but the model was built with input_dim=0")
    return y, x, mask
