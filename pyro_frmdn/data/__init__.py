"""Data sets: synthetic tasks built in (no download); real data sets behind the ``data`` extra."""

from .carracing import collect_rollouts, load_rollouts
from .digits import mnist_digits, sklearn_digits
from .files import from_arrays, from_csv, from_dataframe, read_sequences
from .kanji import available_characters, kanji_split, kanji_strokes
from .moving_mnist import frames_to_sequences, moving_mnist, sequences_to_frames
from .prepare import (
    dequantized_steps,
    digit_rows,
    kanji_steps,
    moving_mnist_steps,
    vowels_splits,
)
from .preprocessing import (
    bits_per_dim,
    dequantize,
    dequantize_grid,
    inverse_logit_transform,
    logit_transform,
    pixel_nll,
)
from .splits import SPLITS, random_split
from .synthetic import TASKS, banana_sequences, branching_trajectories, inverse_sine, make_task
from .toy2d import TOY2D, toy2d
from .transforms import (
    Compose,
    DataTransform,
    LogitTransform,
    Standardize,
    UniformDequantize,
    transform_from_state,
)
from .vowels import japanese_vowels, japanese_vowels_statistics

__all__ = [
    "SPLITS",
    "TASKS",
    "TOY2D",
    "Compose",
    "DataTransform",
    "LogitTransform",
    "Standardize",
    "UniformDequantize",
    "available_characters",
    "banana_sequences",
    "bits_per_dim",
    "branching_trajectories",
    "collect_rollouts",
    "dequantize",
    "dequantize_grid",
    "dequantized_steps",
    "digit_rows",
    "frames_to_sequences",
    "from_arrays",
    "from_csv",
    "from_dataframe",
    "inverse_logit_transform",
    "inverse_sine",
    "japanese_vowels",
    "japanese_vowels_statistics",
    "kanji_split",
    "kanji_steps",
    "kanji_strokes",
    "load_rollouts",
    "logit_transform",
    "make_task",
    "mnist_digits",
    "moving_mnist",
    "moving_mnist_steps",
    "pixel_nll",
    "random_split",
    "read_sequences",
    "sequences_to_frames",
    "sklearn_digits",
    "toy2d",
    "transform_from_state",
    "vowels_splits",
]
