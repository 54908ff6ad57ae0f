"""Tiny world models and episodes shared by the world-model tests."""

import torch

import pyro_frmdn as pf

SHAPE, D, A = (1, 8, 8), 3, 2
B, T = 4, 5


def world(dtype=torch.float64, seed=0, **kwargs):
    torch.manual_seed(seed)
    config = dict(
        latent_dim=D,
        action_dim=A,
        likelihood="bernoulli",
        channels=(4,),
        features=8,
        hidden_dim=8,
        rnn_dim=6,
    )
    if kwargs.get("prior", "frmdn") in ("frmdn", "rmdn"):
        config["prior_options"] = {"num_components": 2}
    config.update(kwargs)
    return pf.WorldModel(SHAPE, **config).to(dtype)


def episode(seed=1, dtype=torch.float64, b=B, t=T):
    g = torch.Generator().manual_seed(seed)
    frames = (torch.rand(b, t, *SHAPE, generator=g) < 0.3).to(dtype)
    actions = torch.randn(b, t, A, generator=g, dtype=dtype)
    rewards = torch.randn(b, t, generator=g, dtype=dtype)
    dones = torch.zeros(b, t, dtype=dtype)
    dones[:, -1] = 1
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[1, 3:] = False
    return frames, actions, mask, rewards, dones
