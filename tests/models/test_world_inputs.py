"""The world model's input checks: frames, actions, mask, rewards/dones, and bad options."""

import pytest
import torch
from support.worlds import A, B, D, T, episode, world

import pyro_frmdn as pf
from pyro_frmdn.models.world_inputs import check_sample_actions


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


def test_the_actions_of_sample_are_checked_and_converted():
    wm = world()  # float64
    actions = torch.randn(2, 3, A)
    out = check_sample_actions(wm, actions.numpy(), 2, 3)
    assert out.dtype == torch.float64 and torch.equal(out, actions.double())
    with pytest.raises(ValueError, match=r"actions must have shape \(2, 3, 2\), got \(2, 4, 2\)"):
        check_sample_actions(wm, torch.randn(2, 4, A), 2, 3)
    with pytest.raises(ValueError, match="actions is on meta but the model is on cpu"):
        check_sample_actions(wm, torch.empty(2, 3, A, device="meta"), 2, 3)
    with pytest.raises(ValueError, match=r"actions has NaN at position \(0, 0, 0\)"):
        check_sample_actions(wm, torch.full((2, 3, A), float("nan")), 2, 3)
    with pytest.raises(ValueError, match="needed iff action_dim > 0"):
        check_sample_actions(wm, None, 2, 3)
    with pytest.raises(TypeError, match=r"actions must be a torch\.Tensor"):
        check_sample_actions(wm, "left", 2, 3)
