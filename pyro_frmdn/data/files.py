"""The user's sequences from files (arrays, long tables, folders) in the package's padded form.

Every reader returns ``{"y": (N, T, D) float32, "mask": (N, T) bool or None}`` (``mask`` is
``None`` when every step is observed, as when all sequences have one length; padded values are
zeros), plus ``"split"``, a string array ``(N,)`` of ``"train"``/``"val"``/``"test"``, when the
data name one. Numbers of any kind (float64, integers, booleans) become float32; anything else
is refused with an error that names the file, column or argument (rows count from 0 after the
header).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..models import pad_sequences
from ._cache import check_array, read_arrays, require
from .splits import SPLITS

__all__ = ["SUFFIXES", "from_arrays", "from_csv", "from_dataframe", "read_sequences"]

SUFFIXES = (".npy", ".npz", ".csv", ".parquet")  # and folders of .npy or .csv files
NPZ_KEYS = ("y", "mask", "lengths", "split")
Padded = dict[str, Any]


def from_arrays(y: Any, mask: Any = None, lengths: Any = None) -> Padded:
    """Sequences from an array ``(N, T, D)`` (``(N, T)``: ``D = 1``), padded or all of length T.

    Arguments:
        y: a tensor, numpy array or nested list of numbers (converted to float32).
        mask: ``(N, T)`` bool (or 0/1), true at the observed steps; padding may hold NaN.
        lengths: ``(N,)`` whole numbers in ``[1, T]``, the first steps of each sequence
            (instead of ``mask``).

    Example:
        >>> data = from_arrays([[1, 2, 3], [4, 5, 0]], lengths=[3, 2])
        >>> data["y"].shape, data["y"].dtype, data["mask"].tolist()
        (torch.Size([2, 3, 1]), torch.float32, [[True, True, True], [True, True, False]])
    """
    return _arrays(y, mask, lengths, split=None, where="")


def from_csv(
    path: str | os.PathLike,
    *,
    id_column: str | None = None,
    time_column: str | None = None,
    columns: list[str] | None = None,
    split_column: str | None = None,
) -> Padded:
    """Sequences from a CSV file in long format: one row per step (needs ``pandas``).

    Arguments:
        path: the file.
        id_column: the column naming each row's sequence (the order of first appearance is the
            order of the sequences); ``None``: the whole file is one sequence.
        time_column: rows are sorted by it within a sequence (``None``: the file's order);
            a time repeated within a sequence is refused.
        columns: the feature columns, in order; ``None``: all columns but the named ones.
        split_column: a column of ``train``/``val``/``test``, constant within a sequence,
            returned as ``"split"``.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "walks.csv"
        >>> _ = p.write_text("walk,t,x\\na,1,0.5\\na,0,0.1\\nb,0,2.0\\n")
        >>> data = from_csv(p, id_column="walk", time_column="t")
        >>> data["y"][..., 0].tolist(), data["mask"].tolist()
        ([[0.10000000149011612, 0.5], [2.0, 0.0]], [[True, True], [True, False]])
    """
    return from_dataframe(_read_table(Path(path), ".csv"), **_options(locals()), source=str(path))


def from_dataframe(
    frame: Any,
    *,
    id_column: str | None = None,
    time_column: str | None = None,
    columns: list[str] | None = None,
    split_column: str | None = None,
    source: str = "the data frame",
) -> Padded:
    """Sequences from a pandas DataFrame in long format; arguments as :func:`from_csv`
    (``source`` names the data in error messages)."""
    return _padded(*_table_sequences(frame, id_column, time_column, columns, split_column, source))


def read_sequences(
    path: str | os.PathLike,
    *,
    id_column: str | None = None,
    time_column: str | None = None,
    columns: list[str] | None = None,
    split_column: str | None = None,
) -> Padded:
    """Sequences from ``.npy``/``.npz`` arrays, ``.csv``/``.parquet`` tables or a folder.

    An ``.npz`` holds ``y`` (or one array only) and optionally ``mask`` or ``lengths`` and
    ``split``; a folder holds one sequence ``(T, D)`` per ``.npy`` file, or per ``.csv`` file
    (read as :func:`from_csv`, so a file with ``id_column`` may hold several), sorted by name.
    The column arguments are those of :func:`from_csv` and apply to tables only.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "y.npy"
        >>> np.save(p, np.zeros((4, 10, 2)))
        >>> data = read_sequences(p)
        >>> data["y"].shape, data["mask"]
        (torch.Size([4, 10, 2]), None)
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path, options = Path(path), _options(locals())
    if not path.exists():
        raise FileNotFoundError(f"no data file or folder at {path}")
    if path.is_dir():
        return _padded(*_folder_sequences(path, options))
    suffix = path.suffix.lower()
    if suffix in (".csv", ".parquet"):
        return from_dataframe(_read_table(path, suffix), **options, source=str(path))
    if suffix in (".npy", ".npz"):
        _no_table_options(options, path)
        arrays = _read_numpy(path)
        arrays = arrays if isinstance(arrays, dict) else {"y": arrays}
        lengths, split = arrays.get("lengths"), arrays.get("split")
        return _arrays(arrays["y"], arrays.get("mask"), lengths, split, f"{path}: ")
    raise ValueError(f"{path}: unknown suffix {path.suffix!r}; expected {', '.join(SUFFIXES)}")


# -- arrays -----------------------------------------------------------------------------------


def _numbers(values: Any, name: str) -> np.ndarray:
    """``values`` as a numpy array of numbers, or a TypeError/ValueError naming ``name``."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    try:
        a = np.asarray(values)
    except ValueError as err:  # numpy >= 1.24: nested lists of different lengths
        raise _ragged(name) from err
    if a.dtype.kind == "O":
        shapes = {np.shape(v) for v in a.reshape(-1)}
        raise _ragged(name) if len(shapes) > 1 else TypeError(f"{name} holds Python objects")
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers (float, integer or bool), got dtype {a.dtype}")
    return a


def _ragged(name: str) -> ValueError:
    return ValueError(
        f"{name} is ragged (sequences of different lengths): pad it to (N, T, D) and give "
        "lengths (N,) or a mask (N, T), or pad a list of (T_i, D) tensors with "
        "pyro_frmdn.pad_sequences"
    )


def _arrays(y: Any, mask: Any, lengths: Any, split: Any, where: str) -> Padded:
    y = _numbers(y, f"{where}y")
    if y.ndim == 2:
        y = y[..., None]
    if y.ndim != 3 or 0 in y.shape:
        raise ValueError(f"{where}y must be a non-empty (N, T, D) or (N, T) array, got {y.shape}")
    (n, t, _), valid = y.shape, None
    if mask is not None and lengths is not None:
        raise ValueError(f"{where}give mask or lengths, not both")
    if lengths is not None:
        lengths = _numbers(lengths, f"{where}lengths")
        check_array(f"{where}lengths", lengths, (n,), 1, t, integer=True)
        valid = np.arange(t) < lengths[:, None]
    if mask is not None:
        valid = _numbers(mask, f"{where}mask")
        check_array(f"{where}mask (true at the observed steps)", valid, (n, t), 0, 1, integer=True)
        valid = valid.astype(bool)
        if not valid.any(1).all():
            raise ValueError(f"{where}mask: sequence {np.argmin(valid.any(1))} is empty")
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes Inf: refused below
        y = y.astype(np.float32)
    bad = ~np.isfinite(y) & (True if valid is None else valid[..., None])
    if bad.any():
        i, s, d = np.argwhere(bad)[0]
        kind = "NaN" if np.isnan(y[i, s, d]) else "Inf (or beyond float32)"
        raise ValueError(f"{where}y has {kind} at sequence {i}, step {s}, feature {d}")
    if valid is not None:
        y[~valid] = 0.0
    return _result(torch.from_numpy(y), valid, _check_split(split, n, f"{where}split"))


def _read_numpy(path: Path) -> np.ndarray | dict[str, np.ndarray]:
    """The array of an ``.npy`` file, or the arrays of an ``.npz`` (by content, not suffix)."""
    with open(path, "rb") as file:
        head = file.read(4)
    if not head:
        raise ValueError(f"{path} is empty (0 bytes)")
    if head.startswith(b"PK"):  # a zip archive: .npz
        arrays = read_arrays(path)
        keys = sorted(arrays)
        if "y" not in arrays and len(arrays) == 1 and keys[0] not in NPZ_KEYS:
            arrays = {"y": arrays[keys[0]]}
        if "y" not in arrays or set(arrays) - set(NPZ_KEYS):
            raise ValueError(
                f"{path} holds arrays {keys}; expected 'y' (or one array only) "
                f"and optionally {', '.join(NPZ_KEYS[1:])}"
            )
        return arrays
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise _ragged(str(path)) from err
        raise ValueError(f"{path} is not a readable .npy array ({err})") from err
    except Exception as err:
        raise ValueError(f"{path} is not a readable .npy array ({type(err).__name__})") from err


# -- tables -----------------------------------------------------------------------------------


def _options(arguments: dict) -> dict:
    names = ("id_column", "time_column", "columns", "split_column")
    return {k: arguments[k] for k in names}


def _no_table_options(options: dict, path: Path) -> None:
    given = [k for k, v in options.items() if v is not None]
    if given:
        raise ValueError(f"{', '.join(given)} apply to .csv and .parquet tables, not to {path}")


def _read_table(path: Path, suffix: str) -> Any:
    pd = require("pandas", "pandas", "CSV and Parquet files")
    if suffix == ".parquet":
        require("pyarrow", "pyarrow", "Parquet files")
    if path.is_file() and path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes)")
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        return pd.read_parquet(path, engine="pyarrow")
    except OSError:
        raise
    except Exception as err:  # parser, decoding and Arrow errors alike: not a readable table
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path} is not a readable {suffix[1:]} table ({reason})") from err


def _table_sequences(frame, id_column, time_column, columns, split_column, source):
    """The sequences ``(T_i, D)`` float32 of a long table, and their splits (or ``None``)."""
    pd = require("pandas", "pandas", "CSV and Parquet files")
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{source} must be a pandas DataFrame, got {type(frame).__name__}")
    if len(frame) == 0:
        raise ValueError(f"{source} holds no rows")
    named = {"id_column": id_column, "time_column": time_column, "split_column": split_column}
    if isinstance(columns, str):
        columns = [columns]
    for argument, name in [*named.items(), *(("columns", c) for c in columns or [])]:
        if name is not None and name not in frame.columns:
            raise ValueError(
                f"{source} has no column {name!r} ({argument}); its columns are "
                f"{list(frame.columns)}"
            )
    keys = [c for c in named.values() if c is not None]
    if columns is None:
        columns = [c for c in frame.columns if c not in keys]
    if not columns or set(columns) & set(keys):
        raise ValueError(
            f"{source}: the feature columns {list(columns)} must be non-empty and "
            f"distinct from the id, time and split columns {keys}"
        )
    for c in columns:
        if not pd.api.types.is_numeric_dtype(frame[c]):
            raise ValueError(f"{source}: feature column {c!r} holds {frame[c].dtype}, not numbers")
    for c in keys:
        if frame[c].isna().any():
            row = int(np.argmax(frame[c].isna().to_numpy()))
            raise ValueError(f"{source}: column {c!r} has a missing value in row {row}")
    if id_column is None:
        codes, ids = np.zeros(len(frame), dtype=np.int64), ["(the whole table)"]
    else:
        codes, uniques = pd.factorize(frame[id_column], sort=False)
        ids = uniques.tolist()
    time = frame[time_column].to_numpy() if time_column else np.zeros(len(frame))
    order = pd.DataFrame({"id": codes, "time": time})
    if time_column and order.duplicated().any():
        row = int(np.argmax(order.duplicated().to_numpy()))
        raise ValueError(f"{source}: row {row} repeats a time of sequence {ids[codes[row]]!r}")
    rows = order.sort_values(["id", "time"], kind="stable").index.to_numpy()
    with np.errstate(over="ignore"):
        values = frame[columns].to_numpy(np.float64).astype(np.float32)
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        kind = "NaN (a missing value?)" if np.isnan(values[row, col]) else "Inf (or too large)"
        raise ValueError(f"{source}: column {columns[col]!r}, row {row} is {kind}")
    cuts = np.cumsum(np.bincount(codes))[:-1]
    sequences = np.split(values[rows], cuts)
    if split_column is None:
        return sequences, None
    labels = frame[split_column].to_numpy()[rows]
    mixed = [i for i, part in enumerate(np.split(labels, cuts)) if len(set(part)) > 1]
    if mixed:
        raise ValueError(f"{source}: sequence {ids[mixed[0]]!r} has several {split_column!r}")
    return sequences, _check_split(labels[np.r_[0, cuts]], len(sequences), f"{source}: split")


def _folder_sequences(folder: Path, options: dict) -> tuple[list[np.ndarray], Any]:
    files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    kinds = {p.suffix.lower() if p.is_file() else "a folder" for p in files}
    if len(kinds) != 1 or not kinds <= {".npy", ".csv"}:
        raise ValueError(
            f"{folder} must hold .npy files or .csv files (one sequence each) and nothing else; "
            f"it holds {[p.name for p in files][:5]}"
        )
    sequences, splits = [], []
    for p in files:
        if p.suffix.lower() == ".csv":
            found, split = _table_sequences(_read_table(p, ".csv"), **options, source=str(p))
            splits.extend([] if split is None else split)
        else:
            _no_table_options(options, p)
            a = _read_numpy(p)
            if isinstance(a, dict) or a.ndim not in (1, 2):
                shape = "an .npz archive" if isinstance(a, dict) else f"shape {a.shape}"
                raise ValueError(f"{p} must hold one sequence (T, D) or (T,), got {shape}")
            found = [_arrays(a[None], None, None, None, f"{p}: ")["y"][0].numpy()]
        if sequences and found[0].shape[-1] != sequences[0].shape[-1]:
            raise ValueError(f"{p} has {found[0].shape[-1]} features, not {sequences[0].shape[-1]}")
        sequences.extend(found)
    return sequences, (np.array(splits) if options["split_column"] else None)


# -- the padded form --------------------------------------------------------------------------


def _check_split(split: Any, n: int, name: str) -> np.ndarray | None:
    if split is None:
        return None
    split = np.asarray(split).astype(str)
    if split.shape != (n,) or not np.isin(split, SPLITS).all():
        found = sorted(set(split.reshape(-1).tolist()) - set(SPLITS))[:5]
        raise ValueError(f"{name} must be one of {SPLITS} per sequence ({n}), got {found}")
    return split


def _padded(sequences: list[np.ndarray], split: np.ndarray | None) -> Padded:
    y, mask = pad_sequences([torch.from_numpy(np.asarray(s, np.float32)) for s in sequences])
    return _result(y, mask.numpy(), split)


def _result(y: torch.Tensor, valid: np.ndarray | None, split: np.ndarray | None) -> Padded:
    mask = None if valid is None or valid.all() else torch.from_numpy(np.asarray(valid, bool))
    return {"y": y, "mask": mask} | ({} if split is None else {"split": split})
