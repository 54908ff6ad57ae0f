"""CarRacing-v3 rollouts for world models: a random policy biased to accelerate, small frames.

World Models (Ha & Schmidhuber 2018) trained its VAE and MDN-RNN on rollouts of a random policy
in CarRacing, frames resized to 64×64. :func:`collect_rollouts` writes one compressed ``.npz`` per
episode (``frames`` uint8 ``(T, S, S, 3)``, ``actions`` float32 ``(T, 3)``, ``rewards`` float32
``(T,)``, ``dones`` bool ``(T,)``): ``frames[t]`` is seen before ``actions[t]`` is taken,
``rewards[t]`` and ``dones[t]`` come after it; only the last step can be done. Collection
resumes where it stopped: episodes already on disk are kept. :func:`load_rollouts` reads a folder
back as padded tensors with a mask, and refuses a file that is not such an episode (a ValueError
naming the file, the array, what was expected and what came).

Needs ``gymnasium[box2d]`` (``pip install 'pyro-frmdn[world]'``); runs headless
(``SDL_VIDEODRIVER=dummy`` is set when unset).
"""

from __future__ import annotations

import json
import numbers
import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from ..files import atomic_write
from ._cache import _write, check_array, read_arrays

__all__ = [
    "ENV_ID",
    "check_episode",
    "collect_rollouts",
    "load_rollouts",
    "make_carracing",
    "random_policy",
    "resize_frames",
]

ENV_ID = "CarRacing-v3"
INSTALL = "pip install 'pyro-frmdn[world]'  (or: pip install 'gymnasium[box2d]')"
SETTINGS = "rollouts.json"
KEYS = ("frames", "actions", "rewards", "dones")
# the arrays of an episode file: dtype, shape after the step axis, what the values are
FORMAT = {
    "frames": ("uint8", (None, None, 3), "RGB pixel levels, channels last"),
    "actions": ("float32", (3,), "steer, gas, brake"),
    "rewards": ("float32", (), "the reward of each action"),
    "dones": ("bool", (), "True at a last step that ended the episode"),
}
ACTION_RANGES = (("steer", -1.0, 1.0), ("gas", 0.0, 1.0), ("brake", 0.0, 1.0))
EPISODE_NAME = re.compile(r"episode_(\d+)\.npz")


def _check_int(name: str, value, minimum: int, alternatives: str = "") -> None:
    """Refuse a non-integer (TypeError; bools too) or one below ``minimum`` (ValueError)."""
    rule = f"{name} must be an integer >= {minimum}{alternatives}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{rule}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{rule}, got {value}")


def make_carracing():
    """A headless ``CarRacing-v3`` environment (continuous actions: steer, gas, brake)."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    try:
        import gymnasium
    except ImportError as err:
        raise ImportError(f"collecting CarRacing rollouts needs gymnasium: {INSTALL}") from err
    try:
        return gymnasium.make(ENV_ID)
    except gymnasium.error.DependencyNotInstalled as err:
        raise ImportError(f"CarRacing needs Box2D ({err}): {INSTALL}") from err


def random_policy(rng: np.random.Generator, steps: int, hold: int = 5) -> np.ndarray:
    """Random actions ``(steps, 3)`` (steer in [-1, 1], gas and brake in [0, 1]), biased forward.

    A new action is drawn every ``hold`` steps and repeated in between, so that the car makes
    visible progress: gas is on 70% of the time (uniform in [0.5, 1]), the brake 10% (uniform in
    [0, 0.5]), and the wheel turned 50% of the time (uniform in [-1, 1]).
    """
    _check_int("steps", steps, 0)
    _check_int("hold", hold, 1)
    n = -(-steps // hold)
    steer = np.where(rng.random(n) < 0.5, rng.uniform(-1, 1, n), 0.0)
    gas = np.where(rng.random(n) < 0.7, rng.uniform(0.5, 1, n), 0.0)
    brake = np.where(rng.random(n) < 0.1, rng.uniform(0, 0.5, n), 0.0)
    actions = np.stack([steer, gas, brake], axis=-1).astype(np.float32)
    return np.repeat(actions, hold, axis=0)[:steps]


def resize_frames(frames: np.ndarray, size: int, rows: int | None = None) -> np.ndarray:
    """Resize uint8 frames ``(T, H, W, 3)`` to ``(T, size, size, 3)``, or to ``(T, rows, size,
    3)`` with ``rows`` (antialiased bilinear)."""
    if not isinstance(frames, np.ndarray):
        raise TypeError(f"frames must be a numpy array, got {type(frames).__name__}")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    _check_int("size", size, 1)
    rows = size if rows is None else rows
    _check_int("rows", rows, 1)
    if frames.shape[1:3] == (rows, size):
        return frames
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(rows, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def _episode(env, seed: int, rng, steps: int, skip_frames: int, size: int, hold: int) -> dict:
    obs, _ = env.reset(seed=seed)
    idle = np.zeros(env.action_space.shape, dtype=np.float32)
    for _ in range(skip_frames):  # the opening zoom: the car stands still
        obs, *_ = env.step(idle)
    actions = random_policy(rng, steps, hold)
    frames, rewards, dones = [], [], []
    for action in actions:
        frames.append(obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        rewards.append(reward)
        dones.append(terminated)  # a time limit ends the episode, it is not a done state
        if terminated or truncated:
            break
    t = len(frames)
    return {
        "frames": resize_frames(np.stack(frames), size),
        "actions": actions[:t],
        "rewards": np.asarray(rewards, dtype=np.float32),
        "dones": np.asarray(dones, dtype=bool),
    }


def check_episode(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Raise a ValueError, naming ``path`` and the array, unless ``arrays`` is an episode as
    :func:`collect_rollouts` writes it: the :data:`FORMAT` (dtype and shape; nothing is cast or
    broadcast), one entry per step in each array, finite actions in CarRacing's action space,
    finite rewards, and ``dones`` true at most at the last step."""
    missing = [k for k in KEYS if k not in arrays]
    if missing:
        raise ValueError(
            f"{path} has no array {missing[0]!r} (it holds {', '.join(arrays) or 'none'}); "
            f"expected {', '.join(KEYS)}"
        )
    for key in KEYS:
        if arrays[key].ndim == 0:
            raise ValueError(f"{path}: {key} has shape (); expected one entry per step")
    steps = {k: len(arrays[k]) for k in KEYS}
    if len(set(steps.values())) > 1:
        lengths = ", ".join(f"{k} {n}" for k, n in steps.items())
        raise ValueError(
            f"{path}: the arrays differ in length: {lengths}; expected one entry per step in each"
        )
    t = steps["frames"]
    if t == 0:
        raise ValueError(f"{path} has no steps")
    for key, (dtype, trailing, holds) in FORMAT.items():
        check_array(f"{path}: {key} ({holds})", arrays[key], (t, *trailing), dtype=dtype)
    for column, (name, low, high) in enumerate(ACTION_RANGES):
        check_array(f"{path}: actions[:, {column}] ({name})", arrays["actions"][:, column],
                    low=low, high=high)  # fmt: skip
    early = np.flatnonzero(arrays["dones"][:-1])
    if early.size:
        raise ValueError(
            f"{path}: dones is True at step {early[0]} of {t}; expected True at most at the "
            "last step (an episode ends at its first done)"
        )


def _read_episode(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an episode file; ValueError if it is unreadable or not an episode."""
    try:
        arrays = read_arrays(path)
    except ValueError as err:
        raise ValueError(
            f"corrupt or incomplete episode file: {err}; delete it and collect again"
        ) from err
    check_episode(path, arrays)
    return {k: arrays[k] for k in KEYS}


def _kept(path: Path) -> bool:
    """Whether the episode file ``path`` is there and intact (a damaged one: with a warning)."""
    if not path.exists():
        return False
    try:
        _read_episode(path)
    except ValueError as err:
        warnings.warn(f"collecting {path} again: {err}", stacklevel=3)
        return False
    return True


def collect_rollouts(
    out_dir: str | Path,
    episodes: int,
    steps: int = 1000,
    seed: int = 0,
    size: int = 64,
    skip_frames: int = 50,
    hold: int = 5,
    progress: bool = True,
    make_env: Callable | None = None,
) -> list[Path]:
    """Collect random-policy CarRacing episodes into ``out_dir/episode_NNNNN.npz``.

    Episode ``i`` is seeded by ``(seed, i)`` (track and policy), so a run that stops part way and
    is started again writes exactly the episodes it would have written: files already there and
    readable are kept (a half-written one never is: files are written to a temporary name and
    renamed). The settings are saved in ``rollouts.json``; resuming with other settings is an
    error.

    Arguments:
        out_dir: the folder.
        episodes: how many episodes the folder should hold.
        steps: the most actions per episode (CarRacing ends an episode after 1,000 steps, or when
            the car leaves the playfield, or when every tile is visited).
        seed: the seed of the whole collection.
        size: frames are resized from 96×96 to ``size × size``.
        skip_frames: idle steps first, not recorded (CarRacing opens with a ~50-frame zoom).
        hold: steps each random action is held (:func:`random_policy`).
        progress: show a progress bar with the last episode's return.
        make_env: a function returning a gymnasium-like environment (default
            :func:`make_carracing`).

    Returns:
        The episode files, in order.
    """
    for name, value, minimum in (
        ("episodes", episodes, 0), ("steps", steps, 1), ("seed", seed, 0), ("size", size, 1),
        ("skip_frames", skip_frames, 0), ("hold", hold, 1),
    ):  # fmt: skip
        _check_int(name, value, minimum)
    if make_env is not None and not callable(make_env):
        raise TypeError(f"make_env must be callable or None, got {type(make_env).__name__}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {out} is a file, not a folder")
    settings = {"env": ENV_ID, "steps": steps, "seed": seed, "size": size}
    settings.update(skip_frames=skip_frames, hold=hold)
    saved = out / SETTINGS
    if saved.exists():
        try:
            old = json.loads(saved.read_text())
            if not isinstance(old, dict):
                raise ValueError(f"it holds a JSON {type(old).__name__}, not an object")
        except ValueError as err:  # bad bytes, bad JSON, not an object
            raise ValueError(
                f"{saved} does not hold collection settings ({err}); it should hold the "
                f"settings the episodes in {out} were collected with: delete it if they are "
                f"{settings}, else use another folder"
            ) from err
        if old != settings:
            raise ValueError(
                f"{out} holds rollouts collected with {old}; these settings are {settings}: "
                "use another folder"
            )
    else:
        with atomic_write(saved, "w") as f:  # creates the folder
            f.write(json.dumps(settings, indent=1))
    paths = [out / f"episode_{i:05d}.npz" for i in range(episodes)]
    todo = [i for i, p in enumerate(paths) if not _kept(p)]
    if not todo:
        return paths
    env = (make_env or make_carracing)()
    bar = tqdm(total=len(todo), disable=not progress, desc="collect", unit="episode")
    bar.set_postfix(kept=episodes - len(todo))
    try:
        for i in todo:
            ss = np.random.SeedSequence([seed, i])
            env_seed = int(ss.generate_state(1)[0] % 2**31)
            arrays = _episode(
                env, env_seed, np.random.default_rng(ss), steps, skip_frames, size, hold
            )
            check_episode(f"episode {i} from the environment", arrays)  # never write a bad one
            _write(paths[i], arrays)  # atomic: a crash leaves no half-written episode
            bar.update()
            bar.set_postfix(
                episode=i, steps=len(arrays["frames"]), ret=f"{arrays['rewards'].sum():.1f}"
            )
    finally:
        bar.close()
        env.close()
    return paths


def load_rollouts(
    folder: str | Path,
    episodes: int | slice | None = None,
    window: int | None = None,
    size: int | None = None,
) -> dict[str, Tensor]:
    """Read episodes written by :func:`collect_rollouts` as padded tensors.

    Arguments:
        folder: the rollout folder.
        episodes: the first ``n`` episode files (sorted by name), a slice of them, or all.
        window: cut each episode into consecutive windows of this many steps (the last one
            padded), e.g. training sequences of 32 steps; ``None`` keeps whole episodes.
        size: resize frames to ``size × size``; ``None`` keeps them (then every episode must
            have frames of one size).

    Returns:
        ``frames`` uint8 ``(N, T, 3, S, S)`` (channels first, as
        :class:`~pyro_frmdn.models.WorldModel` takes them), ``actions`` ``(N, T, 3)``,
        ``rewards`` ``(N, T)``, ``dones`` ``(N, T)`` bool, ``mask`` ``(N, T)`` bool (false on
        padding) and ``episode`` ``(N,)`` (the episode index of each row).
    """
    for name, value in (("window", window), ("size", size)):
        if value is not None:
            _check_int(name, value, 1, " or None")
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"the rollout folder {folder} does not exist or is not a folder "
            "(run pyro-frmdn collect)"
        )
    files = sorted(folder.glob("episode_*.npz"))
    if not files:
        raise FileNotFoundError(f"no episode_*.npz files in {folder} (run pyro-frmdn collect)")
    for path in files:
        if not EPISODE_NAME.fullmatch(path.name):
            raise ValueError(f"{path} is not named episode_NNNNN.npz (its number): move it away")
    if isinstance(episodes, slice):
        chosen = files[episodes]
        if not chosen:
            raise ValueError(
                f"episodes={episodes!r} selects none of the {len(files)} episode files in {folder}"
            )
    elif episodes is not None:
        _check_int("episodes", episodes, 1, ", a slice or None")
        if episodes > len(files):
            raise ValueError(f"episodes={episodes} but {folder} holds {len(files)} episode files")
        chosen = files[:episodes]
    else:
        chosen = files
    pieces, index, first = [], [], None
    for path in chosen:
        arrays = _read_episode(path)
        if size is not None:
            arrays["frames"] = resize_frames(arrays["frames"], size)
        first = first or (path, arrays["frames"].shape[1:3])
        if arrays["frames"].shape[1:3] != first[1]:
            (h, w), (fh, fw) = arrays["frames"].shape[1:3], first[1]
            raise ValueError(
                f"{path} has {h}×{w} frames but {first[0]} has {fh}×{fw}: pass size= to resize "
                "them to one size"
            )
        t = len(arrays["frames"])
        step = window or t
        for start in range(0, t, step):
            pieces.append({k: a[start : start + step] for k, a in arrays.items()})
            index.append(int(EPISODE_NAME.fullmatch(path.name).group(1)))
    length = window or max(len(p["frames"]) for p in pieces)
    out = {}
    for key in KEYS:
        first = pieces[0][key]
        padded = np.zeros((len(pieces), length, *first.shape[1:]), dtype=first.dtype)
        for n, p in enumerate(pieces):
            padded[n, : len(p[key])] = p[key]
        out[key] = torch.from_numpy(padded)
    out["frames"] = out["frames"].permute(0, 1, 4, 2, 3).contiguous()
    out["mask"] = (
        torch.arange(length)[None] < torch.tensor([len(p["frames"]) for p in pieces])[:, None]
    )
    out["episode"] = torch.tensor(index)
    return out
