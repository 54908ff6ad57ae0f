"""Validation of a world model's inputs: frames, mask, and per-step actions, rewards and dones."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .validation import as_real, as_tensor, check_mask

if TYPE_CHECKING:
    from .world import WorldModel

__all__ = ["check_frames", "check_inputs", "check_sample_actions"]


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
