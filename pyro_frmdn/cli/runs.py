"""Run folders: the saved config, the data splits and model it rebuilds, loading a trained run."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data import SPLITS as DATA_SPLITS
from ..data import DataTransform
from ..files import atomic_write
from ..infer import load_checkpoint
from ..models import FRMDN, RMDN, HandwritingSynthesis, SketchVAE
from .checks import ConfigError, check_integer, resolve_device_value
from .config import FROM_DATA, resolve_config
from .handwriting import HANDWRITING, PACE, build_handwriting, read_handwriting
from .sequences import Sequences, read_run_sequences
from .sketch import KANJI, SKETCH, read_kanji
from .splits import make_split, read_split, write_split
from .transforms import Part, fit_transform, read_transform, transform_parts, write_transform

__all__ = [
    "CHECKPOINTS",
    "CONFIG",
    "MODEL_FILE",
    "SPLITS",
    "RunData",
    "add_load_options",
    "add_threads_option",
    "build_model",
    "holds_run",
    "load_data",
    "load_run",
    "model_section",
    "nonempty",
    "read_config",
    "run_device",
    "split_data",
    "use_threads",
    "write_config",
    "write_data",
    "write_model",
]

MODELS = {"frmdn": FRMDN, "rmdn": RMDN, HANDWRITING: HandwritingSynthesis, SKETCH: SketchVAE}
CONFIG, CHECKPOINTS, MODEL_FILE = "config.json", "checkpoints", "model.pt"
SPLITS = ("test", "val", "train")  # --split's choices, the default first


@dataclass
class RunData:
    """A run's data: all its ``sequences``, the ``index`` of each split in them, the fitted
    ``transform`` (``None``: none), each split's :class:`~.transforms.Part` in ``parts``, and
    ``model_defaults``, model arguments the data fix (handwriting: alphabet, offset scale)."""

    sequences: Sequences
    index: dict[str, np.ndarray]
    transform: DataTransform | None
    parts: dict[str, Part]
    model_defaults: dict = field(default_factory=dict)

    @property
    def obs_dim(self) -> int:
        return self.sequences.y.shape[-1]


def _run_data(
    data: dict, sequences: Sequences, index: dict, transform: DataTransform | None
) -> RunData:
    chosen = {}
    for name in DATA_SPLITS:
        i, mask = torch.from_numpy(index[name]), sequences.mask
        chosen[name] = (sequences.y[i], None if mask is None else mask[i])
    parts = transform_parts(transform, chosen, data["transform"], data["seed"])
    return RunData(sequences, index, transform, parts)


def split_data(data: dict) -> RunData:
    """A new run's data from its ``[data]`` section: the sequences (task or file), split
    (:func:`~.splits.make_split`), and the transform fitted on the training split."""
    if data["task"] == HANDWRITING:
        return RunData(*read_handwriting(data))
    if data["task"] == KANJI:
        return RunData(*read_kanji(data))
    sequences = read_run_sequences(data)
    index = make_split(data, sequences)
    train = torch.from_numpy(index["train"])
    mask = None if sequences.mask is None else sequences.mask[train]
    transform = fit_transform(data["transform"], sequences.y[train], mask)
    return _run_data(data, sequences, index, transform)


def write_data(run: Path, data: RunData) -> None:
    """Record the split (``splits.json``) and the fitted transform (``transform.json``)."""
    write_split(run, data.index, data.sequences)
    write_transform(run, data.transform)


def load_data(run: Path, data: dict) -> RunData:
    """The data of a trained run: its recorded split (made again for runs written before
    ``splits.json``) and its saved transform."""
    if data["task"] == HANDWRITING:  # made again from the seed, splits included
        return RunData(*read_handwriting(data))
    if data["task"] == KANJI:  # read again from KanjiVG, its splits by character
        return RunData(*read_kanji(data))
    sequences = read_run_sequences(data)
    index = read_split(run, sequences)
    index = make_split(data, sequences) if index is None else index
    return _run_data(data, sequences, index, read_transform(run, data["transform"]))


def write_model(run: Path, model: FRMDN, data: RunData) -> None:
    """The trained model as one file, ``run/model.pt``, with its data transform
    (``pyro_frmdn.load(path, with_transform=True)`` reads both back)."""
    state = None if data.transform is None else data.transform.state_dict()
    model.save(run / MODEL_FILE, transform=state)


def use_threads(option: int | None, config: dict) -> None:
    """Set torch's thread count: ``--threads``, else ``train.threads`` (``None``: torch's)."""
    if option is not None:
        check_integer("--threads", option, 1)
    threads = config["train"]["threads"] if option is None else option
    if threads is not None:
        torch.set_num_threads(threads)


def build_model(
    model: dict, obs_dim: int, data_defaults: dict | None = None, task: str | None = None
) -> FRMDN:
    """The model of a ``[model]`` section: ``kind`` picks FRMDN, RMDN, HandwritingSynthesis or
    SketchVAE, the rest are keywords; ``data_defaults`` (:attr:`RunData.model_defaults`) fill in
    those the data fix; ``task`` (``data.task``), when given, must suit the kind."""
    kwargs = dict(model)
    kind = kwargs.pop("kind", "frmdn")
    if kind not in MODELS:
        raise ConfigError(f"model.kind must be one of {', '.join(MODELS)}, got {kind!r}")
    if (kind == HANDWRITING) != bool(data_defaults):
        raise ConfigError(
            f'model.kind = "{HANDWRITING}" and data.task = "{HANDWRITING}" go together; got '
            f"model.kind = {kind!r} with data.task {'=' if data_defaults else '!='} {HANDWRITING!r}"
        )
    if task is not None and (kind == SKETCH) != (task == KANJI):
        raise ConfigError(
            f'model.kind = "{SKETCH}" and data.task = "{KANJI}" go together; got '
            f"model.kind = {kind!r} with data.task = {task!r}"
        )
    if kind == HANDWRITING:
        return build_handwriting(kwargs, data_defaults)
    if kind == SKETCH:
        return SketchVAE(**kwargs)
    if kind == "rmdn" and kwargs.get("flow_layers") == 0:
        del kwargs["flow_layers"]  # RMDN sets it, and RMDN(flow_layers=0) passes it twice
    return MODELS[kind](obs_dim=obs_dim, **kwargs)


def model_section(section: dict, model: FRMDN) -> dict:
    """The ``[model]`` section that rebuilds ``model`` from ``section``, the one it was built
    from: ``kind``, the model's complete ``config`` and the window's initial pace, if given."""
    pace = {PACE: section[PACE]} if PACE in section else {}
    kept = {k: v for k, v in model.config.items() if k not in FROM_DATA}
    return {"kind": section["kind"], **kept, **pace}


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


def saved_model_section(section: dict, obs_dim: int) -> dict:
    """A run's saved ``[model]`` section read as its release meant it (the model class's
    ``upgrade_config``: renamed keys, and a flow width of ``null`` from before widths were
    stored, which rebuilds the uncapped width the run was trained with)."""
    kind = section.get("kind", "frmdn")
    if kind not in MODELS:
        return section  # build_model names the error
    upgraded = MODELS[kind].upgrade_config({**section, "obs_dim": obs_dim})
    if "obs_dim" not in section:
        upgraded.pop("obs_dim", None)
    return upgraded


def load_run(
    run: Path, which: str, device: str | None, threads: int | None = None
) -> tuple[dict, RunData, FRMDN, dict]:
    """The run's config, data, model with the ``which`` checkpoint's weights, and checkpoint.

    ``device`` and ``threads`` are the command's ``--device`` and ``--threads`` (``None``: the
    run's ``train.device`` and ``train.threads``).
    """
    config = read_config(run)
    device = run_device(device, config)
    use_threads(threads, config)
    data = load_data(run, config["data"])
    model = build_model(
        saved_model_section(config["model"], data.obs_dim),
        obs_dim=data.obs_dim,
        data_defaults=data.model_defaults,
        task=config["data"]["task"],
    )
    state = load_checkpoint(run / CHECKPOINTS / f"{which}.pt", map_location="cpu")
    saved = model.upgrade_config(state.get("config") or {})  # keys renamed since it was written
    differ = sorted(k for k in {*saved, *model.config} if saved.get(k) != model.config.get(k))
    if differ:
        raise ValueError(
            f"checkpoint {which}.pt was written by a model whose config differs from "
            f"{run / CONFIG} in {', '.join(differ)}"
        )
    model.load_state_dict(state["model"])
    return config, data, model.to(device).eval(), state


def nonempty(data: RunData, name: str) -> Part:
    """The split ``name``; a ConfigError when the config left it empty."""
    if len(data.parts[name]) == 0:
        raise ConfigError(
            f"the {name} split is empty (data.{name}_fraction is 0, or the data's split column "
            f"names no {name} sequence)"
        )
    return data.parts[name]


def add_threads_option(p: argparse.ArgumentParser) -> None:
    """``--threads``: torch's thread count for the command."""
    p.add_argument(
        "--threads", type=int, help="torch's CPU threads; default: train.threads of the config"
    )


def add_load_options(p: argparse.ArgumentParser) -> None:
    """The options of the commands that load a trained run: checkpoint, split, device, threads."""
    p.add_argument("--checkpoint", choices=("best", "last"), default="best", help="weights")
    p.add_argument("--split", choices=SPLITS, default="test", help="the data split to use")
    p.add_argument("--device", help="cpu, cuda...; default: train.device of the run")
    add_threads_option(p)
