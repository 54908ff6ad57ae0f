"""One boosted component on a 2-D toy: is a poor fit the data's draw or the component's start?

Each pair ``DATA,INIT`` trains ``pf.BoostedFlow(2, init=...)`` with ``pf.fit_boosted(...,
num_components=1)`` at the defaults, on the training set of seed DATA (validation and test sets
as ``boosting_toys.py`` draws them), with torch's seed INIT for the initialisation and the
batches, and prints the held-out excess over the entropy (mean of log p − log q with the toy's
exact density). ``boosting_toys.py`` uses one seed for both; here they are told apart.

    python benchmarks/boosting_starts.py --toy rings --init random --pairs 1,1 1,0 1,2 1,3 0,1 2,1
    python benchmarks/boosting_starts.py --toy rings --init identity --pairs 1,1 1,0 1,2 1,3 0,1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

from boosting_toys import defaults, nll, test_offset

import pyro_frmdn as pf
from pyro_frmdn.data import TOY2D, toy2d, toy2d_entropy
from pyro_frmdn.flows import INITS


def excess(toy: str, data_seed: int, init_seed: int, init: str, n: int = 4000) -> float:
    train = toy2d(toy, n, seed=data_seed)
    val, test = toy2d(toy, 1000, seed=500 + data_seed), toy2d(toy, 2000, seed=1000 + data_seed)
    torch.manual_seed(init_seed)
    model = pf.BoostedFlow(2, init=init)
    pf.fit_boosted(
        model, train, val, num_components=1, seed=init_seed, progress=False,
        epochs_per_component=defaults(n)["epochs_per_component"],
    )  # fmt: skip
    return nll(model, test) - toy2d_entropy(toy) + test_offset(toy, data_seed)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--toy", choices=list(TOY2D), default="rings")
    p.add_argument("--init", choices=INITS, default="identity")
    p.add_argument("--pairs", nargs="+", default=["1,1", "1,0"], help="DATA,INIT seed pairs")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    for pair in args.pairs:
        data_seed, init_seed = (int(s) for s in pair.split(","))
        start = time.perf_counter()
        value = excess(args.toy, data_seed, init_seed, args.init)
        print(
            f"{args.toy} {args.init} start, data seed {data_seed}, init seed {init_seed}: "
            f"{value:.3f} nats above the entropy ({time.perf_counter() - start:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
