"""text_match: does writing look like the asked text? Dynamic time warping against renderings."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .handwriting import render_text

__all__ = ["dtw", "resample_path", "text_match"]


def resample_path(strokes, num_points: int = 64) -> Tensor:
    """The pen's path of ``strokes`` (T, 3) offsets ``(dx, dy, pen_up)`` as ``num_points``
    points (num_points, 2) at equal steps of arc length (moves between strokes included), centred
    on their mean and scaled to a root-mean-square distance of 1 from it: a shape whatever the
    position, size and speed of the writing.

    Example:
        >>> p = resample_path(torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 1.0]]), 5)
        >>> [round(v, 4) for v in p[:, 0].tolist()], p[:, 1].abs().max().item()
        ([-1.4142, -0.7071, 0.0, 0.7071, 1.4142], 0.0)
    """
    strokes = torch.as_tensor(strokes)
    if strokes.dim() != 2 or strokes.shape[-1] != 3 or strokes.shape[0] < 1:
        raise ValueError(f"strokes must have shape (T, 3), got {tuple(strokes.shape)}")
    if not bool(torch.isfinite(strokes).all()):
        raise ValueError("strokes has NaN or infinite values")
    if isinstance(num_points, bool) or not isinstance(num_points, int) or num_points < 2:
        raise ValueError(f"num_points must be an int >= 2, got {num_points!r}")
    offsets = strokes[:, :2].double().numpy()
    points = np.cumsum(offsets, 0)  # (T, 2): where the pen is; the first row places the start
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    at = np.linspace(0.0, arc[-1], num_points)
    path = np.stack([np.interp(at, arc, points[:, d]) for d in (0, 1)], -1)
    path -= path.mean(0)
    rms = np.sqrt((path**2).sum(-1).mean())
    return torch.from_numpy(path / rms if rms > 0 else path).float()


def dtw(a: Tensor, b: Tensor) -> Tensor:
    r"""Dynamic time warping distances of paths ``a`` (P, n, 2) and ``b`` (P, m, 2), pair by pair:
    the least sum of Euclidean distances along a monotone alignment, divided by ``n + m``
    (Sakoe & Chiba 1978). Batched over the pairs, one anti-diagonal of the table at a time.

    .. math::
        D_{ij} = \lVert a_i - b_j \rVert + \min(D_{i-1, j}, D_{i, j-1}, D_{i-1, j-1})

    Example:
        >>> a = torch.tensor([[[0.0, 0.0], [1.0, 0.0]]])
        >>> dtw(a, a).tolist(), dtw(a, a.flip(1)).tolist()
        ([0.0], [0.5])
    """
    if a.dim() != 3 or b.dim() != 3 or a.shape[0] != b.shape[0] or a.shape[-1] != b.shape[-1]:
        raise ValueError(f"a and b must be (P, n, d) and (P, m, d), got {a.shape} and {b.shape}")
    n, m = a.shape[1], b.shape[1]
    cost = torch.cdist(a.double(), b.double())  # (P, n, m)
    table = torch.full((a.shape[0], n + 1, m + 1), torch.inf, dtype=torch.float64)
    table[:, 0, 0] = 0.0
    for d in range(2, n + m + 1):
        i = torch.arange(max(1, d - m), min(n, d - 1) + 1)
        j = d - i
        best = torch.minimum(
            torch.minimum(table[:, i - 1, j], table[:, i, j - 1]), table[:, i - 1, j - 1]
        )
        table[:, i, j] = cost[:, i - 1, j - 1] + best
    return table[:, n, m] / (n + m)


def text_match(
    written: list,
    texts: list[str],
    pool: list[str],
    num_others: int = 4,
    font: str = "futural",
    num_points: int = 64,
    seed: int = 0,
) -> Tensor:
    """Whether each writing is nearer the clean rendering of its own text than the renderings
    of ``num_others`` other texts of the same length, (N,) bool.

    The other texts are drawn from ``pool`` (without the asked text) by ``seed``; every text is
    rendered in ``font`` with no writer's style (:func:`render_text`), every path resampled
    (:func:`resample_path`) and compared by :func:`dtw`. A writing that reads as its text scores
    True; chance is ``1 / (1 + num_others)``. A text with fewer others of its length in ``pool``
    than ``num_others`` is compared with those there are (and refused if there are none).

    Arguments:
        written: N pen-stroke arrays (T_i, 3) (what :meth:`HandwritingSynthesis.write` returns).
        texts: the N texts asked for.
        pool: the texts to draw the others from (held-out texts).
        num_others: how many other texts each writing is compared with.
        font: the Hershey font of the renderings.
        num_points, seed: the resampling and the draw of the others.
    """
    if len(written) != len(texts):
        raise ValueError(f"written has {len(written)} writings but texts has {len(texts)}")
    if isinstance(num_others, bool) or not isinstance(num_others, int) or num_others < 1:
        raise ValueError(f"num_others must be an int >= 1, got {num_others!r}")
    rng = np.random.default_rng(seed)
    pairs, owners = [], []
    for i, text in enumerate(texts):
        others = sorted({t for t in pool if len(t) == len(text) and t != text})
        if not others:
            raise ValueError(f"pool has no other text of the length of texts[{i}] = {text!r}")
        chosen = rng.choice(len(others), min(num_others, len(others)), replace=False)
        for candidate in [text] + [others[c] for c in chosen]:
            pairs.append((i, candidate))
        owners.append(len(pairs))
    paths = [resample_path(w, num_points) for w in written]
    renders = {t: resample_path(render_text(t, font), num_points) for t in {c for _, c in pairs}}
    a = torch.stack([paths[i] for i, _ in pairs])
    b = torch.stack([renders[c] for _, c in pairs])
    distance = dtw(a, b).tolist()
    correct, start = [], 0
    for end in owners:
        own, rest = distance[start], distance[start + 1 : end]
        correct.append(own < min(rest))
        start = end
    return torch.tensor(correct)
