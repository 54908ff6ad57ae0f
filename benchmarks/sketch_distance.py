"""How close a saved SketchVAE's reconstructions come to their inputs, under two stroke
distances, against how close different kanji are to each other.

The reconstruction rate of ``sketch.py`` (its own input the nearest of N drawings) asks a
decoding to be nearer to its input than any other kanji is. This script prints, for greedy
and τ = 0.2 decodings of N drawings (the test kanji, or with ``--split train`` the first N
training drawings as they were trained on):

- the rate, the mean rank of the own input and the pairwise rate under the symmetric Chamfer
  distance of ``sketch.py`` (the points as a set: order-free) and under dynamic time warping
  of the pen's path (the points in the order drawn, Euclidean steps, the warped sum over
  n + m; Sakoe & Chiba 1978), which sees stroke order and direction as the model draws them;
- the median distance of a decoding to its own input against the median distance of each
  input to its nearest other input: the margin a reconstruction has.

    python benchmarks/sketch.py --out OUT --variants vae_frmdn_pos --train 200 --epochs 500 \\
        --trained 200 --seeds 0 --last --save-models
    python benchmarks/sketch_distance.py OUT/model_vae_frmdn_pos_seed0.pt --train 200 \\
        --split train

The kanji are read as ``sketch.py`` reads them (``--train`` + ``--val`` training kanji set the
scale; spacing 8, grid 1); distances in KanjiVG's canvas units (109 wide).
"""

from __future__ import annotations

import argparse

import numpy as np
import pyro
from scipy.spatial import cKDTree
from sketch import chamfer, points, saved_model, saved_model_arguments  # beside

from pyro_frmdn.data import from_stroke5


def dtw(a: np.ndarray, others: list[np.ndarray]) -> np.ndarray:
    """Dynamic time warping of the path ``a`` (n, 2) against each path of ``others``: the least
    sum of Euclidean distances over a monotone alignment, divided by n + m (so that long
    drawings are not penalised for their length). Filled one anti-diagonal at a time, for all
    ``others`` at once."""
    n, k = len(a), len(others)
    lengths = np.array([len(b) for b in others])
    width = int(lengths.max())
    padded = np.zeros((k, width, 2))
    for i, b in enumerate(others):
        padded[i, : len(b)] = b
    cost = np.linalg.norm(a[None, :, None] - padded[:, None], axis=-1)  # (k, n, width)
    total = np.full((k, n + 1, width + 1), np.inf)
    total[:, 0, 0] = 0.0
    for s in range(2, n + width + 1):  # the cells (i, j) with i + j = s
        i = np.arange(max(1, s - width), min(n, s - 1) + 1)
        j = s - i
        best = np.minimum(
            np.minimum(total[:, i - 1, j], total[:, i - 1, j - 1]), total[:, i, j - 1]
        )
        total[:, i, j] = cost[:, i - 1, j - 1] + best
    return total[np.arange(k), n, lengths] / (n + lengths)


def chamfers(a: np.ndarray, others: list[np.ndarray]) -> np.ndarray:
    return np.array([chamfer(a, b) for b in others])


def ink(drawing, scale: float, step: float = 1.0) -> np.ndarray:
    """The ink of a stroke-5 drawing: points every ``step`` canvas units along the segments the
    pen draws (a row's segment from the previous point is drawn when the pen was down there;
    the move from the origin to the first point is not), and the lone points of one-point
    strokes."""
    d = from_stroke5(drawing[None])
    n = int(d["mask"].sum())
    if n == 0:
        return np.zeros((1, 2))
    rows = d["y"][0, :n].double().numpy()
    xy = np.cumsum(rows[:, :2] * scale, 0)
    drawn = np.flatnonzero(rows[:-1, 2] == 0)  # segment i -> i + 1 is drawn
    pieces = [xy]
    for i in drawn:
        length = np.linalg.norm(xy[i + 1] - xy[i])
        t = np.arange(step, length, step)[:, None] / max(length, 1e-12)
        pieces.append(xy[i] + t * (xy[i + 1] - xy[i]))
    return np.concatenate(pieces)


def ink_chamfers(a: np.ndarray, others: list[np.ndarray]) -> np.ndarray:
    """The symmetric Chamfer distance between inks, by nearest-neighbour trees."""
    tree = cKDTree(a)
    return np.array(
        [0.5 * (cKDTree(b).query(a)[0].mean() + tree.query(b)[0].mean()) for b in others]
    )


DISTANCES = {"chamfer": (points, chamfers), "ink": (ink, ink_chamfers), "dtw": (points, dtw)}
"""name: (a drawing as the distance reads it, the distance of one to many)."""


def report(name: str, outputs, inputs: dict, nearest_other: dict, scale: float) -> None:
    """One line per distance for the decodings ``outputs``; ``inputs`` and ``nearest_other``:
    per distance, the inputs as it reads them and each input's distance to its nearest other
    (computed once, shared by every decoding)."""
    for label, (read, distance) in DISTANCES.items():
        theirs, n = inputs[label], len(inputs[label])
        own, ranks = [], []
        for i, out in enumerate(read(d, scale) for d in outputs):
            d = distance(out, theirs)
            own.append(d[i])
            ranks.append(1 + int((d < d[i]).sum()))
        ranks, gap = np.array(ranks), np.median(nearest_other[label])
        print(
            f"{name:7s} {label:8s} rate {np.mean(ranks == 1):.3f}  mean rank {ranks.mean():5.1f}"
            f"  pairwise {np.mean((n - ranks) / (n - 1)):.3f}  |  median distance to its own input"
            f" {np.median(own):.2f}, to its nearest other input {gap:.2f}",
            flush=True,
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    saved_model_arguments(p)
    p.add_argument("--split", choices=["test", "train"], default="test")
    p.add_argument("--count", type=int, default=200, help="training drawings (--split train)")
    a = p.parse_args()
    m, y, scale = saved_model(a, a.split, a.count if a.split == "train" else None)
    print(f"# {a.model}: {len(y)} {a.split} drawings")
    pyro.set_rng_seed(a.seed)
    z = m.encode(y)
    inputs = {label: [read(d, scale) for d in y] for label, (read, _) in DISTANCES.items()}
    nearest_other = {}
    for label, (_, distance) in DISTANCES.items():
        xs = inputs[label]
        nearest_other[label] = [np.delete(distance(x, xs), i).min() for i, x in enumerate(xs)]
    for name, options in (
        ("greedy", dict(greedy_decoding=True)),
        ("τ = 0.2", dict(temperature=0.2)),
    ):
        out = m.decode(z, steps=y.shape[1], **options)
        report(name, out, inputs, nearest_other, scale)


if __name__ == "__main__":
    main()
