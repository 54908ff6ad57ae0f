"""Data sets: synthetic tasks built in (no download); real data sets behind the ``data`` extra."""

from .augment import StrokeAugmentation, augment_stroke5
from .carracing import collect_rollouts, load_rollouts
from .digits import mnist_digits, sklearn_digits
from .envs import ENVS, FrameEnv, collect_episodes, make_env
from .files import from_arrays, from_csv, from_dataframe, read_sequences
from .handwriting import (
    ALPHABET,
    HandwritingData,
    WriterStyle,
    handwriting,
    pad_strokes,
    render_text,
)
from .iam import read_iam_folder, read_iam_strokes
from .kanji import available_characters, kanji_split, kanji_strokes
from .legibility import dtw, resample_path, text_match
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
from .stroke5 import NPZ_SPLITS, from_stroke5, kanji_stroke5, quickdraw_npz, to_stroke5
from .synthetic import TASKS, banana_sequences, branching_trajectories, inverse_sine, make_task
from .texts import random_texts
from .toy2d import TOY2D, TOY2D_ENTROPY, toy2d, toy2d_entropy, toy2d_log_prob
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
    "ALPHABET",
    "ENVS",
    "NPZ_SPLITS",
    "SPLITS",
    "TASKS",
    "TOY2D",
    "TOY2D_ENTROPY",
    "Compose",
    "DataTransform",
    "FrameEnv",
    "HandwritingData",
    "LogitTransform",
    "Standardize",
    "StrokeAugmentation",
    "UniformDequantize",
    "WriterStyle",
    "augment_stroke5",
    "available_characters",
    "banana_sequences",
    "bits_per_dim",
    "branching_trajectories",
    "collect_episodes",
    "collect_rollouts",
    "dequantize",
    "dequantize_grid",
    "dequantized_steps",
    "digit_rows",
    "dtw",
    "frames_to_sequences",
    "from_arrays",
    "from_csv",
    "from_dataframe",
    "from_stroke5",
    "handwriting",
    "inverse_logit_transform",
    "inverse_sine",
    "japanese_vowels",
    "japanese_vowels_statistics",
    "kanji_split",
    "kanji_steps",
    "kanji_stroke5",
    "kanji_strokes",
    "load_rollouts",
    "logit_transform",
    "make_env",
    "make_task",
    "mnist_digits",
    "moving_mnist",
    "moving_mnist_steps",
    "pad_strokes",
    "pixel_nll",
    "quickdraw_npz",
    "random_split",
    "random_texts",
    "read_iam_folder",
    "read_iam_strokes",
    "read_sequences",
    "render_text",
    "resample_path",
    "sequences_to_frames",
    "sklearn_digits",
    "text_match",
    "to_stroke5",
    "toy2d",
    "toy2d_entropy",
    "toy2d_log_prob",
    "transform_from_state",
    "vowels_splits",
]
