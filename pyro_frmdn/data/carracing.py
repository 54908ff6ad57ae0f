"""CarRacing-v3 rollouts for world models: a random policy biased to accelerate, small frames.

World Models (Ha & Schmidhuber 2018) trained its VAE and MDN-RNN on rollouts of a random policy
in CarRacing, frames resized to 64×64. :func:`collect_rollouts` writes one compressed ``.npz`` per
episode (``frames`` uint8 ``(T, S, S, 3)``, ``actions`` float32 ``(T, 3)``, ``rewards`` float32
``(T,)``, ``dones`` bool ``(T,)``): ``frames[t]`` is seen before ``actions[t]`` is taken,
``rewards[t]`` and ``dones[t]`` come after it. Collection resumes where it stopped: episodes
already on disk are kept. :func:`load_rollouts` reads a folder back as padded tensors with a mask.

Needs ``gymnasium[box2d]`` (``pip install 'pyro-frmdn[world]'``); runs headless
(``SDL_VIDEODRIVER=dummy`` is set when unset).
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from ._cache import _write

__all__ = [
    "ENV_ID",
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
    if steps < 0 or hold < 1:
        raise ValueError(f"need steps >= 0 and hold >= 1, got {steps}, {hold}")
    n = -(-steps // hold)
    steer = np.where(rng.random(n) < 0.5, rng.uniform(-1, 1, n), 0.0)
    gas = np.where(rng.random(n) < 0.7, rng.uniform(0.5, 1, n), 0.0)
    brake = np.where(rng.random(n) < 0.1, rng.uniform(0, 0.5, n), 0.0)
    actions = np.stack([steer, gas, brake], axis=-1).astype(np.float32)
    return np.repeat(actions, hold, axis=0)[:steps]


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 frames ``(T, H, W, 3)`` to ``(T, size, size, 3)`` (antialiased bilinear)."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if frames.shape[1:3] == (size, size):
        return frames
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
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
        dones.append(terminated or truncated)
        if dones[-1]:
            break
    t = len(frames)
    return {
        "frames": resize_frames(np.stack(frames), size),
        "actions": actions[:t],
        "rewards": np.asarray(rewards, dtype=np.float32),
        "dones": np.asarray(dones, dtype=bool),
    }


def _read_episode(path: Path) -> dict | None:
    """The arrays of an episode file, or ``None`` if it is unreadable or inconsistent."""
    try:
        with np.load(path) as f:
            arrays = {k: f[k] for k in KEYS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    t = len(arrays["frames"])
    if t == 0 or any(len(a) != t for a in arrays.values()) or arrays["frames"].dtype != np.uint8:
        return None
    return arrays


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
    if episodes < 0 or steps < 1 or size < 1 or skip_frames < 0:
        raise ValueError("need episodes >= 0, steps >= 1, size >= 1 and skip_frames >= 0")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = {
        "env": ENV_ID,
        "steps": steps,
        "seed": seed,
        "size": size,
        "skip_frames": skip_frames,
    }
    settings["hold"] = hold
    saved = out / SETTINGS
    if saved.exists():
        old = json.loads(saved.read_text())
        if old != settings:
            raise ValueError(
                f"{out} holds rollouts collected with {old}; these settings are {settings}: "
                "use another folder"
            )
    else:
        saved.write_text(json.dumps(settings, indent=1))
    paths = [out / f"episode_{i:05d}.npz" for i in range(episodes)]
    todo = [i for i, p in enumerate(paths) if not p.exists() or _read_episode(p) is None]
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

    Returns:
        ``frames`` uint8 ``(N, T, 3, S, S)`` (channels first, as
        :class:`~pyro_frmdn.models.WorldModel` takes them), ``actions`` ``(N, T, 3)``,
        ``rewards`` ``(N, T)``, ``dones`` ``(N, T)`` bool, ``mask`` ``(N, T)`` bool (false on
        padding) and ``episode`` ``(N,)`` (the episode index of each row).
    """
    files = sorted(Path(folder).glob("episode_*.npz"))
    if isinstance(episodes, int):
        files = files[:episodes]
    elif isinstance(episodes, slice):
        files = files[episodes]
    if not files:
        raise FileNotFoundError(f"no episode_*.npz files in {folder} (run pyro-frmdn collect)")
    if window is not None and window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    pieces, index = [], []
    for path in files:
        arrays = _read_episode(path)
        if arrays is None:
            raise ValueError(f"{path} is corrupt or incomplete: delete it and collect again")
        if size is not None:
            arrays["frames"] = resize_frames(arrays["frames"], size)
        t = len(arrays["frames"])
        step = window or t
        for start in range(0, t, step):
            pieces.append({k: a[start : start + step] for k, a in arrays.items()})
            index.append(int(path.stem.split("_")[-1]))
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
