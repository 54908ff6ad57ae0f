"""A run's handwriting data: simulated writers' strokes and their texts, split by writer, text."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..data import SPLITS, handwriting, pad_strokes
from ..models import HandwritingSynthesis
from ..nn import encode_texts
from .checks import ConfigError
from .sequences import Sequences
from .transforms import Part

__all__ = ["DATA_KEYS", "HANDWRITING", "PACE", "TextPart", "build_handwriting", "read_handwriting"]

HANDWRITING = "handwriting"  # data.task and model.kind of a handwriting run
DATA_KEYS = ("num_writers", "num_texts", "texts_per_writer", "font")  # handwriting()'s options
PACE = "window_step"  # model.window_step: the window's initial pace (pace_window), not in config


@dataclass
class TextPart(Part):
    """A split of handwriting: strokes ``y`` (N, T, 3) with ``mask``, and the texts they write,
    as ``codes`` (N, U) with ``text_mask`` (N, U) and as strings ``texts``."""

    codes: Tensor
    text_mask: Tensor
    texts: list[str]

    def fit_data(self) -> dict[str, Tensor]:
        """The strokes and their texts as ``fit`` and ``evaluate`` give them to the model."""
        return {"y": self.z, "mask": self.mask, "text": self.codes, "text_mask": self.text_mask}


def read_handwriting(data: dict) -> tuple:
    """The parts of a run's data (:class:`~.runs.RunData`'s fields) from a ``[data]`` section
    with ``task = "handwriting"``: :func:`~pyro_frmdn.data.handwriting` made from ``data.seed``
    with its options (``num_writers``, ``num_texts``, ``texts_per_writer``, ``font``), its own
    splits by writer and by text (``val_fraction``, ``test_fraction``, ``n`` and ``steps`` are
    not used), and what the model takes from the data: the alphabet, the scale of the
    offsets (their standard deviation in the training split) and the window's pace (the
    training split's characters per point).
    """
    if data["transform"] != "none":
        raise ConfigError(
            f'data.transform must be "none" for handwriting, got {data["transform"]!r}: the '
            "model scales the offsets itself (model.offset_scale) and the pen bit stays 0/1"
        )
    options = {key: data[key] for key in DATA_KEYS}
    splits = {
        name: handwriting(name, seed=data["seed"], progress=False, **options) for name in SPLITS
    }
    strokes = [s for name in SPLITS for s in splits[name].strokes]
    texts = [t for name in SPLITS for t in splits[name].texts]
    alphabet = splits["train"].alphabet
    y, mask = pad_strokes(strokes)
    codes, text_mask = encode_texts(texts, alphabet)
    split = np.array([name for name in SPLITS for _ in splits[name].texts])
    index = {name: np.flatnonzero(split == name) for name in SPLITS}
    parts = {}
    for name, i in index.items():
        i = torch.from_numpy(i)
        log_det = torch.zeros(mask[i].shape, dtype=torch.float64)  # no transform
        chosen = [texts[j] for j in i.tolist()]
        parts[name] = TextPart(y[i], mask[i], y[i], log_det, codes[i], text_mask[i], chosen)
    train = parts["train"]
    scale = float(train.y[train.mask][:, :2].std())
    pace = float(train.text_mask.sum() / train.mask.sum())
    sequences = Sequences(y, mask, split, ["dx", "dy", "pen_up"], None)
    return sequences, index, None, parts, {"alphabet": alphabet, "offset_scale": scale, PACE: pace}


def build_handwriting(section: dict, data_defaults: dict) -> HandwritingSynthesis:
    """The model of a ``[model]`` section of ``kind = "handwriting"`` (``kind`` removed), the
    data's ``alphabet`` and ``offset_scale`` filling in those not given, its window started
    (:meth:`~pyro_frmdn.models.HandwritingSynthesis.pace_window`) at ``window_step``
    characters a point: the section's, or when unset or null the training data's (the pace
    that benchmarks/results/handwriting trains from). An initialisation, kept in the run's
    ``config.json`` but not in the model's ``config``.
    """
    kwargs = {**data_defaults, **section}
    pace = kwargs.pop(PACE)
    model = HandwritingSynthesis(**kwargs)
    if model.text_blind:
        if section.get(PACE) is not None:
            raise ConfigError(
                f"model.{PACE} paces the attention window, but model.text_blind = true has "
                f"none: drop model.{PACE}"
            )
        return model
    model.pace_window(data_defaults[PACE] if pace is None else pace)
    return model
