"""Run folders: the saved config, the data splits and model it rebuilds, loading a trained run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import Tensor

from ..data import make_task, random_split
from ..files import atomic_write
from ..infer import load_checkpoint
from ..models import FRMDN, RMDN
from .checks import ConfigError, resolve_device_value
from .config import FROM_DATA, resolve_config

__all__ = [
    "CHECKPOINTS",
    "CONFIG",
    "SPLITS",
    "add_load_options",
    "build_model",
    "holds_run",
    "load_run",
    "model_section",
    "nonempty",
    "read_config",
    "run_device",
    "split_data",
    "write_config",
]

MODELS = {"frmdn": FRMDN, "rmdn": RMDN}
CONFIG, CHECKPOINTS = "config.json", "checkpoints"
SPLITS = ("test", "val", "train")


def split_data(data: dict) -> dict[str, Tensor]:
    """The ``[data]`` task's sequences, split into ``train``, ``val``, ``test`` by ``data.seed``.

    The sequences are shuffled by ``data.seed`` and cut at ``round(train_fraction · n)`` and
    ``round((1 - test_fraction) · n)`` (:func:`~pyro_frmdn.data.splits.random_split`), where
    ``train_fraction = 1 - val_fraction - test_fraction``; each split keeps the task's order.
    """
    y = make_task(data["task"], n=data["n"], steps=data["steps"], seed=data["seed"])
    n = len(y)
    val, test = data["val_fraction"], data["test_fraction"]
    parts = None
    if min(val, test) >= 0 and val + test <= 1:
        fractions = {"train": max(0.0, 1 - val - test), "val": val, "test": test}
        parts = random_split(n, fractions, seed=data["seed"])
    if parts is None or len(parts["train"]) < 1:
        raise ConfigError(
            f"data.val_fraction and data.test_fraction must be >= 0 and leave training data; "
            f"got {val} and {test} of n={n}"
        )
    return {name: y[torch.from_numpy(parts[name])] for name in SPLITS}


def build_model(model: dict, obs_dim: int) -> FRMDN:
    """The model of a ``[model]`` section: ``kind`` picks FRMDN or RMDN, the rest are keywords."""
    kwargs = dict(model)
    kind = kwargs.pop("kind", "frmdn")
    if kind not in MODELS:
        raise ConfigError(f"model.kind must be one of {', '.join(MODELS)}, got {kind!r}")
    if kind == "rmdn" and kwargs.get("flow_layers") == 0:
        del kwargs["flow_layers"]  # RMDN sets it, and RMDN(flow_layers=0) passes it twice
    return MODELS[kind](obs_dim=obs_dim, **kwargs)


def model_section(kind: str, model: FRMDN) -> dict:
    """The ``[model]`` section that rebuilds ``model``: ``kind`` and its complete ``config``."""
    return {"kind": kind, **{k: v for k, v in model.config.items() if k not in FROM_DATA}}


def write_config(run: Path, config: dict) -> None:
    """Save the resolved config as the run folder's ``config.json`` (atomically)."""
    with atomic_write(run / CONFIG, "w") as f:
        f.write(json.dumps(config, indent=2))


def read_config(run: Path) -> dict:
    """The resolved config saved in the run folder ``run``."""
    if not run.is_dir():
        raise FileNotFoundError(f"no run folder at {run}")
    path = run / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{run} holds no {CONFIG}: not a run folder made by train")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path} is corrupt: {e}") from None
    try:
        return resolve_config(config)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def run_device(option: str | None, config: dict) -> torch.device:
    """The device of a command: its ``--device`` when given, else the config's ``train.device``
    (unset: CUDA when available); refused when this machine does not have it."""
    if option is not None:
        return resolve_device_value("--device", option)
    return resolve_device_value("train.device", config["train"]["device"])


def holds_run(run: Path) -> bool:
    """Whether the folder ``run`` already holds checkpoints."""
    return any((run / CHECKPOINTS).glob("*.pt"))


def load_run(
    run: Path, which: str, device: str | None
) -> tuple[dict, dict[str, Tensor], FRMDN, dict]:
    """The run's config, data splits, model with the ``which`` checkpoint's weights, checkpoint.

    ``device`` is the command's ``--device`` (``None``: the run's ``train.device``).
    """
    config = read_config(run)
    device = run_device(device, config)
    splits = split_data(config["data"])
    model = build_model(config["model"], obs_dim=splits["train"].shape[-1])
    state = load_checkpoint(run / CHECKPOINTS / f"{which}.pt", map_location="cpu")
    saved = model.upgrade_config(state.get("config") or {})  # keys renamed since it was written
    differ = sorted(k for k in {*saved, *model.config} if saved.get(k) != model.config.get(k))
    if differ:
        raise ValueError(
            f"checkpoint {which}.pt was written by a model whose config differs from "
            f"{run / CONFIG} in {', '.join(differ)}"
        )
    model.load_state_dict(state["model"])
    return config, splits, model.to(device).eval(), state


def nonempty(splits: dict[str, Tensor], name: str) -> Tensor:
    """The split ``name``; a ConfigError when the config left it empty."""
    if len(splits[name]) == 0:
        raise ConfigError(f"the {name} split is empty (data.{name}_fraction is 0)")
    return splits[name]


def add_load_options(p: argparse.ArgumentParser) -> None:
    """The options of the commands that load a trained run: checkpoint, split, device."""
    p.add_argument("--checkpoint", choices=("best", "last"), default="best", help="weights")
    p.add_argument("--split", choices=SPLITS, default="test", help="the data split to use")
    p.add_argument("--device", help="cpu, cuda...; default: train.device of the run")
