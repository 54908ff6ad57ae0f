"""Figures users ask for: learning curves, generated paths and series, dreams of world models."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from torch import Tensor

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "MAX_PLOTTED_FEATURES",
    "plot_attention",
    "plot_drawings",
    "plot_evolution",
    "plot_history",
    "plot_paths",
    "plot_series",
    "plot_strokes",
    "save_dream",
    "save_episode_gif",
    "save_svg",
]

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


# -- handwriting: pen strokes (dx, dy, pen_up) drawn, exported as SVG; attention maps --


def _stroke_sequences(strokes) -> list[np.ndarray]:
    """One ``(T, 3)`` tensor or array, or a list of them, as float64 arrays, checked."""
    many = isinstance(strokes, (list, tuple))
    sequences = list(strokes) if many else [strokes]
    if not sequences:
        raise ValueError("strokes must be a (T, 3) tensor or a non-empty list of them")
    arrays = []
    for i, s in enumerate(sequences):
        name = f"strokes[{i}]" if many else "strokes"
        if not isinstance(s, (Tensor, np.ndarray)):
            raise TypeError(f"{name} must be a (T, 3) tensor or array, got {type(s).__name__}")
        a = (s.detach().cpu().double().numpy() if isinstance(s, Tensor) else s).astype(float)
        if a.ndim != 2 or a.shape[1] != 3 or len(a) == 0:
            raise ValueError(f"{name} must have shape (T, 3) with T >= 1, got {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"{name} has values that are not finite (NaN or Inf)")
        arrays.append(a)
    return arrays


def _pen_strokes(offsets: np.ndarray) -> list[np.ndarray]:
    """The absolute points of each stroke: the offsets summed, cut after each ``pen_up``."""
    points = np.cumsum(offsets[:, :2], axis=0)
    ends = np.flatnonzero(offsets[:, 2] > 0.5) + 1
    return [p for p in np.split(points, ends) if len(p)]


def plot_strokes(strokes, path, texts: Sequence[str] | None = None) -> Path:
    """Draw pen strokes as handwriting and save the figure (any format matplotlib writes).

    Arguments:
        strokes: a ``(T, 3)`` sequence of rows ``(dx, dy, pen_up)``, or a list of them; each
            is drawn on a line of its own, the pen lifted after every point with
            ``pen_up = 1`` (no ink from there to the next point), y up, equal scales.
        path: the file to write.
        texts: a title for each sequence (say, the text it writes), or ``None``.

    Returns:
        The path written.
    """
    from matplotlib.figure import Figure

    sequences = _stroke_sequences(strokes)
    if texts is not None and len(texts) != len(sequences):
        raise ValueError(f"texts has {len(texts)} items for {len(sequences)} stroke sequences")
    drawn = [_pen_strokes(s) for s in sequences]
    low = np.array([np.concatenate(d).min(0) for d in drawn])
    high = np.array([np.concatenate(d).max(0) for d in drawn])
    pad = 0.1 * max(float((high - low)[:, 1].max()), 1e-6)
    width = float((high - low)[:, 0].max()) + 2 * pad  # every line on the same x range
    heights = (high - low)[:, 1] + 2 * pad
    scale = min(0.8, 14 / width)  # inches per unit, the same for all lines (see below)
    fig = Figure(figsize=(max(3.0, scale * width + 0.4), 0.4 * len(drawn) + scale * sum(heights)))
    axes = fig.subplots(len(drawn), 1, squeeze=False, height_ratios=heights)[:, 0]
    for i, (ax, pieces) in enumerate(zip(axes, drawn, strict=True)):
        for p in pieces:
            ax.plot(p[:, 0], p[:, 1], color="k", lw=1.2, solid_capstyle="round")
            if len(p) == 1:
                ax.plot(p[:, 0], p[:, 1], "k.", ms=2)
        ax.set_xlim(low[i, 0] - pad, low[i, 0] - pad + width)
        ax.set_ylim(low[i, 1] - pad, high[i, 1] + pad)
        ax.set_aspect("equal", adjustable="box")  # the same scale in every line: see above
        ax.axis("off")
        if texts is not None:
            ax.set_title(texts[i], fontsize=9, loc="left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return Path(path)


def plot_attention(phi, text: str, path) -> Path:
    """Save the heat map of attention weights: characters (rows) against time steps (columns).

    Arguments:
        phi: ``(T, U)`` weights :math:`\\phi(t, u)` of the ``U`` characters of ``text`` at each
            of ``T`` steps (Graves 2013, eq. 46), a tensor or an array; finite.
        text: the text attended to, ``U`` characters (the row labels).
        path: the file to write.

    Returns:
        The path written.
    """
    from matplotlib.figure import Figure

    if not isinstance(phi, (Tensor, np.ndarray)):
        raise TypeError(f"phi must be a (T, U) tensor or array, got {type(phi).__name__}")
    a = phi.detach().cpu().double().numpy() if isinstance(phi, Tensor) else np.asarray(phi, float)
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if a.ndim != 2 or a.shape[1] != len(text) or len(a) == 0:
        raise ValueError(f"phi must have shape (T, len(text)={len(text)}), got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("phi has values that are not finite (NaN or Inf)")
    fig = Figure(figsize=(min(3 + len(a) / 40, 14), 1.5 + 0.18 * len(text)), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(a.T, aspect="auto", interpolation="nearest", cmap="viridis")
    ax.set_yticks(range(len(text)), [repr(c)[1:-1] if c != " " else "␣" for c in text])
    ax.set(xlabel="time step t", ylabel="character u", title="attention φ(t, u)")
    fig.colorbar(image, ax=ax)
    fig.savefig(path, dpi=120)
    return Path(path)


def save_svg(strokes, path, scale: float = 40.0, margin: float = 10.0) -> Path:
    """Write pen strokes as an SVG drawing: one ``<path>`` per stroke, round pen ends.

    Arguments:
        strokes: a ``(T, 3)`` sequence of rows ``(dx, dy, pen_up)``, or a list of them; several
            are written one line below the other.
        path: the ``.svg`` file to write.
        scale: SVG user units (pixels) per unit of the strokes; y is flipped (SVG's points
            down), so a point ``(x, y)`` lands at ``(scale x + a, -scale y + b)``, the shifts
            ``a, b`` placing each line ``margin`` pixels from the edges.

    Returns:
        The path written.
    """
    if not (isinstance(scale, (int, float)) and np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    paths, top, right = [], margin, margin
    for pieces in (_pen_strokes(s) for s in _stroke_sequences(strokes)):
        points = np.concatenate(pieces)
        low, high = points.min(0), points.max(0)
        for p in pieces:
            x = margin + scale * (p[:, 0] - low[0])
            y = top + scale * (high[1] - p[:, 1])
            to = slice(1, None) if len(p) > 1 else slice(None)  # one point: a dot
            moves = " ".join(f"L {a:.3f} {b:.3f}" for a, b in zip(x[to], y[to], strict=True))
            paths.append(f'  <path d="M {x[0]:.3f} {y[0]:.3f} {moves}"/>')
        top += scale * (high[1] - low[1]) + margin
        right = max(right, 2 * margin + scale * (high[0] - low[0]))
    width, height = f"{right:.0f}", f"{top:.0f}"
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">\n'
        '<g fill="none" stroke="black" stroke-width="2" stroke-linecap="round" '
        'stroke-linejoin="round">\n' + "\n".join(paths) + "\n</g>\n</svg>\n"
    )
    Path(path).write_text(svg)
    return Path(path)


# -- the figures of ``pyro-frmdn agent`` ----------------------------------------------------------


def plot_evolution(history: Sequence[Mapping[str, float]]) -> Figure:
    """Return against generation of a CMA-ES run: the best and mean of each population and the
    re-evaluated best (the rows of :class:`~pyro_frmdn.infer.Evolution`'s ``history``)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(5, 3.5), layout="constrained")
    ax = fig.add_subplot()
    g = [row["generation"] for row in history]
    for key, label in (("best", "best"), ("mean", "mean"), ("reevaluated", "best, re-evaluated")):
        ax.plot(g, [row[key] for row in history], marker="o", markersize=3, label=label)
    ax.set(xlabel="generation", ylabel="return", title="CMA-ES")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
    return fig


def save_episode_gif(path, frames, fps: int = 25, scale: int = 4) -> Path:
    """Save an episode's frames ``(T, C, H, W)`` (uint8, or floats in ``[0, 1]``) as an animated
    GIF at ``path``, each pixel ``scale`` × ``scale``."""
    from PIL import Image

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[0] < 1 or frames.shape[1] not in (1, 3):
        raise ValueError(f"frames must have shape (T >= 1, 1 or 3, H, W), got {frames.shape}")
    if frames.dtype != np.uint8:
        frames = (np.clip(frames, 0, 1) * 255).round().astype(np.uint8)
    frames = np.repeat(frames, 3 // frames.shape[1], axis=1).transpose(0, 2, 3, 1)
    size = (frames.shape[2] * scale, frames.shape[1] * scale)
    images = [Image.fromarray(f).resize(size, Image.NEAREST) for f in frames]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return path


# -- sketches: drawings in a grid (reconstructions, interpolations) --


def _as_offsets(drawing) -> np.ndarray:
    """A ``(T, 3)`` drawing as it is; a stroke-5 ``(T, 5)`` one cut at its first end row, with
    ``pen_up = p2``."""
    a = drawing.detach().cpu().double().numpy() if isinstance(drawing, Tensor) else drawing
    a = np.asarray(a, dtype=float)
    if a.ndim == 2 and a.shape[1] == 5:
        ended = np.flatnonzero(a[:, 4] > 0.5)
        a = a[: ended[0] if len(ended) else len(a)][:, [0, 1, 3]]
        if len(a) == 0:  # ended at once: an empty drawing, one dot at the origin
            a = np.zeros((1, 3))
    return _stroke_sequences(a)[0]


def plot_drawings(
    grid, path, titles: Sequence[Sequence[str]] | None = None, y_down: bool = True, size=1.3
) -> Path:
    """Draw a grid of drawings (reconstructions beside their inputs, an interpolation) and save
    the figure (any format matplotlib writes).

    Arguments:
        grid: rows of drawings, each ``(T, 3)`` rows ``(dx, dy, pen_up)`` or stroke-5 ``(T, 5)``
            (cut at its first end row); a flat list is one row.
        path: the file to write.
        titles: a title per drawing (same nesting as ``grid``), or ``None``.
        y_down: y grows downwards (SVG and KanjiVG coordinates), else upwards.
        size: inches per drawing.

    Returns:
        The path written.
    """
    from matplotlib.figure import Figure

    rows = [list(r) for r in grid] if grid and isinstance(grid[0], (list, tuple)) else [grid]
    if not rows or not all(rows):
        raise ValueError("grid must be a non-empty list of rows of drawings")
    cols = max(len(r) for r in rows)
    if titles is not None and [len(t) for t in titles] != [len(r) for r in rows]:
        raise ValueError("titles must have one title per drawing, nested as grid")
    fig = Figure(figsize=(size * cols, size * len(rows)))
    axes = fig.subplots(len(rows), cols, squeeze=False)
    for i, row in enumerate(rows):
        for j in range(cols):
            ax = axes[i, j]
            ax.axis("off")
            if j >= len(row):
                continue
            for p in _pen_strokes(_as_offsets(row[j])):
                ax.plot(p[:, 0], p[:, 1], color="k", lw=1.0, solid_capstyle="round")
            ax.set_aspect("equal", adjustable="datalim")
            if y_down:
                ax.invert_yaxis()
            if titles is not None:
                ax.set_title(titles[i][j], fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
