"""sketch-rnn's data augmentation of drawings in stroke-5 format: each time a drawing is read, its
axes stretched by random factors and a few points of its strokes left out.

Ha & Eck (2017, §4) train on every drawing many times, each time stretched along x and along y by
independent factors drawn uniformly from :math:`[1 - s, 1 + s]` (:math:`s = 0.15`) and with
points inside strokes dropped at random (10% in their code), so that the model sees new drawings
of the same kind rather than the same drawing again. Here a dropped point's move is added to the
next point's, so every point that stays is drawn where it was; the first two points of a stroke
(the move to it and its first line) and its last point (where the pen lifts) always stay.

Use :class:`StrokeAugmentation` as a ``DataLoader``'s ``collate_fn`` and pass the loader to
:func:`~pyro_frmdn.infer.fit`::

    loader = DataLoader(list(strokes), batch_size=32, shuffle=True,
                        collate_fn=pf.data.StrokeAugmentation(scale=0.15, drop=0.1))
    pf.fit(vae, loader, val={"y": val_strokes}, epochs=50)
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..models.sketch_inputs import check_stroke5

__all__ = ["StrokeAugmentation", "augment_stroke5"]


def _check_rate(name: str, value, high: float, closed: bool) -> float:
    ok = isinstance(value, (int, float)) and math.isfinite(value) and value >= 0
    ok = ok and (value <= high if closed else value < high)
    if not ok:
        interval = f"[0, {high}{']' if closed else ')'}"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")
    return float(value)


def augment_stroke5(
    strokes, scale: float = 0.15, drop: float = 0.1, generator: torch.Generator | None = None
) -> Tensor:
    """Drawings ``(N, L, 5)`` in stroke-5 format, stretched and thinned at random (sketch-rnn's
    augmentation; see the module's notes).

    Arguments:
        strokes: stroke-5 rows ``(dx, dy, p1 down, p2 up, p3 end)``, each drawing ending at its
            first end row (:func:`~pyro_frmdn.data.to_stroke5`).
        scale: each drawing's ``dx`` are multiplied by one factor from ``U[1 - scale, 1 +
            scale]`` and its ``dy`` by another; in ``[0, 1)``.
        drop: the chance that a point inside a stroke is left out, in ``[0, 1]``; its move is
            added to the next point's, so the other points stay where they were.
        generator: a ``torch.Generator`` for the draws (default: torch's global one).

    Returns:
        A new tensor of the same shape and dtype; a drawing that lost points ends earlier and is
        padded with more end rows ``(0, 0, 0, 0, 1)``.
    """
    scale = _check_rate("scale", scale, 1.0, closed=False)
    drop = _check_rate("drop", drop, 1.0, closed=True)
    s = strokes if isinstance(strokes, Tensor) else torch.as_tensor(np.asarray(strokes))
    if s.dim() != 3 or s.shape[-1] != 5:
        raise ValueError(f"strokes must have shape (N, L, 5) (stroke-5), got {tuple(s.shape)}")
    dtype = s.dtype if s.is_floating_point() else torch.get_default_dtype()
    s, _ = check_stroke5(s, None, dtype, s.device, "strokes")
    n, length = s.shape[:2]
    if n == 0 or length == 0:
        return s.clone()
    drawn = (s[..., 4] == 1).cumsum(1) == 0  # rows before the first end row
    lifts = s[..., 3] == 1
    t = torch.arange(length, device=s.device).expand(n, length)
    first = torch.ones_like(lifts)
    first[:, 1:] = lifts[:, :-1]  # a stroke starts after a lift
    start = torch.where(first, t, torch.zeros_like(t)).cummax(1).values
    inside = drawn & ~lifts & (t - start >= 2)
    inside[:, -1] = False
    inside[:, :-1] &= drawn[:, 1:]  # the next point takes the move: it must be drawn
    u = torch.rand(n, length, generator=generator, dtype=s.dtype).to(s.device)
    kept = ~(inside & (u < drop))
    slot = kept.long().cumsum(1) - kept.long()  # a dropped point's move goes to the next kept
    out = s.new_zeros(s.shape)
    out[..., 4] = 1.0  # end rows after the kept ones
    out[..., :2].scatter_add_(1, slot[..., None].expand(n, length, 2), s[..., :2])
    rows = torch.arange(n, device=s.device)[:, None].expand(n, length)
    out[rows[kept], slot[kept], 2:] = s[kept][:, 2:]
    if scale > 0:
        factors = 1 + scale * (2 * torch.rand(n, 1, 2, generator=generator, dtype=s.dtype) - 1)
        out[..., :2] *= factors.to(s.device)
    return out


class StrokeAugmentation:
    """A ``DataLoader`` ``collate_fn``: stacks stroke-5 drawings ``(L, 5)`` (all of one length
    ``L``) into ``{"y": (B, L, 5)}`` and augments them with :func:`augment_stroke5`.

    Arguments:
        scale, drop: see :func:`augment_stroke5` (sketch-rnn: 0.15 and 0.1).
        seed: seeds the draws, so that a run repeats (``None``: torch's global generator).
    """

    def __init__(self, scale: float = 0.15, drop: float = 0.1, seed: int | None = None):
        self.scale = _check_rate("scale", scale, 1.0, closed=False)
        self.drop = _check_rate("drop", drop, 1.0, closed=True)
        self.generator = None if seed is None else torch.Generator().manual_seed(seed)

    def __call__(self, drawings) -> dict[str, Tensor]:
        items = [d["y"] if isinstance(d, dict) else d for d in drawings]
        items = [torch.as_tensor(d[0] if isinstance(d, (tuple, list)) else d) for d in items]
        shapes = {tuple(d.shape) for d in items}
        if len(shapes) != 1:
            raise ValueError(f"drawings of one batch must share one shape (L, 5), got {shapes}")
        batch = torch.stack(items)
        return {"y": augment_stroke5(batch, self.scale, self.drop, self.generator)}
