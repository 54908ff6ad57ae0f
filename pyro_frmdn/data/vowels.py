"""JapaneseVowels: 12 LPC cepstrum coefficients per frame of 640 utterances of /ae/ by 9 speakers.

The UCI data set of Kudo, Toyama & Shimbo (1999), read from the ``.ts`` files inside the ``sktime``
wheel (``sktime/datasets/data/JapaneseVowels/``), without importing sktime. Licence: the files
ship with sktime under BSD-3.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..models import pad_sequences
from ._cache import Arrays, cached_arrays, check_array, package_file

__all__ = ["VOWEL_SPLITS", "japanese_vowels", "japanese_vowels_statistics", "read_ts"]

VOWEL_SPLITS = {"train": 270, "test": 370}  # the official split, utterances per split
NUM_COEFFICIENTS = 12
LENGTHS = (7, 29)  # frames per utterance


def read_ts(path: str | Path) -> tuple[list[np.ndarray], np.ndarray]:
    """Read a multivariate ``.ts`` file (sktime's text format) with one class label per series.

    Returns:
        The series, each ``(T_i, C)`` float64 (time first), and their labels as strings.
    """
    series, labels, in_data = [], [], False
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            in_data = in_data or line.lower() == "@data"
            continue
        if not in_data:
            raise ValueError(f"{path}, line {number}: data before the @data header")
        *channels, label = line.split(":")
        try:
            rows = [np.array(c.split(","), dtype=np.float64) for c in channels]
        except ValueError as err:
            raise ValueError(f"{path}, line {number}: {err}") from err
        if len({len(r) for r in rows}) != 1:
            raise ValueError(f"{path}, line {number}: channels of different lengths")
        series.append(np.stack(rows, axis=-1))
        labels.append(label)
    return series, np.array(labels)


def _vowel_arrays(cache_dir: str | Path | None) -> Arrays:
    """Frames of each split concatenated (``<split>_frames``), with lengths and speakers."""

    def build() -> Arrays:
        folder = package_file("sktime", "sktime/datasets/data/JapaneseVowels", "JapaneseVowels")
        out = {}
        for split in VOWEL_SPLITS:
            path = folder / f"JapaneseVowels_{split.upper()}.ts"
            series, labels = read_ts(path)
            lengths = np.array([len(s) for s in series])
            check_array(f"the series of {path}", lengths, (VOWEL_SPLITS[split],), *LENGTHS)
            out[f"{split}_frames"] = np.concatenate(series)
            out[f"{split}_lengths"] = lengths
            out[f"{split}_speakers"] = labels.astype(np.int64)
        return out

    def validate(a: Arrays) -> None:
        for split, n in VOWEL_SPLITS.items():
            lengths = a[f"{split}_lengths"]
            check_array(f"{split} lengths", lengths, (n,), *LENGTHS)
            frames = (int(lengths.sum()), NUM_COEFFICIENTS)
            check_array(f"{split} frames", a[f"{split}_frames"], frames, -10, 10, dtype="float64")
            check_array(f"{split} speakers", a[f"{split}_speakers"], (n,), 1, 9)

    return cached_arrays("japanese-vowels", {"source": "sktime .ts"}, build, validate, cache_dir)


def _train_statistics(a: Arrays) -> tuple[np.ndarray, np.ndarray]:
    return a["train_frames"].mean(0), a["train_frames"].std(0)


def japanese_vowels_statistics(cache_dir: str | Path | None = None) -> tuple[Tensor, Tensor]:
    """The per-coefficient mean and standard deviation of all training frames, each ``(12,)``."""
    mean, std = _train_statistics(_vowel_arrays(cache_dir))
    return torch.from_numpy(mean).float(), torch.from_numpy(std).float()


def japanese_vowels(
    split: str = "train",
    standardize: bool = True,
    return_labels: bool = False,
    cache_dir: str | Path | None = None,
) -> dict[str, Tensor] | tuple[dict[str, Tensor], Tensor]:
    r"""JapaneseVowels utterances as padded sequences of 12 LPC cepstra: ``{"y", "mask"}``.

    The official split: 270 training utterances (30 per speaker) and 370 test ones; 7 to 29
    frames each. ``y`` is float32 ``(N, T, 12)`` zero-padded to the split's longest utterance,
    ``mask`` bool ``(N, T)`` (:func:`~pyro_frmdn.pad_sequences`); the dict is ready for
    :func:`~pyro_frmdn.fit` and :func:`~pyro_frmdn.evaluate`.

    With ``standardize`` each coefficient is mapped to :math:`(y - m) / s` by the mean and
    standard deviation of the *training* frames (:func:`japanese_vowels_statistics`), in both
    splits. An NLL per frame in the standardised space is :math:`\sum_d \log s_d` nats below the
    one in the original units.

    Arguments:
        split: ``"train"`` or ``"test"``.
        standardize: standardise with the training statistics.
        return_labels: also return the speakers, int64 ``(N,)`` in 1–9.
        cache_dir: the cache folder (default: ``$PYRO_FRMDN_CACHE`` or the user cache folder).

    Needs ``sktime`` the first time (``pip install 'pyro-frmdn[data]'``). Licence: BSD-3, as
    shipped with sktime; the data are from the UCI repository (M. Kudo, J. Toyama, M. Shimbo,
    "Multidimensional curve classification using passing-through regions", 1999).

    Example:
        >>> data = japanese_vowels("test")  # doctest: +SKIP
        >>> data["y"].shape, data["mask"].shape  # doctest: +SKIP
        (torch.Size([370, 29, 12]), torch.Size([370, 29]))
    """
    if split not in VOWEL_SPLITS:
        raise ValueError(f"split must be one of {tuple(VOWEL_SPLITS)}, got {split!r}")
    a = _vowel_arrays(cache_dir)
    frames = a[f"{split}_frames"]
    if standardize:
        mean, std = _train_statistics(a)
        frames = (frames - mean) / std
    frames = torch.from_numpy(frames).float()
    lengths = a[f"{split}_lengths"].tolist()
    y, mask = pad_sequences(list(frames.split(lengths)))
    data = {"y": y, "mask": mask}
    return (data, torch.from_numpy(a[f"{split}_speakers"])) if return_labels else data
