"""KanjiVG pen strokes as ``(dx, dy, pen_up)`` sequences, as handwriting and sketch models use.

KanjiVG (Ulrich Apel and contributors, https://kanjivg.tagaini.net) draws the centre line of every
stroke of 11,662 characters (6,703 main forms) as SVG paths, in stroke order, on a 109×109 canvas.
The PyPI package ``kanjivg`` installs the files as ``kanji/*.svg`` in site-packages; they are read
with ``svgpathtools``. Licence: KanjiVG is CC BY-SA 3.0.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..models import pad_sequences
from ._cache import Arrays, cached_arrays, check_array, package_file, package_version, require
from .splits import check_split

__all__ = [
    "available_characters",
    "kanji_split",
    "kanji_strokes",
    "read_strokes",
    "strokes_to_offsets",
]

SVG = "{http://www.w3.org/2000/svg}"
MAIN_FORM = re.compile(r"[0-9a-f]{5}\.svg")  # variants are named like 04e14-Kaisho.svg
PURPOSE = "the KanjiVG strokes"
SPACING = 4.0  # canvas units between resampled points: about 130 points per kanji
SCALE = 8.7  # the root mean square of dx and dy over all kanji at SPACING, in canvas units


def _svg_folder(svg_dir: str | Path | None) -> Path:
    if svg_dir is not None:
        return Path(svg_dir)
    return package_file("kanjivg", "kanji", PURPOSE)


def _is_kanji(character: str) -> bool:
    return unicodedata.name(character, "").startswith(("CJK UNIFIED", "CJK COMPATIBILITY"))


def available_characters(svg_dir: str | Path | None = None, kanji_only: bool = True) -> list[str]:
    """The characters with a main-form drawing, in code point order.

    Arguments:
        svg_dir: a folder of KanjiVG files named by code point (``065e5.svg``); default the one
            the ``kanjivg`` package installs.
        kanji_only: keep the CJK ideographs (6,431 of the package's 6,703), leaving out kana,
            Latin letters, digits and punctuation.
    """
    folder = _svg_folder(svg_dir)
    chars = sorted(
        chr(int(p.name[:5], 16)) for p in folder.iterdir() if MAIN_FORM.fullmatch(p.name)
    )
    return [c for c in chars if _is_kanji(c)] if kanji_only else chars


def kanji_split(character: str) -> str:
    """The split of a character: 90% ``"train"``, 5% ``"val"``, 5% ``"test"``.

    Decided by a hash of the character alone, so it never changes with the set of characters
    asked for or with the package's version.

    Example:
        >>> kanji_split("日") in ("train", "val", "test")
        True
    """
    bucket = int.from_bytes(hashlib.sha256(character.encode()).digest()[:4], "big") % 20
    return "test" if bucket == 0 else "val" if bucket == 1 else "train"


def _resample(points: np.ndarray, spacing: float) -> np.ndarray:
    """Points at equal arc-length steps of about ``spacing`` along a polyline; ends kept."""
    arc = np.concatenate([[0.0], np.cumsum(np.abs(np.diff(points)))])
    n = max(2, round(arc[-1] / spacing) + 1)
    s = np.linspace(0.0, arc[-1], n)
    return np.stack([np.interp(s, arc, points.real), np.interp(s, arc, points.imag)], axis=-1)


def read_strokes(
    path: str | Path, spacing: float = SPACING, samples_per_segment: int = 16
) -> tuple[list[np.ndarray], np.ndarray]:
    """The strokes of one KanjiVG file, resampled: a list of ``(n_i, 2)`` points, and the centre.

    Each stroke (a ``<path>``, in document order, which is KanjiVG's stroke order; a path with
    several pieces gives several strokes) is traced at ``samples_per_segment`` points per Bézier
    segment and resampled at equal arc-length steps of about ``spacing`` canvas units, its two
    ends kept (at least 2 points). Coordinates are the SVG's: x to the right, y downwards. The
    centre is that of the ``viewBox``, the point the first offset starts from.
    """
    svgpathtools = require("svgpathtools", "svgpathtools", PURPOSE)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise ValueError(f"{path} is not valid SVG: {err}") from err
    x0, y0, width, height = (float(v) for v in root.get("viewBox", "0 0 109 109").split())
    strokes, t = [], np.linspace(0.0, 1.0, samples_per_segment)
    for element in root.iter(f"{SVG}path"):
        try:
            pieces = svgpathtools.parse_path(element.get("d", "")).continuous_subpaths()
        except (ValueError, IndexError) as err:
            raise ValueError(f"{path}: cannot parse the path {element.get('id')}: {err}") from err
        for piece in pieces:
            if len(piece) == 0:
                continue
            traced = np.concatenate([np.asarray(segment.point(t)) for segment in piece])
            strokes.append(_resample(traced, spacing))
    if not strokes:
        raise ValueError(f"{path} has no stroke paths")
    points = np.concatenate(strokes)
    margin = 0.1 * max(width, height)
    if not np.isfinite(points).all() or (
        (points < [x0 - margin, y0 - margin]).any()
        or (points > [x0 + width + margin, y0 + height + margin]).any()
    ):
        raise ValueError(f"{path} has points outside its viewBox {(x0, y0, width, height)}")
    return strokes, np.array([x0 + width / 2, y0 + height / 2])


def strokes_to_offsets(strokes: list[np.ndarray], origin: np.ndarray) -> np.ndarray:
    """``(n, 3)`` rows ``(dx, dy, pen_up)`` from strokes of absolute points.

    Row ``i`` is the move from point ``i - 1`` to point ``i`` (from ``origin`` for the first);
    ``pen_up = 1`` on the last point of a stroke: the pen lifts after it, so the next row is a
    move between strokes.

    Example:
        >>> strokes = [np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([[1.0, 2.0], [1.0, 3.0]])]
        >>> strokes_to_offsets(strokes, origin=np.zeros(2))
        array([[0., 0., 0.],
               [1., 0., 1.],
               [0., 2., 0.],
               [0., 1., 1.]])
    """
    points = np.concatenate(strokes)
    offsets = np.diff(points, axis=0, prepend=origin[None])
    pen_up = np.zeros(len(points))
    pen_up[np.cumsum([len(s) for s in strokes]) - 1] = 1.0
    return np.concatenate([offsets, pen_up[:, None]], axis=-1)


def _choose(
    split: str | None,
    characters: str | Iterable[str] | None,
    limit: int | None,
    svg_dir: str | Path | None,
) -> list[str]:
    split = check_split(split, none_allowed=True)
    if characters is None:
        chosen = available_characters(svg_dir)
    else:
        chosen = list(dict.fromkeys(characters))  # unique, in the order given
        if not all(isinstance(c, str) and len(c) == 1 for c in chosen):
            raise ValueError(f"characters must be single characters, got {chosen[:5]}...")
        folder = _svg_folder(svg_dir)
        missing = [c for c in chosen if not (folder / f"{ord(c):05x}.svg").exists()]
        if missing:
            raise ValueError(f"no KanjiVG drawing in {folder} for {''.join(missing[:20])!r}")
    if split is not None:
        chosen = [c for c in chosen if kanji_split(c) == split]
    chosen = chosen if limit is None else chosen[:limit]
    if not chosen:
        raise ValueError("no characters left to load: check split, characters and limit")
    return chosen


def kanji_strokes(
    split: str | None = None,
    characters: str | Iterable[str] | None = None,
    limit: int | None = None,
    spacing: float = SPACING,
    scale: float = SCALE,
    grid: float | None = None,
    return_labels: bool = False,
    svg_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> dict[str, Tensor] | tuple[dict[str, Tensor], list[str]]:
    r"""Characters as pen trajectories: ``{"y": (N, T, 3), "mask": (N, T)}``, padded.

    Each step is ``(dx, dy, pen_up)`` (:func:`strokes_to_offsets`) over the strokes resampled
    every ``spacing`` canvas units (:func:`read_strokes`); the first step starts from the centre
    of the 109×109 canvas. ``dx, dy`` are divided by ``scale``, a fixed number so that every
    split and subset is scaled alike: the default 8.7 is the root mean square of ``dx, dy``
    over all 6,431 kanji at the default spacing of 4 (measured with kanjivg 20260714), which
    gives them unit-ish variance (at spacings 2, 3 and 5 it is 6.2, 7.5 and 9.7). With the
    defaults a kanji has 129 steps on average (9 to 241); ``pen_up`` is 0 or 1, and 1 on about
    10% of the steps. ``y`` is float32, zero-padded to the longest character
    (:func:`~pyro_frmdn.pad_sequences`).

    Resampled at equal arc length, the strokes are nearly deterministic at a fine scale: inside a
    stroke every step has the same length and almost the direction of the one before (often to
    1e-4 canvas units), so a flexible density model can raise its likelihood without bound by
    squeezing its mass onto them, and training grows unstable. To measure likelihoods, pass
    ``grid``: the points (and the centre) are rounded to multiples of ``grid`` canvas units, as a
    tablet records whole coordinates, so ``dx, dy`` are multiples of ``grid / scale``; then spread
    them over their cells with :func:`~pyro_frmdn.data.dequantize_grid` (step ``grid / scale``)
    before fitting, as pixels are dequantised.

    Arguments:
        split: ``None`` (every character asked for), or ``"train"``, ``"val"``,
            ``"test"`` (:func:`kanji_split`: 90/5/5 by a hash of the character).
        characters: the characters to load, in order (a string or an iterable of them); default
            all kanji (:func:`available_characters`), in code point order.
        limit: keep the first ``limit`` characters (after ``split``).
        spacing: the resampling step along a stroke, in canvas units.
        scale: divides ``dx`` and ``dy``, in canvas units.
        grid: round the points to this many canvas units (``None``: keep them exact).
        return_labels: also return the characters, a list of N strings.
        svg_dir: a folder of KanjiVG files instead of the installed package's.
        cache_dir: the cache folder (default: ``$PYRO_FRMDN_CACHE`` or the user cache folder).

    Needs ``kanjivg`` and ``svgpathtools`` the first time (``pip install 'pyro-frmdn[data]'``).
    Licence: KanjiVG is CC BY-SA 3.0 (Ulrich Apel; https://kanjivg.tagaini.net).

    Example:
        >>> data = kanji_strokes(characters="日本語")  # doctest: +SKIP
        >>> data["y"].shape[0], data["y"].shape[-1]  # doctest: +SKIP
        (3, 3)
    """
    if spacing <= 0 or scale <= 0:
        raise ValueError(f"spacing and scale must be positive, got {spacing} and {scale}")
    if grid is not None and not 0 < grid < spacing:
        raise ValueError(f"grid must be in (0, spacing={spacing}) canvas units, got {grid}")
    chosen = _choose(split, characters, limit, svg_dir)
    folder = _svg_folder(svg_dir)
    params = {
        "characters": "".join(chosen),
        "spacing": float(spacing),
        "source": str(folder.resolve()) if svg_dir is not None else package_version("kanjivg"),
    }
    if grid is not None:  # absent otherwise, so that exact strokes keep their cache
        params["grid"] = float(grid)

    def offsets(character: str) -> np.ndarray:
        strokes, centre = read_strokes(folder / f"{ord(character):05x}.svg", spacing)
        if grid is not None:
            strokes = [np.round(s / grid) * grid for s in strokes]
            centre = np.round(centre / grid) * grid
        return strokes_to_offsets(strokes, centre)

    def build() -> Arrays:
        steps = [offsets(c) for c in chosen]
        return {
            "steps": np.concatenate(steps).astype(np.float32),
            "lengths": np.array([len(s) for s in steps]),
            "codepoints": np.array([ord(c) for c in chosen]),
        }

    def validate(a: Arrays) -> None:
        check_array("stroke lengths", a["lengths"], (len(chosen),), 2)
        check_array("stroke steps", a["steps"], (int(a["lengths"].sum()), 3), dtype="float32")
        check_array("pen_up", a["steps"][:, 2], None, 0, 1, integer=True)
        if a["codepoints"].tolist() != [ord(c) for c in chosen]:
            raise ValueError("the cached characters are not the ones asked for")

    a = cached_arrays("kanji", params, build, validate, cache_dir)
    steps = torch.from_numpy(a["steps"])
    steps[:, :2] /= scale
    y, mask = pad_sequences(list(steps.split(a["lengths"].tolist())))
    data = {"y": y, "mask": mask}
    return (data, chosen) if return_labels else data
