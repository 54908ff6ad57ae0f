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
from sketch import points, reconstruction_ranks, saved_model, saved_model_arguments  # beside


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    saved_model_arguments(p)
    p.add_argument("--tries", nargs="+", default=["16,0.2"], help="candidates,temperature")
    a = p.parse_args()
    m, y, scale = saved_model(a)
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
