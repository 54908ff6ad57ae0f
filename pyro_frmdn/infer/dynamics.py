r"""refit_dynamics: M refitted alone, by maximum likelihood, on V's codes of recorded episodes."""

from __future__ import annotations

import torch

from ..models import WorldModel
from ..models.sequence import shift_actions
from ..models.validation import check_count
from .training import fit

__all__ = ["refit_dynamics"]


def refit_dynamics(
    world_model: WorldModel,
    frames,
    actions,
    mask=None,
    *,
    epochs: int = 100,
    batch_size: int = 32,
    lr: float = 3e-3,
    sample: bool = False,
    standardize: bool = True,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    r"""Fit the world model's dynamics M, :math:`p(z_t \mid z_{<t}, a_{<t})`, alone on V's codes
    of recorded episodes, V and the heads left as they are.

    Fitted jointly with the frames by SVI, M is the prior of the KL term, and nothing keeps
    the codes near unit scale: on CartPole each coordinate of V's codes moves by 0.002-0.05
    around a mean of 0.3-7, so M, reading and predicting raw codes, resolves little of the
    motion, and a dream drawn from it wanders off the codes V gives. This is World Models' own
    order (Ha & Schmidhuber 2018, §3): V first, then M fitted by maximum likelihood on V's codes
    of the episodes, here the guide's means (or draws of it with ``sample=True``, as the
    paper's MDN-RNN saw them), with the actions as M's inputs
    (:func:`~pyro_frmdn.models.shift_actions`). With ``standardize`` (the default) M starts
    afresh and models the codes in standard units (:meth:`FRMDN.set_standardization
    <pyro_frmdn.models.FRMDN.set_standardization>` with the codes' mean and standard deviation;
    its values and densities stay in the codes' units). Cheap: no frame is decoded.

    Arguments:
        world_model: V and M (a world model with an RMDN or FRMDN prior); only M changes.
        frames, actions, mask: padded episodes ``(B, T, ...)`` as
            :func:`~pyro_frmdn.data.collect_episodes` returns them.
        epochs, batch_size, lr, seed, progress: :func:`~pyro_frmdn.infer.fit`'s.
        sample: fit M on draws of :math:`q(z_t \mid x)` instead of its means.
        standardize: start M afresh on the codes in standard units (else fit it as it is).

    Returns ``{"nll_before", "nll_after", "steps"}``: M's negative log-likelihood per unmasked
    step of the codes before and after, and the number of those steps.
    """
    if not isinstance(world_model, WorldModel):
        raise TypeError(f"world_model must be a WorldModel, got {type(world_model).__name__}")
    if world_model.prior is None:
        raise ValueError("the world model's prior is a fixed Normal: there are no dynamics to fit")
    epochs = check_count("epochs", epochs)
    m = world_model.prior
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        z = world_model.encode(frames, mask, sample=sample)  # checks frames and mask
    actions = torch.as_tensor(actions, dtype=z.dtype, device=z.device)
    if actions.shape[:2] != z.shape[:2] or actions.shape[-1:] != (world_model.action_dim,):
        raise ValueError(
            f"actions must have shape {(*z.shape[:2], world_model.action_dim)}, got "
            f"{tuple(actions.shape)}"
        )
    keep = torch.ones(z.shape[:2], dtype=torch.bool, device=z.device) if mask is None else mask
    keep = torch.as_tensor(keep, dtype=torch.bool, device=z.device)
    data = {"y": z, "x": shift_actions(actions), "mask": keep}
    steps = int(keep.sum())
    if steps < 2:
        raise ValueError(f"refit_dynamics needs at least 2 unmasked steps, got {steps}")

    def nll() -> float:
        with torch.no_grad():
            return -float(m.log_prob(**data).sum()) / steps

    before = nll()
    if standardize:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            fresh = type(m).from_config(m.config).to(device=z.device, dtype=m.start.dtype)
        m.load_state_dict(fresh.state_dict())
        rows = z[keep]
        m.set_standardization(rows.mean(0), rows.std(0).clamp_min(1e-8))
    was_training = world_model.training
    fit(m, data, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, progress=progress)
    world_model.train(was_training)
    return {"nll_before": before, "nll_after": nll(), "steps": steps}
