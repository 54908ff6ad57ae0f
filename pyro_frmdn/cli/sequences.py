"""The run's sequences: a built-in synthetic task, or the user's file read with its options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import Tensor

from ..data import make_task, read_sequences
from ..data._cache import require
from .checks import ConfigError

__all__ = [
    "FILE_KEYS",
    "READER_KEYS",
    "TASK_KEYS",
    "Sequences",
    "read_run_sequences",
    "resolve_source",
]

TASK_KEYS = ("task", "n", "steps")  # the synthetic task's keys: unused (null) with data.path
READER_KEYS = ("id_column", "time_column", "columns", "split_column")  # read_sequences' options
FILE_KEYS = {"path": None, **dict.fromkeys(READER_KEYS), "transform": None}


@dataclass
class Sequences:
    """All the sequences of a run, in the order the reader gives them.

    ``y`` (N, T, D) float32 in the user's units; ``mask`` (N, T) bool or ``None``; ``split``
    (N,) of ``train``/``val``/``test`` when the data name one; ``features``, the D feature names
    (the file's column names when it has them, else ``y0``, ``y1``, ...); ``ids``, the N sequence
    names when the file has them (its id column's values, a folder's file names), else ``None``.
    """

    y: Tensor
    mask: Tensor | None
    split: np.ndarray | None
    features: list[str]
    ids: list[str] | None


def _name(name: str, value: object) -> None:
    if not (value is None or (isinstance(value, str) and value)):
        raise ConfigError(f"{name} must be a non-empty string, got {value!r}")


def _names(name: str, value: object) -> None:
    ok = isinstance(value, list) and value and all(isinstance(v, str) and v for v in value)
    if not (value is None or ok):
        raise ConfigError(f"{name} must be a non-empty list of column names, got {value!r}")


# The rules of the file keys (data.transform's are in transforms.py).
RULES = {"data.path": _name, **{f"data.{k}": _name for k in READER_KEYS}, "data.columns": _names}


def resolve_source(given: dict, data: dict) -> dict:
    """The ``[data]`` section ``data`` (defaults filled in) as a task or a file: with ``path`` the
    task keys are unused (``null``) and ``transform`` defaults to ``"standardize"``; without it
    the reader keys are unused and ``transform`` defaults to ``"none"``.

    ``given`` holds the keys the config gave, to refuse a task and a path together.
    """
    if data["path"] is None:
        used = [k for k in READER_KEYS if data[k] is not None]
        if used:
            raise ConfigError(f"data.{used[0]} reads a file: it needs data.path")
        for key in TASK_KEYS:
            if data[key] is None:
                raise ConfigError(f"data.{key} is needed without data.path (a synthetic task)")
        return {**data, "transform": "none" if data["transform"] is None else data["transform"]}
    clash = [k for k in TASK_KEYS if given.get(k) is not None]
    if clash:
        raise ConfigError(
            f"data.path reads a file and data.{clash[0]} makes a synthetic task: give one "
            "(pyro-frmdn train --data PATH replaces the config's task)"
        )
    transform = "standardize" if data["transform"] is None else data["transform"]
    return {**data, **dict.fromkeys(TASK_KEYS), "transform": transform}


def read_run_sequences(data: dict) -> Sequences:
    """The sequences of a resolved ``[data]`` section: its task, made from ``seed``, or its file."""
    if data["path"] is None:
        y = make_task(data["task"], n=data["n"], steps=data["steps"], seed=data["seed"])
        return Sequences(y, None, None, [f"y{d}" for d in range(y.shape[-1])], None)
    path = Path(data["path"])
    options = {k: data[k] for k in READER_KEYS}
    found = read_sequences(path, **options)
    features = _table_columns(path, options) or [f"y{d}" for d in range(found["y"].shape[-1])]
    ids = _sequence_ids(path, options)
    return Sequences(found["y"], found["mask"], found.get("split"), features, ids)


def _table_file(path: Path) -> Path | None:
    """The table whose header names the features: the file, or a folder's first ``.csv``."""
    if path.is_dir():
        tables = sorted(p for p in path.glob("*.csv") if not p.name.startswith("."))
        return tables[0] if tables else None
    return path if path.suffix.lower() in (".csv", ".parquet") else None


def _header(table: Path) -> list[str]:
    if table.suffix.lower() == ".parquet":
        return list(require("pyarrow.parquet", "pyarrow", "Parquet files").read_schema(table).names)
    pd = require("pandas", "pandas", "CSV and Parquet files")
    return [str(c) for c in pd.read_csv(table, nrows=0).columns]


def _table_columns(path: Path, options: dict) -> list[str] | None:
    """The feature columns of a table (as ``read_sequences`` chooses them), or ``None``."""
    table = _table_file(path)
    if table is None:
        return None
    if options["columns"] is not None:
        return list(options["columns"])
    keys = {options[k] for k in ("id_column", "time_column", "split_column")}
    return [c for c in _header(table) if c not in keys]


def _sequence_ids(path: Path, options: dict) -> list[str] | None:
    """The sequences' names in the reader's order: a table's id column (order of first
    appearance), a folder's file names (one sequence a file); ``None`` when there are none."""
    if path.is_dir():
        if options["id_column"] is not None:
            return None
        return sorted(p.name for p in path.iterdir() if not p.name.startswith("."))
    if options["id_column"] is None or _table_file(path) is None:
        return None
    pd = require("pandas", "pandas", "CSV and Parquet files")
    column = options["id_column"]
    if path.suffix.lower() == ".parquet":
        values = pd.read_parquet(path, columns=[column], engine="pyarrow")[column]
    else:
        values = pd.read_csv(path, usecols=[column])[column]
    return [str(v) for v in pd.unique(values)]
