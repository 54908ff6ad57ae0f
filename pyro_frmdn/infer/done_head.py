r"""refit_done_head: M's done head refitted on V's codes, class-weighted, then prior-corrected."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..models import WorldModel
from ..models.validation import check_count, check_positive
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

    Arguments:
        world_model: V and M with a done head (``done=True``); only the head changes.
        frames, actions, dones, mask: padded episodes ``(B, T, ...)`` as
            :func:`~pyro_frmdn.data.collect_episodes` returns them.
        steps: Adam steps. lr: its learning rate.
        pos_weight: the weight of a done step (> 0; default the ratio of the classes).
        seed: torch's seed for the codes' order (the fit is full-batch).
        progress: show the package's progress bar with the loss.

    Returns ``{"pos_weight", "loss", "done_steps", "steps"}``: the weight used, the final
    weighted loss, and the counts of done steps and of all steps.
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
    x = torch.cat([z, actions], -1)[keep]  # (N, D + A)
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
            "steps": len(y)}  # fmt: skip
