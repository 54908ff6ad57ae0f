"""The differential entropies of the 2-D toys (``pyro_frmdn.data.TOY2D_ENTROPY``), by Monte Carlo.

For each toy: the mean of ``-log p(x)`` over ``--n`` points drawn from it, with the exact density
(:func:`pyro_frmdn.data.toy2d_log_prob`), and its standard error. The checkerboard and the bars
are uniform on a known area, so their entropy is closed form and the estimate a check.

    python benchmarks/boosting_entropy.py     # 200,000 points a toy, ~10 min on one core
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from pyro_frmdn.data import TOY2D, toy2d, toy2d_log_prob


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=12345)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    for name in TOY2D:
        lp = toy2d_log_prob(name, toy2d(name, args.n, seed=args.seed))
        se = float(lp.std()) / math.sqrt(args.n)
        print(f"{name:14s} {-float(lp.mean()):.4f} ± {se:.4f}", flush=True)


if __name__ == "__main__":
    main()
