"""The suite's figures: learning curves, calibration histograms and generated samples."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..data import inverse_logit_transform
from .datasets import Prepared
from .specs import VARIANTS, DatasetSpec

__all__ = ["draw_strokes", "mosaic", "plot_curves", "plot_pit_comparison", "plot_samples"]


def plot_curves(name: str, runs: list[dict], path: Path) -> None:
    """Training and validation NLL per epoch of every run: one colour a model, one line a seed."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for i, v in enumerate(VARIANTS):
        for r in (r for r in runs if r["variant"] == v):
            epochs = [h["epoch"] for h in r["history"]]
            for ax, key in zip(axes, ("train_nll", "val_nll"), strict=True):
                label = VARIANTS[v][0] if r["seed"] == 0 else None
                ax.plot(epochs, [h[key] for h in r["history"]], color=f"C{i}", lw=1, label=label)
    values = np.array([h[k] for r in runs for h in r["history"] for k in ("train_nll", "val_nll")])
    low, high = values.min(), np.percentile(values, 90)  # a diverging run would flatten the rest
    axes[0].set_ylim(low - 0.05 * (high - low), high + 0.3 * (high - low))
    for ax, title in zip(axes, ("training", "validation"), strict=True):
        ax.set(xlabel="epoch", title=f"{name}: {title} NLL (one line per seed)")
    axes[0].set_ylabel("NLL per step (nats, model space)")
    axes[1].legend(fontsize=8)
    fig.savefig(path, dpi=80)


def plot_pit_comparison(name: str, firsts: dict, path: Path) -> None:
    """PIT histograms of every model (all output dimensions pooled), against uniform."""
    from matplotlib.figure import Figure

    if not firsts:
        return
    fig = Figure(figsize=(2.6 * len(firsts), 2.6), layout="constrained")
    axes = fig.subplots(1, len(firsts), squeeze=False, sharey=True)[0]
    for ax, (v, r) in zip(axes, firsts.items(), strict=True):
        u = np.asarray(r["pit"]).reshape(-1)
        band = 2 * math.sqrt((1 - 1 / 20) * 20 / len(u))
        ax.hist(u, bins=20, range=(0, 1), density=True, color="C0", alpha=0.7)
        ax.axhspan(max(1 - band, 0), 1 + band, color="0.4", alpha=0.25, lw=0)
        ax.axhline(1, color="k", lw=1)
        ax.set(title=VARIANTS[v][0], xlabel="PIT", xlim=(0, 1))
    fig.suptitle(f"{name}: calibration of one-step-ahead predictions (dims pooled)")
    fig.savefig(path, dpi=80)


def _to_pixels(y: Tensor, spec: DatasetSpec) -> np.ndarray:
    """Steps in the model's space -> pixel intensities in [0, 1]."""
    v = y if spec.logit_lambda is None else inverse_logit_transform(y, spec.logit_lambda)
    return v.clamp(0, 1).numpy()


def mosaic(images: np.ndarray, rows: int = 1) -> np.ndarray:
    """``(N, H, W)`` images side by side in ``rows`` rows, one grey pixel between them.

    Example:
        >>> mosaic(np.zeros((3, 2, 2))).shape
        (2, 8)
    """
    n, h, w = images.shape
    cols = math.ceil(n / rows)
    out = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), 0.5)
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        out[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = image
    return out


def plot_samples(spec: DatasetSpec, data: Prepared, firsts: dict, path: Path) -> None:
    """Generated frames, digits, strokes or coefficients beside real ones: one panel a model."""
    from matplotlib.figure import Figure

    if not firsts:
        return
    real = data.test["y"]
    if spec.kind == "frames":  # the real continuation of the videos the samples were primed on
        real = real[:, spec.num_frames // 2 :]
    rows = [("real", real)] + [(VARIANTS[v][0], torch.tensor(r["samples"])) for v, r in
                                 firsts.items()]  # fmt: skip
    tall = spec.kind in ("frames", "rows", "strokes")
    fig = Figure(figsize=(8, 1.3 * len(rows)) if tall else (3 * len(rows), 2.8))
    axes = fig.subplots(*((len(rows), 1) if tall else (1, len(rows))), squeeze=False).flat
    for ax, (label, y) in zip(axes, rows, strict=True):
        ax.set_title(label, fontsize=8, loc="left")
        if spec.kind == "frames":  # two videos, one a row, frames after the prime
            frames = _to_pixels(y[:2], spec).reshape(-1, spec.frame_size, spec.frame_size)
            ax.imshow(mosaic(frames, 2), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        elif spec.kind == "rows":
            image = mosaic(_to_pixels(y[:8], spec))
            ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        elif spec.kind == "strokes":
            for j in range(6):
                steps = y[j] if label != "real" else y[j][data.test["mask"][j]]
                draw_strokes(ax, steps.numpy(), offset=1.2 * j)
        else:
            for j in range(6):
                steps = y[j] if label != "real" else y[j][data.test["mask"][j]]
                ax.plot(steps[:, 0].numpy(), steps[:, 1].numpy(), lw=1, color=f"C{j}")
            ax.set_xlabel("coefficient 1")
        if tall:
            ax.set_axis_off()
    titles = {
        "frames": f"Moving MNIST: frames {spec.num_frames // 2 + 1}-{spec.num_frames} generated "
        f"after {spec.num_frames // 2} real ones (two videos per model)",
        "rows": f"{spec.name}: digits generated row by row",
        "strokes": "kanji: generated pen trajectories (each scaled to its box)",
    }
    title = titles.get(spec.kind, f"{spec.name}: first two coefficients of sequences")
    fig.suptitle(f"{title}; temperature {spec.sample_temperature:g}")
    fig.savefig(path, dpi=72)


def draw_strokes(ax, steps: np.ndarray, offset: float = 0.0) -> None:
    """Draw ``(dx, dy, pen_up)`` steps, scaled into a unit box at ``offset`` along x.

    The pen lifts after a step with ``pen_up = 1``: the move to the next point is not drawn.
    SVG's y axis points down, so y is drawn negated.
    """
    points = np.cumsum(steps[:, :2], axis=0) * [1, -1]
    points = (points - points.min(0)) / max(np.ptp(points, axis=0).max(), 1e-9)
    start = 0
    for i, up in enumerate(steps[:, 2] >= 1):
        if up or i == len(steps) - 1:
            stroke = points[start : i + 1]
            ax.plot(stroke[:, 0] + offset, stroke[:, 1], color="k", lw=1)
            start = i + 1
    ax.set_aspect("equal")
