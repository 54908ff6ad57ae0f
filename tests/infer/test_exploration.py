"""Collection policies: random actions held for a geometric number of steps, and a controller
with random bursts; what M reads is the action taken."""

import numpy as np
import pytest
import torch
from support.worlds import D, world

from pyro_frmdn.infer.exploration import Exploration
from pyro_frmdn.infer.rollouts import real_rollout
from pyro_frmdn.models import Controller

HIDDEN = 8  # the prior RNN's size in support.worlds


class Discrete:
    def __init__(self, n=2):
        self.n = n


class LongEnv:
    """8×8 frames, never ending on its own (the episode stops at ``max_steps``)."""

    def __init__(self, n=2):
        self.action_space = Discrete(n)

    def reset(self, seed=None):
        return np.zeros((1, 8, 8), dtype=np.uint8), {}

    def step(self, action):
        return np.zeros((1, 8, 8), dtype=np.uint8), 1.0, False, False, {}

    def close(self):
        pass


def actions_of(episode):
    return episode.actions.argmax(-1)


@pytest.mark.parametrize(("n", "hold"), [(2, 1.0), (2, 4.0), (3, 5.0)])
def test_random_actions_change_at_the_rate_a_geometric_hold_gives(n, hold):
    # a held action ends with probability 1/hold at each step, and the next random action
    # differs from it with probability 1 - 1/n
    ep = real_rollout(LongEnv(n), seed=1, max_steps=40_000, record=True,
                      explore=Exploration(1.0, hold))  # fmt: skip
    a = actions_of(ep)
    changes = float(np.mean(a[1:] != a[:-1]))
    assert changes == pytest.approx((1 - 1 / n) / hold, rel=0.05)
    assert np.bincount(a, minlength=n) / len(a) == pytest.approx(np.full(n, 1 / n), abs=0.02)


def test_hold_one_is_the_plain_random_policy():
    plain = real_rollout(LongEnv(), seed=3, max_steps=200, record=True)
    held = real_rollout(LongEnv(), seed=3, max_steps=200, record=True, explore=Exploration())
    assert np.array_equal(plain.actions, held.actions)


def test_the_held_lengths_are_geometric_with_the_given_mean():
    rng, e, space = np.random.default_rng(0), Exploration(1.0, 4.0), Discrete(1000)
    runs, length, last = [], 0, None
    for _ in range(40_000):  # 1000 actions: a new draw repeats the last one rarely
        a = e.choose(space, rng)
        if a != last and length:
            runs.append(length)
            length = 0
        length, last = length + 1, a
    runs = np.array(runs)
    assert runs.mean() == pytest.approx(4.0, rel=0.05)
    assert np.mean(runs == 1) == pytest.approx(0.25, abs=0.02)  # P(L = 1) = 1 / hold


def agent():
    wm = world(likelihood="gaussian", reward=True, done=True).eval()
    c = Controller(D, HIDDEN, num_actions=2).double()
    c.set_flat(torch.zeros(c.num_parameters, dtype=torch.float64))
    with torch.no_grad():
        c.bias.fill_(1.0)  # always action 1
    return wm, c


def test_a_controller_with_epsilon_zero_acts_alone_and_with_bursts_departs_from_it():
    wm, c = agent()
    alone = real_rollout(LongEnv(), wm, c, seed=2, max_steps=300, record=True,
                         explore=Exploration(0.0, 4.0))  # fmt: skip
    assert (actions_of(alone) == 1).all()
    noisy = real_rollout(LongEnv(), wm, c, seed=2, max_steps=3000, record=True,
                         explore=Exploration(0.2, 4.0))  # fmt: skip
    # from a free step: C's one step (prob 0.8) or a burst of 4 steps on average (prob 0.2),
    # so 0.8 of every 1.6 steps are random, and half of those are 0: a share of 0.25
    share = float(np.mean(actions_of(noisy) == 0))
    assert share == pytest.approx(0.25, abs=0.04)


def test_m_reads_the_action_taken_not_the_controllers_proposal():
    wm, c = agent()
    seen = []
    rnn = wm.prior.rnn
    hook = rnn.register_forward_hook(lambda mod, inputs, out: seen.append(inputs[0][0, 0, -2:]))
    try:
        ep = real_rollout(LongEnv(), wm, c, seed=5, max_steps=60, record=True,
                          explore=Exploration(0.5, 2.0))  # fmt: skip
    finally:
        hook.remove()
    taken = torch.as_tensor(ep.actions, dtype=torch.float64)
    # the RNN reads [z_{t-1}, a_{t-1}] at step t: the one-hot of the action taken at t - 1
    read = torch.stack(seen)[1:]
    torch.testing.assert_close(read, taken[:-1])
    assert (ep.actions.argmax(-1) == 0).any()  # some bursts did push the other way


def test_bad_settings_are_refused_with_the_argument_named():
    with pytest.raises(ValueError, match="epsilon must be in"):
        Exploration(1.5)
    with pytest.raises(ValueError, match="hold must be >= 1"):
        Exploration(1.0, 0.5)
    with pytest.raises(TypeError, match="hold must be a number"):
        Exploration(1.0, "4")
    with pytest.raises(ValueError, match="epsilon must be 1"):
        real_rollout(LongEnv(), max_steps=5, explore=Exploration(0.5))
    with pytest.raises(TypeError, match="explore must be an Exploration"):
        real_rollout(LongEnv(), max_steps=5, explore=0.5)
