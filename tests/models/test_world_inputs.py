"""The world model's input checks: frames, actions, mask, rewards/dones, and bad options."""

import pytest
import torch
from support.worlds import B, D, T, episode, world

import pyro_frmdn as pf


def test_inputs_are_checked_with_clear_errors():
    wm = world(reward=True)
    frames, actions, mask, rewards, dones = episode()
    with pytest.raises(ValueError, match="built for"):
        wm.elbo(frames[:, :, :, :4], actions)
    with pytest.raises(ValueError, match="pass actions"):
        wm.elbo(frames)
    with pytest.raises(ValueError, match="actions must have shape"):
        wm.elbo(frames, actions[:, :, :1])
    with pytest.raises(ValueError, match="no done head"):
        wm.elbo(frames, actions, mask, rewards, dones)
    with pytest.raises(ValueError, match="mask is false everywhere"):
        wm.elbo(frames, actions, torch.zeros(B, T, dtype=torch.bool))
    with pytest.raises(ValueError, match="binary frames"):
        wm.elbo(frames * 0.5, actions)
    with pytest.raises(ValueError, match="guide_flow must be one of"):
        world(guide_flow="maf")
    with pytest.raises(ValueError, match="input_dim"):
        world(prior=pf.FRMDN(D, input_dim=0, hidden_dim=4))
