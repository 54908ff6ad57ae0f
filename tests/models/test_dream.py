"""Dreams: the world model's dynamics rolled forward from encoded frames, and decoded."""

import pyro
import pytest
import torch
from support.worlds import SHAPE, B, D, episode, world

from pyro_frmdn.models import dream, shift_actions


def test_dream_shapes_temperatures_and_errors():
    wm = world(torch.float32, reward=True, done=True)
    frames, actions, _, _, _ = episode(dtype=torch.float32)
    out = dream(wm, frames[:, :2], actions, steps=3, pi_temperature=0.5, scale_temperature=0.1)
    assert out.frames.shape == (B, 3, *SHAPE) and out.latents.shape == (B, 3, D)
    assert out.rewards.shape == (B, 3) and out.dones.shape == (B, 3)
    assert float(out.frames.min()) >= 0 and float(out.frames.max()) <= 1
    assert float(out.dones.min()) >= 0 and float(out.dones.max()) <= 1
    assert torch.allclose(out.frames, wm.decode(out.latents))
    # the dream starts from the prior primed by the encoded frames, with a_{t-1} at step t
    pyro.set_rng_seed(2)
    again = dream(wm, frames[:, :2], actions, steps=3)
    pyro.set_rng_seed(2)
    z = wm.prior.sample(B, 3, x=shift_actions(actions[:, :5]), prime=wm.encode(frames[:, :2]))
    assert torch.allclose(again.latents, z)
    with pytest.raises(ValueError, match="actions must have shape"):
        dream(wm, frames[:, :2], actions[:, :4], steps=3)
    with pytest.raises(ValueError, match="no dynamics"):
        dream(world(prior="normal"), frames[:, :2], actions, steps=3)
    free = world(torch.float32, action_dim=0)
    assert dream(free, frames[:, :2], steps=6).frames.shape == (B, 6, *SHAPE)
