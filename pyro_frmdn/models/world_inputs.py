"""Validation of a world model's options and inputs: frames, mask, and per-step actions, rewards
and dones."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .validation import as_real, as_tensor, check_mask
from .world_guide import GUIDE_FLOWS

if TYPE_CHECKING:
    from .world import WorldModel

__all__ = ["DECODERS", "check_frames", "check_inputs", "check_options", "check_sample_actions"]

DECODERS = ("conv", "sprites")
"""Frame decoders: ``"conv"``, transposed convolutions from the whole latent
(:class:`~pyro_frmdn.nn.ConvDecoder`), or ``"sprites"``, K objects each drawn from its own
what-latent and placed at its own where-latent (:class:`~pyro_frmdn.nn.SpriteDecoder`)."""


def check_frames(model: WorldModel, frames, mask) -> tuple[Tensor, Tensor | None]:
    """Validate frames and mask; return frames as floats (masked ones zeroed) and the mask."""
    shape = ("batch", "time", *model.frame_shape)
    frames = as_tensor("frames", frames, model.device)
    if frames.dim() != 5:
        raise ValueError(f"frames must have shape {shape}, got {tuple(frames.shape)}")
    if tuple(frames.shape[2:]) != model.frame_shape:
        raise ValueError(
            f"frames have shape {tuple(frames.shape)}; the model was built for {shape}"
        )
    b, t = frames.shape[:2]
    if b == 0 or t == 0:
        raise ValueError(f"frames are empty: shape {tuple(frames.shape)}")
    if frames.dtype == torch.bool:  # binary frames
        frames = frames.to(model.guide_dtype)
    if mask is not None:
        mask = check_mask(mask, (b, t), "frames", model.device)
        zero = torch.zeros((), dtype=frames.dtype, device=frames.device)
        frames = torch.where(mask.reshape(b, t, 1, 1, 1), frames, zero)
    return model.pixels.prepare(frames).to(model.guide_dtype), mask


def _per_step(name: str, value, trailing: tuple, frames: Tensor, mask: Tensor | None):
    """Check a per-step input ``(B, T, *trailing)``; return it in the frames' dtype, masked
    steps zeroed."""
    if value is None:
        return None
    value = as_tensor(name, value, frames.device)
    b, t = frames.shape[:2]
    if value.shape != (b, t, *trailing):
        raise ValueError(f"{name} must have shape {(b, t, *trailing)}, got {tuple(value.shape)}")
    if mask is not None:
        zero = torch.zeros((), dtype=value.dtype, device=value.device)
        value = torch.where(mask.reshape(b, t, *([1] * len(trailing))), value, zero)
    return as_real(name, value, frames.dtype)


def check_inputs(model: WorldModel, frames, actions, mask, rewards, dones) -> tuple:
    """Validate the inputs; return them with masked steps zeroed and frames as floats."""
    frames, mask = check_frames(model, frames, mask)
    if model.action_dim and actions is None:
        raise ValueError(f"the model was built with action_dim={model.action_dim}: pass actions")
    if not model.action_dim and actions is not None:
        raise ValueError("actions were given but the model was built with action_dim=0")
    actions = _per_step("actions", actions, (model.action_dim,), frames, mask)
    if rewards is not None and model.reward_head is None:
        raise ValueError("rewards were given but the model has no reward head (reward=True)")
    if dones is not None and model.done_head is None:
        raise ValueError("dones were given but the model has no done head (done=True)")
    rewards = _per_step("rewards", rewards, (), frames, mask)
    dones = _per_step("dones", dones, (), frames, mask)
    if dones is not None and not bool(((dones == 0) | (dones == 1)).all()):
        odd = dones[(dones != 0) & (dones != 1)][0]
        raise ValueError(f"dones must be 0/1 (or bool), got values such as {float(odd):g}")
    return frames, actions, mask, rewards, dones


def check_sample_actions(model: WorldModel, actions, num: int, steps: int) -> Tensor | None:
    """Validate the actions of ``model.sample(num, steps, actions)``: ``(num, steps, A)``, given
    iff the model takes actions; return them in the model's dtype."""
    if (actions is None) != (model.action_dim == 0):
        raise ValueError(f"actions (num, steps, {model.action_dim}) are needed iff action_dim > 0")
    if actions is None:
        return None
    actions = as_tensor("actions", actions, model.device)
    if tuple(actions.shape) != (num, steps, model.action_dim):
        raise ValueError(
            f"actions must have shape {(num, steps, model.action_dim)}, got {tuple(actions.shape)}"
        )
    return as_real("actions", actions, model.guide_dtype)


def check_options(
    latent_dim, action_dim, features, rnn_dim, decoder, guide_flow, kl_warmup, kl_start, kl_end
) -> None:
    """Refuse a world model's sizes and options that cannot build, naming each."""
    if latent_dim < 1 or action_dim < 0 or features < 1 or rnn_dim < 1:
        raise ValueError("need latent_dim >= 1, action_dim >= 0, features >= 1, rnn_dim >= 1")
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
    if guide_flow not in GUIDE_FLOWS:
        raise ValueError(f"guide_flow must be one of {GUIDE_FLOWS}, got {guide_flow!r}")
    if kl_warmup < 0 or not 0 <= kl_start <= 1 or not kl_end > 0:
        raise ValueError(
            "need kl_warmup >= 0, 0 <= kl_start <= 1 and kl_end > 0; "
            f"got {kl_warmup}, {kl_start}, {kl_end}"
        )
