"""Handwriting figures: strokes drawn with pen-up gaps, attention maps, SVG export."""

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

from pyro_frmdn.plots import plot_attention, plot_strokes, save_svg

SVG = "{http://www.w3.org/2000/svg}"
# two strokes: (1, 2) -> (4, 2), pen up, then (4, 1) -> (4, 0)
TWO_STROKES = torch.tensor([[1.0, 2, 0], [3, 0, 1], [0, -1, 0], [0, -1, 1]])


def _svg_paths(path) -> tuple[ET.Element, list[np.ndarray]]:
    root = ET.parse(path).getroot()
    paths = []
    for element in root.iter(f"{SVG}path"):
        numbers = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", element.get("d"))]
        assert element.get("d").startswith("M ")
        paths.append(np.array(numbers).reshape(-1, 2))
    return root, paths


def _points(offsets: torch.Tensor) -> list[np.ndarray]:
    y = offsets.double().numpy()
    points = np.cumsum(y[:, :2], axis=0)
    return np.split(points, np.flatnonzero(y[:, 2] == 1)[:-1] + 1)


def test_save_svg_writes_one_path_per_stroke_at_the_known_coordinates(tmp_path):
    root, paths = _svg_paths(save_svg(TWO_STROKES, tmp_path / "a.svg", scale=10, margin=5))
    assert root.tag == f"{SVG}svg" and root.get("viewBox") == "0 0 40 30"
    assert len(paths) == 2
    np.testing.assert_allclose(paths[0], [[5, 5], [35, 5]])
    np.testing.assert_allclose(paths[1], [[35, 15], [35, 25]])


def test_save_svg_keeps_the_shape_of_real_strokes_and_stacks_several_lines(tmp_path):
    g = torch.Generator().manual_seed(0)
    first = torch.cat([torch.randn(30, 2, generator=g), torch.zeros(30, 1)], -1)
    first[[4, 11, 12, 29], 2] = 1  # strokes of 5, 7, 1 (a dot) and 17 points
    second = TWO_STROKES
    _, paths = _svg_paths(save_svg([first, second], tmp_path / "b.svg", scale=25))
    assert len(paths) == 4 + 2
    expected = _points(first)
    svg_first = paths[:4]
    assert len(svg_first[2]) == 2 and np.array_equal(svg_first[2][0], svg_first[2][1])  # a dot
    svg_first[2] = svg_first[2][:1]
    flat, ours = np.concatenate(expected), np.concatenate(svg_first)
    shift = ours - flat * [25, -25]  # x scaled, y scaled and flipped, then shifted
    np.testing.assert_allclose(shift, np.broadcast_to(shift[0], shift.shape), atol=2e-3)
    lowest_first = max(p[:, 1].max() for p in svg_first)
    assert all(p[:, 1].min() > lowest_first for p in paths[4:])  # the second line is below


@pytest.mark.parametrize("save", [save_svg, plot_strokes])
def test_bad_strokes_are_named(save, tmp_path):
    bad = TWO_STROKES.clone()
    bad[1, 0] = float("nan")
    with pytest.raises(ValueError, match="strokes has values that are not finite"):
        save(bad, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"strokes\[1\] must have shape \(T, 3\)"):
        save([TWO_STROKES, torch.zeros(5, 2)], tmp_path / "x.png")
    with pytest.raises(TypeError, match="strokes must be a"):
        save("abc", tmp_path / "x.png")
    with pytest.raises(ValueError, match="non-empty list"):
        save([], tmp_path / "x.png")


def _dark_pixels(path) -> int:
    from PIL import Image

    with Image.open(path) as im:
        return int((np.asarray(im.convert("L")) < 128).sum())


def test_plot_strokes_leaves_a_gap_where_the_pen_is_up(tmp_path):
    bars = torch.tensor([[0.0, 0, 0], [0, 1, 1], [2, -1, 0], [0, 1, 1]])  # two vertical bars
    joined = bars.clone()
    joined[1, 2] = 0  # the same points, drawn without lifting the pen
    lifted = plot_strokes([bars], tmp_path / "lifted.png")
    drawn = plot_strokes([joined], tmp_path / "joined.png")
    assert 0 < _dark_pixels(lifted) < _dark_pixels(drawn)


def test_plot_strokes_draws_a_line_per_text_with_titles(tmp_path):
    from PIL import Image

    one = plot_strokes(TWO_STROKES, tmp_path / "one.png")
    three = plot_strokes([TWO_STROKES] * 3, tmp_path / "three.png", texts=["a", "b", "c"])
    with Image.open(one) as a, Image.open(three) as b:
        assert b.size[1] > 2 * a.size[1]  # three lines are taller than one
    with pytest.raises(ValueError, match="texts has 2 items for 3 stroke sequences"):
        plot_strokes([TWO_STROKES] * 3, tmp_path / "x.png", texts=["a", "b"])


def _bright_rows(path) -> float:
    from PIL import Image

    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB")).astype(int)
    image = rgb[:, : int(0.75 * rgb.shape[1])]  # the map, not the colour bar
    yellow = (image[..., 0] > 200) & (image[..., 1] > 200) & (image[..., 2] < 100)
    return float(np.flatnonzero(yellow.any(1)).mean())


def test_plot_attention_puts_characters_top_down(tmp_path):
    phi = torch.full((40, 5), 0.01)
    first, last = phi.clone(), phi.clone()
    first[:, 0], last[:, 4] = 1.0, 1.0
    top = _bright_rows(plot_attention(first, "hello", tmp_path / "first.png"))
    bottom = _bright_rows(plot_attention(last, "hello", tmp_path / "last.png"))
    assert top < bottom


def test_bad_attention_inputs_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"phi must have shape \(T, len\(text\)=4\)"):
        plot_attention(torch.rand(10, 5), "abcd", tmp_path / "x.png")
    with pytest.raises(ValueError, match="phi has values that are not finite"):
        plot_attention(torch.tensor([[float("inf"), 0.0]]), "ab", tmp_path / "x.png")
    with pytest.raises(TypeError, match="phi must be a"):
        plot_attention([[0.5, 0.5]], "ab", tmp_path / "x.png")
    with pytest.raises(TypeError, match="text must be a str"):
        plot_attention(torch.rand(3, 2), ["a", "b"], tmp_path / "x.png")
