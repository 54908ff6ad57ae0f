"""The files ``pyro-frmdn sample`` writes, in the user's units: ``.pt``, ``.npy``, a long
``.csv`` and a plot."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from ..files import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["MAX_PLOTTED_FEATURES", "plot_series", "write_samples"]

MAX_PLOTTED_FEATURES = 4


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


def _lines(ax, y: Tensor, mask: Tensor | None, prime_steps: int) -> None:
    for i, values in enumerate(y.numpy()):
        steps = len(values) if mask is None else int(mask[i].sum())
        ax.plot(np.arange(steps), values[:steps], lw=1, color=f"C{i % 10}", alpha=0.8)
        if prime_steps:
            ax.plot(np.arange(prime_steps), values[:prime_steps], lw=2.5, color="0.5")


def plot_series(
    generated: Tensor,
    real: Tensor,
    real_mask: Tensor | None,
    features: list[str],
    prime_steps: int = 0,
) -> Figure:
    """Each feature against the step (at most :data:`MAX_PLOTTED_FEATURES`, one row each):
    generated sequences (N, T, D) on the left, their first ``prime_steps`` grey, real ones
    (M, T', D) on the right, drawn up to their last observed step (``real_mask`` (M, T'))."""
    from matplotlib.figure import Figure

    rows = min(len(features), MAX_PLOTTED_FEATURES)
    fig = Figure(figsize=(10, 1.2 + 2.2 * rows), layout="constrained")
    axes = fig.subplots(rows, 2, sharex=True, sharey="row", squeeze=False)
    for d in range(rows):
        _lines(axes[d, 0], generated[..., d], None, prime_steps)
        _lines(axes[d, 1], real[..., d], real_mask, 0)
        axes[d, 0].set_ylabel(features[d])
    axes[0, 0].set_title("generated")
    axes[0, 1].set_title("real")
    for ax in axes[-1]:
        ax.set_xlabel("step")
    return fig
