"""The run config: TOML sections ``[data]``, ``[model]``, ``[train]``, their defaults and checks."""

from __future__ import annotations

import inspect
import json
import os
import textwrap
import warnings
from collections.abc import Callable, Sequence

from ..data import handwriting, kanji_stroke5, make_task
from ..infer import TRAINING_PRECISIONS, fit
from ..infer.engine import check_options
from ..models import FRMDN, HandwritingSynthesis, SketchVAE
from .checks import ConfigError, check_device, check_integer, check_number, check_seed
from .sequences import FILE_KEYS, TASK_KEYS, resolve_source
from .sequences import RULES as FILE_RULES
from .transforms import check_transform

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
    "RULES",
    "ConfigError",
    "check_value",
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
    "precision",
)
THREADS = 1  # train.threads: measured fastest for the README's job on a loaded 2-core machine


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
        **FILE_KEYS,  # data.path: the user's file instead of the task
        **_defaults(handwriting, skip=("split", "seed", "progress")),  # task = "handwriting" only
        **_defaults(kanji_stroke5, only=("spacing", "grid", "svg_dir")),  # task = "kanji" only
    },
    "model": {
        "kind": "frmdn",
        **_defaults(FRMDN.__init__, skip=FROM_DATA),
        # kind = "handwriting" only; alphabet and offset_scale default to the data's
        "alphabet": None,
        **_defaults(
            HandwritingSynthesis.__init__, only=("window_components", "offset_scale", "text_blind")
        ),
        "window_step": None,  # the window's initial pace, characters a point; None: the data's
        # kind = "sketch" only (SketchVAE's own keys; the shared ones are above)
        **_defaults(SketchVAE.__init__, skip=(*_defaults(FRMDN.__init__), "name")),
    },
    "train": {
        **_defaults(fit, only=TRAIN_KEYS),
        "clip_norm": None,  # None: not passed to fit
        "threads": THREADS,  # None: torch's default
    },
}


# Keys whose default is set but that take None too: no clamp, torch's threads, a file's data
# (the task keys are null when data.path is set).
NULLABLE = ("train.clip_value", "train.threads", "data.task", "data.n", "data.steps")


def _at_least(low: int) -> Callable[[str, object], None]:
    return lambda name, value: check_integer(name, value, low)


def _unset_or(rule: Callable[[str, object], None]) -> Callable[[str, object], None]:
    return lambda name, value: None if value is None else rule(name, value)


def _fit_rule(key: str) -> Callable[[str, object], None]:
    """The rule ``fit`` applies to its argument ``key``, with the value named ``name``."""

    def check(name: str, value: object) -> None:
        try:
            check_options("fit", **{key: value})
        except ValueError as e:
            raise ConfigError(f"{name} must be {str(e).partition(' must be ')[2]}") from None

    return check


def _precision(name: str, value: object) -> None:
    if value not in TRAINING_PRECISIONS:
        raise ConfigError(f"{name} must be one of {', '.join(TRAINING_PRECISIONS)}, got {value!r}")


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _hidden_dims(name: str, value: object) -> None:
    ok = isinstance(value, list) and len(value) > 0
    if not (value is None or (ok and all(_count(v) for v in value))):
        raise ConfigError(
            f"{name} must be null or a non-empty list of integers >= 1 (e.g. [32, 32]), "
            f"got {value!r}"
        )


def _name(name: str, value: object) -> None:
    if not (isinstance(value, str) and value):
        raise ConfigError(f"{name} must be a non-empty string, got {value!r}")


# The rules of the values, beyond their types: checked before anything is built or written.
# The [train] keys that fit takes follow fit's own rules (pyro_frmdn.infer.engine.check_options).
# String choices (task, cell, flow, ...) are checked by what takes them, before anything is written.
RULES: dict[str, Callable[[str, object], None]] = {
    "data.n": _unset_or(_at_least(1)),  # None only with data.path (resolve_source)
    "data.steps": _unset_or(_at_least(2)),
    "data.seed": check_seed,
    **FILE_RULES,
    "data.transform": check_transform,
    "model.hidden_dim": _at_least(1),
    "model.num_layers": _at_least(1),
    "model.num_components": _at_least(1),
    "model.rank": _at_least(0),
    "model.flow_layers": _at_least(0),
    "model.binary_dims": _at_least(0),
    "model.flow_hidden_dims": _hidden_dims,
    "model.min_diag": lambda name, value: check_number(name, value, 0.0, strict=False),
    "model.name": _name,
    "model.alphabet": _unset_or(_name),
    "model.window_components": _at_least(1),
    "model.offset_scale": lambda name, value: check_number(name, value, 0.0),
    "model.window_step": _unset_or(lambda name, value: check_number(name, value, 0.0)),
    "data.spacing": lambda name, value: check_number(name, value, 0.0),
    "data.grid": _unset_or(lambda name, value: check_number(name, value, 0.0)),
    "data.svg_dir": _unset_or(_name),
    "model.latent_dim": _at_least(0),
    "model.encoder_dim": _at_least(1),
    "model.guide_flow_layers": _at_least(0),
    "model.kl_warmup": _at_least(0),
    "model.kl_start": lambda name, value: check_number(name, value, 0.0, strict=False),
    "model.kl_end": lambda name, value: check_number(name, value, 0.0),
    "model.kl_tolerance": lambda name, value: check_number(name, value, 0.0, strict=False),
    "model.min_scale": lambda name, value: check_number(name, value, 0.0),
    "train.seed": check_seed,
    "train.device": check_device,
    "train.threads": _unset_or(_at_least(1)),
    "train.precision": _precision,
    **{f"train.{k}": _fit_rule(k) for k in TRAIN_KEYS if k not in ("seed", "device", "precision")},
}


def check_value(key: str, value: object, name: str | None = None) -> None:
    """Refuse a bad value of the config key ``key`` (``"section.key"``), named ``name``
    (default: ``key``; ``"--epochs"`` for the option that sets ``train.epochs``).

    Example:
        >>> check_value("train.lr", float("nan"))
        Traceback (most recent call last):
        ...
        pyro_frmdn.cli.checks.ConfigError: train.lr must be a finite number > 0, got nan
    """
    rule = RULES.get(key)
    if rule is not None:
        rule(name or key, value)


def _check_keys(what: str, given: dict, valid: dict, where: str) -> None:
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise ConfigError(
            f"unknown {what} {unknown[0]!r} in {where}; valid {what}s: {', '.join(valid)}"
        )


def _check_type(name: str, value: object, default: object) -> None:
    if default is None or (value is None and name in NULLABLE):  # the rules check these
        return
    kind = type(default)
    ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok:
        raise ConfigError(f"{name} must be of type {kind.__name__}, got {value!r}")


def resolve_config(config: dict) -> dict:
    """Check sections, keys, value types and :data:`RULES`; fill in the defaults of ``[data]``
    and ``[train]``.

    ``[model]`` keeps only the keys given (and ``kind``): the model fills in its own defaults, and
    the run folder saves the model's complete ``config``.

    Example:
        >>> resolve_config({"train": {"epochs": 3}})["train"]["epochs"]
        3
        >>> resolve_config({"model": {"hidden_dim": 8}})["model"]
        {'kind': 'frmdn', 'hidden_dim': 8}
    """
    if not isinstance(config, dict):
        raise ConfigError(f"the config must be a table of sections, got {config!r}")
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
        if section == "data":
            resolved[section] = resolve_source(values, resolved[section])
        for key, value in resolved[section].items():
            check_value(f"{section}.{key}", value)
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


def load_config(
    path: str | os.PathLike | None = None, overrides: Sequence[str] = (), data: str | None = None
) -> dict:
    """A TOML config file (or none: the defaults) with ``SECTION.KEY=VALUE`` overrides, resolved.

    ``data`` (``--data``) is ``data.path``, replacing the config's synthetic task.
    """
    config: dict = {}
    if path is not None:
        if tomllib is None:
            raise ConfigError("reading a TOML config on Python 3.10 needs tomli: pip install tomli")
        try:
            with open(path, "rb") as f:
                config = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"no config file at {path}") from None
        except IsADirectoryError:
            raise ConfigError(f"config {path} is a folder, not a TOML file") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"config {path} is not valid TOML: {e}") from None
    for item in overrides:
        section, key, value = _parse_set(item)
        section_values = config.setdefault(section, {})
        if isinstance(section_values, dict):
            section_values[key] = value
    if data is not None and isinstance(config.setdefault("data", {}), dict):
        config["data"] = {k: v for k, v in config["data"].items() if k not in TASK_KEYS}
        config["data"]["path"] = data
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
    lines.append('  task="handwriting" with kind="handwriting": text to strokes (pyro-frmdn write)')
    lines.append('  task="kanji" with kind="sketch": sketch-rnn on KanjiVG (docs/sketch.md)')
    lines.append("  data.path (--data) is your file, instead of the task: see docs/cli.md;")
    lines.append('  transform (unset) is "standardize" for a file, "none" for a task')
    return "\n".join(lines)
