"""Handwriting-like pen strokes: texts rendered in Hershey vector fonts, varied per writer."""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..models import pad_sequences
from ._cache import require
from .kanji import strokes_to_offsets
from .splits import check_split, random_split
from .texts import random_texts

__all__ = [
    "ALPHABET",
    "FRACTIONS",
    "HandwritingData",
    "WriterStyle",
    "handwriting",
    "pad_strokes",
    "render_text",
]

ALPHABET = " abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" + ".,'!?-:;\"()"
"""The characters the texts of :func:`handwriting` may use (every Hershey font has them)."""

FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}
"""The share of the writers, and of the texts, in each split of :func:`handwriting`."""

PURPOSE = "the Hershey font glyphs"


@functools.lru_cache(maxsize=8)
def _font(font: str) -> tuple[dict[str, tuple[int, int, tuple[np.ndarray, ...]]], float, float]:
    """The glyphs of a built-in font, ``{char: (left, width, strokes)}``, its cap and base lines.

    Font units: x to the right, y downwards, the cap line above the base line (smaller y).
    """
    if not isinstance(font, str):
        raise TypeError(f"font must be a font name (str), got {type(font).__name__}")
    hershey = require("HersheyFonts", "Hershey-Fonts", PURPOSE)
    fonts = hershey.HersheyFonts()
    if font not in fonts.default_font_names:
        names = ", ".join(fonts.default_font_names)
        raise ValueError(f"font must be one of the Hershey fonts ({names}), got {font!r}")
    fonts.load_default_font(font)
    glyphs = {
        char: (g.left_offset, g.char_width, tuple(np.array(s, dtype=np.float64) for s in g.strokes))
        for char, g in fonts.all_glyphs.items()
    }
    options = fonts.render_options  # its attributes are scaled; the items are the font's lines
    return glyphs, float(options["cap_line"]), float(options["base_line"])


@dataclass(frozen=True)
class WriterStyle:
    """How a simulated writer varies the font; ``WriterStyle()`` writes the glyphs exactly.

    Lengths are in the output's units, the font's cap height (:func:`render_text`). A text is
    laid out glyph by glyph, then, in this order: characters moved apart by ``spacing`` plus a
    normal ``spacing_jitter`` each; scaled by ``size`` (``width`` more across) and sheared,
    :math:`x \\leftarrow x + \\text{slant}\\, y`; the baseline raised by a smooth random function
    of :math:`x` of standard deviation ``drift`` (a sum of three sinusoids of random phase and
    wavelength around ``drift_wavelength``); every stroke resampled at ``speed`` points per unit
    of its length, ends kept (``None``: the font's own vertices); the pen moved off its path by
    a smooth random function of the ink length written so far, of standard deviation ``wobble``
    in x and in y (wavelengths around ``wobble_wavelength``); independent normal noise of
    standard deviation ``jitter`` added to every point, as a tablet's. The random parts are
    drawn anew for every text (``seed`` of :func:`render_text`): a writer writes a text
    differently each time, and the data have a density, not a few exact curves.

    Example:
        >>> WriterStyle(slant=0.3).slant
        0.3
        >>> WriterStyle.sample(0) == WriterStyle.sample(0)
        True
    """

    size: float = 1.0
    width: float = 1.0
    slant: float = 0.0
    spacing: float = 0.0
    spacing_jitter: float = 0.0
    drift: float = 0.0
    drift_wavelength: float = 8.0
    wobble: float = 0.0
    wobble_wavelength: float = 1.0
    jitter: float = 0.0
    speed: float | None = None

    def __post_init__(self) -> None:
        positive = ("size", "width", "drift_wavelength", "wobble_wavelength", "speed")
        nonnegative = ("spacing_jitter", "drift", "wobble", "jitter")
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None and field.name == "speed":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"WriterStyle.{field.name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"WriterStyle.{field.name} must be finite, got {value}")
            if field.name in positive and value <= 0:
                raise ValueError(f"WriterStyle.{field.name} must be positive, got {value}")
            if field.name in nonnegative and value < 0:
                raise ValueError(f"WriterStyle.{field.name} must be >= 0, got {value}")

    @classmethod
    def sample(cls, seed: int | None = None) -> WriterStyle:
        """A random writer: each field drawn from a range of plausible hands.

        Size 0.8-1.2, width 0.75-1.25, slant normal around 0.2 (a right lean of 11 degrees) in
        [-0.2, 0.6], extra spacing -0.05-0.25, spacing jitter up to 0.08, drift up to 0.08 over
        5-15 cap heights, wobble 0.01-0.04 over 0.6-1.6, jitter 0.002-0.008 and speed 5-8
        points per cap height of ink; the same seed gives the same writer.
        """
        rng = np.random.default_rng(seed)
        u = lambda low, high: float(rng.uniform(low, high))  # noqa: E731
        return cls(
            size=u(0.8, 1.2),
            width=u(0.75, 1.25),
            slant=float(np.clip(rng.normal(0.2, 0.15), -0.2, 0.6)),
            spacing=u(-0.05, 0.25),
            spacing_jitter=u(0.0, 0.08),
            drift=u(0.0, 0.08),
            drift_wavelength=u(5.0, 15.0),
            wobble=u(0.01, 0.04),
            wobble_wavelength=u(0.6, 1.6),
            jitter=u(0.002, 0.008),
            speed=u(5.0, 8.0),
        )


def _layout(text: str, font: str, advance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The glyphs' strokes placed one after the other, in cap heights, y up, baseline at 0:
    their points ``(N, 2)`` one stroke after the other, and the number of points of each."""
    glyphs, cap_line, base_line = _font(font)
    missing = "".join(sorted(set(text) - set(glyphs)))
    if missing:
        raise ValueError(f"the font {font!r} has no glyph for the characters {missing!r}")
    widths = np.array([glyphs[c][1] for c in text], dtype=np.float64)
    advance = widths + (base_line - cap_line) * advance  # font units
    cursor = np.cumsum(advance) - advance  # where each glyph starts
    strokes = [
        s + [x - glyphs[c][0], 0] for c, x in zip(text, cursor, strict=True) for s in glyphs[c][2]
    ]
    if not strokes:
        return np.zeros((0, 2)), np.zeros(0, dtype=np.int64)
    points = np.concatenate(strokes) * [1, -1] + [0, base_line]
    return points / (base_line - cap_line), np.array([len(s) for s in strokes])


def _smooth(rng: np.random.Generator, u: np.ndarray, wavelength: float, terms: int = 3):
    """A smooth random function of ``u`` of unit standard deviation: random sinusoids with
    wavelengths in [wavelength / 2, 2 wavelength]."""
    amplitude = rng.normal(0.0, math.sqrt(2.0 / terms), terms)
    lam = wavelength * np.exp(rng.uniform(-math.log(2), math.log(2), terms))
    phase = rng.uniform(0.0, 2 * math.pi, terms)
    return (amplitude * np.sin(2 * math.pi * u[:, None] / lam + phase)).sum(-1)


def _arc_length(points: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The ink length from the start of its stroke to each point."""
    step = np.linalg.norm(np.diff(points, axis=0, prepend=points[:1]), axis=1)
    step[np.cumsum(lengths)[:-1]] = 0.0  # the first point of a stroke
    ink = np.cumsum(step)
    return ink - np.repeat(ink[np.cumsum(lengths) - lengths], lengths)


def _resample(points: np.ndarray, lengths: np.ndarray, speed: float):
    """Every stroke at equal arc-length steps, about ``speed`` points per unit, ends kept."""
    arc = _arc_length(points, lengths)
    total = arc[np.cumsum(lengths) - 1]
    n = np.maximum(2, np.round(total * speed).astype(np.int64) + 1)
    first = np.repeat(np.cumsum(n) - n, n)
    s = np.repeat(total / (n - 1), n) * (np.arange(n.sum()) - first)
    # one interpolation for all strokes: stroke k's arc shifted past the ones before it
    shift = np.cumsum(np.concatenate([[0.0], total[:-1] + 1.0]))
    xp = arc + np.repeat(shift, lengths)
    keep = np.concatenate([[True], np.diff(xp) > 0])  # repeated points: one is enough
    s = np.minimum(s + np.repeat(shift, n), np.repeat(shift + total, n))
    resampled = [np.interp(s, xp[keep], points[keep, i]) for i in range(2)]
    return np.stack(resampled, -1), n


def _written(points: np.ndarray, lengths: np.ndarray, style: WriterStyle, rng):
    """The laid-out strokes as the writer draws them (the steps of :class:`WriterStyle`)."""
    points = points @ (np.array([[style.width, 0.0], [style.slant, 1.0]]) * style.size)
    if style.drift > 0:
        raised = style.drift * _smooth(rng, points[:, 0], style.drift_wavelength)
        points = points + np.stack([np.zeros_like(raised), raised], -1)
    if style.speed is not None:
        points, lengths = _resample(points, lengths, style.speed)
    if style.wobble > 0:
        # the ink written so far: the arc lengths of the strokes, joined
        ink = np.cumsum(np.diff(_arc_length(points, lengths), prepend=0.0).clip(min=0.0))
        points = points + style.wobble * np.stack(
            [_smooth(rng, ink, style.wobble_wavelength) for _ in range(2)], -1
        )
    if style.jitter > 0:
        points = points + rng.normal(0.0, style.jitter, points.shape)
    return points, lengths


def render_text(
    text: str, font: str = "futural", style: WriterStyle | None = None, seed: int | None = None
) -> Tensor:
    """A text as pen strokes ``(T, 3)`` of rows ``(dx, dy, pen_up)``, float32.

    The glyphs come from the Hershey fonts of the ``Hershey-Fonts`` package (single-stroke
    vector fonts, A. V. Hershey 1967; the package is MIT licensed), placed side by side as the
    font advances. Units: the font's, divided by its cap height, so that capitals are 1 high;
    y points up, the baseline is at 0 and the text starts at x = 0. Row ``i`` is the move to
    point ``i`` from the one before (from the origin ``(0, 0)`` for the first); ``pen_up = 1``
    on the last point of each stroke (the pen lifts after it, as in IAM-OnDB), so the next row
    is a move between strokes. A space draws nothing and widens the next move.

    Arguments:
        text: the text to write, on one line; every character must be in the font.
        font: a Hershey font name; ``"futural"`` is a plain single-stroke sans serif.
        style: the writer (:class:`WriterStyle`); ``None`` is ``WriterStyle()``: the font's
            own vertices, exactly.
        seed: the random parts of this one rendering (spacing jitter, drift, wobble, jitter).

    Example:
        >>> y = render_text("Hi")
        >>> y.shape, int(y[:, 2].sum())  # H has 3 strokes, i has 2
        (torch.Size([13, 3]), 5)
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    style = WriterStyle() if style is None else style
    if not isinstance(style, WriterStyle):
        raise TypeError(f"style must be a WriterStyle or None, got {type(style).__name__}")
    rng = np.random.default_rng(seed)
    advance = np.full(len(text), style.spacing)
    if style.spacing_jitter > 0:
        advance = advance + rng.normal(0.0, style.spacing_jitter, len(text))
    points, lengths = _layout(text, font, advance)
    if not len(lengths):
        raise ValueError(f"text must have at least one character that draws, got {text!r}")
    points, lengths = _written(points, lengths, style, rng)
    offsets = strokes_to_offsets(np.split(points, np.cumsum(lengths)[:-1]), origin=np.zeros(2))
    return torch.from_numpy(offsets).float()


@dataclass
class HandwritingData:
    """Rendered texts: ``strokes[i]`` ``(T_i, 3)`` writes ``texts[i]`` in the hand of writer
    ``writers[i]``; ``alphabet`` holds every character the texts may use."""

    strokes: list[Tensor]
    texts: list[str]
    writers: list[int]
    alphabet: str = ALPHABET

    def __len__(self) -> int:
        return len(self.strokes)


def _seed(*entropy: int) -> int:
    return int(np.random.SeedSequence(list(entropy)).generate_state(1)[0])


def handwriting(
    split: str = "train",
    num_writers: int = 100,
    num_texts: int = 2000,
    texts_per_writer: int = 40,
    font: str = "futural",
    seed: int = 0,
    progress: bool = True,
) -> HandwritingData:
    """Simulated handwriting: many writers (:meth:`WriterStyle.sample`) writing short texts.

    ``num_writers`` writers and ``num_texts`` distinct texts
    (:func:`~pyro_frmdn.data.random_texts`: 1-4 words, at most 25 characters) are made from
    ``seed``; both are split 80/10/10 (:data:`FRACTIONS`, :func:`~pyro_frmdn.data.random_split`).
    The texts of a split are dealt out in a random order, ``texts_per_writer`` different ones
    to each writer of the split in turn, round after round, so every text is written by as
    many writers as the others (give or take one); each rendering has its own seed. The test
    writers and test texts are never seen in training, nor are the validation ones. With the
    defaults: 3,200 training samples (80 writers, 1,600 texts, each written twice), 400
    validation and 400 test samples (10 writers, 200 texts); 197 points (27 to 437) and 23
    strokes per sample on average, ``dx, dy`` of standard deviation 0.27 and 0.24, ``pen_up``
    on 12% of the points. The same arguments always give the same data.

    Arguments:
        split: ``"train"``, ``"val"`` or ``"test"``.
        num_writers, num_texts: the writers and texts of all splits together.
        texts_per_writer: texts each writer writes (at most the texts of the split).
        font: the Hershey font every writer starts from.
        seed: the seed of the writers, texts, splits and renderings.
        progress: show a progress bar (tqdm) while the texts are rendered.

    Example:
        >>> data = handwriting("test", num_writers=10, num_texts=20, texts_per_writer=2,
        ...                    progress=False)
        >>> len(data), data.strokes[0].shape[-1]
        (2, 3)
    """
    split = check_split(split)
    counts = (("num_writers", num_writers), ("num_texts", num_texts))
    for name, value in (*counts, ("texts_per_writer", texts_per_writer)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {value!r}")
    for name, value in counts:
        if value < 10:
            raise ValueError(f"{name} must be >= 10 (one per split at least), got {value}")
    texts = random_texts(num_texts, seed=seed, alphabet=ALPHABET)
    writers = random_split(num_writers, FRACTIONS, _seed(seed, 1))[split]
    own_texts = random_split(num_texts, FRACTIONS, _seed(seed, 2))[split]
    if not 1 <= texts_per_writer <= len(own_texts):
        raise ValueError(
            f"texts_per_writer must be in [1, {len(own_texts)}] (the {split} texts), "
            f"got {texts_per_writer}"
        )
    order = np.random.default_rng(_seed(seed, 4)).permutation(own_texts)
    data = HandwritingData([], [], [])
    bar = tqdm(
        total=len(writers) * texts_per_writer, disable=not progress, desc=f"handwriting {split}"
    )
    for i, w in enumerate(writers.tolist()):
        style = WriterStyle.sample(_seed(seed, 3, w))
        dealt = (i * texts_per_writer + np.arange(texts_per_writer)) % len(order)
        for j in order[dealt].tolist():
            data.strokes.append(render_text(texts[j], font, style, seed=_seed(seed, 5, w, j)))
            data.texts.append(texts[j])
            data.writers.append(w)
        bar.update(texts_per_writer)
    bar.close()
    return data


def pad_strokes(strokes: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Stroke sequences ``(T_i, 3)`` padded into ``y`` ``(B, T, 3)`` (zeros) and ``mask``
    ``(B, T)`` (True on the real steps), as the models take them.

    Example:
        >>> y, mask = pad_strokes([render_text("a"), render_text("ab")])
        >>> y.shape[0], mask.sum(-1).tolist() == [len(render_text(t)) for t in ("a", "ab")]
        (2, True)
    """
    if not isinstance(strokes, (list, tuple)) or not strokes:
        raise ValueError("strokes must be a non-empty list of (T_i, 3) tensors")
    for i, s in enumerate(strokes):
        if not isinstance(s, Tensor):
            raise TypeError(f"strokes[{i}] must be a (T_i, 3) tensor, got {type(s).__name__}")
        if s.dim() != 2 or s.shape[-1] != 3:
            raise ValueError(f"strokes[{i}] must be a (T_i, 3) tensor, got {tuple(s.shape)}")
    return pad_sequences(list(strokes))
