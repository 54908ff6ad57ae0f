"""evaluate_bounds: held-out ELBO and IWAE bounds of a world model per frame, and bits/dim."""

import math

import pyro
import pytest
import torch
from support.worlds import SHAPE, episode, world

import pyro_frmdn as pf
from pyro_frmdn.infer import evaluate_bounds


def test_iwae_is_above_the_elbo_and_equals_it_for_one_sample():
    wm = world()
    frames, actions, mask, _, _ = episode()
    pyro.set_rng_seed(4)
    one = wm.iwae_bound(frames, actions, mask, num_samples=1)
    pyro.set_rng_seed(4)
    assert torch.allclose(one, wm.elbo(frames, actions, mask))
    result = evaluate_bounds(wm, (frames, actions, mask), num_samples=32, batch_size=3)
    assert result["iwae"] >= result["elbo"]
    assert result["frames"] == int(mask.sum())
    assert result["iwae_bits_per_dim"] == pytest.approx(-result["iwae"] / (64 * math.log(2)))
    # in expectation the bound tightens with k: 32 samples beat the average 1-sample ELBO
    with torch.no_grad():
        many = torch.stack([wm.elbo(frames, actions, mask) for _ in range(64)]).mean(0)
        iwae = wm.iwae_bound(frames, actions, mask, num_samples=64)
    assert float(iwae.sum()) > float(many.sum())


def test_a_tiny_world_model_trains_with_fit_and_its_elbo_improves():
    """Frames of a bar that moves one pixel right per step: SVI with the same ``fit`` as any
    FRMDN raises the held-out ELBO well above the initial one."""
    b, t = 24, 6
    start = torch.randint(0, 8, (b,))
    cols = (start[:, None] + torch.arange(t)) % 8  # (b, t)
    frames = torch.zeros(b, t, *SHAPE)
    frames[torch.arange(b)[:, None], torch.arange(t), 0, :, cols] = 1.0
    mask = torch.ones(b, t, dtype=torch.bool)
    train = {"frames": frames[:16], "mask": mask[:16]}
    held_out = (frames[16:], None, mask[16:])
    wm = world(torch.float32, action_dim=0, channels=(8,), features=16, kl_warmup=20)
    pyro.set_rng_seed(0)
    before = evaluate_bounds(wm, held_out, num_samples=8)["elbo"]
    history = pf.fit(wm, train, epochs=30, batch_size=8, lr=1e-2, progress=False)
    after = evaluate_bounds(wm, held_out, num_samples=8)["elbo"]
    assert history["train_nll"][-1] < history["train_nll"][0]
    assert after > before + 10, (before, after)
    assert pf.evaluate(wm, {"frames": frames[16:], "mask": mask[16:]}) == pytest.approx(
        -after, rel=0.1
    )
