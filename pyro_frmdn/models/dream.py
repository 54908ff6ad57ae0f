"""Dreams of a world model: its latent dynamics rolled forward from encoded frames, decoded."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .sequence import shift_actions
from .validation import as_real, as_tensor, check_count, check_positive
from .world import WorldModel

__all__ = ["Dream", "dream"]


@dataclass
class Dream:
    """What :func:`dream` returns (``B`` sequences of ``S`` dreamed steps)."""

    frames: Tensor  # (B, S, C, H, W) in [0, 1]
    latents: Tensor  # (B, S, D)
    rewards: Tensor | None = None  # (B, S) predicted mean rewards
    dones: Tensor | None = None  # (B, S) probabilities of the episode ending


@torch.no_grad()
def dream(
    world_model: WorldModel,
    frames: Tensor,
    actions: Tensor | None = None,
    steps: int = 16,
    pi_temperature: float = 1.0,
    scale_temperature: float = 1.0,
) -> Dream:
    r"""Roll the latent dynamics forward from encoded frames, and decode ("dreaming", Ha &
    Schmidhuber 2018).

    The ``P`` given frames are encoded (:meth:`WorldModel.encode`) and prime the prior's RNN;
    then ``steps`` latents are drawn from :math:`p(z_t \mid z_{<t}, a_{<t})` with the
    temperatures of :func:`~pyro_frmdn.distributions.temper` (World Models' convention: logits
    divided by ``pi_temperature``, covariances multiplied by ``scale_temperature``, in the flow's
    base space), and decoded. The reward and done heads are read at every dreamed step (a done
    head of ``done_hidden=True`` with M's state after the context and the dream so far).

    Arguments:
        world_model: a :class:`WorldModel` with dynamics (not ``prior="normal"``).
        frames: the context ``(B, P, C, H, W)``.
        actions: ``(B, P + steps, A)`` (longer is cut): the action after each context frame and
            each dreamed one (the last is read only by the reward and done heads).
        steps: how many frames to dream, >= 1.
        pi_temperature, scale_temperature: finite and > 0.

    ``frames`` and ``actions`` are checked as the inputs of :meth:`WorldModel.elbo` are (see
    ``docs/errors.md``): tensors on the model's device, numpy arrays or lists.
    """
    wm = world_model
    if wm.prior is None:
        raise ValueError("a world model with prior='normal' has no dynamics to dream with")
    frames = as_tensor("frames", frames, wm.device)
    if frames.dim() != 5 or frames.shape[1] < 1:
        raise ValueError(f"frames must have shape (B, P >= 1, C, H, W), got {tuple(frames.shape)}")
    steps = check_count("steps", steps)
    check_positive("pi_temperature", pi_temperature)
    check_positive("scale_temperature", scale_temperature)
    b, p = frames.shape[:2]
    if wm.action_dim:
        actions = None if actions is None else as_tensor("actions", actions, wm.device)
        if (
            actions is None
            or actions.dim() != 3
            or actions.shape[0] != b
            or actions.shape[1] < p + steps
            or actions.shape[2] != wm.action_dim
        ):
            shape = None if actions is None else tuple(actions.shape)
            raise ValueError(
                f"actions must have shape ({b}, >= {p + steps}, {wm.action_dim}), got {shape}"
            )
        actions = as_real("actions", actions[:, : p + steps], wm.guide_dtype)
    elif actions is not None:
        raise ValueError("actions were given but the model was built with action_dim=0")
    was_training = wm.training
    wm.eval()
    try:
        prime = wm.encode(frames)
        x = None if actions is None else shift_actions(actions)
        z = wm.prior.sample(
            b, steps, x=x, prime=prime,
            pi_temperature=pi_temperature, scale_temperature=scale_temperature,
        )  # fmt: skip
        hidden = None
        if wm.done_hidden:  # M's state at each dreamed step, after the context and the dream
            hidden = wm.hidden_states(torch.cat([prime, z], 1), actions)[:, p:]
        heads = wm.head_distributions(z, None if actions is None else actions[:, p:], None, hidden)
        out = Dream(wm.decode(z), z)
        if "reward" in heads:
            out.rewards = heads["reward"].base_dist.mean
        if "done" in heads:
            out.dones = heads["done"].base_dist.probs
        return out
    finally:
        wm.train(was_training)
