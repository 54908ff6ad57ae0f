"""The files ``pyro-frmdn sample`` writes, in the user's units: ``.pt``, ``.npy``, a long
``.csv`` and a plot."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..files import atomic_write

__all__ = ["write_samples"]


def write_samples(
    out: Path, samples: Tensor, prime: Tensor | None, settings: dict, features: list[str]
) -> None:
    """Write ``samples`` (N, T, D) as ``out`` (a ``torch.save`` dict with ``samples``, ``prime``
    and ``settings``), ``out.npy`` (N, T, D) and ``out.csv`` (one row per step: ``sequence``,
    ``step``, then one column per feature, named ``features``); each atomically."""
    with atomic_write(out) as f:
        torch.save({"samples": samples, "prime": prime, "settings": settings}, f)
    values = samples.numpy()
    with atomic_write(out.with_suffix(".npy")) as f:
        np.save(f, values)
    with atomic_write(out.with_suffix(".csv"), "w") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["sequence", "step", *features])
        for i, sequence in enumerate(values):
            for t, step in enumerate(sequence):
                writer.writerow([i, t, *(f"{v:.7g}" for v in step)])
