"""The synthetic tasks: shapes, one seed one draw, the structure each task promises, bad names."""

import math

import pytest
import torch

from pyro_frmdn.data.synthetic import (
    TASKS,
    banana_sequences,
    branching_trajectories,
    inverse_sine,
    make_task,
)


def test_inverse_sine_shapes_and_the_curve_it_inverts():
    x, y = inverse_sine(300, seed=2)
    assert x.shape == y.shape == (300, 1)
    assert ((y >= 0) & (y < 1)).all()
    x0, y0 = inverse_sine(300, noise=0.0, seed=2)
    assert torch.equal(y0, y)  # the noise is drawn after y
    assert torch.allclose(x0, y0 + 0.3 * torch.sin(2 * math.pi * y0))


def test_branching_paths_go_right_then_turn_up_or_down():
    y = branching_trajectories(n=200, steps=16, noise=0.0, seed=4)
    assert y.shape == (200, 16, 2) and y.dtype == torch.float32
    dx, dy = y[..., 0], y[..., 1]
    turned = dx == 0.6
    assert ((dx == 1.0) | turned).all()
    assert torch.equal(dy == 0, ~turned)
    assert ((dy[turned] == 0.8) | (dy[turned] == -0.8)).all()
    first = turned.float().argmax(1)  # the turn: between steps / 4 and 3 steps / 4
    assert ((first >= 4) & (first < 12)).all()
    assert (turned.sum(1) == 16 - first).all()  # once turned, stays turned
    direction = dy[:, -1].sign()
    assert (direction == 1).any() and (direction == -1).any()  # both futures occur


def test_banana_steps_lie_on_the_parabola():
    y = banana_sequences(n=400, steps=10, curvature=1.0, noise=0.0, seed=1)
    assert y.shape == (400, 10, 2) and torch.isfinite(y).all()
    u = y[..., 0]
    assert torch.allclose(y[..., 1] * math.sqrt(2), u.square() - 1, atol=1e-5)
    assert abs(float(u.mean())) < 0.2 and 0.8 < float(u.std()) < 1.2  # roughly standardised


@pytest.mark.parametrize(
    "draw",
    [
        lambda seed: inverse_sine(50, seed=seed)[0],
        lambda seed: branching_trajectories(n=20, steps=8, seed=seed),
        lambda seed: banana_sequences(n=20, steps=8, seed=seed),
        lambda seed: make_task("banana", n=20, steps=8, seed=seed),
    ],
    ids=["inverse_sine", "branching", "banana", "make_task"],
)
def test_one_seed_gives_one_draw_and_another_seed_another(draw):
    assert torch.equal(draw(3), draw(3))
    assert not torch.equal(draw(3), draw(4))


@pytest.mark.parametrize("name", sorted(TASKS))
def test_make_task_is_the_named_generator(name):
    y = make_task(name, n=12, steps=5, seed=7)
    assert y.shape == (12, 5, 2)
    assert torch.equal(y, TASKS[name](n=12, steps=5, seed=7))


def test_an_unknown_task_is_refused_with_its_name_and_the_choices():
    with pytest.raises(ValueError, match=r"unknown task 'spiral'.*\['banana', 'branching'\]"):
        make_task("spiral")
