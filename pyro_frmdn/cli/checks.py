"""Checks of the command's values (counts, numbers, seeds, devices, folders) and its error line."""

from __future__ import annotations

import math
import numbers
from pathlib import Path

import torch

from ..infer import resolve_device

__all__ = [
    "MAX_SEED",
    "ConfigError",
    "check_device",
    "check_folder",
    "check_integer",
    "check_number",
    "check_seed",
    "error_line",
    "resolve_device_value",
]

MAX_SEED = 2**32 - 1  # numpy's seeds, which pyro.set_rng_seed sets too
DEVICE_TYPES = ("cpu", "cuda", "mps")


class ConfigError(ValueError):
    """A bad option or config value (file, ``--set`` or saved run): the command's one-line error."""


def _integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_integer(name: str, value: object, low: int) -> None:
    """Refuse anything but an integer ``>= low``.

    Example:
        >>> check_integer("--num", 0, 1)
        Traceback (most recent call last):
        ...
        pyro_frmdn.cli.checks.ConfigError: --num must be an integer >= 1, got 0
    """
    if not (_integer(value) and value >= low):
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")


def check_number(name: str, value: object, low: float = 0.0, strict: bool = True) -> None:
    """Refuse anything but a finite number ``> low`` (``>= low`` when not ``strict``)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not (ok and (value > low if strict else value >= low)):
        rule = f"{'>' if strict else '>='} {low:g}"
        raise ConfigError(f"{name} must be a finite number {rule}, got {value!r}")


def check_seed(name: str, value: object) -> None:
    """Refuse a seed that numpy (and so ``pyro.set_rng_seed``) cannot take."""
    if not (_integer(value) and 0 <= value <= MAX_SEED):
        raise ConfigError(f"{name} must be an integer in [0, 2**32 - 1], got {value!r}")


def check_device(name: str, value: object) -> None:
    """Refuse a device that is not ``None`` or the name of a CPU, CUDA or MPS device."""
    if value is None:
        return
    expected = f"{name} must be a device name such as 'cpu', 'cuda' or 'cuda:1', got {value!r}"
    if not isinstance(value, str):
        raise ConfigError(expected)
    try:
        device = torch.device(value)
    except (RuntimeError, ValueError):
        raise ConfigError(expected) from None
    if device.type not in DEVICE_TYPES:
        raise ConfigError(expected)


def resolve_device_value(name: str, value: str | None) -> torch.device:
    """The device ``value`` names (``None``: CUDA when available, else the CPU), refusing a
    device this machine does not have."""
    check_device(name, value)
    if value is None:
        return resolve_device(None)
    device = torch.device(value)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"{name} {value!r}: CUDA is not available here (use --device cpu)")
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"{name} {value!r}: this machine has {count} CUDA device(s), cuda:0 to "
                f"cuda:{count - 1}"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{name} {value!r}: MPS is not available here (use --device cpu)")
    return device


def check_folder(name: str, path: str) -> Path:
    """``path`` as a folder to read or write: not empty, and not an existing file."""
    if not path:
        raise ConfigError(f"{name} must name a folder, got {path!r}")
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{name} {folder} is a file, not a folder")
    return folder


def error_line(command: str, error: BaseException) -> str:
    """The one line a refused command prints: ``pyro-frmdn COMMAND: error: MESSAGE``."""
    text = str(error).strip()
    message = text.splitlines()[0] if text else type(error).__name__
    return f"pyro-frmdn {command}: error: {message}"
