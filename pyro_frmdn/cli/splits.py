"""The run's train/val/test split: made once (fractions or the data's split column), then read
back from the run folder's ``splits.json`` by every later command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..data import SPLITS, random_split
from ..files import atomic_write
from .checks import ConfigError
from .sequences import Sequences

__all__ = ["SPLITS_FILE", "make_split", "read_split", "write_split"]

SPLITS_FILE = "splits.json"


def make_split(data: dict, sequences: Sequences) -> dict[str, np.ndarray]:
    """The sorted sequence indices of each split.

    From the data's split column (or ``split`` array) when they have one; otherwise the
    sequences are shuffled by ``data.seed`` and cut at ``round(train_fraction · n)`` and
    ``round((1 - test_fraction) · n)`` (:func:`~pyro_frmdn.data.splits.random_split`), where
    ``train_fraction = 1 - val_fraction - test_fraction``.
    """
    n = len(sequences.y)
    if sequences.split is not None:
        parts = {name: np.flatnonzero(sequences.split == name) for name in SPLITS}
        if len(parts["train"]) == 0:
            raise ConfigError(f"{data['path']}: the split column names no 'train' sequence")
        return parts
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
    return parts


def write_split(run: Path, parts: dict[str, np.ndarray], sequences: Sequences) -> None:
    """Record the split in ``run/splits.json``: the number of sequences, the indices of each
    split and, when the data name their sequences, the names (so that a file whose sequences
    are later read in another order still gives the same split)."""
    record: dict = {"sequences": len(sequences.y)}
    record |= {name: parts[name].tolist() for name in SPLITS}
    if sequences.ids is not None:
        record["ids"] = {name: [sequences.ids[i] for i in parts[name]] for name in SPLITS}
    with atomic_write(run / SPLITS_FILE, "w") as f:
        f.write(json.dumps(record))


def read_split(run: Path, sequences: Sequences) -> dict[str, np.ndarray] | None:
    """The split recorded in ``run/splits.json`` for ``sequences`` (by name when both know the
    names, else by index); ``None`` when the run has none (runs written before version 0.2)."""
    path = run / SPLITS_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        parts = {name: np.asarray(record[name], dtype=np.int64) for name in SPLITS}
        count, names = int(record["sequences"]), record.get("ids")
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"{path} is corrupt: {type(e).__name__} {e}") from None
    n = len(sequences.y)
    if names is not None and sequences.ids is not None:
        where = {name: i for i, name in enumerate(sequences.ids)}
        missing = [s for part in names.values() for s in part if s not in where]
        if missing:
            raise ValueError(f"{path} names sequence {missing[0]!r}, which the data lack now")
        return {name: np.sort([where[s] for s in names[name]]).astype(np.int64) for name in SPLITS}
    if count != n or any(len(p) and (p.min() < 0 or p.max() >= n) for p in parts.values()):
        raise ValueError(
            f"{path} splits {count} sequences, but the data now hold {n}: the data changed "
            "since the run was trained"
        )
    return parts
