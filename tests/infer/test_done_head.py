"""The done head's refit: class-weighted, then prior-corrected to calibrated probabilities."""

import pytest
import torch
from support.worlds import SHAPE, world

from pyro_frmdn.infer.done_head import refit_done_head


def episodes(b=6, t=10, informative=True):
    """Frames dark until the last step of each episode, bright at it (or all alike)."""
    frames = torch.zeros(b, t, *SHAPE, dtype=torch.float64)
    lengths = torch.arange(b) % 4 + t - 3  # 7..10 steps
    mask = torch.arange(t)[None] < lengths[:, None]
    dones = torch.zeros(b, t, dtype=torch.bool)
    dones[torch.arange(b), lengths - 1] = True
    if informative:
        frames[dones] = 1.0
    actions = torch.zeros(b, t, 2, dtype=torch.float64)
    actions[..., 0] = 1.0
    return frames, actions, dones, mask


def head_probs(wm, frames, actions, mask):
    z = wm.encode(frames, mask)
    heads = wm.head_distributions(z, actions, None)
    return heads["done"].base_dist.probs.detach()


def test_uninformative_codes_give_the_base_rate():
    # every step looks the same: the weighted optimum is log-odds log(w · pos/neg) = 0, and the
    # prior correction brings it to the base rate pos / N
    wm = world(reward=True, done=True).eval()
    frames, actions, dones, mask = episodes(informative=False)
    out = refit_done_head(wm, frames, actions, dones, mask, steps=300, lr=0.05, progress=False)
    rate = float(dones[mask].double().mean())
    assert out["done_steps"] == 6 and out["steps"] == int(mask.sum())
    assert out["pos_weight"] == pytest.approx((1 - rate) / rate)
    p = head_probs(wm, frames, actions, mask)[mask]
    torch.testing.assert_close(p, torch.full_like(p, rate), atol=2e-3, rtol=0)


def test_informative_codes_separate_the_last_steps():
    wm = world(reward=True, done=True).eval()
    frames, actions, dones, mask = episodes()
    before = head_probs(wm, frames, actions, mask)
    refit_done_head(wm, frames, actions, dones, mask, steps=300, lr=0.05, progress=False)
    p = head_probs(wm, frames, actions, mask)
    assert float(p[dones].min()) > 0.9 and float(p[mask & ~dones].max()) < 0.1
    assert not torch.allclose(before, p)  # only the done head changed, and it did
    assert wm.reward_head is not None


def test_bad_input_is_refused_with_the_argument_named():
    wm = world(reward=True, done=True).eval()
    frames, actions, dones, mask = episodes()
    with pytest.raises(ValueError, match="no done head"):
        refit_done_head(world(reward=True), frames, actions, dones, mask)
    with pytest.raises(ValueError, match="both classes"):
        refit_done_head(wm, frames, actions, torch.zeros_like(dones), mask, progress=False)
    with pytest.raises(ValueError, match=r"dones must have shape \(6, 10\)"):
        refit_done_head(wm, frames, actions, dones[:, :5], mask)
    with pytest.raises(ValueError, match="actions must have shape"):
        refit_done_head(wm, frames, actions[..., :1], dones, mask)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        refit_done_head(wm, frames, actions, dones, mask, steps=0)
    with pytest.raises(ValueError, match="pos_weight must be a finite number > 0"):
        refit_done_head(wm, frames, actions, dones, mask, pos_weight=-1.0, progress=False)
    with pytest.raises(TypeError, match="world_model must be a WorldModel"):
        refit_done_head(torch.nn.Linear(2, 2), frames, actions, dones, mask)
