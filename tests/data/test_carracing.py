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
    with pytest.raises(ValueError, match="hold >= 1"):
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
