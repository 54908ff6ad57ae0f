"""The world model's reward and done heads (World Models' M predicts both beside the next code):
small networks on ``[z, a]``, and on M's state too for a done head that reads it."""

from __future__ import annotations

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .frmdn import FRMDN
from .sequence import shift_actions


def make_head(za: int, outputs: int, extra: int = 0) -> nn.Module:
    """A head on ``[z, a]`` of ``za`` numbers (and ``extra`` more: M's state), one hidden layer
    of ``2 za + 16`` ReLUs, ``outputs`` numbers out."""
    width = 2 * za + 16
    return nn.Sequential(nn.Linear(za + extra, width), nn.ReLU(), nn.Linear(width, outputs))


def hidden_states(prior: FRMDN, z: Tensor, actions: Tensor | None) -> Tensor:
    """M's RNN features :math:`h_t` along whole sequences ``z`` ``(..., T, D)``, teacher forced
    on ``z`` and ``shift_actions(actions)``: ``(..., T, H)``."""
    lead, t = z.shape[:-2], z.shape[-2]
    flat = z.reshape(-1, t, z.shape[-1])
    x = None
    if actions is not None:
        x = shift_actions(actions.expand(*lead, t, -1).reshape(len(flat), t, -1))
    h = prior.features(flat, x)
    return h.reshape(*lead, t, h.shape[-1])


def head_distributions(world, z, actions, mask, hidden) -> dict:
    """``{"reward": Normal, "done": Bernoulli}`` (the heads ``world`` has) at ``z`` and
    ``actions``; see :meth:`~pyro_frmdn.models.WorldModel.head_distributions`."""
    inputs = z if actions is None else torch.cat([z, actions.expand(*z.shape[:-1], -1)], -1)
    out = {}
    if world.reward_head is not None:
        loc, raw = world.reward_head(inputs).unbind(-1)
        out["reward"] = dist.Normal(loc, F.softplus(raw) + world.min_scale)
    if world.done_head is not None:
        if world.done_hidden:
            if hidden is None:
                hidden = hidden_states(world.prior, z, actions)
            inputs = torch.cat([inputs, hidden.expand(*z.shape[:-1], -1)], -1)
        out["done"] = dist.Bernoulli(logits=world.done_head(inputs).squeeze(-1))
    return {k: (d if mask is None else d.mask(mask)).to_event(1) for k, d in out.items()}
