"""The run's data transform: named in ``data.transform``, fitted on the training split, saved in
the run folder's ``transform.json``, and the splits in the model's space with their Jacobians."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..data import (
    Compose,
    DataTransform,
    LogitTransform,
    Standardize,
    UniformDequantize,
    transform_from_state,
)
from ..files import atomic_write
from .checks import ConfigError

__all__ = [
    "TRANSFORMS",
    "TRANSFORM_FILE",
    "Part",
    "build_transform",
    "check_transform",
    "fit_transform",
    "read_transform",
    "to_user_units",
    "transform_parts",
    "write_transform",
]

TRANSFORM_FILE = "transform.json"
TRANSFORMS = {
    "none": None,
    "standardize": Standardize,
    "logit": LogitTransform,
    "dequantize": UniformDequantize,
}
SPEC = (
    f"one of {', '.join(repr(k) for k in TRANSFORMS)}, a table such as "
    '{kind = "dequantize", levels = 256}, or a list of them (applied in order)'
)


@dataclass
class Part:
    """One split: ``y`` (N, T, D) in the user's units, ``mask`` (N, T) or ``None``, ``z`` the
    same in the model's space and ``log_det`` (N, T) float64 the transform's log|det J| per
    step."""

    y: Tensor
    mask: Tensor | None
    z: Tensor
    log_det: Tensor

    def __len__(self) -> int:
        return len(self.y)

    def fit_data(self) -> Tensor | dict[str, Tensor]:
        """The model-space data as ``fit`` and ``evaluate`` take them."""
        return self.z if self.mask is None else {"y": self.z, "mask": self.mask}

    def mean_log_det(self) -> float:
        """The mean log|det J| over the scored steps: the model's NLL per step minus this is the
        NLL per step in the user's units."""
        ld = self.log_det
        return float(ld.mean() if self.mask is None else ld[self.mask].mean())


def build_transform(spec: object, name: str = "data.transform") -> DataTransform | None:
    """The transform ``spec`` names (``None`` for ``"none"``), not yet fitted.

    Example:
        >>> build_transform(["dequantize", {"kind": "logit", "lam": 0.01}]).transforms[1].lam
        0.01
    """
    items = spec if isinstance(spec, list) and spec else [spec]
    transforms = []
    for item in items:
        kind, options = item, {}
        if isinstance(item, dict):
            kind, options = item.get("kind"), {k: v for k, v in item.items() if k != "kind"}
        if not (isinstance(kind, str) and kind in TRANSFORMS) or (kind == "none" and options):
            raise ConfigError(f"{name} must be {SPEC}; got {spec!r}")
        if kind == "none":
            continue
        try:
            transforms.append(TRANSFORMS[kind](**options))
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{name} {item!r}: {e}") from None
    if not transforms:
        return None
    return transforms[0] if len(transforms) == 1 else Compose(transforms)


def check_transform(name: str, value: object) -> None:
    """The rule of ``data.transform`` (``None``: the default of the data's kind)."""
    if value is not None:
        build_transform(value, name)


def fit_transform(spec: object, y: Tensor, mask: Tensor | None) -> DataTransform | None:
    """The transform ``spec`` fitted on the training steps ``y`` where ``mask`` is true."""
    transform = build_transform(spec)
    if transform is not None:
        try:
            transform.fit(y, mask)
        except ValueError as e:
            raise ConfigError(f"data.transform {spec!r} on the training split: {e}") from None
    return transform


def transform_parts(
    transform: DataTransform | None,
    parts: dict[str, tuple[Tensor, Tensor | None]],
    spec: object,
    seed: int,
) -> dict[str, Part]:
    """Each split ``(y, mask)`` with its model-space values and log-Jacobians; dequantisation
    noise is drawn from ``seed`` (the same values on every command), padding is zero."""
    result = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name, (y, mask) in parts.items():
            if transform is None:
                result[name] = Part(y, mask, y, torch.zeros(y.shape[:-1], dtype=torch.float64))
                continue
            try:  # in float64, so that the log-Jacobian is exact to float64
                z, log_det = transform.forward_and_log_abs_det_jacobian(y.double())
            except ValueError as e:
                raise ConfigError(f"data.transform {spec!r} on the {name} split: {e}") from None
            z, log_det = z.to(y.dtype), log_det.expand(y.shape[:-1])
            if mask is not None:
                z, log_det = z.masked_fill(~mask[..., None], 0.0), log_det.masked_fill(~mask, 0.0)
            result[name] = Part(y, mask, z, log_det)
    return result


def _plain(state: object) -> object:
    """A transform state with its tensors as lists, for JSON."""
    if isinstance(state, Tensor):
        return state.tolist()
    if isinstance(state, dict):
        return {k: _plain(v) for k, v in state.items()}
    if isinstance(state, list):
        return [_plain(v) for v in state]
    return state


def write_transform(run: Path, transform: DataTransform | None) -> None:
    """Save the fitted transform as ``run/transform.json`` (nothing for ``"none"``)."""
    if transform is not None:
        with atomic_write(run / TRANSFORM_FILE, "w") as f:
            f.write(json.dumps(_plain(transform.state_dict()), indent=2))


def read_transform(run: Path, spec: object) -> DataTransform | None:
    """The transform the run was trained with, from ``run/transform.json``."""
    if build_transform(spec) is None:
        return None
    path = run / TRANSFORM_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{run} holds no {TRANSFORM_FILE} for data.transform {spec!r}")
    try:
        return transform_from_state(json.loads(path.read_text()))
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"{path} is corrupt: {e}") from None


def to_user_units(transform: DataTransform | None, z: Tensor) -> Tensor:
    """Model-space values (samples) in the user's units."""
    return z if transform is None else transform.inverse(z.double()).float()
