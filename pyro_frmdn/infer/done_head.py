r"""refit_done_head: M's done head refitted on V's codes, class-weighted, then prior-corrected."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..models import WorldModel
from ..models.validation import check_count, check_positive
from ..models.world_heads import make_head
from .engine import progress_bar

__all__ = ["refit_done_head"]


def refit_done_head(
    world_model: WorldModel,
    frames,
    actions,
    dones,
    mask=None,
    *,
    steps: int = 500,
    lr: float = 1e-2,
    pos_weight: float | None = None,
    hidden: bool | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    r"""Refit the world model's done head :math:`\pi_d(z_t, a_t)` on V's codes of recorded
    episodes, with the rare done steps weighted up, then correct its bias so that its
    probabilities are calibrated again.

    Fitted jointly with the frames by SVI, the done head is one Bernoulli term beside thousands
    of pixel terms, and a done step is rare (about 1 step in 22 of random CartPole): it learns
    the base rate and nothing of the state, so a dream cannot tell a policy that falls at once
    from one that balances. Here it is fitted alone by full-batch Adam on the codes ``z`` (V's
    means, frozen) and the actions, minimising the weighted cross-entropy

    .. math::
        -\sum_t w\, d_t \log \pi_d + (1 - d_t) \log(1 - \pi_d), \qquad
        w = \frac{\#\{d_t = 0\}}{\#\{d_t = 1\}}

    (the weight ``pos_weight``, default this ratio), which makes the classes count equally. The
    minimiser of a weighted loss has its log-odds raised by :math:`\log w`; subtracting it from
    the output bias restores calibrated probabilities (the prior correction of King & Zeng
    2001, "Logistic regression in rare events data", §4.1), which the dream's done draws need.

    With ``hidden=True`` the head reads M's state as well, :math:`\pi_d(z_t, a_t, h_t)`
    (``WorldModel(done_hidden=True)``; :math:`h_t` teacher forced along the episode's codes, as
    the dream meets it). A code shows where things are; M's state also carries how fast they
    move (CartPole from pixels: R² 0.68 for the pole's angular velocity from ``[z, h]``, 0.23
    from ``z``), and whether the pole is past saving depends on both. Switching the kind of
    head (``hidden`` not ``None`` and not the model's ``done_hidden``) starts a fresh head of
    the new inputs (seeded by ``seed``) and records the choice in the model's config, so that
    :func:`~pyro_frmdn.load` rebuilds it.

    Arguments:
        world_model: V and M with a done head (``done=True``); only the head changes.
        frames, actions, dones, mask: padded episodes ``(B, T, ...)`` as
            :func:`~pyro_frmdn.data.collect_episodes` returns them.
        steps: Adam steps. lr: its learning rate.
        pos_weight: the weight of a done step (> 0; default the ratio of the classes).
        hidden: the head reads ``[z, a, h]`` (True) or ``[z, a]`` (False); ``None`` keeps the
            model's kind.
        seed: torch's seed for the codes' order (the fit is full-batch).
        progress: show the package's progress bar with the loss.

    Returns ``{"pos_weight", "loss", "done_steps", "steps", "hidden"}``: the weight used, the
    final weighted loss, the counts of done steps and of all steps, and whether the head reads
    M's state.
    """
    if not isinstance(world_model, WorldModel):
        raise TypeError(f"world_model must be a WorldModel, got {type(world_model).__name__}")
    if world_model.done_head is None:
        raise ValueError("the world model has no done head to refit (build it with done=True)")
    steps, lr = check_count("steps", steps), check_positive("lr", lr)
    z = world_model.encode(frames, mask)  # (B, T, D), checks frames and mask
    keep = torch.ones(z.shape[:2], dtype=torch.bool) if mask is None else torch.as_tensor(mask)
    actions = torch.as_tensor(actions, dtype=z.dtype)
    dones = torch.as_tensor(dones)
    if actions.shape[:2] != z.shape[:2] or actions.shape[-1] != world_model.action_dim:
        raise ValueError(
            f"actions must have shape {(*z.shape[:2], world_model.action_dim)}, got "
            f"{tuple(actions.shape)}"
        )
    if dones.shape != z.shape[:2]:
        raise ValueError(f"dones must have shape {tuple(z.shape[:2])}, got {tuple(dones.shape)}")
    if hidden is not None and bool(hidden) != world_model.done_hidden:
        _new_head(world_model, bool(hidden), seed)
    x = torch.cat([z, actions], -1)
    if world_model.done_hidden:  # M's state where each step's code is read
        with torch.no_grad():
            x = torch.cat([x, world_model.hidden_states(z, actions)], -1)
    x = x[keep]  # (N, D + A [+ H])
    y = dones[keep].to(z.dtype)
    positive = int(y.sum())
    if positive == 0 or positive == len(y):
        raise ValueError(
            f"dones must hold both classes at unmasked steps, got {positive} of {len(y)}"
        )
    if pos_weight is None:
        pos_weight = (len(y) - positive) / positive
    pos_weight = check_positive("pos_weight", pos_weight)
    head = world_model.done_head
    weight = torch.tensor(pos_weight, dtype=z.dtype)
    optimiser = torch.optim.Adam(head.parameters(), lr=lr)
    bar = progress_bar(steps, "done head", progress)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        order = torch.randperm(len(y))
    x, y = x[order], y[order]
    try:
        for _ in range(steps):
            optimiser.zero_grad()
            loss = F.binary_cross_entropy_with_logits(head(x).squeeze(-1), y, pos_weight=weight)
            loss.backward()
            optimiser.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.4f}")
    finally:
        bar.close()
    with torch.no_grad():
        head[-1].bias -= math.log(pos_weight)
    return {"pos_weight": pos_weight, "loss": loss.item(), "done_steps": positive,
            "steps": len(y), "hidden": world_model.done_hidden}  # fmt: skip


def _new_head(world_model: WorldModel, hidden: bool, seed: int) -> None:
    """Give the world model a fresh done head on ``[z, a, h]`` or ``[z, a]``, in its config."""
    if hidden and world_model.prior is None:
        raise ValueError("hidden=True needs M: the world model's prior is 'normal'")
    old = world_model.done_head
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        za = world_model.latent_dim + world_model.action_dim
        head = make_head(za, 1, world_model.prior.rnn.hidden_size if hidden else 0)
    world_model.done_head = head.to(device=old[0].weight.device, dtype=old[0].weight.dtype)
    world_model.done_hidden = hidden
    world_model.config["done_hidden"] = hidden
