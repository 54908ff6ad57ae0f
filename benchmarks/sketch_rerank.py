"""Reconstruction of the test kanji by a saved SketchVAE, as the best of N decodings by the code
(``SketchVAE.reconstruct``) at several N and temperatures: the reconstruction rate (its own
input the nearest of the 200 test kanji under the Chamfer distance of ``sketch.py``) and the
mean rank of its own input.

    python benchmarks/sketch.py --out OUT --variants vae_frmdn_tol1 --train 4000 --epochs 60 \\
        --seeds 2 --save-models
    python benchmarks/sketch_rerank.py OUT/model_vae_frmdn_tol1_seed2.pt --tries 16,0.2 64,0.3

The kanji are read as ``sketch.py`` reads them (its defaults: 4,000 + 100 training kanji set the
scale, 200 test kanji, spacing 8, grid 1).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pyro
import torch
from sketch import points, reconstruction_ranks  # beside

import pyro_frmdn as pf
from pyro_frmdn.data import kanji_stroke5


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="a SketchVAE saved by sketch.py --save-models")
    p.add_argument("--tries", nargs="+", default=["16,0.2"], help="candidates,temperature")
    p.add_argument("--train", type=int, default=4000)
    p.add_argument("--val", type=int, default=100)
    p.add_argument("--test", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(1)
    m = pf.load(a.model)
    m.eval()
    common = dict(spacing=8.0, grid=1.0)
    train, scale = kanji_stroke5("train", limit=a.train + a.val, **common)
    test, _ = kanji_stroke5("test", limit=a.test, scale=scale, **common)
    length = max(train["y"].shape[1], test["y"].shape[1])  # sketch.py's padded length
    y = test["y"]
    y = torch.cat([y, y.new_tensor([0, 0, 0, 0, 1.0]).expand(len(y), length - y.shape[1], 5)], 1)
    inputs = [points(d, scale) for d in y]
    print(f"# {a.model}: {len(y)} test kanji")
    for entry in a.tries:
        count, temperature = entry.split(",")
        pyro.set_rng_seed(a.seed)
        start = time.perf_counter()
        out = torch.cat([
            m.reconstruct(part, candidates=int(count), temperature=float(temperature))
            for part in y.split(50)
        ])  # fmt: skip
        ranks = np.array(reconstruction_ranks(inputs, [points(d, scale) for d in out]))
        print(
            f"candidates {int(count):3d}, temperature {float(temperature):.2f}: rate "
            f"{np.mean(ranks == 1):.3f}, mean rank {ranks.mean():.1f} "
            f"({time.perf_counter() - start:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
