"""Fitness functions with known answers for the evolution tests (importable by worker processes)."""

import zlib

import numpy as np
import torch


class Quadratic:
    """Return ``-|params - target|^2`` plus noise seeded by (seed, the candidate's own values),
    so a candidate's returns never depend on the others in its batch; R = ``rollouts``."""

    def __init__(self, target, rollouts=2, noise=0.01):
        self.target, self.rollouts, self.noise = torch.as_tensor(target), rollouts, noise

    def __call__(self, params, seed):
        out = []
        for p in params:
            key = [seed, zlib.crc32(p.numpy().tobytes())]  # the same in every process
            rng = np.random.default_rng(key)
            base = -float(((p - self.target) ** 2).sum())
            out.append(base + self.noise * rng.standard_normal(self.rollouts))
        return torch.tensor(np.array(out))


class TwoActions:
    n = 2


class BalanceEnv:
    """A stand-in for CartPole from pixels: a position x drifts by ±1 with the action and by a
    seeded push; the frame (3, 8, 8) uint8 shows x as the column of a bright bar; reward 1 a
    step; the episode ends when |x| > 3 (or after ``length`` steps)."""

    action_space = TwoActions()

    def __init__(self, length=40):
        self.length, self.closed = length, False

    def reset(self, seed=None):
        self.rng, self.x, self.t = np.random.default_rng(seed), 0, 0
        return self._frame(), {}

    def _frame(self):
        frame = np.zeros((3, 8, 8), dtype=np.uint8)
        frame[:, :, int(np.clip(self.x + 4, 0, 7))] = 255
        return frame

    def step(self, action):
        self.x += (1 if action else -1) + int(self.rng.integers(-1, 2))
        self.t += 1
        return self._frame(), 1.0, abs(self.x) > 3, self.t >= self.length, {}

    def close(self):
        self.closed = True
