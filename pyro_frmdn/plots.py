"""Figures users ask for: learning curves, generated paths and series, dreams of world models."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from torch import Tensor

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["MAX_PLOTTED_FEATURES", "plot_history", "plot_paths", "plot_series", "save_dream"]

MAX_PLOTTED_FEATURES = 4  # rows of plot_series


def _to_uint8(frames: Tensor):
    """(N, T, C, H, W) in [0, 1] -> numpy (N, T, H, W, 3) uint8."""
    x = frames.detach().float().clamp(0, 1).cpu()
    if x.shape[2] == 1:
        x = x.expand(-1, -1, 3, -1, -1)
    return (x.permute(0, 1, 3, 4, 2) * 255).round().byte().numpy()


def save_dream(
    path, dreamed: Tensor, real: Tensor | None = None, fps: int = 8, scale: int = 3, num: int = 4
) -> tuple[Path, Path]:
    """Save dreamed frames beside the real future: ``path.gif`` (animated, real above, dream
    below, one column per sequence) and ``path.png`` (a strip: for each sequence a row of real
    frames and a row of dreamed ones).

    Arguments:
        path: the file stem (any suffix is replaced).
        dreamed: ``(B, S, C, H, W)`` in ``[0, 1]`` (``Dream.frames``).
        real: the real frames of the same steps, same shape, or ``None``.
        fps, scale: GIF frame rate and pixel upscaling.
        num: the first ``num`` sequences are shown.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image

    if real is not None and real.shape[:2] != dreamed.shape[:2]:
        raise ValueError(f"real {tuple(real.shape)} and dreamed {tuple(dreamed.shape)} differ")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [("dream", _to_uint8(dreamed[:num]))]
    if real is not None:
        rows.insert(0, ("real", _to_uint8(real[:num])))
    n, steps = rows[0][1].shape[:2]
    pad = lambda a: np.pad(a, ((1, 1), (1, 1), (0, 0)), constant_values=255)  # noqa: E731
    images = []
    for s in range(steps):
        grid = np.concatenate(
            [np.concatenate([pad(a[i, s]) for i in range(n)], 1) for _, a in rows], 0
        )
        images.append(
            Image.fromarray(grid).resize(
                (grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST
            )
        )
    gif = path.with_suffix(".gif")
    images[0].save(gif, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)

    fig, axes = plt.subplots(
        n * len(rows), steps, figsize=(0.8 * steps, 0.8 * n * len(rows)), squeeze=False
    )
    for i in range(n):
        for r, (label, a) in enumerate(rows):
            for s in range(steps):
                ax = axes[i * len(rows) + r, s]
                ax.imshow(a[i, s], interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if s == 0:
                    ax.set_ylabel(f"{label} {i}", fontsize=7)
                if i == 0 and r == 0:
                    ax.set_title(f"t+{s + 1}", fontsize=7)
    fig.tight_layout(pad=0.2)
    png = path.with_suffix(".png")
    fig.savefig(png, dpi=80)
    plt.close(fig)
    return gif, png


# -- the figures of ``pyro-frmdn train`` and ``sample`` (matplotlib's Figure: no global backend) --


def plot_history(history: Mapping[str, Sequence[float | None]]) -> Figure:
    """The learning curve: training and validation NLL per step against epoch.

    Arguments:
        history: a :class:`~pyro_frmdn.infer.History` (or a dict of its columns): ``epoch``,
            ``train_nll``, ``val_nll``; a column of ``None`` (no validation) is left out.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(5, 3.5), layout="constrained")
    ax = fig.add_subplot()
    for key, label in (("train_nll", "train"), ("val_nll", "validation")):
        if any(v is not None for v in history[key]):
            ax.plot(history["epoch"], history[key], marker="o", label=label)
    ax.set(xlabel="epoch", ylabel="NLL per step (nats)", title="learning curve")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
    return fig


def plot_paths(
    generated: Tensor,
    real: Tensor,
    prime_steps: int = 0,
    offsets: bool = False,
    name: str | None = None,
) -> Figure:
    """Generated 2-D sequences (left) beside real ones (right), each drawn as a path.

    Arguments:
        generated: ``(N, T, 2)``, the primes included; their first ``prime_steps`` are grey.
        real: ``(M, T', 2)`` real sequences.
        prime_steps: the steps of each generated sequence that were given, not generated.
        offsets: the values are steps ``(dx, dy)``: draw their cumulative sums (positions).
        name: the data's name, shown in the titles (if given).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.5), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    for ax, y, title in ((axes[0], generated, "generated"), (axes[1], real, "real")):
        for i, p in enumerate((y.cumsum(-2) if offsets else y).numpy()):
            color = f"C{i % 10}"
            ax.plot(p[:, 0], p[:, 1], marker=".", ms=3, lw=1, color=color, alpha=0.8)
            if title == "generated" and prime_steps:
                ax.plot(p[:prime_steps, 0], p[:prime_steps, 1], lw=2.5, color="0.5")
        labels = ("x = Σ dx", "y = Σ dy") if offsets else ("y[0]", "y[1]")
        ax.set(title=f"{title} ({name})" if name else title, xlabel=labels[0], ylabel=labels[1])
    return fig


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
