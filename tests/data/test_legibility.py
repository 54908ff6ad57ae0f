"""text_match, dtw, resample_path: a plain reference DTW, renderings that must read as their
text (clean and by simulated writers), a shuffled assignment that must score about chance."""

import math
import random

import pytest
import torch

pytest.importorskip("HersheyFonts", reason="the renderings need the Hershey-Fonts package")

from pyro_frmdn.data import ALPHABET, WriterStyle, random_texts, render_text
from pyro_frmdn.data.legibility import dtw, resample_path, text_match

POOL = random_texts(200, seed=5, alphabet=ALPHABET)
TEXTS = POOL[:40]


def reference_dtw(a, b):
    """The textbook O(n m) recursion, in Python floats."""
    n, m = len(a), len(b)
    table = [[math.inf] * (m + 1) for _ in range(n + 1)]
    table[0][0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost = math.dist(a[i - 1], b[j - 1])
            table[i][j] = cost + min(table[i - 1][j], table[i][j - 1], table[i - 1][j - 1])
    return table[n][m] / (n + m)


@pytest.mark.parametrize("n, m", [(1, 1), (5, 9), (12, 7)])
def test_dtw_against_the_textbook_recursion(n, m):
    g = torch.Generator().manual_seed(n * m)
    a, b = torch.randn(3, n, 2, generator=g), torch.randn(3, m, 2, generator=g)
    got = dtw(a, b)
    for p in range(3):
        assert got[p].item() == pytest.approx(reference_dtw(a[p].tolist(), b[p].tolist()), 1e-9)


def test_resample_path_forgets_position_size_and_speed():
    y = render_text("Hello")
    path = resample_path(y, 50)
    assert path.shape == (50, 2)
    assert torch.allclose(path.mean(0), torch.zeros(2), atol=1e-6)
    assert (path**2).sum(-1).mean().item() == pytest.approx(1.0, 1e-5)
    bigger = y.clone()
    bigger[:, :2] *= 3.0
    bigger[0, :2] += torch.tensor([5.0, -2.0])  # starts elsewhere
    assert torch.allclose(resample_path(bigger, 50), path, atol=1e-5)
    halves = torch.cat(
        [y[1:, :2].repeat_interleave(2, 0) / 2, y[1:, 2:].repeat_interleave(2, 0)], 1
    )
    halves[0::2, 2] = 0.0  # each move after the first in two halves, the pen bit on the second
    finer = torch.cat([y[:1], halves])
    assert torch.allclose(resample_path(finer, 50), path, atol=1e-5)


def test_clean_renderings_read_as_their_texts():
    written = [render_text(t) for t in TEXTS]
    assert bool(text_match(written, TEXTS, POOL).all())


def test_simulated_writers_read_as_their_texts():
    written = [render_text(t, style=WriterStyle.sample(i), seed=i) for i, t in enumerate(TEXTS)]
    assert text_match(written, TEXTS, POOL, num_others=4).float().mean().item() >= 0.9


def test_a_shuffled_assignment_scores_about_chance():
    rng = random.Random(0)
    written = []
    for i, t in enumerate(TEXTS):
        other = rng.choice([u for u in POOL if len(u) == len(t) and u != t])
        written.append(render_text(other, style=WriterStyle.sample(i), seed=i))
    score = text_match(written, TEXTS, POOL, num_others=4).float().mean().item()
    assert score <= 0.4  # chance is 1/5; a writing of another text is never nearer its own


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: resample_path(torch.zeros(4, 2)), "shape"),
        (lambda: resample_path(torch.full((4, 3), math.nan)), "NaN"),
        (lambda: resample_path(torch.zeros(4, 3), 1), "num_points"),
        (lambda: text_match([render_text("ab")], ["ab", "cd"], POOL), "written"),
        (lambda: text_match([render_text("ab")], ["ab"], POOL, num_others=0), "num_others"),
        (lambda: text_match([render_text("ab")], ["ab"], ["ab", "xyz"]), "pool"),
        (lambda: dtw(torch.zeros(2, 3, 2), torch.zeros(3, 3, 2)), "a and b"),
    ],
)
def test_bad_inputs_are_refused_with_their_name(call, message):
    with pytest.raises(ValueError, match=message):
        call()
