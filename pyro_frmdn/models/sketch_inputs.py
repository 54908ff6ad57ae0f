"""The sketch model's input checks: stroke-5 drawings, codes, and random drawings for examples."""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import Tensor

from .validation import as_real, as_tensor, check_sequences

__all__ = [
    "END",
    "STROKE5_START",
    "check_codes",
    "check_drawing",
    "check_prime",
    "check_stroke5",
    "random_stroke5",
    "stroke5_lengths",
]

END = 2
"""The index of the end-of-drawing state among stroke-5's pen states (p1 down, p2 up, p3 end)."""

STROKE5_START = (0.0, 0.0, 1.0, 0.0, 0.0)
"""sketch-rnn's start token :math:`S_0`, the decoder's input at the first step."""


def check_stroke5(y, mask, dtype: torch.dtype, device: torch.device, name: str = "y"):
    """``y`` (B, L, 5) stroke-5 and ``mask`` (B, L) checked (as every sequence model's data, see
    :func:`~pyro_frmdn.models.check_sequences`, and the pen one-hot), in ``dtype``; errors name
    the drawings ``name``."""
    try:
        y, _, mask = check_sequences(y, None, mask, 5, 0, dtype, device)
    except (ValueError, TypeError) as e:
        if name == "y":
            raise
        raise type(e)(re.sub(r"\by\b", name, str(e))) from None
    _check_pen(y, mask, name)
    return y, mask


def check_drawing(drawing, dtype: torch.dtype, device: torch.device, name: str) -> Tensor:
    """One stroke-5 drawing ``(P, 5)``, ``P >= 1``, named ``name``, checked as
    :func:`check_stroke5` checks drawings, in ``dtype``."""
    drawing = as_tensor(name, drawing, device)
    if drawing.dim() != 2 or drawing.shape[-1] != 5 or len(drawing) == 0:
        raise ValueError(f"{name} must be one drawing (P, 5), P >= 1, got {tuple(drawing.shape)}")
    drawing = as_real(name, drawing, dtype)
    _check_pen(drawing[None], None, name, batched=False)
    return drawing


def check_prime(prime, n: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The rows ``prime`` (n, P, 5) a decoding starts from, checked as :func:`check_stroke5`
    checks drawings, one per code."""
    prime = check_stroke5(prime, None, dtype, device, "prime")[0]
    if prime.shape[0] != n:
        raise ValueError(f"prime must have {n} drawings (one per code), got {prime.shape[0]}")
    return prime


def _check_pen(y: Tensor, mask: Tensor | None, name: str, batched: bool = True) -> None:
    pen = y[..., 2:]
    bad = ~((((pen == 0) | (pen == 1)).all(-1)) & (pen.sum(-1) == 1))
    if mask is not None:
        bad &= mask
    if bool(bad.any()):
        pos = tuple(int(i) for i in bad.nonzero()[0])
        where = f"{pos[0]}, {pos[1]}" if batched else f"{pos[1]}"
        raise ValueError(
            f"{name}[{where}, 2:] = {y[pos][2:].tolist()}: the pen of stroke-5 (p1 down, "
            "p2 up, p3 end) must be one-hot; convert strokes with pyro_frmdn.data.to_stroke5"
        )


def stroke5_lengths(y: Tensor, mask: Tensor | None) -> Tensor:
    """Rows of each drawing before its first end row (and its first masked row), at least 1."""
    live = (y[..., 2 + END] == 0).cumprod(1).bool()
    if mask is not None:
        live &= mask.cumprod(1).bool()
    return live.sum(1).clamp(min=1)


def check_codes(z, latent_dim: int, name: str, shape: str, dtype, device) -> Tensor:
    """``z`` as a finite tensor whose last dim is ``latent_dim`` and whose rank ``shape`` gives
    (``"(N, Z)"`` or ``"(Z,)"``)."""
    z = as_real(name, as_tensor(name, z, device), dtype)  # real and finite, else named errors
    rank = 2 if shape == "(N, Z)" else 1
    if z.dim() != rank or z.shape[-1] != latent_dim:
        want = shape.replace("Z", str(latent_dim))
        raise ValueError(f"{name} must be finite codes {want}, got {tuple(z.shape)}")
    return z


def random_stroke5(num: int, steps: int, seed: int = 0) -> Tensor:
    """``num`` random stroke-5 drawings of ``steps`` rows, each ending before the last row (for
    examples and tests)."""
    g = torch.Generator().manual_seed(seed)
    length = torch.randint(1, steps, (num,), generator=g)
    offsets = torch.randn(num, steps, 2, generator=g)
    pen = (torch.rand(num, steps, generator=g) < 0.2).long()
    pen = torch.where(torch.arange(steps) < length[:, None], pen, END)
    state = F.one_hot(pen, 3).float()
    return torch.cat([offsets * (1 - state[..., END:]), state], -1)
