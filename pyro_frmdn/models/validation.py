"""Checks of what enters a model, with errors that say which argument, what was expected and what
came.

One rule for every entry point (the table is ``docs/errors.md``):

- data (``y``, ``x``, ``prime``, frames, actions, ...) may be a tensor, a numpy array or a
  nested list of numbers; arrays and lists are made tensors on the model's device, a tensor on
  another device is refused (no silent copies);
- real values (bool, integer, floating) are converted to the model's dtype; NaN or Inf at a
  scored step, and values beyond the square root of the dtype's largest number (``1e20`` for
  float32), whose squares would overflow, are refused;
- a mask is boolean (True where a step is scored), never binarised from numbers;
- counts (``num``, ``steps``, ...) are integers >= 1; temperatures finite numbers > 0.
"""

from __future__ import annotations

import math
import numbers
import operator

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "as_real",
    "as_tensor",
    "check_count",
    "check_finite",
    "check_generation_inputs",
    "check_mask",
    "check_positive",
    "check_sequences",
    "largest_value",
]


def as_tensor(name: str, value, device: torch.device | None = None) -> Tensor:
    """``value`` as a tensor: a tensor as it is, an array or a nested list made one on ``device``.

    Raises a TypeError naming ``name`` for anything else, and a ValueError naming both devices for
    a tensor that is not on ``device`` (``None``: any device).
    """
    if isinstance(value, Tensor):
        if device is not None and value.device != torch.device(device):
            raise ValueError(
                f"{name} is on {value.device} but the model is on {device}: pass "
                f"{name}.to(model.device), or move the model"
            )
        return value
    expected = f"{name} must be a torch.Tensor, a numpy array or a nested list of numbers"
    if not isinstance(value, (np.ndarray, np.generic, list, tuple, numbers.Number)):
        raise TypeError(f"{expected}, got {type(value).__name__}")
    try:
        array = np.asarray(value)
    except ValueError as e:  # ragged lists
        raise ValueError(f"{name} could not be made a tensor: {e}") from e
    if array.dtype.kind not in "biufc":
        raise TypeError(f"{expected}, got an array of {array.dtype}")
    if array.dtype.kind == "u" and array.dtype.itemsize > 1:
        array = array.astype(np.int64)  # torch has uint8 only, in full
    return torch.as_tensor(array, device=device)


def check_finite(name: str, t: Tensor, where: Tensor | None = None) -> None:
    """Raise a ValueError naming the first NaN or Inf of ``t`` (only where ``where`` is true)."""
    bad = ~torch.isfinite(t)
    if where is not None:
        bad = bad & where
    if bool(bad.any()):
        pos = _first(bad)
        kind = "NaN" if bool(torch.isnan(t[pos])) else "Inf"
        raise ValueError(
            f"{name} has {kind} at position {pos}; all (unmasked) values must be finite"
        )


def as_real(name: str, t: Tensor, dtype: torch.dtype, where: Tensor | None = None) -> Tensor:
    """``t`` (bool, integer or floating) in the model's floating ``dtype``, checked.

    Refused, at the positions where ``where`` is true (``None``: all): NaN, Inf, and values
    beyond :func:`largest_value` of ``dtype`` (their squares, and the networks' sums of them,
    would overflow: a density or a hidden state would become NaN).
    """
    if t.is_complex() or not (t.is_floating_point() or t.dtype == torch.bool or _is_int(t)):
        raise TypeError(
            f"{name} must hold real numbers (bool, integer or floating point), got "
            f"{_dtype_name(t.dtype)}"
        )
    out = t.to(dtype)
    limit = largest_value(dtype)
    bad = ~(out.abs() <= limit)  # NaN too
    if where is not None:
        bad = bad & where
    if bool(bad.any()):
        pos = _first(bad)
        value = t[pos].item()
        if math.isfinite(value):
            wider = "" if dtype == torch.float64 else ", or use a float64 model"
            raise ValueError(
                f"{name} holds {value:g} at position {pos}, beyond what a {_dtype_name(dtype)} "
                f"model computes with (|{name}| <= {limit:.3g}, whose square is the largest "
                f"{_dtype_name(dtype)}): standardise the data{wider}"
            )
        check_finite(name, t, where)
    return out


def largest_value(dtype: torch.dtype) -> float:
    """The largest magnitude a model in ``dtype`` accepts: the square root of the largest float,
    so that squared distances and first-layer sums stay finite (3.4e38 -> 1.8e19 in float32)."""
    return math.sqrt(torch.finfo(dtype).max)


def check_mask(
    mask, shape: tuple[int, int], against: str = "y", device: torch.device | None = None
) -> Tensor:
    """Validate a boolean (B, T) ``mask`` for the tensor named ``against``; return it as a tensor.

    Numbers (0.5, 2, NaN, or 0/1 floats and integers) are refused, never binarised: a mask says
    which steps are scored, True or False.
    """
    mask = as_tensor("mask", mask, device)
    if mask.dtype != torch.bool:
        shown = _example(mask)
        raise ValueError(
            f"mask must be boolean (True where a step is scored), got {_dtype_name(mask.dtype)} "
            f"values such as {shown}; pass a bool tensor (e.g. mask > 0 if that is what is meant)"
        )
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(
            f"mask must have shape {tuple(shape)} to match {against}, got {tuple(mask.shape)}"
        )
    if not bool(mask.any()):
        raise ValueError("mask is false everywhere: there is nothing to score")
    return mask


def check_count(name: str, value) -> int:
    """``value`` as an int >= 1 (a number of sequences, steps or samples)."""
    wrong = TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, Tensor) and not _is_int(value)):
        raise wrong
    try:
        n = operator.index(value)
    except TypeError:
        raise wrong from None
    if n < 1:
        raise ValueError(f"{name} must be >= 1, got {n}")
    return n


def check_positive(name: str, value) -> float:
    """``value`` as a float, finite and > 0 (a temperature, a scale)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return float(value)


def check_sequences(
    y,
    x,
    mask,
    obs_dim: int,
    input_dim: int,
    dtype: torch.dtype | None = None,
    device: torch.device | None = None,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Validate ``y`` (B, T, D), ``x`` (B, T, X) and ``mask`` (B, T); return them as tensors of
    ``dtype`` (the mask boolean) with the padding of ``y`` zeroed.

    ``dtype`` and ``device`` are the model's (default: those of ``y``, floating). Values of ``y``
    where ``mask`` is false are replaced by zeros, so that padding (even NaN) never reaches the
    network: it changes neither a loss nor a gradient.
    """
    y = as_tensor("y", y, device)
    if y.dim() != 3:
        raise ValueError(f"y must have shape (batch, time, {obs_dim}), got {tuple(y.shape)}")
    device = y.device if device is None else device
    if dtype is None:
        dtype = y.dtype if y.is_floating_point() else torch.get_default_dtype()
    b, t, d = y.shape
    if d != obs_dim:
        raise ValueError(f"y has {d} dims per step but the model was built for obs_dim={obs_dim}")
    if b == 0 or t == 0:
        raise ValueError(f"y is empty: shape {tuple(y.shape)}")
    if mask is not None:
        mask = check_mask(mask, (b, t), "y", device)
        y = torch.where(mask.unsqueeze(-1), y, torch.zeros((), dtype=y.dtype, device=y.device))
    y = as_real("y", y, dtype)
    if input_dim:
        if x is None:
            raise ValueError(f"the model was built with input_dim={input_dim}: pass x (B, T, X)")
        x = as_tensor("x", x, device)
        if x.dim() != 3 or x.shape[:2] != (b, t) or x.shape[-1] != input_dim:
            raise ValueError(
                f"x must have shape {(b, t, input_dim)} to match y, got {tuple(x.shape)}"
            )
        x = as_real("x", x, dtype)
    elif x is not None:
        raise ValueError("x was given but the model was built with input_dim=0")
    return y, x, mask


def check_generation_inputs(
    prime,
    x,
    num: int,
    steps: int,
    obs_dim: int,
    input_dim: int,
    dtype: torch.dtype,
    device: torch.device,
) -> tuple[Tensor | None, Tensor | None]:
    """Check what a sequence model's ``sample`` conditions on; return ``(prime, x)`` as tensors
    in ``dtype``.

    ``prime``: None, or a prefix (P, D) shared by the ``num`` sequences or (num, P, D), P >= 1;
    returned as (num, P, D). ``x``: the inputs of every step, the prime's included, (num, P +
    steps, X); required when ``input_dim`` > 0, refused when it is 0.
    """
    p = 0
    if prime is not None:
        prime = as_tensor("prime", prime, device)
        if (
            prime.dim() not in (2, 3)
            or prime.shape[-1] != obs_dim
            or prime.shape[-2] < 1
            or (prime.dim() == 3 and prime.shape[0] != num)
        ):
            raise ValueError(
                f"prime must have shape (P, {obs_dim}) or ({num}, P, {obs_dim}) with P >= 1, "
                f"got {tuple(prime.shape)}"
            )
        p = prime.shape[-2]
        prime = as_real("prime", prime, dtype).expand(num, p, obs_dim)
    if input_dim:
        x = None if x is None else as_tensor("x", x, device)
        if x is None or tuple(x.shape) != (num, p + steps, input_dim):
            shape = None if x is None else tuple(x.shape)
            raise ValueError(
                f"x must have shape {(num, p + steps, input_dim)} (num, prime and new steps, "
                f"input_dim), got {shape}"
            )
        x = as_real("x", x, dtype)
    elif x is not None:
        raise ValueError("x was given but the model was built with input_dim=0")
    return prime, x


def _first(bad: Tensor) -> tuple[int, ...]:
    return tuple(int(i) for i in bad.nonzero()[0])


def _is_int(t: Tensor) -> bool:
    return not (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _example(t: Tensor):
    """A value of ``t`` to show: the first that is not 0 or 1, else the first."""
    if t.numel() == 0:
        return "none (it is empty)"
    odd = (t != 0) & (t != 1)
    return t[_first(odd)].item() if bool(odd.any()) else t.reshape(-1)[0].item()
