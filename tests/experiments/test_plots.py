"""The suite's figures: pen strokes and image mosaics."""

import numpy as np

from pyro_frmdn.experiments.plots import draw_strokes, mosaic


def test_strokes_are_drawn_with_the_pen_lifted_where_pen_up_is_1():
    from matplotlib.figure import Figure

    steps = np.array([[0, 0, 0], [1, 0, 1], [0, 2, 0], [0, 1, 0], [1, 1, 1], [3, 3, 0]], float)
    ax = Figure().add_subplot()
    draw_strokes(ax, steps, offset=2.0)
    lines = [line.get_xydata() for line in ax.lines]
    assert len(lines) == 3  # two strokes ended by pen_up, and the unfinished last one
    # points (0,0) (1,0) | (1,2) (1,3) (2,4) | (5,7), y negated, scaled by the larger span 7
    np.testing.assert_allclose(lines[0], [[2, 1], [2 + 1 / 7, 1]])
    np.testing.assert_allclose(
        lines[1], [[2 + 1 / 7, 5 / 7], [2 + 1 / 7, 4 / 7], [2 + 2 / 7, 3 / 7]]
    )
    np.testing.assert_allclose(lines[2], [[2 + 5 / 7, 0]])


def test_mosaic_places_images_with_a_grey_gap():
    images = np.stack([np.full((2, 3), float(i)) for i in range(4)])
    m = mosaic(images, rows=2)
    assert m.shape == (5, 7)
    np.testing.assert_array_equal(m[:2, :3], 0)
    np.testing.assert_array_equal(m[:2, 4:], 1)
    np.testing.assert_array_equal(m[3:, :3], 2)
    np.testing.assert_array_equal(m[3:, 4:], 3)
    assert (m[2] == 0.5).all() and (m[:, 3] == 0.5).all()
