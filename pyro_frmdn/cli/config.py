"""The run config: TOML sections ``[data]``, ``[model]``, ``[train]``, their defaults and checks."""

from __future__ import annotations

import inspect
import json
import os
import textwrap
import warnings
from collections.abc import Callable, Sequence

from ..data import make_task
from ..infer import fit
from ..models import FRMDN

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    try:
        import tomli as tomllib
    except ModuleNotFoundError:
        tomllib = None

__all__ = [
    "DEFAULTS",
    "FROM_DATA",
    "ConfigError",
    "config_help",
    "load_config",
    "resolve_config",
]

FROM_DATA = ("obs_dim", "input_dim")  # model arguments that the data set fixes
TRAIN_KEYS = (
    "epochs",
    "batch_size",
    "lr",
    "clip_value",
    "clip_norm",
    "lr_decay",
    "patience",
    "seed",
    "device",
    "checkpoint_every",
)


def _defaults(fn: Callable, skip: Sequence[str] = (), only: Sequence[str] | None = None) -> dict:
    params = inspect.signature(fn).parameters.items()
    return {
        k: p.default
        for k, p in params
        if p.default is not p.empty and k not in skip and (only is None or k in only)
    }


# Every valid key with its default, taken from the functions the keys are passed to.
DEFAULTS = {
    "data": {
        "task": "branching",
        **_defaults(make_task),
        "val_fraction": 0.1,
        "test_fraction": 0.1,
    },
    "model": {"kind": "frmdn", **_defaults(FRMDN.__init__, skip=FROM_DATA)},
    "train": {**_defaults(fit, only=TRAIN_KEYS), "clip_norm": None},  # None: not passed to fit
}


class ConfigError(ValueError):
    """A config (file, ``--set`` or saved run) with an unknown key or a value of the wrong type."""


def _check_keys(what: str, given: dict, valid: dict, where: str) -> None:
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise ConfigError(
            f"unknown {what} {unknown[0]!r} in {where}; valid {what}s: {', '.join(valid)}"
        )


def _check_type(name: str, value: object, default: object) -> None:
    if default is None:  # patience, device, flow_hidden_dims: checked where they are used
        return
    kind = type(default)
    ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok:
        raise ConfigError(f"{name} must be of type {kind.__name__}, got {value!r}")


def resolve_config(config: dict) -> dict:
    """Check sections, keys and value types, and fill in the defaults of ``[data]``, ``[train]``.

    ``[model]`` keeps only the keys given (and ``kind``): the model fills in its own defaults, and
    the run folder saves the model's complete ``config``.

    Example:
        >>> resolve_config({"train": {"epochs": 3}})["train"]["epochs"]
        3
        >>> resolve_config({"model": {"hidden_dim": 8}})["model"]
        {'kind': 'frmdn', 'hidden_dim': 8}
    """
    _check_keys("section", config, DEFAULTS, "the config")
    config = _upgrade(config)
    resolved = {}
    for section, defaults in DEFAULTS.items():
        values = config.get(section, {})
        if not isinstance(values, dict):
            raise ConfigError(f"[{section}] must be a table of keys, got {values!r}")
        _check_keys("key", values, defaults, f"[{section}]")
        for key, value in values.items():
            _check_type(f"{section}.{key}", value, defaults[key])
        base = {"kind": defaults["kind"]} if section == "model" else defaults
        resolved[section] = {**base, **values}
    return resolved


def _upgrade(config: dict) -> dict:
    """Keys renamed since version 0.1 (configs and run folders written before), with a warning."""
    model = config.get("model")
    if isinstance(model, dict) and set(model) & set(FRMDN.renamed_config_keys):
        old = sorted(set(model) & set(FRMDN.renamed_config_keys))
        warnings.warn(
            f"[model] {', '.join(old)}: renamed to "
            f"{', '.join(FRMDN.renamed_config_keys[k] for k in old)} in version 0.2",
            FutureWarning,
            stacklevel=3,
        )
        config = {**config, "model": FRMDN.upgrade_config(model)}
    train = config.get("train")
    if isinstance(train, dict) and "clip_norm" in train and "clip_value" not in train:
        warnings.warn(
            "[train] clip_norm is the global gradient norm since version 0.2; the elementwise "
            "clamp it named before is clip_value (default 10)",
            FutureWarning,
            stacklevel=3,
        )
    return config


def _parse_set(item: str) -> tuple[str, str, object]:
    name, sep, text = item.partition("=")
    section, dot, key = name.strip().partition(".")
    if not (sep and dot and section and key):
        raise ConfigError(f"--set expects SECTION.KEY=VALUE (e.g. model.cell=gru), got {item!r}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text  # a bare string: --set model.cell=gru
    return section, key, value


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> dict:
    """A TOML config file (or none: the defaults) with ``SECTION.KEY=VALUE`` overrides, resolved."""
    config: dict = {}
    if path is not None:
        if tomllib is None:
            raise ConfigError("reading a TOML config on Python 3.10 needs tomli: pip install tomli")
        try:
            with open(path, "rb") as f:
                config = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"no config file at {path}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config {path} is not valid TOML: {e}") from None
    for item in overrides:
        section, key, value = _parse_set(item)
        section_values = config.setdefault(section, {})
        if isinstance(section_values, dict):
            section_values[key] = value
    return resolve_config(config)


def config_help() -> str:
    """Every config key by section with its default, for ``pyro-frmdn train --help``."""
    lines = ["config keys, by TOML section, with their defaults (- : unset):"]
    for section, defaults in DEFAULTS.items():
        items = ", ".join(f"{k}={'-' if v is None else json.dumps(v)}" for k, v in defaults.items())
        lines += textwrap.wrap(
            items, 78, initial_indent=f"  [{section}] ", subsequent_indent=" " * 4
        )
    lines.append('  kind="rmdn" is the model without a flow (flow keys unused)')
    return "\n".join(lines)
