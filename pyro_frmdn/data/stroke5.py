"""Drawings in sketch-rnn's stroke-5 format: conversions, QuickDraw ``.npz`` files, KanjiVG."""

from __future__ import annotations

import io
import pickle
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..models import pad_sequences
from .kanji import SPACING, kanji_strokes
from .preprocessing import dequantize_grid
from .splits import check_split

__all__ = ["NPZ_SPLITS", "from_stroke5", "kanji_stroke5", "quickdraw_npz", "to_stroke5"]

NPZ_SPLITS = {"train": "train", "val": "valid", "test": "test"}
"""The package's split names and the keys of sketch-rnn's ``.npz`` files."""


def _padded(y, mask) -> tuple[Tensor, Tensor]:
    y = torch.as_tensor(np.asarray(y) if not isinstance(y, Tensor) else y)
    if y.dim() != 3 or y.shape[-1] != 3:
        raise ValueError(f"y must have shape (N, T, 3) (dx, dy, pen_up), got {tuple(y.shape)}")
    if not y.is_floating_point():
        y = y.to(torch.get_default_dtype())
    if mask is None:
        mask = torch.ones(y.shape[:2], dtype=torch.bool)
    mask = torch.as_tensor(mask)
    if mask.dtype != torch.bool or mask.shape != y.shape[:2]:
        raise ValueError(f"mask must be a bool tensor of shape {tuple(y.shape[:2])}, got "
                         f"{mask.dtype} {tuple(mask.shape)}")  # fmt: skip
    if bool((mask[:, 1:] & ~mask[:, :-1]).any()):
        raise ValueError("mask must be True on a prefix of each drawing (padding at the end)")
    if not bool(torch.isfinite(y[mask]).all()):
        raise ValueError("y has a NaN or Inf at an unmasked step")
    pen = y[..., 2][mask]
    if not bool(((pen == 0) | (pen == 1)).all()):
        raise ValueError("y[..., 2] (pen_up) must be 0 or 1 at unmasked steps")
    return y, mask


def to_stroke5(y, mask=None, max_len: int | None = None) -> Tensor:
    """Strokes ``(dx, dy, pen_up)`` ``(N, T, 3)`` and ``mask`` ``(N, T)`` -> stroke-5 ``(N, L, 5)``.

    sketch-rnn (Ha & Eck 2017, §3.1) writes a drawing as rows :math:`(\\Delta x, \\Delta y, p_1,
    p_2, p_3)`: the offset to the next point, then the pen one-hot: down (keep drawing), up (lift
    after this point) or end of drawing. Step ``t`` of a drawing becomes
    ``(dx, dy, 1 - pen_up, pen_up, 0)``; the rows after its last step are ``(0, 0, 0, 0, 1)``, up
    to ``L = max_len`` (default: the longest drawing plus one, so that every drawing ends with an
    end row, as the decoder must learn to stop). :func:`from_stroke5` undoes it exactly.

    Example:
        >>> y = torch.tensor([[[1.0, 2.0, 0.0], [3.0, 4.0, 1.0]]])
        >>> to_stroke5(y)
        tensor([[[1., 2., 1., 0., 0.],
                 [3., 4., 0., 1., 0.],
                 [0., 0., 0., 0., 1.]]])
    """
    y, mask = _padded(y, mask)
    length = mask.sum(1)
    longest = int(length.max()) if len(length) else 0
    max_len = longest + 1 if max_len is None else max_len
    if not isinstance(max_len, int) or max_len < longest:
        raise ValueError(f"max_len must be an integer >= the longest drawing ({longest} steps), "
                         f"got {max_len!r}")  # fmt: skip
    out = y.new_zeros(y.shape[0], max_len, 5)
    t = min(y.shape[1], max_len)
    m = mask[:, :t, None].to(y.dtype)
    pen_up = y[:, :t, 2:3]
    out[:, :t, :2] = y[:, :t, :2] * m
    out[:, :t, 2:4] = torch.cat([1 - pen_up, pen_up], -1) * m
    out[..., 4] = 1.0
    out[:, :t, 4] = 1 - m[..., 0]
    return out


def _check_stroke5(strokes) -> Tensor:
    s = torch.as_tensor(np.asarray(strokes) if not isinstance(strokes, Tensor) else strokes)
    if s.dim() != 3 or s.shape[-1] != 5:
        raise ValueError(f"strokes must have shape (N, L, 5) (stroke-5), got {tuple(s.shape)}")
    pen = s[..., 2:]
    if not bool((((pen == 0) | (pen == 1)).all(-1) & (pen.sum(-1) == 1)).all()):
        raise ValueError("strokes[..., 2:5] (p1 down, p2 up, p3 end) must be one-hot")
    return s if s.is_floating_point() else s.to(torch.get_default_dtype())


def from_stroke5(strokes) -> dict[str, Tensor]:
    """Stroke-5 ``(N, L, 5)`` -> ``{"y": (N, T, 3), "mask": (N, T)}`` (dx, dy, pen_up).

    A drawing ends at its first end row (``p3 = 1``); ``T`` is the longest drawing, padding
    zero. The inverse of :func:`to_stroke5`.

    Example:
        >>> s = torch.tensor([[[1.0, 2, 1, 0, 0], [3, 4, 0, 1, 0], [0, 0, 0, 0, 1]]])
        >>> from_stroke5(s)["y"]
        tensor([[[1., 2., 0.],
                 [3., 4., 1.]]])
    """
    s = _check_stroke5(strokes)
    ended = s[..., 4] == 1
    mask = ~(ended.cumsum(1) > 0)  # True before the first end row
    longest = int(mask.sum(1).max()) if len(s) else 0
    mask = mask[:, :longest]
    y = torch.cat([s[:, :longest, :2], s[:, :longest, 3:4]], -1) * mask[..., None]
    return {"y": y, "mask": mask}


# -- sketch-rnn's .npz files ------------------------------------------------------------------


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else: a file cannot run code."""

    _allowed = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str):
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return np.ndarray.__reduce__(np.zeros(0))[0]
        if (module, name) in self._allowed:
            return self._allowed[(module, name)]
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: only arrays are read")


def _read_npy(data: bytes) -> np.ndarray:
    f = io.BytesIO(data)
    version = np.lib.format.read_magic(f)
    fmt = np.lib.format
    header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    shape, _, dtype = header(f)
    if not dtype.hasobject:
        f.seek(0)
        return np.lib.format.read_array(f, allow_pickle=False)
    array = _ArrayUnpickler(f, encoding="latin1").load()  # sketch-rnn's files are Python 2's
    if not isinstance(array, np.ndarray) or array.shape != shape:
        raise ValueError("an object array did not unpickle to its declared shape")
    return array


def _drawings(path: Path, key: str) -> list[np.ndarray]:
    try:
        with zipfile.ZipFile(path) as z:
            names = {n.removesuffix(".npy"): n for n in z.namelist()}
            if key not in names:
                raise KeyError(key)
            array = _read_npy(z.read(names[key]))
    except KeyError:
        raise ValueError(f"{path} has no {key!r} array; a sketch-rnn file holds "
                         f"{sorted(NPZ_SPLITS.values())}") from None  # fmt: skip
    except Exception as err:
        raise ValueError(f"{path} is not a readable sketch-rnn .npz file "
                         f"({type(err).__name__}: {err})") from err  # fmt: skip
    drawings = list(array) if array.dtype.hasobject else [array] if array.ndim == 2 else list(array)
    for i, d in enumerate(drawings):
        d = np.asarray(d)
        if d.ndim != 2 or d.shape[1] != 3 or d.dtype.kind not in "iuf" or len(d) == 0:
            raise ValueError(f"{path}: drawing {i} of {key!r} is not stroke-3 rows (n, 3) of "
                             f"numbers, got {d.dtype} {d.shape}")  # fmt: skip
        if not np.isfinite(d).all() or not np.isin(d[:, 2], (0, 1)).all():
            raise ValueError(f"{path}: drawing {i} of {key!r} has a non-finite value or a pen "
                             "state other than 0/1")  # fmt: skip
    return drawings


def _offset_scale(drawings: Iterable[np.ndarray]) -> float:
    """sketch-rnn's normalising scale: the standard deviation of every dx and dy together."""
    offsets = np.concatenate([np.asarray(d, dtype=np.float64)[:, :2].ravel() for d in drawings])
    scale = float(offsets.std())
    if not scale > 0:
        raise ValueError("the offsets have no spread (standard deviation 0): cannot scale them")
    return scale


def quickdraw_npz(
    path: str | Path,
    split: str = "train",
    scale: float | None = None,
    max_steps: int | None = None,
    max_len: int | None = None,
) -> tuple[dict[str, Tensor], float]:
    """A split of one of sketch-rnn's QuickDraw files (``cat.npz``...) in stroke-5.

    The file holds object arrays ``"train"``, ``"valid"`` and ``"test"`` of stroke-3 drawings
    (int16 rows ``(dx, dy, pen_up)``); ``split="val"`` reads ``"valid"``. It is read without
    running code: only numpy arrays are unpickled.

    Arguments:
        path: the ``.npz`` file.
        split: ``"train"``, ``"val"`` or ``"test"``.
        scale: divides ``dx, dy``; default sketch-rnn's, the standard deviation of all offsets of
            the file's training split (so every split is scaled alike).
        max_steps: leave out drawings of more steps (sketch-rnn keeps those of at most 250).
        max_len: the padded length (see :func:`to_stroke5`).

    Returns:
        ``({"y": (N, L, 5) float32}, scale)``: multiply ``y[..., :2]`` by ``scale`` to get the
        file's units back.
    """
    path = Path(path)
    split = check_split(split)
    drawings = _drawings(path, NPZ_SPLITS[split])
    if scale is None:
        scale = _offset_scale(drawings if split == "train" else _drawings(path, "train"))
    elif not (isinstance(scale, (int, float)) and np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a finite number > 0, got {scale!r}")
    if max_steps is not None:
        drawings = [d for d in drawings if len(d) <= max_steps]
        if not drawings:
            raise ValueError(f"no drawing of {path} {split!r} has at most {max_steps} steps")
    y, mask = pad_sequences([torch.as_tensor(np.asarray(d, dtype=np.float32)) for d in drawings])
    y[..., :2] /= scale
    return {"y": to_stroke5(y, mask, max_len)}, float(scale)


# -- KanjiVG ----------------------------------------------------------------------------------


def kanji_stroke5(
    split: str | None = None,
    characters: str | Iterable[str] | None = None,
    limit: int | None = None,
    spacing: float = SPACING,
    grid: float | None = None,
    scale: float | None = None,
    max_len: int | None = None,
    seed: int = 0,
    svg_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> tuple[dict[str, Tensor], float]:
    """KanjiVG characters in stroke-5, scaled as sketch-rnn scales its data.

    The strokes of :func:`~pyro_frmdn.data.kanji_strokes` (same ``split``, ``characters``,
    ``limit``, ``spacing``, ``grid``, cache), with ``dx, dy`` divided by one scale for the data
    set: by default sketch-rnn's, the standard deviation of the offsets of the training split
    of ``characters`` (all kanji by default), in canvas units. With ``grid`` the offsets are
    spread over their cells (:func:`~pyro_frmdn.data.dequantize_grid`, noise from ``seed``), so
    that likelihoods mean something (see ``kanji_strokes``).

    Returns:
        ``({"y": (N, L, 5)}, scale)``: ``y[..., :2] * scale`` is in canvas units.
    """
    common = dict(characters=characters, spacing=spacing, scale=1.0, grid=grid,
                  svg_dir=svg_dir, cache_dir=cache_dir)  # fmt: skip
    data = kanji_strokes(split, limit=limit, **common)
    if scale is None:
        train = data if split == "train" and limit is None else kanji_strokes("train", **common)
        scale = _offset_scale(train["y"][train["mask"]].numpy()[None])
    elif not (isinstance(scale, (int, float)) and np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a finite number > 0, got {scale!r}")
    y, mask = data["y"], data["mask"]
    if grid is not None:
        noise = torch.Generator().manual_seed(seed)
        y[..., :2] = dequantize_grid(y[..., :2], grid, noise) * mask[..., None]
    y[..., :2] /= scale
    return {"y": to_stroke5(y, mask, max_len)}, float(scale)
