"""Environments seen through frames: cropping and resizing, seeded episodes, windows, CartPole."""

from functools import partial

import numpy as np
import pytest
import torch
from support.agents import BalanceEnv

from pyro_frmdn.data.envs import (
    FrameEnv,
    cartpole_cart,
    collect_episodes,
    episode_windows,
    make_env,
)


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


class Block(Rendered):
    """White frames with a black block over columns [left, left + 40) of rows 280-320."""

    def __init__(self, left):
        super().__init__()
        self.left = left

    def render(self):
        frame = np.full((400, 600, 3), 255, dtype=np.uint8)
        frame[280:320, self.left : self.left + 40] = 0
        return frame


@pytest.mark.parametrize("left, shown", [(300, (60, 100)), (10, (10, 50)), (555, (115, 155))])
def test_the_window_follows_the_located_column_and_stays_in_the_frame(left, shown):
    # the block's centre is column left + 19.5; the 160-column window is centred there unless
    # that would leave the frame, where it stops at the edge and the block shows off centre
    env = FrameEnv(Block(left), size=160, crop=(200, 360), columns=160, locate=cartpole_cart)
    frame, _ = env.reset()
    dark = np.flatnonzero((frame[0] == 0).any(0))
    assert (dark[0], dark[-1] + 1) == shown
    assert frame.shape == (3, 160, 160) and (frame[:, :80] == 255).all()  # rows 200-279 white


def test_the_cart_is_located_from_the_pixels_and_bad_windows_are_refused():
    frame = np.full((400, 600, 3), 255, dtype=np.uint8)
    assert cartpole_cart(frame) == 300  # no cart drawn: the middle
    frame[286:297, 100:151] = 0
    frame[286:297, 120:130] = [129, 132, 203]  # the hinge over the cart's middle
    assert cartpole_cart(frame) == 125
    with pytest.raises(ValueError, match="columns must be an integer >= 1"):
        FrameEnv(Rendered(), size=8, columns=0, locate=cartpole_cart)
    with pytest.raises(ValueError, match="columns and locate go together"):
        FrameEnv(Rendered(), size=8, columns=100)
    with pytest.raises(ValueError, match="columns must be at most the frame's width 600"):
        FrameEnv(Rendered(), size=8, columns=601, locate=cartpole_cart).reset()


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
    assert (steps < 12).any() and (steps == 12).any()
    for i in range(4):  # done exactly at the last step where |x| > 3 ended the episode; none
        # where the time limit (12 steps, gymnasium's truncated) cut it
        last = [int(steps[i]) - 1] if steps[i] < 12 else []
        assert data["dones"][i].nonzero().flatten().tolist() == last
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
    # the window follows the cart, located from the pixels to within a pixel of the state's x
    # (125 pixels a unit, the track's middle at column 300)
    rng = np.random.default_rng(0)
    for _ in range(30):
        x = env.env.unwrapped.state[0]
        assert abs(cartpole_cart(env.env.render()) - (300 + 125 * x)) <= 1
        if env.step(int(rng.integers(2)))[2]:
            break
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


@pytest.mark.parametrize("left", [10, 300, 555])
def test_the_overview_rows_show_the_whole_width_above_the_window(left):
    # 600 columns squeezed into 60: the block [left, left + 40) darkens wholly the overview's
    # columns it covers wholly, wherever the window is; below it, the window as before
    env = FrameEnv(Block(left), size=60, crop=(200, 360), columns=160, locate=cartpole_cart,
                   overview=8)  # fmt: skip
    frame, _ = env.reset()
    top, rest = frame[:, :8].astype(int), frame[:, 8:]
    covered = np.flatnonzero((top[0] < 64).any(0))  # the block's rows 280-320: the lower half
    assert (covered[0], covered[-1] + 1) == (-(-left // 10), (left + 40) // 10)
    assert (top[:, :3] == 255).all()  # rows 200-259 of the crop are white
    window = FrameEnv(Block(left), size=60, crop=(200, 360), columns=160, locate=cartpole_cart)
    shown = np.flatnonzero((window.reset()[0][0] < 64).any(0))
    assert np.array_equal(np.flatnonzero((rest[0] < 64).any(0)), shown)
    assert frame.shape == (3, 60, 60)


def test_an_overview_needs_a_window_and_room():
    with pytest.raises(ValueError, match="overview needs a window"):
        FrameEnv(Rendered(), size=8, overview=2)
    with pytest.raises(ValueError, match="fewer rows than size=8, got 8"):
        FrameEnv(Rendered(), size=8, columns=100, locate=cartpole_cart, overview=8)
    with pytest.raises(ValueError, match="overview must be an integer >= 0"):
        FrameEnv(Rendered(), size=8, columns=100, locate=cartpole_cart, overview=-1)
