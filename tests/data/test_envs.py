"""Environments seen through frames: cropping and resizing, seeded episodes, windows, CartPole."""

from functools import partial

import numpy as np
import pytest
import torch
from support.agents import BalanceEnv

from pyro_frmdn.data.envs import FrameEnv, collect_episodes, episode_windows, make_env


class Space:
    shape = (2,)


class Rendered:
    """A gymnasium-like environment drawn in rgb_array mode: rows 0-99 black, the rest white."""

    render_mode = "rgb_array"
    action_space = Space()

    def __init__(self):
        self.steps = 0

    def reset(self, seed=None):
        return "state", {}

    def render(self):
        frame = np.full((400, 600, 3), 255, dtype=np.uint8)
        frame[:100] = 0
        return frame

    def step(self, action):
        self.steps += 1
        return "state", 1, False, False, {}

    def close(self):
        pass


def test_frames_are_rendered_cropped_resized_and_channels_first():
    inner = Rendered()
    env = FrameEnv(inner, size=16, crop=(50, 250), skip_frames=3)
    frame, _ = env.reset(seed=0)
    assert inner.steps == 3  # the idle opening steps are not shown
    assert frame.shape == (3, 16, 16) and frame.dtype == np.uint8
    # rows 50-99 of the 200 kept are black: the top quarter of the frame
    assert (frame[:, :3] == 0).all() and (frame[:, 5:] == 255).all()
    frame, reward, terminated, truncated, _ = env.step(np.zeros(2))
    assert frame.shape == (3, 16, 16) and reward == 1.0 and not terminated and not truncated
    with pytest.raises(ValueError, match="size must be an integer >= 1"):
        FrameEnv(inner, size=0)


def test_collected_episodes_are_seeded_padded_and_cut_into_windows():
    make = partial(BalanceEnv, 12)
    data = collect_episodes(make, 4, seed=3, progress=False)
    again = collect_episodes(make, 4, seed=3, progress=False)
    assert all(torch.equal(data[k], again[k]) for k in data)
    t = data["mask"].shape[1]
    assert data["frames"].shape == (4, t, 3, 8, 8) and data["actions"].shape == (4, t, 2)
    steps = data["mask"].sum(1)
    assert torch.equal(data["returns"], steps.float())  # reward 1 a step
    assert (data["actions"].sum(-1) == data["mask"]).all()  # one-hot where there is a step
    for i in range(4):  # done exactly at the last step
        assert data["dones"][i].nonzero().flatten().tolist() == [int(steps[i]) - 1]
    w = episode_windows(data, 5)
    assert w["frames"].shape[1:] == (5, 3, 8, 8) and w["mask"].any(1).all()
    assert int(w["mask"].sum()) == int(data["mask"].sum())  # every step once
    flat = data["frames"][data["mask"]]
    assert torch.equal(w["frames"][w["mask"]], flat)
    with pytest.raises(ValueError, match="window must be an integer >= 1"):
        episode_windows(data, 0)
    with pytest.raises(ValueError, match="episodes must be an integer >= 1"):
        collect_episodes(make, 0)


def test_unknown_environments_are_refused():
    with pytest.raises(ValueError, match="name must be one of"):
        make_env("Pong")


def test_cartpole_from_pixels():
    pytest.importorskip("gymnasium")
    pytest.importorskip("pygame", reason="CartPole renders with pygame")
    env = make_env("CartPole-v1", 32)
    frame, _ = env.reset(seed=0)
    assert frame.shape == (3, 32, 32) and frame.dtype == np.uint8
    assert env.action_space.n == 2
    dark = frame.min(0) < 100  # the cart is drawn dark on white
    assert dark.any() and not dark.all()
    env.close()


class Counting:
    """A gymnasium-like environment whose observation is the frame, (4, 4, 3) of level 10 t."""

    render_mode = None
    action_space = Space()

    def reset(self, seed=None):
        self.t = 0
        return self._obs(), {}

    def _obs(self):
        return np.full((4, 4, 3), 10 * self.t, dtype=np.uint8)

    def step(self, action):
        self.t += 1
        return self._obs(), 1.0, False, False, {}

    def close(self):
        pass


def test_stacked_frames_show_the_last_k_oldest_first():
    env = FrameEnv(Counting(), size=4, stack=3)
    levels = lambda frame: frame.reshape(3, 3, -1)[:, 0, 0].tolist()  # noqa: E731
    frame, _ = env.reset(seed=0)
    assert frame.shape == (9, 4, 4) and levels(frame) == [0, 0, 0]  # the first frame repeated
    assert levels(env.step(0)[0]) == [0, 0, 10]
    assert levels(env.step(0)[0]) == [0, 10, 20]
    assert levels(env.step(0)[0]) == [10, 20, 30]
    assert levels(env.reset()[0]) == [0, 0, 0]  # a reset forgets the last episode
    with pytest.raises(ValueError, match="stack must be an integer >= 1"):
        FrameEnv(Counting(), size=4, stack=0)
