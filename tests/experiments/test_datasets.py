"""The suite's data: each spec's splits, prepared."""

from dataclasses import replace

import pytest
import torch

from pyro_frmdn.data import _cache
from pyro_frmdn.data.kanji import SCALE as KANJI_SCALE
from pyro_frmdn.experiments.datasets import load_dataset
from pyro_frmdn.experiments.specs import DATASETS

INSTALL = _cache.INSTALL_HINT


def test_image_rows_need_a_known_number_of_levels():
    with pytest.raises(ValueError, match=r"or 256 \(MNIST\) levels, got levels=4"):
        load_dataset(replace(DATASETS["mnist_rows"], levels=4))


def test_strokes_on_a_grid_are_dequantised_within_their_cells():
    for package in ("kanjivg", "svgpathtools"):
        if _cache.package_version(package) is None:
            pytest.skip(f"{package} is not installed ({INSTALL})")
    spec = replace(DATASETS["kanji"], train=6, val=2, test=2, grid=1.0)
    data = load_dataset(spec)
    exact = load_dataset(replace(spec, grid=None))
    assert "rounded to 1 canvas units" in data.note
    step = 1.0 / KANJI_SCALE
    for split in ("train", "val", "test"):
        y, mask = getattr(data, split)["y"], getattr(data, split)["mask"]
        assert torch.equal(mask, getattr(exact, split)["mask"])
        cells = y[..., :2] / step
        off = (cells - cells.round()).abs()
        assert (off[mask] <= 0.5 + 1e-4).all() and off[mask].mean() > 0.1  # spread in the cell
        assert (y[~mask] == 0).all()  # padding untouched
        assert torch.equal(y[..., 2], getattr(exact, split)["y"][..., 2])
