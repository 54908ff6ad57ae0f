"""Validation of a world model's inputs: frames, mask, and per-step actions, rewards and dones."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .validation import check_finite, check_mask

if TYPE_CHECKING:
    from .world import WorldModel

__all__ = ["check_frames", "check_inputs"]


def check_frames(
    model: WorldModel, frames: Tensor, mask: Tensor | None
) -> tuple[Tensor, Tensor | None]:
    """Validate frames and mask; return frames as floats (masked ones zeroed) and the mask."""
    shape = ("batch", "time", *model.frame_shape)
    if not isinstance(frames, Tensor) or frames.dim() != 5:
        got = tuple(frames.shape) if isinstance(frames, Tensor) else type(frames).__name__
        raise ValueError(f"frames must be a tensor of shape {shape}, got {got}")
    if tuple(frames.shape[2:]) != model.frame_shape:
        raise ValueError(
            f"frames have shape {tuple(frames.shape)}; the model was built for {shape}"
        )
    b, t = frames.shape[:2]
    if b == 0 or t == 0:
        raise ValueError(f"frames are empty: shape {tuple(frames.shape)}")
    if mask is not None:
        mask = check_mask(mask, (b, t), "frames")
        zero = torch.zeros((), dtype=frames.dtype, device=frames.device)
        frames = torch.where(mask.reshape(b, t, 1, 1, 1), frames, zero)
    return model.pixels.prepare(frames).to(model.guide_dtype), mask


def _per_step(
    name: str, value: Tensor | None, trailing: tuple, frames: Tensor, mask: Tensor | None
) -> Tensor | None:
    """Check a per-step input ``(B, T, *trailing)``; return it in the frames' dtype, masked
    steps zeroed."""
    if value is None:
        return None
    b, t = frames.shape[:2]
    if value.shape != (b, t, *trailing):
        raise ValueError(f"{name} must have shape {(b, t, *trailing)}, got {tuple(value.shape)}")
    value = value.to(frames.dtype)
    if mask is not None:
        value = value.masked_fill(~mask.reshape(b, t, *([1] * len(trailing))), 0.0)
    check_finite(name, value)
    return value


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
        raise ValueError("dones must be 0/1 (or bool)")
    return frames, actions, mask, rewards, dones
