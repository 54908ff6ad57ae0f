"""Is it ρ? The boosted mixtures of ``boosting_toys.py --checkpoints CK``, their components
kept, with each ρ_c searched again on the validation set instead of the training set.

``fit_boosted`` fits each new component's weight ρ_c by a line search on the training NLL
(``rho_data="train"``, the default before the sixteenth session; with ``val`` the default is
now ``"val"``). A component that overfits the training set can take weight
there that does not hold out, which would make C = 8 no better than C = 4. This script tells
that apart from components that add nothing: it loads each checkpoint (``CK/<toy>_seed<k>/
last.pt``, by :func:`pyro_frmdn.infer.load_boosted`), computes every component's log-density
on the toy's training, validation and test points (the draws of ``boosting_toys.py``), and
searches ρ_1, ρ_2, … in turn as the first pass of ``fit_boosted`` does
(:func:`pyro_frmdn.infer.rho.line_search_rho` on the mixture so far), once on the training
points (which gives back the stored ρ when no second pass changed them) and once on the
validation points. It prints the ρ and the held-out mean of log p − log q (nats; the toy's
exact density p, as ``boosting_toys.py``'s report) at C = 4 and C = 8 for the stored ρ and both
searches. Seconds per mixture; nothing is trained.

    python benchmarks/boosting_rho.py CK --runs 8gaussians:0 bars:1 rings:1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from pyro_frmdn.data import toy2d, toy2d_log_prob
from pyro_frmdn.distributions import log_weights_from_rho
from pyro_frmdn.infer.boosting import load_boosted
from pyro_frmdn.infer.components import log_probs, mixture_log_prob
from pyro_frmdn.infer.rho import line_search_rho


def searched(lp: torch.Tensor) -> list[float]:
    """ρ_1, ρ_2, … by the line search on the mixture so far, in order (ρ_0 = 1)."""
    rho = [1.0]
    for c in range(1, lp.shape[-1]):
        log_w = log_weights_from_rho(torch.tensor(rho, dtype=torch.float64))
        rho.append(line_search_rho(mixture_log_prob(lp[:, :c], log_w), lp[:, c]))
    return rho


def excess(log_p: torch.Tensor, lp: torch.Tensor, rho: list[float], c: int) -> str:
    """Held-out mean of log p − log q for the mixture of the first ``c`` components."""
    if len(rho) < c:
        return "  -   "
    log_w = log_weights_from_rho(torch.tensor(rho[:c], dtype=torch.float64))
    return f"{float((log_p - mixture_log_prob(lp[:, :c], log_w)).mean()):.4f}"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoints", help="the --checkpoints folder of boosting_toys.py")
    p.add_argument("--runs", nargs="+", required=True, help="toy:seed, e.g. bars:1")
    p.add_argument("--n", type=int, default=4000, help="training points (boosting_toys.py's --n)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    print("toy seed | rho | C=4 | C=8 (held-out mean log p - log q, nats)")
    for run in args.runs:
        name, seed = run.split(":")
        seed = int(seed)
        model = load_boosted(Path(args.checkpoints) / f"{name}_seed{seed}" / "last.pt")
        points = {
            "train": toy2d(name, args.n, seed=seed),
            "val": toy2d(name, 1000, seed=500 + seed),
            "test": toy2d(name, 2000, seed=1000 + seed),
        }
        lp = {
            k: torch.stack([log_probs(m, {"y": y}, 1024) for m in model.components], -1)
            for k, y in points.items()
        }
        log_p = toy2d_log_prob(name, points["test"]).double()
        rows = {
            "stored": [float(r) for r in model.rho],
            "on train": searched(lp["train"]),
            "on val": searched(lp["val"]),
        }
        for label, rho in rows.items():
            shown = " ".join(f"{r:.2f}" for r in rho)
            cells = " | ".join(excess(log_p, lp["test"], rho, c) for c in (4, 8))
            print(f"{name} {seed} {label:8} | {shown} | {cells}")


if __name__ == "__main__":
    main()
