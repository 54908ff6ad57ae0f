"""Rollouts of a controller: a dream is a prior sample of M under C's actions; real episodes run
V, M and C in the World Models order."""

import numpy as np
import pytest
import torch
from support.worlds import D, world

from pyro_frmdn.distributions import temper
from pyro_frmdn.infer.rollouts import (
    DreamFitness,
    EnvFitness,
    dream_rollout,
    episode_inputs,
    hidden_state,
    real_rollout,
)
from pyro_frmdn.models import Controller, shift_actions

HIDDEN = 8  # the prior RNN's size in support.worlds


class Discrete:
    n = 2


class FrameEnv:
    """A stand-in environment: 8×8 one-channel uint8 frames whose level is 20 × the step; reward
    1 per step plus the action; the episode ends after ``length`` steps."""

    action_space = Discrete()

    def __init__(self, length=6):
        self.length, self.t, self.actions, self.seeds = length, 0, [], []

    def reset(self, seed=None):
        self.t = 0
        self.seeds.append(seed)
        return self._obs(), {}

    def _obs(self):
        return np.full((1, 8, 8), 20 * self.t % 256, dtype=np.uint8)

    def step(self, action):
        self.actions.append(action)
        self.t += 1
        return self._obs(), 1.0 + action, self.t >= self.length, False, {}

    def close(self):
        pass


def make_frame_env():
    return FrameEnv()


def agent(use_hidden=True, **kwargs):
    wm = world(likelihood="gaussian", reward=True, done=True, **kwargs).eval()
    c = Controller(D, HIDDEN, num_actions=2, use_hidden=use_hidden).double()
    return wm, c


def roll_by_hand(wm, c, pop, r, steps, temperature, initial=None):
    """M rolled step by step with C acting: latents (P·R, T, D), actions and mean rewards."""
    b = len(pop) * r
    state, prev, a_prev = wm.prior.initial_state(b), None, torch.zeros(b, 2, dtype=torch.float64)
    zs, actions, rewards = [], [], []
    for t in range(steps):
        d, state = wm.prior.step(state, prev, a_prev)
        z = temper(d, temperature, temperature).sample() if t or initial is None else initial
        a = c.act(z.reshape(len(pop), r, D), hidden_state(state).reshape(len(pop), r, HIDDEN), pop)
        prev, a_prev = z, c.action_features(a.reshape(b))
        heads = wm.head_distributions(z[:, None], a_prev[:, None], None)
        zs.append(z), actions.append(a.reshape(b)), rewards.append(heads["reward"].base_dist.mean)
    return torch.stack(zs, 1), torch.stack(actions, 1), torch.cat(rewards, 1)


@pytest.mark.parametrize("temperature", [1.0, 1.15])
def test_a_dream_is_a_prior_sample_of_m_under_the_controllers_actions(temperature):
    wm, c = agent()
    pop = torch.randn(3, c.num_parameters, dtype=torch.float64)
    torch.manual_seed(5)
    out = dream_rollout(wm, c, pop, rollouts=2, max_steps=7, temperature=temperature, seed=1)
    assert out.latents.shape == (3, 2, 7, D) and out.actions.shape == (3, 2, 7)
    # the same seed, M rolled by hand with C acting on [z_t, h_t]: the same numbers
    torch.manual_seed(5)
    z, actions, means = roll_by_hand(wm, c, pop, 2, 7, temperature)
    torch.testing.assert_close(out.latents.reshape(6, 7, D), z, rtol=0, atol=0)
    assert torch.equal(out.actions.reshape(6, 7), actions)
    # the return sums the predicted mean rewards up to and including the first done
    alive = torch.arange(7) < out.steps.reshape(6, 1)
    torch.testing.assert_close(out.returns.reshape(6), (means * alive).sum(1))
    assert 1 <= int(out.steps.min()) and int(out.steps.max()) <= 7


def test_dream_done_flags_follow_the_done_head():
    wm, c = agent()
    with torch.no_grad():  # a done head that always says done: every rollout lasts one step
        wm.done_head[-1].bias.fill_(50.0)
    out = dream_rollout(wm, c, torch.zeros(2, c.num_parameters, dtype=torch.float64), 3, 5)
    assert (out.steps == 1).all()
    with torch.no_grad():
        wm.done_head[-1].bias.fill_(-50.0)
    out = dream_rollout(wm, c, torch.zeros(2, c.num_parameters, dtype=torch.float64), 3, 5)
    assert (out.steps == 5).all()


def test_dream_from_initial_latents_starts_there():
    wm, c = agent()
    pop = torch.randn(2, c.num_parameters, dtype=torch.float64)
    initial = torch.randn(1, D, dtype=torch.float64)
    torch.manual_seed(3)
    out = dream_rollout(wm, c, pop, rollouts=2, max_steps=4, initial=initial)
    torch.manual_seed(3)
    z, _, _ = roll_by_hand(wm, c, pop, 2, 4, 1.0, initial.expand(4, D))
    torch.testing.assert_close(out.latents.reshape(4, 4, D), z, rtol=0, atol=0)
    assert torch.equal(out.latents[:, :, 0], initial.expand(2, 2, D))


def test_dream_fitness_is_seeded_and_leaves_the_callers_random_state():
    wm, c = agent()
    f = DreamFitness(wm, c, rollouts=2, max_steps=4)
    pop = torch.randn(3, c.num_parameters, dtype=torch.float64)
    state = torch.get_rng_state()
    first = f(pop, 11)
    assert torch.equal(torch.get_rng_state(), state)
    assert first.shape == (3, 2) and torch.equal(f(pop, 11), first)
    assert not torch.equal(f(pop, 12), first)


@pytest.mark.parametrize("use_hidden", [True, False])
def test_a_real_episode_runs_v_m_and_c_in_order(use_hidden):
    wm, c = agent(use_hidden)
    env = FrameEnv(length=6)
    ep = real_rollout(env, wm, c, seed=4, record=True)
    assert env.seeds == [4] and ep.steps == 6 and ep.frames.shape == (6, 1, 8, 8)
    assert ep.total == pytest.approx(6 + sum(env.actions))
    assert ep.dones.tolist() == [False] * 5 + [True]
    assert np.array_equal(ep.actions, np.eye(2, dtype=np.float32)[env.actions])
    # by hand: z_t encodes frame t; h_t is M's state after (z_<t, a_<t)
    z = wm.encode(torch.as_tensor(ep.frames)[None])[0]  # (6, D)
    a = torch.as_tensor(np.array(env.actions))
    if use_hidden:
        feats = c.action_features(a)[None]
        x = shift_actions(feats)
        prev = torch.cat([wm.prior.start.expand(1, 1, D), z[None, :-1]], 1)
        h = wm.prior.rnn(torch.cat([prev, x], -1))[0][0]
        assert torch.equal(c.act(z, h), a)
    else:
        assert torch.equal(c.act(z), a)
    # a flat vector given as params acts as set_flat would
    v = torch.randn(c.num_parameters, dtype=torch.float64)
    with_params = real_rollout(FrameEnv(), wm, c, params=v, record=True)
    c.set_flat(v)
    assert np.array_equal(real_rollout(FrameEnv(), wm, c, record=True).actions, with_params.actions)


def test_random_episodes_are_seeded_and_env_fitness_shares_seeds_across_candidates():
    first = real_rollout(FrameEnv(length=50), seed=3, record=True)
    again = real_rollout(FrameEnv(length=50), seed=3, record=True)
    assert np.array_equal(first.actions, again.actions) and 0 < first.actions[:, 1].sum() < 50
    wm, c = agent()
    f = EnvFitness(make_frame_env, wm, c, rollouts=2, max_steps=10)
    pop = torch.randn(3, c.num_parameters, dtype=torch.float64)
    both = f(pop, 7)
    assert both.shape == (3, 2)
    assert torch.equal(f(pop[1:], 7), both[1:])  # a candidate's returns ignore the others


def test_episode_inputs_are_the_z_and_h_a_real_episode_meets():
    wm, c = agent()
    ep = real_rollout(FrameEnv(length=6), wm, c, seed=4, record=True)
    frames = torch.as_tensor(ep.frames)[None]
    actions = torch.as_tensor(ep.actions)[None]
    z, h = episode_inputs(wm, frames, actions)
    assert z.shape == (6, D) and h.shape == (6, HIDDEN)
    assert torch.equal(c.act(z, h), torch.as_tensor(ep.actions).argmax(-1))
    mask = torch.tensor([[True] * 4 + [False] * 2])
    zm, hm = episode_inputs(wm, frames, actions, mask)
    torch.testing.assert_close(zm, z[:4])
    torch.testing.assert_close(hm, h[:4])


def test_mismatched_parts_are_refused():
    wm, c = agent()
    with pytest.raises(ValueError, match="latent_dim"):
        dream_rollout(wm, Controller(D + 1, HIDDEN, num_actions=2), torch.zeros(1, 25))
    with pytest.raises(ValueError, match="M's hidden size is 8"):
        dream_rollout(wm, Controller(D, 4, num_actions=2), torch.zeros(1, 8))
    with pytest.raises(ValueError, match="M reads actions of size 2"):
        dream_rollout(wm, Controller(D, HIDDEN, num_actions=3), torch.zeros(1, 36))
    with pytest.raises(ValueError, match="reward head"):
        dream_rollout(world(), c, torch.zeros(1, c.num_parameters))
    with pytest.raises(ValueError, match="temperature"):
        dream_rollout(wm, c, torch.zeros(1, c.num_parameters), temperature=0.0)


def test_expected_returns_weight_each_reward_by_the_probability_of_being_alive():
    wm, c = agent()
    with torch.no_grad():  # a done probability that varies with z and a
        wm.done_head[-1].bias.fill_(-1.0)
    pop = torch.randn(2, c.num_parameters, dtype=torch.float64)
    torch.manual_seed(5)
    out = dream_rollout(wm, c, pop, rollouts=3, max_steps=6, done="expected")
    torch.manual_seed(5)  # the same latents: the done flags draw from their own generator
    sampled = dream_rollout(wm, c, pop, rollouts=3, max_steps=6)
    assert torch.equal(out.latents, sampled.latents)
    # the reference: the heads read along the dream's own latents and actions
    feats = c.action_features(out.actions)  # (P, R, T, 2)
    heads = wm.head_distributions(out.latents, feats, None)
    p, r = heads["done"].base_dist.probs, heads["reward"].base_dist.mean  # (P, R, T)
    alive = torch.cumprod(torch.cat([torch.ones_like(p[..., :1]), 1 - p[..., :-1]], -1), -1)
    torch.testing.assert_close(out.returns, (alive * r).sum(-1))
    torch.testing.assert_close(out.steps, alive.sum(-1))
    assert 1 < float(out.steps.mean()) < 6  # neither certain death nor certain survival


def test_bad_fitness_settings_are_refused_with_the_argument_named():
    wm, c = agent()
    with pytest.raises(ValueError, match="rollouts must be >= 1"):
        DreamFitness(wm, c, rollouts=0)
    with pytest.raises(ValueError, match="max_steps must be >= 1"):
        DreamFitness(wm, c, max_steps=-2)
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        DreamFitness(wm, c, temperature=float("nan"))
    with pytest.raises(ValueError, match=r"done must be one of \('sample', 'expected'\)"):
        DreamFitness(wm, c, done="mean")
    with pytest.raises(ValueError, match="done must be one of"):
        dream_rollout(wm, c, torch.zeros(1, c.num_parameters), done="never")
    with pytest.raises(ValueError, match="latent_dim"):
        DreamFitness(wm, Controller(D + 1, HIDDEN, num_actions=2))
    with pytest.raises(ValueError, match="rollouts must be >= 1"):
        EnvFitness(make_frame_env, wm, c, rollouts=0)
    with pytest.raises(TypeError, match="rollouts must be an integer"):
        EnvFitness(make_frame_env, wm, c, rollouts=2.5)
    with pytest.raises(TypeError, match="make_env must be a callable"):
        EnvFitness("CartPole-v1", wm, c)
    with pytest.raises(ValueError, match="params must be a population"):
        dream_rollout(wm, c, torch.zeros(c.num_parameters))
    with pytest.raises(ValueError, match="params"):
        nan = torch.full((2, c.num_parameters), float("nan"), dtype=torch.float64)
        dream_rollout(wm, c, nan)


class TimeLimited(FrameEnv):
    """FrameEnv whose episode is cut by a time limit (``truncated``) after ``limit`` steps."""

    def __init__(self, length=6, limit=4):
        super().__init__(length)
        self.limit = limit

    def step(self, action):
        frame, reward, terminated, _, info = super().step(action)
        return frame, reward, terminated, self.t >= self.limit and not terminated, info


@pytest.mark.parametrize(
    ("length", "limit", "steps", "done"),
    [(6, 4, 4, False), (4, 6, 4, True), (6, 9, 3, False)],
    ids=["truncated", "terminated", "max_steps"],
)
def test_a_time_limit_ends_the_episode_without_a_done_flag(length, limit, steps, done):
    # gymnasium's truncation (CartPole's 500 steps) is no state to end in: a done head that
    # learnt it would end the dream of a perfect balancer at the real cap
    ep = real_rollout(TimeLimited(length, limit), seed=0, max_steps=3 if steps == 3 else 50,
                      record=True)  # fmt: skip
    assert ep.steps == steps and len(ep.dones) == steps
    assert not ep.dones[:-1].any() and bool(ep.dones[-1]) is done
