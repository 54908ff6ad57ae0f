"""Environments seen through frames (CartPole-v1 from pixels, CarRacing-v3), and episodes of them.

A :class:`FrameEnv` turns a gymnasium environment into what a world model reads: each
observation is the rendered frame, cropped, resized to ``size × size`` and put channels first,
``(3, S, S)`` uint8. :func:`collect_episodes` runs random or controller-driven episodes (through
:func:`~pyro_frmdn.infer.rollouts.real_rollout`) into padded tensors, the layout of
:func:`~pyro_frmdn.data.load_rollouts`, to fit V and M on (World Models' iterative procedure
collects again with the trained controller). Needs ``gymnasium[box2d]`` (``pip install
'pyro-frmdn[world]'``; pygame renders CartPole); runs headless.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..infer.rollouts import real_rollout
from .carracing import INSTALL, resize_frames

__all__ = [
    "ENVS",
    "FrameEnv",
    "cartpole_cart",
    "collect_episodes",
    "env_factory",
    "episode_windows",
    "make_env",
]


def cartpole_cart(frame: np.ndarray) -> float:
    """The column of the cart's centre in a CartPole-v1 frame ``(400, 600, 3)``, read from the
    pixels: the middle of the dark pixels in rows 286-296 (the cart's body, drawn black above the
    track line; the pole's hinge covers its centre, not its ends). The frame's middle column when
    no cart is drawn there."""
    dark = np.flatnonzero((np.asarray(frame[286:297], dtype=np.int32).sum(-1) < 60).any(0))
    return (dark[0] + dark[-1]) / 2 if dark.size else frame.shape[1] / 2


ENVS = {
    "CartPole-v1": dict(
        crop=(160, 320), columns=160, locate=cartpole_cart, skip_frames=0, max_steps=500
    ),
    "CarRacing-v3": dict(crop=None, columns=None, locate=None, skip_frames=50, max_steps=1000),
}
"""The environments :func:`make_env` knows: the rows of the rendered frame kept (CartPole's cart
and pole live in rows 173-314 of 400), the width of a window of columns that follows the object
``locate`` finds (CartPole's cart: 160 of the 600 columns, so that the frame keeps the pole's
scale, its tilt moving its top by 5 pixels of 32 at the failure angle instead of 1.4 when the
whole track was squeezed in), idle opening steps not shown (CarRacing's zoom), and the
environment's own step limit."""


class FrameEnv:
    """A gymnasium environment whose observations are its frames, ``(3 k, S, S)`` uint8.

    ``reset(seed=)`` and ``step(action)`` return what gymnasium's do, the observation replaced
    by the frame; ``action_space`` is the environment's. With ``stack=k`` > 1 the observation is
    the last k frames, oldest first, as 3 k channels (the first frame repeated after a reset):
    one observation then shows velocities, which a single CartPole frame does not.

    With ``columns`` and ``locate``, the frame keeps a window of ``columns`` columns centred on
    the column ``locate(frame)`` returns (read from the pixels), held inside the frame: the
    window follows CartPole's cart, which then shows as off centre only near the track's ends,
    where its position matters. With ``overview`` = k rows as well, the frame's top k rows show
    the whole (cropped) width squeezed into them and the window fills the rest: where the cart
    is on the track, at every step, as pixels (a controller that drifts to the track's end can
    then see it coming).
    """

    def __init__(self, env, size: int = 64, crop: tuple[int, int] | None = None,
                 skip_frames: int = 0, stack: int = 1, columns: int | None = None,
                 locate: Callable[[np.ndarray], float] | None = None,
                 overview: int = 0):  # fmt: skip
        for arg, value in (
            ("size", size),
            ("stack", stack),
            ("columns", 1 if columns is None else columns),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{arg} must be an integer >= 1, got {value!r}")
        if isinstance(overview, bool) or not isinstance(overview, int) or overview < 0:
            raise ValueError(f"overview must be an integer >= 0 (rows), got {overview!r}")
        if (columns is None) != (locate is None):
            raise ValueError("columns and locate go together: give both or neither")
        if overview and (columns is None or overview >= size):
            raise ValueError(
                f"overview needs a window (columns and locate) and fewer rows than size={size}, "
                f"got {overview}"
            )
        self.overview = overview
        self.env, self.size, self.crop, self.skip_frames = env, size, crop, skip_frames
        self.columns, self.locate = columns, locate
        self.stack, self.recent = stack, []
        self.action_space = env.action_space
        self.pixels = env.render_mode == "rgb_array"  # render the frame, else it is the obs

    def _frame(self, obs) -> np.ndarray:
        frame = np.asarray(self.env.render() if self.pixels else obs)
        whole = frame
        if self.columns is not None:
            width = frame.shape[1]
            if self.columns > width:
                raise ValueError(
                    f"columns must be at most the frame's width {width}, got {self.columns}"
                )
            left = int(np.rint(self.locate(frame) - self.columns / 2))
            left = min(max(left, 0), width - self.columns)
            frame = frame[:, left : left + self.columns]
        if self.crop is not None:
            frame, whole = frame[self.crop[0] : self.crop[1]], whole[self.crop[0] : self.crop[1]]
        if self.overview:
            top = resize_frames(whole[None], self.size, rows=self.overview)[0]
            rest = resize_frames(frame[None], self.size, rows=self.size - self.overview)[0]
            frame = np.concatenate([top, rest]).transpose(2, 0, 1)
        else:
            frame = resize_frames(frame[None], self.size)[0].transpose(2, 0, 1)
        if self.stack == 1:
            return frame
        self.recent = (self.recent or [frame] * self.stack)[1:] + [frame]
        return np.concatenate(self.recent)

    def reset(self, seed: int | None = None):
        obs, info = self.env.reset(seed=seed)
        self.recent = []
        if self.skip_frames:
            idle = np.zeros(self.action_space.shape, dtype=np.float32)
            for _ in range(self.skip_frames):
                obs, *_ = self.env.step(idle)
        return self._frame(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._frame(obs), float(reward), bool(terminated), bool(truncated), info

    def close(self) -> None:
        self.env.close()


def make_env(
    name: str = "CartPole-v1",
    size: int = 64,
    stack: int = 1,
    follow: bool = True,
    overview: int = 0,
) -> FrameEnv:
    """A headless :class:`FrameEnv` of one of :data:`ENVS`, frames ``size × size``, the last
    ``stack`` of them as one observation; ``follow=False`` keeps the whole width where the
    environment's frames follow an object (CartPole's frames in earlier versions), and
    ``overview`` > 0 gives that many top rows to the whole width beside the followed window."""
    if name not in ENVS:
        raise ValueError(f"name must be one of {tuple(ENVS)}, got {name!r}")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    try:
        import gymnasium
    except ImportError as err:
        raise ImportError(f"{name} needs gymnasium: {INSTALL}") from err
    spec = ENVS[name]
    try:
        if name == "CartPole-v1":
            env = gymnasium.make(name, render_mode="rgb_array")
        else:
            env = gymnasium.make(name)
    except gymnasium.error.DependencyNotInstalled as err:
        raise ImportError(f"{name} needs {err}: {INSTALL}") from err
    window = (spec["columns"], spec["locate"]) if follow else (None, None)
    return FrameEnv(env, size, spec["crop"], spec["skip_frames"], stack, *window, overview)


def env_factory(
    name: str, size: int, stack: int = 1, follow: bool = True, overview: int = 0
) -> Callable[[], FrameEnv]:
    """A picklable ``make_env`` of no arguments (for worker processes)."""
    return partial(make_env, name, size, stack, follow, overview)


def collect_episodes(
    make: Callable[[], FrameEnv],
    episodes: int,
    world_model=None,
    controller=None,
    seed: int = 0,
    max_steps: int = 500,
    progress: bool = True,
    explore=None,
) -> dict[str, Tensor]:
    """Run ``episodes`` episodes, random or driven by ``controller`` (with V and M of
    ``world_model``), episode i seeded by ``(seed, i)``. ``explore`` (an
    :class:`~pyro_frmdn.infer.exploration.Exploration`) chooses the actions instead: random
    actions held for a few steps ("sticky"), or the controller's with random bursts.

    Returns padded tensors as :func:`~pyro_frmdn.data.load_rollouts` does: ``frames`` uint8
    ``(N, T, 3, S, S)``, ``actions`` ``(N, T, A)`` (one-hot for a discrete space), ``rewards``
    ``(N, T)``, ``dones`` ``(N, T)`` bool, ``mask`` ``(N, T)`` bool, and ``returns`` ``(N,)``.
    """
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be an integer >= 1, got {episodes!r}")
    env, runs = make(), []
    bar = tqdm(total=episodes, disable=not progress, desc="collect", unit="episode")
    try:
        for i in range(episodes):
            s = int(np.random.SeedSequence([seed, i]).generate_state(1)[0] % 2**31)
            runs.append(
                real_rollout(env, world_model, controller, None, s, max_steps, True, explore)
            )
            bar.update()
            bar.set_postfix(ret=f"{runs[-1].total:.1f}")
    finally:
        bar.close()
        env.close()
    length = max(r.steps for r in runs)
    out = {}
    for key in ("frames", "actions", "rewards", "dones"):
        first = getattr(runs[0], key)
        padded = np.zeros((episodes, length, *first.shape[1:]), dtype=first.dtype)
        for n, r in enumerate(runs):
            padded[n, : r.steps] = getattr(r, key)
        out[key] = torch.from_numpy(padded)
    steps = torch.tensor([r.steps for r in runs])
    out["mask"] = torch.arange(length)[None] < steps[:, None]
    out["returns"] = torch.tensor([r.total for r in runs])
    return out


def episode_windows(episodes: dict[str, Tensor], window: int) -> dict[str, Tensor]:
    """Cut padded episodes (as :func:`collect_episodes` returns them) into consecutive windows of
    ``window`` steps, the training sequences of a world model: ``frames``, ``actions``,
    ``rewards``, ``dones`` and ``mask``, windows with no step left out."""
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be an integer >= 1, got {window!r}")
    keys = ("frames", "actions", "rewards", "dones", "mask")
    t = episodes["mask"].shape[1]
    pad = -t % window
    out = {}
    for k in keys:
        x = episodes[k]
        x = torch.cat([x, x.new_zeros(x.shape[0], pad, *x.shape[2:])], 1) if pad else x
        out[k] = x.reshape(x.shape[0] * ((t + pad) // window), window, *x.shape[2:])
    keep = out["mask"].any(1)
    return {k: v[keep] for k, v in out.items()}
