"""KanjiVG strokes: SVG read and resampled (svgpathtools), pen-up offsets, the grid, errors."""

import numpy as np
import pytest
import torch
from support.real_data import hide_module as _hide_module
from support.real_data import needs, needs_distribution

from pyro_frmdn.data.kanji import kanji_split, kanji_strokes, read_strokes


def _svg(paths):
    body = "".join(f'<path id="s{i}" d="{d}"/>' for i, d in enumerate(paths))
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="109" height="109" '
        f'viewBox="0 0 109 109"><g>{body}</g></svg>'
    )


def test_missing_svgpathtools_is_named(monkeypatch, tmp_path):
    (tmp_path / "04e00.svg").write_text(_svg(["M10,50 L90,50"]))
    _hide_module(monkeypatch, "svgpathtools")
    with pytest.raises(ImportError, match="'svgpathtools'"):
        read_strokes(tmp_path / "04e00.svg")


def test_strokes_are_resampled_and_turned_into_offsets_with_pen_up(tmp_path):
    needs("svgpathtools")
    (tmp_path / "04e8c.svg").write_text(_svg(["M10,20 L30,20", "M10,60 C20,60 30,60 40,60"]))
    strokes, centre = read_strokes(tmp_path / "04e8c.svg", spacing=5.0)
    assert np.allclose(centre, [54.5, 54.5])
    assert np.allclose(strokes[0], [[10, 20], [15, 20], [20, 20], [25, 20], [30, 20]])
    assert np.allclose(strokes[1][:, 0], np.linspace(10, 40, 7)) and np.allclose(
        strokes[1][:, 1], 60
    )
    data, chars = kanji_strokes(
        characters="二",
        spacing=5.0,
        scale=2.0,
        svg_dir=tmp_path,
        cache_dir=tmp_path,
        return_labels=True,
    )
    y = data["y"][0]
    assert chars == ["二"] and data["y"].shape == (1, 12, 3) and data["mask"].all()
    assert torch.allclose(y[0], torch.tensor([(10 - 54.5) / 2, (20 - 54.5) / 2, 0.0]))
    assert torch.allclose(y[1:5, :2], torch.tensor([2.5, 0.0]).expand(4, 2))
    assert torch.allclose(y[5], torch.tensor([-10.0, 20.0, 0.0]))  # the move between strokes
    assert torch.equal(y[:, 2].nonzero().flatten(), torch.tensor([4, 11]))
    with pytest.raises(ValueError, match="no KanjiVG drawing"):
        kanji_strokes(characters="三", svg_dir=tmp_path, cache_dir=tmp_path)


def test_bad_svg_is_reported(tmp_path):
    needs("svgpathtools")
    (tmp_path / "a.svg").write_text(_svg(["M500,20 L530,20"]))
    with pytest.raises(ValueError, match="outside its viewBox"):
        read_strokes(tmp_path / "a.svg")
    (tmp_path / "b.svg").write_text("<svg")
    with pytest.raises(ValueError, match="not valid SVG"):
        read_strokes(tmp_path / "b.svg")


# -- KanjiVG -------------------------------------------------------------------------------------


def test_kanji_strokes_of_a_few_characters(cache):
    needs("svgpathtools")
    needs_distribution("kanjivg")
    data, chars = kanji_strokes(characters="一二三日本", return_labels=True, cache_dir=cache)
    y, mask = data["y"], data["mask"]
    assert chars == list("一二三日本") and y.shape[0] == 5 and y.shape[-1] == 3
    pen = y[..., 2]
    assert set(pen.unique().tolist()) <= {0.0, 1.0}
    assert pen.sum(1).tolist() == [1, 2, 3, 4, 5]  # the stroke counts
    last = mask.sum(1) - 1
    assert (pen[torch.arange(5), last] == 1).all() and (y[~mask] == 0).all()
    assert 0.2 < float(y[mask][:, :2].pow(2).mean().sqrt()) < 5
    test, names = kanji_strokes("test", limit=3, return_labels=True, cache_dir=cache)
    assert test["y"].shape[0] == len(names) == 3 and all(kanji_split(c) == "test" for c in names)


def test_kanji_strokes_on_a_grid_are_the_rounded_points(cache):
    needs("svgpathtools")
    needs_distribution("kanjivg")
    exact = kanji_strokes(characters="日本", scale=1.0, cache_dir=cache)
    rounded = kanji_strokes(characters="日本", scale=1.0, grid=0.5, cache_dir=cache)
    mask = exact["mask"]
    assert torch.equal(rounded["mask"], mask)
    assert torch.equal(rounded["y"][..., 2], exact["y"][..., 2])  # the pen is untouched
    # positions: the canvas centre (54.5, 54.5) plus the running sum of the offsets
    points = 54.5 + exact["y"][..., :2].double().cumsum(1)
    on_grid = 54.5 + rounded["y"][..., :2].double().cumsum(1)
    on_grid, points = on_grid[mask], points[mask]
    assert torch.allclose(on_grid * 2, (on_grid * 2).round(), atol=1e-3)  # on the grid
    assert ((on_grid - points).abs() <= 0.25 + 1e-3).all()  # the nearest point (ties either way)
    assert ((on_grid - points).abs() > 0.1).any()  # and the points did move
    with pytest.raises(ValueError, match="grid"):
        kanji_strokes(characters="日", grid=4.0, cache_dir=cache)  # not finer than the spacing
