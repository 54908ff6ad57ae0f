"""Texts as pen strokes: exact glyphs, each writer variation, the data set and its splits."""

import functools
import importlib
import math
from collections import Counter

import numpy as np
import pytest
import torch
from support.real_data import hide_module, needs

from pyro_frmdn.data import ALPHABET, WriterStyle, handwriting, pad_strokes, render_text
from pyro_frmdn.data.texts import random_texts

needs("HersheyFonts", "Hershey-Fonts")
needs("wonderwords")
CAP_HEIGHT = 21.0  # futural: cap line -12, base line 9 (font units, y down)


def _strokes(y: torch.Tensor) -> list[np.ndarray]:
    """Absolute points of each stroke: the offsets summed, cut after each pen_up."""
    y = y.double().numpy()
    points = np.cumsum(y[:, :2], axis=0)
    ends = np.flatnonzero(y[:, 2] == 1) + 1
    assert ends[-1] == len(y), "the last point must end a stroke"
    return np.split(points, ends[:-1])


@functools.cache
def _font(name: str = "futural"):
    from HersheyFonts import HersheyFonts

    fonts = HersheyFonts()
    fonts.load_default_font(name)
    return fonts


def _font_strokes(text: str, font: str = "futural") -> list[np.ndarray]:
    """The font package's own rendering, mapped to cap heights with y up."""
    return [
        np.array([(x / CAP_HEIGHT, (9.0 - y) / CAP_HEIGHT) for x, y in s])
        for s in _font(font).strokes_for_text(text)
    ]


@pytest.mark.parametrize(
    "text, font",
    [
        ("A", "futural"),
        ("Hi there", "futural"),
        ("Graves 2013, p. 5!", "futural"),
        ("(x-y): 'q'?", "futural"),
        ("Script, 42", "scripts"),
        ("Times; 7", "timesr"),
    ],
)
def test_plain_style_reproduces_the_fonts_glyphs_exactly(text, font):
    y = render_text(text, font=font)
    assert y.dtype == torch.float32 and y.shape[-1] == 3
    assert set(y[:, 2].tolist()) <= {0.0, 1.0}
    ours, reference = _strokes(y), _font_strokes(text, font)
    assert len(ours) == len(reference)
    for a, b in zip(ours, reference, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_a_single_glyph_is_its_raw_coordinates():
    glyph = _font().all_glyphs["k"]
    expected = [
        np.array([((x - glyph.left_offset) / 21, (9 - y) / 21) for x, y in s])
        for s in glyph.strokes
    ]
    for a, b in zip(_strokes(render_text("k")), expected, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    # the first row is the move from the origin to the first point
    np.testing.assert_allclose(render_text("k")[0, :2].numpy(), expected[0][0], atol=1e-6)


@pytest.mark.parametrize(
    "style, transform",
    [
        (WriterStyle(slant=0.3), lambda p: p + np.stack([0.3 * p[:, 1], 0 * p[:, 1]], -1)),
        (WriterStyle(width=1.4), lambda p: p * [1.4, 1.0]),
        (WriterStyle(size=0.5), lambda p: p * 0.5),
        (
            WriterStyle(size=2, width=0.5, slant=-0.1),
            lambda p: 2 * (p * [0.5, 1] + [-0.1, 0] * p[:, 1:]),
        ),
    ],
)
def test_size_width_and_slant_are_the_documented_linear_maps(style, transform):
    for ours, clean in zip(
        _strokes(render_text("Kw", style=style)), _font_strokes("Kw"), strict=True
    ):
        np.testing.assert_allclose(ours, transform(clean), atol=1e-5)


def test_spacing_moves_each_character_by_the_spacing_times_its_position():
    ours = _strokes(render_text("HIH", style=WriterStyle(spacing=0.25)))
    clean = _font_strokes("HIH")
    shifts = [0.0] * 3 + [0.25] + [0.5] * 3  # H has 3 strokes, I has 1
    for a, b, shift in zip(ours, clean, shifts, strict=True):
        np.testing.assert_allclose(a, b + [shift, 0.0], atol=1e-5)


def _distance_to_polyline(points: np.ndarray, line: np.ndarray) -> np.ndarray:
    a, b = line[:-1], line[1:]
    ab = b - a
    t = np.clip(((points[:, None] - a) * ab).sum(-1) / (ab * ab).sum(-1), 0, 1)
    nearest = a + t[..., None] * ab
    return np.linalg.norm(points[:, None] - nearest, axis=-1).min(1)


def test_speed_resamples_each_stroke_at_equal_arc_length_on_the_glyph():
    speed = 9.0
    ours = _strokes(render_text("Sb", style=WriterStyle(speed=speed)))
    clean = _font_strokes("Sb")
    assert len(ours) == len(clean)
    for a, b in zip(ours, clean, strict=True):
        length = np.linalg.norm(np.diff(b, axis=0), axis=1).sum()
        assert len(a) == max(2, round(length * speed) + 1)
        np.testing.assert_allclose(a[[0, -1]], b[[0, -1]], atol=1e-5)
        assert _distance_to_polyline(a, b).max() < 1e-5
        chord = np.linalg.norm(np.diff(a, axis=0), axis=1)  # arc steps where the glyph is straight
        assert chord.max() <= length / (len(a) - 1) + 1e-5


def test_drift_raises_the_baseline_by_a_function_of_x_with_the_given_spread():
    text, drift = "HIT", 0.1
    clean = np.concatenate(_font_strokes(text))
    shifts = []
    for seed in range(400):
        p = np.concatenate(_strokes(render_text(text, style=WriterStyle(drift=drift), seed=seed)))
        np.testing.assert_allclose(p[:, 0], clean[:, 0], atol=1e-5)  # x unchanged
        raised = p[:, 1] - clean[:, 1]
        same_x = np.abs(clean[:, None, 0] - clean[None, :, 0]) < 1e-9  # e.g. a vertical stroke
        assert np.abs(raised[:, None] - raised[None, :])[same_x].max() < 1e-5
        shifts.append(raised)
    rms = math.sqrt(np.mean(np.square(shifts)))
    assert abs(rms - drift) < 0.15 * drift


def test_wobble_is_smooth_and_jitter_is_not():
    style = dict(speed=20.0, wobble_wavelength=2.0)
    clean = np.concatenate(_strokes(render_text("ocean", style=WriterStyle(**style))))
    ratios = {}
    for kind in ("wobble", "jitter"):
        moves, steps = [], []
        for seed in range(100):
            y = render_text("ocean", style=WriterStyle(**style, **{kind: 0.03}), seed=seed)
            moved = np.concatenate(_strokes(y)) - clean
            moves.append(moved)
            steps.append(np.diff(moved, axis=0))
        rms = math.sqrt(np.mean(np.square(np.concatenate(moves))))
        assert abs(rms - 0.03) < 0.15 * 0.03, kind
        ratios[kind] = math.sqrt(np.mean(np.square(np.concatenate(steps)))) / rms
    assert ratios["wobble"] < 0.5  # neighbours move together
    assert abs(ratios["jitter"] - math.sqrt(2)) < 0.1  # independent noise


def test_the_same_seed_gives_the_same_strokes_and_another_seed_others():
    style = WriterStyle.sample(3)
    a, b = render_text("seed", style=style, seed=1), render_text("seed", style=style, seed=1)
    assert torch.equal(a, b)
    assert not torch.equal(a, render_text("seed", style=style, seed=2))


def test_sampled_writers_are_reproducible_distinct_and_in_range():
    styles = [WriterStyle.sample(s) for s in range(200)]
    assert WriterStyle.sample(5) == styles[5] and styles[0] != styles[1]
    slants = np.array([s.slant for s in styles])
    assert slants.min() >= -0.2 and slants.max() <= 0.6 and 0.1 < slants.mean() < 0.3
    assert all(0.8 <= s.size <= 1.2 and 5 <= s.speed <= 8 for s in styles)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"size": 0.0}, ValueError, "size must be positive"),
        ({"speed": -1.0}, ValueError, "speed must be positive"),
        ({"wobble": -0.1}, ValueError, "wobble must be >= 0"),
        ({"slant": float("nan")}, ValueError, "slant must be finite"),
        ({"width": "wide"}, TypeError, "width must be a number"),
        ({"drift": True}, TypeError, "drift must be a number"),
    ],
)
def test_bad_styles_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        WriterStyle(**kwargs)


def test_bad_render_arguments_are_named():
    with pytest.raises(ValueError, match="no glyph for the characters 'é'"):
        render_text("café")
    with pytest.raises(ValueError, match="font must be one of the Hershey fonts"):
        render_text("a", font="comic sans")
    with pytest.raises(ValueError, match="at least one character that draws"):
        render_text("   ")
    with pytest.raises(TypeError, match="text must be a str"):
        render_text(42)
    with pytest.raises(TypeError, match="style must be a WriterStyle"):
        render_text("a", style={"slant": 1})


def test_a_missing_package_is_named(monkeypatch):
    module = importlib.import_module("pyro_frmdn.data.handwriting")  # the name is the function's
    texts = importlib.import_module("pyro_frmdn.data.texts")

    hide_module(monkeypatch, "HersheyFonts", "wonderwords")
    monkeypatch.setattr(module, "_font", functools.lru_cache(module._font.__wrapped__))
    monkeypatch.setattr(texts, "word_lists", functools.lru_cache(texts.word_lists.__wrapped__))
    with pytest.raises(ImportError, match="'Hershey-Fonts'"):
        render_text("a")
    with pytest.raises(ImportError, match="'wonderwords'"):
        random_texts(3)


def _glyph_strokes(text: str) -> int:
    return len(_font_strokes(text))


def test_the_data_set_is_split_by_writer_and_by_text():
    kwargs = dict(num_writers=20, num_texts=50, texts_per_writer=3, seed=4)
    parts = {split: handwriting(split, **kwargs) for split in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [16 * 3, 2 * 3, 2 * 3]
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not set(parts[a].writers) & set(parts[b].writers)
        assert not set(parts[a].texts) & set(parts[b].texts)
    data = parts["train"]
    for part, texts in ((data, 40), (parts["test"], 5)):  # 48 and 6 samples: each text 1-2 times
        counts = Counter(part.texts)
        assert len(counts) == texts and set(counts.values()) == {1, 2}
        assert all(len(set(part.texts[i : i + 3])) == 3 for i in range(0, len(part), 3))
    for strokes, text in zip(data.strokes, data.texts, strict=True):
        assert set(text) <= set(ALPHABET) and 1 <= len(text.split()) <= 4 and len(text) <= 25
        assert strokes.dtype == torch.float32 and torch.isfinite(strokes).all()
        assert strokes[-1, 2] == 1 and int(strokes[:, 2].sum()) == _glyph_strokes(text)
    again = handwriting("train", **kwargs)
    assert again.texts == data.texts and again.writers == data.writers
    assert all(torch.equal(a, b) for a, b in zip(again.strokes, data.strokes, strict=True))
    assert handwriting("train", **{**kwargs, "seed": 5}).texts != data.texts
    assert data.alphabet == ALPHABET


def test_bad_data_set_arguments_are_named():
    with pytest.raises(ValueError, match="split must be one of"):
        handwriting("dev", num_writers=10, num_texts=10, texts_per_writer=1)
    with pytest.raises(ValueError, match="texts_per_writer must be in"):
        handwriting("test", num_writers=10, num_texts=10, texts_per_writer=2)
    with pytest.raises(ValueError, match="num_writers must be >= 10"):
        handwriting("test", num_writers=3)
    with pytest.raises(TypeError, match=r"num_texts must be an int, got 20\.0"):
        handwriting("test", num_texts=20.0)


def test_random_texts_are_distinct_short_reproducible_and_in_the_alphabet():
    texts = random_texts(300, seed=1, max_length=20, alphabet=ALPHABET)
    assert len(set(texts)) == 300 and max(map(len, texts)) <= 20
    assert set("".join(texts)) <= set(ALPHABET)
    assert random_texts(300, seed=1, max_length=20, alphabet=ALPHABET) == texts
    assert random_texts(300, seed=2, max_length=20, alphabet=ALPHABET) != texts
    with pytest.raises(ValueError, match="could not draw 50 distinct texts"):
        random_texts(50, seed=0, alphabet="abc ")
    with pytest.raises(ValueError, match="max_length must be an int >= 12"):
        random_texts(3, max_length=5)


def test_pad_strokes_pads_with_zeros_and_masks_the_padding():
    strokes = [render_text("ab"), render_text("Hello"), render_text("i")]
    y, mask = pad_strokes(strokes)
    lengths = [len(s) for s in strokes]
    assert y.shape == (3, max(lengths), 3) and mask.sum(-1).tolist() == lengths
    for i, s in enumerate(strokes):
        assert torch.equal(y[i, : len(s)], s) and not y[i, len(s) :].any()
    with pytest.raises(ValueError, match=r"strokes\[1\] must be a \(T_i, 3\) tensor"):
        pad_strokes([render_text("a"), torch.zeros(4, 2)])
    with pytest.raises(ValueError, match="non-empty list"):
        pad_strokes([])
    with pytest.raises(TypeError, match=r"strokes\[0\] must be a \(T_i, 3\) tensor, got ndarray"):
        pad_strokes([np.zeros((3, 3))])
