"""A done head that reads M's state h as well as z: shapes, a done only h can tell, the dream
reading it, and saving."""

import pytest
import torch
from support.worlds import SHAPE, D, world

import pyro_frmdn as pf
from pyro_frmdn.infer.done_head import refit_done_head
from pyro_frmdn.infer.rollouts import dream_rollout
from pyro_frmdn.models import Controller, dream

HIDDEN = 8  # the prior RNN's size in support.worlds


def previous_action_episodes(b=24, t=12, seed=0):
    """Frames all alike (so z never changes) and random actions; the done flag of step t says
    which action was taken at step t - 1: only M's state, which has read a_{t-1}, can tell."""
    g = torch.Generator().manual_seed(seed)
    frames = torch.zeros(b, t, *SHAPE, dtype=torch.float64)
    index = torch.randint(2, (b, t), generator=g)
    actions = torch.nn.functional.one_hot(index, 2).double()
    dones = torch.zeros(b, t, dtype=torch.bool)
    dones[:, 1:] = index[:, :-1] == 1
    mask = torch.ones(b, t, dtype=torch.bool)
    return frames, actions, dones, mask, index


def probs(wm, frames, actions):
    z = wm.encode(frames)
    return wm.head_distributions(z, actions, None)["done"].base_dist.probs.detach()


def test_a_done_that_only_h_carries_is_learnt_with_h_and_not_without():
    frames, actions, dones, mask, index = previous_action_episodes()
    wm = world(reward=True, done=True).eval()
    out = refit_done_head(wm, frames, actions, dones, mask, steps=400, lr=0.05, progress=False)
    assert out["hidden"] is False
    # on [z, a] alone (z constant) the calibrated optimum is the rate of done given a_t: the
    # weighted optimum's log-odds log(w n1 / n0) per action, less log w by the prior correction
    p = probs(wm, frames, actions)
    for a in (0, 1):
        rate = float(dones[index == a].double().mean())
        torch.testing.assert_close(p[index == a], torch.full_like(p[index == a], rate),
                                   atol=5e-3, rtol=0)  # fmt: skip
    out = refit_done_head(wm, frames, actions, dones, mask, steps=400, lr=0.05, hidden=True,
                          progress=False)  # fmt: skip
    assert out["hidden"] is True and wm.done_hidden and wm.config["done_hidden"]
    assert wm.done_head[0].in_features == D + 2 + HIDDEN
    p = probs(wm, frames, actions)  # h teacher forced along the codes by default
    assert float(p[dones].min()) > 0.9 and float(p[~dones].max()) < 0.1


def test_head_shapes_and_the_default_h_is_m_teacher_forced():
    wm = world(reward=True, done=True, done_hidden=True).eval()
    frames, actions, _, _, _ = previous_action_episodes(b=3, t=5)
    z = wm.encode(frames)
    h = wm.hidden_states(z, actions)
    assert h.shape == (3, 5, HIDDEN)
    torch.testing.assert_close(h, wm.prior.features(z, pf.models.shift_actions(actions)))
    heads = wm.head_distributions(z, actions, None)
    assert heads["done"].batch_shape == (3,) and heads["done"].event_shape == (5,)
    given = wm.head_distributions(z, actions, None, h)["done"].base_dist.probs
    torch.testing.assert_close(heads["done"].base_dist.probs, given)
    other = wm.head_distributions(z, actions, None, torch.zeros_like(h))["done"].base_dist.probs
    assert not torch.allclose(given, other)  # h is read
    # extra leading dims (draws of z) are teacher forced sequence by sequence
    stacked = wm.head_distributions(torch.stack([z, z]), actions, None)["done"].base_dist.probs
    torch.testing.assert_close(stacked, torch.stack([given, given]))
    # the joint model scores the done site with h as well
    assert torch.isfinite(wm.elbo(frames, actions, dones=torch.zeros(3, 5))).all()


def test_a_dream_reads_the_state_m_has_in_it():
    wm = world(likelihood="gaussian", reward=True, done=True, done_hidden=True).eval()
    with torch.no_grad():  # a done probability far from 0 and 1, varying with z, a and h
        wm.done_head[-1].bias.fill_(-1.0)
    c = Controller(D, HIDDEN, num_actions=2).double()
    pop = torch.randn(2, c.num_parameters, dtype=torch.float64)
    torch.manual_seed(5)
    out = dream_rollout(wm, c, pop, rollouts=3, max_steps=6, done="expected")
    # the reference: M teacher forced along the dream's own latents and actions gives the h
    # the dream had at each step (its first step reads M's start, then (z_{t-1}, a_{t-1}))
    feats = c.action_features(out.actions)
    heads = wm.head_distributions(out.latents, feats, None)
    p, r = heads["done"].base_dist.probs, heads["reward"].base_dist.mean
    alive = torch.cumprod(torch.cat([torch.ones_like(p[..., :1]), 1 - p[..., :-1]], -1), -1)
    torch.testing.assert_close(out.returns, (alive * r).sum(-1))
    torch.testing.assert_close(out.steps, alive.sum(-1))


def test_the_decoded_dream_reads_h_after_the_context():
    wm = world(torch.float32, reward=True, done=True, done_hidden=True).eval()
    frames, actions, _, _, _ = previous_action_episodes(b=2, t=6)
    frames, actions = frames.float(), actions.float()
    out = dream(wm, frames[:, :2], actions, steps=4)
    z = torch.cat([wm.encode(frames[:, :2]), out.latents], 1)
    whole = wm.head_distributions(z, actions, None)["done"].base_dist.probs[:, 2:]
    torch.testing.assert_close(out.dones, whole)


def test_the_choice_is_saved_and_switching_back_works(tmp_path):
    frames, actions, dones, mask, _ = previous_action_episodes(b=6, t=6)
    wm = world(reward=True, done=True).eval()
    refit_done_head(wm, frames, actions, dones, mask, steps=20, hidden=True, progress=False)
    wm.save(tmp_path / "world.pt")
    again = pf.load(tmp_path / "world.pt").double().eval()
    assert again.done_hidden
    torch.testing.assert_close(probs(again, frames, actions), probs(wm, frames, actions))
    refit_done_head(wm, frames, actions, dones, mask, steps=20, hidden=False, progress=False)
    assert not wm.done_hidden and wm.done_head[0].in_features == D + 2
    with pytest.raises(ValueError, match="done_hidden needs done=True"):
        world(done_hidden=True)
    with pytest.raises(ValueError, match="done_hidden needs done=True"):
        world(done=True, done_hidden=True, prior="normal")
