"""The world model's M: its transition prior (an FRMDN, given or named) and its reward and done
heads (World Models' M predicts both beside the next code): small networks on ``[z, a]``, and on
M's state too for a done head that reads it."""

from __future__ import annotations

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..distributions import promote
from .frmdn import FRMDN
from .sequence import shift_actions

PRIORS = {
    "frmdn": dict(num_components=5, rank=1, flow_layers=2),
    "rmdn": dict(num_components=5, rank=0, flow_layers=0),
    "gaussian": dict(num_components=1, rank=0, flow_layers=0),
    "normal": None,
}
"""Named transition priors: the FRMDN (low-rank mixture after a flow), the RMDN (a diagonal
mixture, World Models' MDN-RNN), a single Gaussian transition (DMM-like) and ``"normal"``: no
dynamics, :math:`z_t \\sim \\mathcal N(0, I)` independently (a plain VAE, the first stage of the
two-stage recipe)."""


def build_prior(prior, latent_dim: int, action_dim: int, hidden_dim, options) -> FRMDN | None:
    """M: an FRMDN given as is (checked against the codes and actions), or a named prior."""
    if isinstance(prior, FRMDN):
        if options:
            raise ValueError("prior_options apply to a named prior, not to an FRMDN instance")
        if (prior.obs_dim, prior.input_dim) != (latent_dim, action_dim):
            raise ValueError(
                f"the prior models obs_dim={prior.obs_dim} with input_dim={prior.input_dim}; "
                f"the world model needs {latent_dim} and {action_dim}"
            )
        return prior
    if prior not in PRIORS:
        raise ValueError(f"prior must be an FRMDN or one of {tuple(PRIORS)}, got {prior!r}")
    if PRIORS[prior] is None:
        if options:
            raise ValueError(f"prior={prior!r} takes no prior_options")
        return None
    kwargs = {**PRIORS[prior], "hidden_dim": hidden_dim, **(options or {})}
    return FRMDN(latent_dim, input_dim=action_dim, name="prior", **kwargs)


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
        loc, raw = promote(world.reward_head(inputs)).unbind(-1)  # float32 under autocast
        out["reward"] = dist.Normal(loc, F.softplus(raw) + world.min_scale)
    if world.done_head is not None:
        if world.done_hidden:
            if hidden is None:
                hidden = hidden_states(world.prior, z, actions)
            inputs = torch.cat([inputs, hidden.expand(*z.shape[:-1], -1)], -1)
        out["done"] = dist.Bernoulli(logits=promote(world.done_head(inputs)).squeeze(-1))
    return {k: (d if mask is None else d.mask(mask)).to_event(1) for k, d in out.items()}
