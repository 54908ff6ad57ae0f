"""CarRacing rollouts: the policy, resizing, files, resume and loading; the real environment when
gymnasium[box2d] is installed."""

import json

import numpy as np
import pytest
import torch

from pyro_frmdn.data.carracing import (
    collect_rollouts,
    load_rollouts,
    random_policy,
    resize_frames,
)


class FakeSpace:
    shape = (3,)


class FakeEnv:
    """A stand-in for CarRacing: 96×96 frames whose value is the step count; the episode
    terminates after ``length`` steps; it records the actions and seeds it gets."""

    action_space = FakeSpace()

    def __init__(self, length=1000):
        self.length, self.t, self.actions, self.seeds, self.closed = length, 0, [], [], False

    def reset(self, seed=None):
        self.t = 0
        self.seeds.append(seed)
        return self._obs(), {}

    def _obs(self):
        return np.full((96, 96, 3), self.t % 256, dtype=np.uint8)

    def step(self, action):
        self.actions.append(np.array(action))
        self.t += 1
        return self._obs(), float(self.t), self.t >= self.length, False, {}

    def close(self):
        self.closed = True


def test_random_policy_is_biased_to_accelerate_and_holds_actions():
    a = random_policy(np.random.default_rng(0), 5000, hold=5)
    assert a.shape == (5000, 3) and a.dtype == np.float32
    assert (a[:, 0] >= -1).all() and (a[:, 0] <= 1).all() and (a[:, 1:] >= 0).all()
    assert (a[:, 1:] <= 1).all()
    assert 0.6 < float((a[:, 1] > 0).mean()) < 0.8  # gas 70% of the time
    assert float((a[:, 2] > 0).mean()) < 0.15
    blocks = a.reshape(1000, 5, 3)
    assert (blocks == blocks[:, :1]).all()
    with pytest.raises(ValueError, match="hold must be an integer >= 1, got 0"):
        random_policy(np.random.default_rng(0), 5, hold=0)


def test_resize_keeps_constant_frames_and_checks_its_input():
    frames = np.full((2, 96, 96, 3), 77, dtype=np.uint8)
    small = resize_frames(frames, 64)
    assert small.shape == (2, 64, 64, 3) and small.dtype == np.uint8 and (small == 77).all()
    # a left/right split stays split at the same relative place
    frames[:, :, :48] = 0
    small = resize_frames(frames, 32)
    assert (small[:, :, :15] == 0).all() and (small[:, :, 17:] == 77).all()
    with pytest.raises(ValueError, match="uint8"):
        resize_frames(frames.astype(np.float32), 64)


def test_collect_writes_episodes_and_resume_keeps_them(tmp_path):
    envs = []

    def make_env(length=30):
        envs.append(FakeEnv(length))
        return envs[-1]

    paths = collect_rollouts(tmp_path, 3, steps=20, skip_frames=4, size=16, progress=False,
                             make_env=make_env)  # fmt: skip
    assert [p.name for p in paths] == [f"episode_0000{i}.npz" for i in range(3)]
    assert envs[0].closed and len(envs[0].seeds) == 3
    with np.load(paths[0]) as f:
        frames, actions, rewards, dones = f["frames"], f["actions"], f["rewards"], f["dones"]
    assert frames.shape == (20, 16, 16, 3) and frames.dtype == np.uint8
    # frame t is the observation before action t: the zoom's 4 idle steps come first
    assert [int(x[0, 0, 0]) for x in frames[:3]] == [4, 5, 6]
    assert np.array_equal(actions, np.stack(envs[0].actions[4:24]))
    assert (envs[0].actions[0] == 0).all()  # idle during the zoom
    assert np.array_equal(rewards, np.arange(5, 25, dtype=np.float32))
    assert not dones.any()
    # resume: the files are kept, only the missing one is collected, and it is the same episode
    with np.load(paths[1]) as f:
        first = {k: f[k] for k in f.files}
    paths[1].unlink()
    paths[2].write_bytes(b"truncated")
    with pytest.warns(UserWarning, match=r"collecting .*episode_00002\.npz again: corrupt"):
        collect_rollouts(tmp_path, 4, steps=20, skip_frames=4, size=16, progress=False,
                         make_env=make_env)  # fmt: skip
    assert len(envs) == 2 and envs[1].seeds == envs[0].seeds[1:] + envs[1].seeds[2:]
    with np.load(paths[1]) as f:
        assert all(np.array_equal(f[k], first[k]) for k in first)
    collect_rollouts(tmp_path, 4, steps=20, skip_frames=4, size=16, progress=False,
                     make_env=lambda: pytest.fail("nothing left to collect"))  # fmt: skip
    with pytest.raises(ValueError, match="collected with"):
        collect_rollouts(tmp_path, 4, steps=50, skip_frames=4, size=16, progress=False,
                         make_env=make_env)  # fmt: skip
    assert json.loads((tmp_path / "rollouts.json").read_text())["steps"] == 20


def test_episodes_end_at_termination_and_load_pads_them(tmp_path):
    collect_rollouts(tmp_path, 2, steps=20, skip_frames=0, size=8, progress=False,
                     make_env=lambda: FakeEnv(length=12))  # fmt: skip
    data = load_rollouts(tmp_path)
    assert data["frames"].shape == (2, 12, 3, 8, 8) and data["frames"].dtype == torch.uint8
    assert data["dones"][:, -1].all() and not data["dones"][:, :-1].any()
    assert data["mask"].all()
    windows = load_rollouts(tmp_path, episodes=1, window=5)
    assert windows["frames"].shape == (3, 5, 3, 8, 8)
    assert windows["mask"].sum(1).tolist() == [5, 5, 2]
    assert windows["episode"].tolist() == [0, 0, 0]
    assert int(windows["frames"][1, 0, 0, 0, 0]) == 5  # the second window starts at step 5
    assert load_rollouts(tmp_path, episodes=slice(1, 2))["episode"].tolist() == [1]
    assert load_rollouts(tmp_path, size=4)["frames"].shape == (2, 12, 3, 4, 4)
    with pytest.raises(FileNotFoundError, match="pyro-frmdn collect"):
        load_rollouts(tmp_path / "empty")
    (tmp_path / "episode_00001.npz").write_bytes(b"x")
    with pytest.raises(ValueError, match="corrupt"):
        load_rollouts(tmp_path)


def test_real_carracing_rollout(tmp_path):
    pytest.importorskip("gymnasium", reason="the CarRacing collector needs gymnasium[box2d]")
    pytest.importorskip("Box2D", reason="CarRacing needs Box2D (gymnasium[box2d])")
    paths = collect_rollouts(tmp_path, 1, steps=8, skip_frames=2, progress=False)
    data = load_rollouts(tmp_path)
    assert data["frames"].shape == (1, 8, 3, 64, 64)
    assert data["actions"].shape == (1, 8, 3)
    with np.load(paths[0]) as f:
        assert f["frames"].std() > 0  # a real picture: track, grass and the car


# -- damaged or foreign rollout files are refused at load, naming the file and the array ----------

T = 6


def _episode(t=T, size=8, **changes):
    """The arrays of a valid episode file of ``t`` steps, with ``changes`` (None: left out)."""
    arrays = {
        "frames": np.arange(t, dtype=np.uint8)[:, None, None, None].repeat(size, 1).repeat(size, 2)
        .repeat(3, 3),
        "actions": np.tile(np.array([0.5, 1.0, 0.0], dtype=np.float32), (t, 1)),
        "rewards": np.arange(t, dtype=np.float32),
        "dones": np.arange(t) == t - 1,
    }  # fmt: skip
    arrays.update(changes)
    return {k: v for k, v in arrays.items() if v is not None}


def _rollouts(folder, *episodes):
    folder.mkdir(exist_ok=True)
    for i, arrays in enumerate(episodes):
        np.savez(folder / f"episode_{i:05d}.npz", **arrays)
    return folder


def _changed(key, change, dtype=None):
    """The array ``key`` of a valid episode, as ``dtype``, changed in place by ``change``."""
    a = _episode()[key]
    a = a.astype(dtype) if dtype else a.copy()
    change(a)
    return a


def _set(index, value):
    def change(a):
        a[index] = value

    return change


BAD_EPISODES = {  # changes to a valid episode; what the error says after the file's name
    "NaN frames": (
        {"frames": _changed("frames", _set((2, 1, 1, 0), np.nan), np.float32)},
        r"frames .*dtype float32 with values such as nan; expected uint8",
    ),
    "Inf frames": (
        {"frames": _changed("frames", _set((0, 0, 0, 2), np.inf), np.float32)},
        r"frames .*dtype float32 with values such as inf; expected uint8",
    ),
    "frames scaled to [0, 1]": (
        {"frames": _changed("frames", lambda a: np.divide(a, 10, out=a), np.float32)},
        r"frames .*dtype float32 with values such as 0\.1; expected uint8",
    ),
    "frames above 255": (
        {"frames": _changed("frames", _set((1, 0, 0, 0), 300), np.int16)},
        r"frames .*dtype int16 with values such as 300; expected uint8",
    ),
    "one channel": (
        {"frames": _episode()["frames"][..., :1]},
        r"frames .*shape \(6, 8, 8, 1\); expected \(6, 'any', 'any', 3\)",
    ),
    "channels first": (
        {"frames": _episode()["frames"].transpose(0, 3, 1, 2).copy()},
        r"frames .*shape \(6, 3, 8, 8\)",
    ),
    "grey frames": ({"frames": _episode()["frames"][..., 0]}, r"frames .*shape \(6, 8, 8\)"),
    "a NaN action": (
        {"actions": _changed("actions", _set((2, 1), np.nan))},
        r"actions .*NaN or Inf at position \(2, 1\)",
    ),
    "gas above 1": (
        {"actions": _changed("actions", _set((3, 1), 2.0))},
        r"actions\[:, 1\] \(gas\) has values up to 2\.0; expected <= 1",
    ),
    "steer below -1": (
        {"actions": _changed("actions", _set((3, 0), -1.5))},
        r"actions\[:, 0\] \(steer\) has values down to -1\.5; expected >= -1",
    ),
    "float64 actions": (
        {"actions": _episode()["actions"].astype(np.float64)},
        r"actions .*dtype float64; expected float32",
    ),
    "two action dimensions": (
        {"actions": _episode()["actions"][:, :2]},
        r"actions .*shape \(6, 2\); expected \(6, 3\)",
    ),
    "a NaN reward": (
        {"rewards": _changed("rewards", _set(4, np.nan))},
        r"rewards .*NaN or Inf at position \(4,\)",
    ),
    "an Inf reward": (
        {"rewards": _changed("rewards", _set(0, -np.inf))},
        r"rewards .*NaN or Inf at position \(0,\)",
    ),
    "rewards of shape (T, 1)": (
        {"rewards": _episode()["rewards"][:, None]},
        r"rewards .*shape \(6, 1\); expected \(6,\)",
    ),
    "a scalar reward": ({"rewards": np.float32(1.0)}, r"rewards .*shape \(\)"),
    "dones of 0.5": (
        {"dones": _changed("dones", _set(5, 0.5), np.float32)},
        r"dones .*dtype float32 with values such as 0\.5; expected bool",
    ),
    "dones of 2": (
        {"dones": _changed("dones", _set(5, 2), np.int64)},
        r"dones .*dtype int64 with values such as 2; expected bool",
    ),
    "dones as 0/1 integers": (
        {"dones": _episode()["dones"].astype(np.uint8)},
        r"dones .*dtype uint8; expected bool",
    ),
    "a done before the last step": (
        {"dones": _changed("dones", _set(2, True))},
        r"dones .*True at step 2 of 6",
    ),
    "one action less": (
        {"actions": _episode()["actions"][:-1]},
        r"the arrays differ in length: frames 6, actions 5, rewards 6, dones 6",
    ),
    "one reward more": (
        {"rewards": np.arange(T + 1, dtype=np.float32)},
        r"the arrays differ in length: frames 6, actions 6, rewards 7, dones 6",
    ),
    "no dones": ({"dones": None}, r"has no array 'dones'"),
    "no steps": (_episode(t=0), r"has no steps"),
}


@pytest.mark.parametrize("case", list(BAD_EPISODES), ids=list(BAD_EPISODES))
def test_a_bad_episode_file_is_refused_naming_the_file_and_the_array(tmp_path, case):
    changes, message = BAD_EPISODES[case]
    folder = _rollouts(tmp_path / "rollouts", _episode(), _episode(**changes))
    assert load_rollouts(folder, episodes=1)["frames"].shape == (1, T, 3, 8, 8)  # the good one
    with pytest.raises(ValueError, match=rf"episode_00001\.npz:? {message}"):
        load_rollouts(folder)
    with pytest.raises(ValueError, match=rf"episode_00001\.npz:? {message}"):
        load_rollouts(folder, window=2, size=4)


@pytest.mark.parametrize(
    "content, reason",
    [(b"", r"is empty \(0 bytes\)"), (b"PK\x03\x04 cut", "not a readable .npz"), (None, ".npy")],
    ids=["0 bytes", "truncated", "one .npy array"],
)
def test_an_unreadable_episode_file_is_refused_naming_the_file(tmp_path, content, reason):
    folder = _rollouts(tmp_path, _episode(), _episode())
    path = folder / "episode_00001.npz"
    if content is None:
        with open(path, "wb") as f:
            np.save(f, _episode()["frames"])
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=rf"episode_00001\.npz.*{reason}.*collect again"):
        load_rollouts(folder)


def test_episodes_of_other_frame_sizes_are_refused_unless_resized(tmp_path):
    folder = _rollouts(tmp_path, _episode(size=8), _episode(size=6))
    with pytest.raises(
        ValueError, match=r"episode_00001\.npz has 6×6 frames but .*00000\.npz has 8×8"
    ):
        load_rollouts(folder)
    data = load_rollouts(folder, size=4)
    assert data["frames"].shape == (2, T, 3, 4, 4)
    # the loaded values are the files' values: step t of each frame holds t
    assert data["frames"][:, :, :, 0, 0].tolist() == [[[t] * 3 for t in range(T)]] * 2
    assert data["dones"].tolist() == [[False] * (T - 1) + [True]] * 2


def test_load_rollouts_refuses_bad_arguments(tmp_path):
    folder = _rollouts(tmp_path / "r", _episode(), _episode())
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_rollouts(tmp_path / "missing")
    for episodes in (0, -1):  # -1 dropped the last episode; 0 said "no episode files"
        with pytest.raises(ValueError, match=rf"episodes must be an integer >= 1.*got {episodes}"):
            load_rollouts(folder, episodes=episodes)
    with pytest.raises(ValueError, match=r"episodes=3 but .* holds 2 episode files"):
        load_rollouts(folder, episodes=3)
    for episodes in (2.0, True, [0, 1], "2"):  # were ignored (all episodes) or taken as 1
        with pytest.raises(TypeError, match="episodes must be"):
            load_rollouts(folder, episodes=episodes)
    with pytest.raises(ValueError, match=r"episodes=slice\(5, 9, None\) selects none of the 2"):
        load_rollouts(folder, episodes=slice(5, 9))
    for name, bad in (("window", 0), ("size", 0), ("size", -4)):
        with pytest.raises(ValueError, match=rf"{name} must be an integer >= 1 or None, got {bad}"):
            load_rollouts(folder, **{name: bad})
    for name, bad in (("window", 2.5), ("window", True), ("size", 4.0)):
        with pytest.raises(TypeError, match=rf"{name} must be an integer >= 1 or None, got {bad}"):
            load_rollouts(folder, **{name: bad})
    np.savez(folder / "episode_backup.npz", **_episode())
    with pytest.raises(ValueError, match=r"episode_backup\.npz.*episode_NNNNN\.npz"):
        load_rollouts(folder)


def test_collect_refuses_bad_arguments_before_writing_anything(tmp_path):
    out = tmp_path / "r"
    bad = [
        ({"hold": 0}, ValueError, r"hold must be an integer >= 1, got 0"),
        ({"steps": 0}, ValueError, r"steps must be an integer >= 1, got 0"),
        ({"seed": -1}, ValueError, r"seed must be an integer >= 0, got -1"),
        ({"size": 0}, ValueError, r"size must be an integer >= 1, got 0"),
        ({"skip_frames": -1}, ValueError, r"skip_frames must be an integer >= 0, got -1"),
        ({"episodes": -1}, ValueError, r"episodes must be an integer >= 0, got -1"),
        ({"episodes": 2.5}, TypeError, r"episodes must be an integer >= 0, got 2\.5"),
        ({"steps": 10.0}, TypeError, r"steps must be an integer >= 1, got 10\.0"),
        ({"make_env": "CarRacing-v3"}, TypeError, r"make_env must be callable"),
    ]
    for changes, error, message in bad:
        arguments = {"episodes": 1, "steps": 5, "progress": False, "make_env": FakeEnv, **changes}
        with pytest.raises(error, match=message):
            collect_rollouts(out, **arguments)
        assert not out.exists()  # a refused run leaves no folder and no rollouts.json
    out.write_text("a file")
    with pytest.raises(ValueError, match=r"out_dir .* is a file, not a folder"):
        collect_rollouts(out, 1, steps=5, progress=False, make_env=FakeEnv)


def test_collect_refuses_unreadable_settings_and_recollects_bad_episodes(tmp_path):
    kw = {"steps": 6, "skip_frames": 0, "size": 8, "progress": False}
    paths = collect_rollouts(tmp_path, 2, make_env=lambda: FakeEnv(length=4), **kw)
    first = load_rollouts(tmp_path)
    (tmp_path / "rollouts.json").write_text("")  # e.g. a disk that filled up
    with pytest.raises(
        ValueError, match=r"rollouts\.json does not hold collection settings \(Expecting value"
    ):
        collect_rollouts(tmp_path, 2, make_env=lambda: FakeEnv(length=4), **kw)
    (tmp_path / "rollouts.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"rollouts\.json does not hold .*a JSON list"):
        collect_rollouts(tmp_path, 2, make_env=lambda: FakeEnv(length=4), **kw)
    (tmp_path / "rollouts.json").unlink()
    collect_rollouts(tmp_path, 2, make_env=lambda: FakeEnv(length=4), **kw)  # written again
    np.savez(paths[1], **_episode(dones=np.arange(T) == 2))  # a done mid-episode: not ours
    with pytest.warns(UserWarning, match=r"collecting .*episode_00001\.npz again: .*dones"):
        collect_rollouts(tmp_path, 2, make_env=lambda: FakeEnv(length=4), **kw)
    again = load_rollouts(tmp_path)
    assert all(torch.equal(again[k], first[k]) for k in first)


def test_the_policy_and_resizing_refuse_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(TypeError, match=r"steps must be an integer >= 0, got 2\.5"):
        random_policy(rng, 2.5)
    with pytest.raises(ValueError, match=r"size must be an integer >= 1, got 0"):
        resize_frames(np.zeros((1, 4, 4, 3), dtype=np.uint8), 0)
    with pytest.raises(ValueError, match=r"frames must be uint8 \(T, H, W, 3\).* float32"):
        resize_frames(np.zeros((1, 4, 4, 3), dtype=np.float32), 2)


class TimeLimitedEnv(FakeEnv):
    """FakeEnv cut by a time limit (``truncated``) instead of terminating."""

    def step(self, action):
        frame, reward, terminated, _, info = super().step(action)
        return frame, reward, False, terminated, info


def test_a_time_limit_ends_the_episode_without_a_done_flag(tmp_path):
    collect_rollouts(tmp_path, 1, steps=20, skip_frames=0, size=8, progress=False,
                     make_env=lambda: TimeLimitedEnv(length=12))  # fmt: skip
    data = load_rollouts(tmp_path)
    assert data["frames"].shape[1] == 12 and not data["dones"].any()
