"""Seeded train/val/test splits of a data set's items, optionally stratified by label."""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np

__all__ = ["SPLITS", "check_split", "random_split"]

SPLITS = ("train", "val", "test")
"""The split names, as ``fit(val=...)`` and the command line's ``--split`` use them."""


def check_split(split: str | None, none_allowed: bool = False) -> str | None:
    """``split`` if it names a split (:data:`SPLITS`; ``"validation"``, the loaders' name
    before version 0.2, gives ``"val"`` with a warning), else a ValueError naming them."""
    if split == "validation":
        warnings.warn(
            'split "validation" is now "val" (one name across the package); the old name goes in '
            "the next release",
            FutureWarning,
            stacklevel=3,
        )
        return "val"
    if split in SPLITS or (none_allowed and split is None):
        return split
    names = ", ".join(repr(s) for s in ((None,) if none_allowed else ()) + SPLITS)
    raise ValueError(f"split must be one of {names}, got {split!r}")


def random_split(
    n: int, fractions: Mapping[str, float], seed: int, labels: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Disjoint parts of ``range(n)``, one per named fraction, shuffled by ``seed``.

    The items of each class (all ``n`` items when ``labels`` is ``None``) are permuted by one
    ``numpy.random.default_rng(seed)``, class after class in sorted label order, and cut in the
    order of ``fractions`` at the rounded cumulative fractions: part :math:`j` of a class of
    :math:`m` items holds the items :math:`[\\operatorname{round}(m F_{j-1}),
    \\operatorname{round}(m F_j))` of its permutation, :math:`F_j = f_1 + \\dots + f_j`, and the
    last part the rest. Each part is stratified by class when ``labels`` are given.

    Arguments:
        n: the number of items.
        fractions: the name and fraction of each part, in cutting order; at least 0, summing to 1.
        seed: the seed of the permutation; the same arguments always give the same parts.
        labels: integer class labels ``(n,)`` to stratify by, or ``None``.

    Returns:
        The indices of each part, sorted, keyed as ``fractions``.

    Example:
        >>> labels = np.repeat(np.arange(2), 10)
        >>> parts = random_split(20, {"train": 0.8, "val": 0.1, "test": 0.1}, 0, labels)
        >>> {name: len(index) for name, index in parts.items()}
        {'train': 16, 'val': 2, 'test': 2}
    """
    values = np.array(list(fractions.values()), dtype=np.float64)
    if len(values) == 0 or (values < 0).any() or not np.isclose(values.sum(), 1):
        raise ValueError(f"fractions must be >= 0 and sum to 1, got {dict(fractions)}")
    if labels is not None and len(labels) != n:
        raise ValueError(f"labels has {len(labels)} items, expected n={n}")
    labels = np.zeros(n, dtype=np.int64) if labels is None else np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in values]
    for c in np.unique(labels):
        index = rng.permutation(np.flatnonzero(labels == c))
        cuts = np.round(np.cumsum(values)[:-1] * len(index)).astype(int)
        for part, piece in zip(parts, np.split(index, cuts), strict=True):
            part.append(piece)
    return {
        name: np.sort(np.concatenate(part)) if part else np.zeros(0, dtype=np.int64)
        for name, part in zip(fractions, parts, strict=True)
    }
