"""Per-data-set preparation of the real data sets into the sequence models' space."""

from __future__ import annotations

import torch
from torch import Tensor

from .digits import mnist_digits, sklearn_digits
from .kanji import SCALE as KANJI_SCALE
from .kanji import kanji_strokes
from .moving_mnist import frames_to_sequences, moving_mnist
from .preprocessing import dequantize, dequantize_grid, logit_transform
from .vowels import japanese_vowels

__all__ = [
    "dequantized_steps",
    "digit_rows",
    "kanji_steps",
    "moving_mnist_steps",
    "vowels_splits",
]


def dequantized_steps(
    pixels: Tensor, levels: int = 256, logit_lambda: float | None = None, seed: int = 0
) -> Tensor:
    """Integer pixels ``(N, T, D)`` -> dequantised (and logit-transformed) float steps.

    The noise of :func:`~pyro_frmdn.data.dequantize` comes from a generator seeded by ``seed``;
    with ``logit_lambda`` the values then go through
    :func:`~pyro_frmdn.data.logit_transform`.

    Example:
        >>> pixels = torch.tensor([[[0, 16]]])
        >>> v = dequantized_steps(pixels, levels=17)
        >>> bool(((v >= pixels / 17) & (v < (pixels + 1) / 17)).all())
        True
    """
    v = dequantize(pixels, levels, torch.Generator().manual_seed(seed))
    return v if logit_lambda is None else logit_transform(v, logit_lambda)


def moving_mnist_steps(
    split: str,
    num_videos: int,
    num_frames: int = 20,
    frame_size: int = 16,
    levels: int = 256,
    logit_lambda: float | None = None,
    seed: int = 0,
    video_seed: int = 0,
) -> Tensor:
    """Moving MNIST videos as sequences of flattened frames ``(N, T, H·W)``, dequantised.

    The videos are :func:`~pyro_frmdn.data.moving_mnist`'s (drawn with ``video_seed``), one frame
    a step (:func:`~pyro_frmdn.data.frames_to_sequences`), then :func:`dequantized_steps` with
    ``seed``.

    Example:
        >>> y = moving_mnist_steps("test", 2, num_frames=4)  # doctest: +SKIP
        >>> y.shape  # doctest: +SKIP
        torch.Size([2, 4, 256])
    """
    video = moving_mnist(split, num_videos, num_frames, frame_size, seed=video_seed)
    return dequantized_steps(frames_to_sequences(video), levels, logit_lambda, seed)


def digit_rows(
    split: str, num_images: int, levels: int, logit_lambda: float | None = None, seed: int = 0
) -> Tensor:
    """A random subset of a digit split as sequences of rows ``(N, H, W)``, dequantised.

    The pixel levels name the source: 17 for scikit-learn's 8x8 digits
    (:func:`~pyro_frmdn.data.sklearn_digits`), 256 for MNIST
    (:func:`~pyro_frmdn.data.mnist_digits`). A split is ordered by class, so the first
    ``num_images`` of a permutation drawn with ``seed`` are kept; the same ``seed`` draws the
    dequantisation noise (:func:`dequantized_steps`).

    Example:
        >>> y = digit_rows("test", 10, levels=17)  # doctest: +SKIP
        >>> y.shape  # doctest: +SKIP
        torch.Size([10, 8, 8])
    """
    loaders = {17: sklearn_digits, 256: mnist_digits}
    if levels not in loaders:
        raise ValueError(f"image rows come with 17 (8x8 digits) or 256 (MNIST) levels, "
                         f"got levels={levels}")  # fmt: skip
    images = loaders[levels](split)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    return dequantized_steps(images[order[:num_images]], levels, logit_lambda, seed)


def vowels_splits(train: int, val: int, test: int, seed: int = 0) -> dict[str, dict[str, Tensor]]:
    """JapaneseVowels' official split with ``val`` random training utterances held out.

    Returns ``{"train", "val", "test"}`` dicts of ``{"y", "mask"}``
    (:func:`~pyro_frmdn.data.japanese_vowels`, standardised by the training frames): the
    validation utterances are the first ``val`` of a permutation of the training split drawn
    with ``seed``, the training ones the first ``train`` of the rest, the test ones the first
    ``test`` of the official test split.

    Example:
        >>> splits = vowels_splits(240, 30, 370)  # doctest: +SKIP
        >>> [len(s["y"]) for s in splits.values()]  # doctest: +SKIP
        [240, 30, 370]
    """
    data = japanese_vowels("train")
    order = torch.randperm(len(data["y"]), generator=torch.Generator().manual_seed(seed))
    return {
        "train": {k: v[order[val:]][:train] for k, v in data.items()},
        "val": {k: v[order[:val]] for k, v in data.items()},
        "test": {k: v[:test] for k, v in japanese_vowels("test").items()},
    }


def kanji_steps(
    split: str, limit: int, grid: float | None = None, seed: int = 0
) -> dict[str, Tensor]:
    """The first ``limit`` kanji of a split as ``(dx, dy, pen_up)`` steps: ``{"y", "mask"}``.

    With ``grid`` the points are rounded to that many canvas units
    (:func:`~pyro_frmdn.data.kanji_strokes`) and the offsets spread uniformly over their cells
    (:func:`~pyro_frmdn.data.dequantize_grid`, noise drawn with ``seed``); padding stays zero.

    Example:
        >>> data = kanji_steps("test", 4, grid=0.5)  # doctest: +SKIP
        >>> data["y"].shape[-1]  # doctest: +SKIP
        3
    """
    data = kanji_strokes(split, limit=limit, grid=grid)
    if grid is not None:
        noise = torch.Generator().manual_seed(seed)
        offsets = dequantize_grid(data["y"][..., :2], grid / KANJI_SCALE, noise)
        data["y"][..., :2] = offsets * data["mask"][..., None]  # padding stays zero
    return data
