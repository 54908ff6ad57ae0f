"""The suite's data: each spec's splits loaded, subsampled and prepared (fixed for every seed)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ..data import SPLITS, digit_rows, kanji_steps, moving_mnist_steps, vowels_splits
from .specs import DatasetSpec

__all__ = ["Prepared", "cached_dataset", "load_dataset"]


@dataclass
class Prepared:
    """A data set ready for the models: ``{"y", "mask"}`` dicts per split, ``mask`` may be None."""

    train: dict
    val: dict
    test: dict
    obs_dim: int
    binary_dims: int
    note: str


def load_dataset(spec: DatasetSpec) -> Prepared:
    """Load, subsample and preprocess a data set (the first sequences of each split; fixed)."""
    binary = 0
    if spec.kind == "frames":
        splits = {
            key: {"y": moving_mnist_steps(key, getattr(spec, key), spec.num_frames,
                                          spec.frame_size, spec.levels, spec.logit_lambda, i)}
            for i, key in enumerate(SPLITS)
        }  # fmt: skip
        note = (
            f"{spec.num_frames} frames of {spec.frame_size}x{spec.frame_size}; videos made from "
            "the disjoint MNIST digit splits; dequantised, logit"
            f"(λ={spec.logit_lambda}) transformed"
        )
    elif spec.kind == "rows":
        splits = {
            key: {"y": digit_rows(key, getattr(spec, key), spec.levels, spec.logit_lambda, i)}
            for i, key in enumerate(SPLITS)
        }
        note = (
            "random subsets (fixed seeds) of the stratified 80/10/10 splits; dequantised "
            f"({spec.levels} levels), logit(λ={spec.logit_lambda}) transformed"
        )
    elif spec.kind == "speech":
        splits = vowels_splits(spec.train, spec.val, spec.test, seed=0)
        note = (
            f"official split; {spec.val} random training utterances held out for validation; "
            "standardised by the training frames' mean and std"
        )
    elif spec.kind == "strokes":
        splits = {
            key: kanji_steps(key, getattr(spec, key), spec.grid, seed=i)
            for i, key in enumerate(SPLITS)
        }
        binary = 1
        note = (
            "the first characters (code point order) of the hash splits; pen_up modelled by a "
            "Bernoulli head (binary_dims=1)"
        )
        if spec.grid is not None:
            note += (
                f"; points rounded to {spec.grid:g} canvas units, offsets dequantised uniformly "
                "over their cells"
            )
    else:
        raise ValueError(f"unknown data kind {spec.kind!r}")
    for data in splits.values():
        data.setdefault("mask", None)
    obs_dim = splits["train"]["y"].shape[-1]
    return Prepared(splits["train"], splits["val"], splits["test"], obs_dim, binary, note)


@functools.lru_cache(maxsize=4)
def cached_dataset(spec: DatasetSpec) -> Prepared:
    """:func:`load_dataset`, remembered for the last four specs (in each worker process)."""
    return load_dataset(spec)
