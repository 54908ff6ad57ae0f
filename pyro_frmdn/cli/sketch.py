"""A sketch run's data (KanjiVG kanji in stroke-5, KanjiVG's own splits) and its bounds."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..data import SPLITS, Standardize, kanji_stroke5
from ..models import SketchVAE
from .checks import ConfigError
from .sequences import Sequences
from .transforms import Part

__all__ = ["DATA_KEYS", "KANJI", "SKETCH", "read_kanji", "sketch_bounds"]

KANJI = "kanji"  # data.task of a sketch run: KanjiVG in stroke-5
SKETCH = "sketch"  # model.kind of a sketch run: SketchVAE
DATA_KEYS = ("spacing", "grid", "svg_dir")  # kanji_stroke5's options in [data]


def read_kanji(data: dict) -> tuple:
    """The parts of a run's data (:class:`~.runs.RunData`'s fields) from a ``[data]`` section
    with ``task = "kanji"``: at most ``n`` kanji of each of KanjiVG's splits (by a hash of the
    character, :func:`~pyro_frmdn.data.kanji_split`; ``val_fraction``, ``test_fraction`` and
    ``steps`` are not used) in stroke-5 (:func:`~pyro_frmdn.data.kanji_stroke5` with
    ``spacing``, ``grid``, ``svg_dir``; dequantisation noise from ``seed``), every split scaled
    by the training offsets and padded with end rows to one length. The transform is that scale
    (a :class:`~pyro_frmdn.data.Standardize` of the offsets, the pen left as it is), so that
    samples come back in KanjiVG's canvas units. Made again from the config by every command:
    nothing to save but the config.
    """
    if data["transform"] != "none":
        raise ConfigError(
            f'data.transform must be "none" for kanji, got {data["transform"]!r}: the offsets '
            "are scaled by their training standard deviation and the pen stays one-hot"
        )
    options = {key: data[key] for key in DATA_KEYS}
    train, scale = kanji_stroke5("train", limit=data["n"], seed=data["seed"], **options)
    splits = {"train": train["y"]}
    for name in SPLITS[1:]:
        splits[name] = kanji_stroke5(name, limit=data["n"], scale=scale, seed=data["seed"],
                                     **options)[0]["y"]  # fmt: skip
    length = max(y.shape[1] for y in splits.values())
    end = torch.tensor([0.0, 0, 0, 0, 1])
    y = torch.cat([_pad(splits[name], length, end) for name in SPLITS])
    split = np.array([name for name in SPLITS for _ in range(len(splits[name]))])
    index = {name: np.flatnonzero(split == name) for name in SPLITS}
    # the model sees offsets divided by the training scale: that is the run's transform
    units = Standardize(torch.zeros(5), torch.tensor([scale, scale, 1.0, 1.0, 1.0]))
    parts = {}
    for name, i in index.items():
        chosen = y[torch.from_numpy(i)]
        log_det = torch.full(chosen.shape[:2], -2 * math.log(scale), dtype=torch.float64)
        parts[name] = Part(units.inverse(chosen.double()).float(), None, chosen, log_det)
    sequences = Sequences(y, None, split, ["dx", "dy", "p_down", "p_up", "p_end"], None)
    return sequences, index, units, parts, {}


def _pad(y: Tensor, length: int, end: Tensor) -> Tensor:
    """Drawings ``(N, L, 5)`` padded with end rows to ``length`` rows."""
    return torch.cat([y, end.expand(len(y), length - y.shape[1], 5)], 1)


@torch.no_grad()
def sketch_bounds(model: SketchVAE, part: Part, particles: int, batch_size: int = 50) -> dict:
    """A split's mean bounds on :math:`\\log p(S)` per drawing in nats (higher is better): the
    ELBO (``particles`` draws averaged) and the IWAE bound (``particles`` draws), and the KL of
    the guide from the prior per drawing (0 without a code)."""
    y, elbo, iwae, kl = part.z, [], [], []
    for start in range(0, len(y), batch_size):
        batch = y[start : start + batch_size].to(model.device)
        lw = model.log_weights(batch, num_particles=particles)
        elbo.append(lw.mean(0))
        iwae.append(torch.logsumexp(lw, 0) - math.log(particles))
        kl.append(model.kl(batch))
    return {
        "elbo_per_drawing": float(torch.cat(elbo).mean()),
        "iwae_per_drawing": float(torch.cat(iwae).mean()),
        "kl_per_drawing": float(torch.cat(kl).mean()),
        "particles": particles,
    }
