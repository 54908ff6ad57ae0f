"""Why a new component gains little over a strong first one: the boosting weights and the misfit.

For each boosted mixture that ``boosting_toys.py --checkpoints DIR`` saved (``DIR/<toy>_seed<k>/
component_<c>.pt``: the mixture after c + 1 components), with the toy's exact density p
(:func:`pyro_frmdn.data.toy2d_log_prob`) on the same training and test points as that script:

- the misfit ``KL = mean (log p − log G)`` on the training and the test points, for C = 1 and
  C = 4 (the test KL is the table's NLL minus the entropy, without the Monte Carlo error of the
  entropy; test minus training is what more components cannot remove: estimation error);
- what the sample weights of round 1 (``w ∝ 1/G_1``, Giaquinto & Banerjee 2020) follow:
  ``−log G_1 = −log p + log(p/G_1)``, the toy's own density plus the misfit; their standard
  deviations over the training points, the share of the weight on the half of the points that
  the toy itself makes least likely and on the half that G_1 fits worst, and the effective
  sample size of the weights of a minibatch of 128 after the reference clip (the default);
- the second component: its own KL and the share of points where it beats G_1.

Writes ``gap.json``, ``gap.md`` and ``gap.png`` (seed 0 of each toy: the training points
coloured by ``−log G_1``, what the weights see, and by ``log p − log G_1``, what is missed).

    python benchmarks/boosting_gap.py --checkpoints /tmp/boost4/ck      # seconds a mixture
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from pyro_frmdn.data import TOY2D, toy2d, toy2d_log_prob
from pyro_frmdn.infer import boosting_sample_weights, load_boosted

BATCH = 128


def log_density(model, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.log_prob(y).double()


def upper_half_share(weights: torch.Tensor, key: torch.Tensor) -> float:
    """The share of ``weights`` on the half of the points with the largest ``key``."""
    order = torch.argsort(key, descending=True)[: len(key) // 2]
    return float(weights[order].sum() / weights.sum())


def clipped_ess(neg_log_g: torch.Tensor, seed: int) -> float:
    """Mean effective sample size, as a share of the batch, of the clipped weights of
    minibatches of 128 (what ``fit_boosted`` trains the second component on)."""
    order = torch.randperm(len(neg_log_g), generator=torch.Generator().manual_seed(seed))
    shares = []
    for i in range(0, len(order) - BATCH + 1, BATCH):
        w = boosting_sample_weights(neg_log_g[order[i : i + BATCH]])
        shares.append(float(1 / (w**2).sum()) / BATCH)
    return statistics.fmean(shares)


def measure(folder: Path, name: str, seed: int, n: int) -> dict | None:
    paths = [folder / f"component_{c}.pt" for c in (0, 3)]
    if not all(p.exists() for p in paths):
        return None
    train = toy2d(name, n, seed=seed).double()
    test = toy2d(name, 2000, seed=1000 + seed).double()
    one, four = (load_boosted(p).double() for p in paths)
    lp_train, lp_test = toy2d_log_prob(name, train).double(), toy2d_log_prob(name, test).double()
    g1 = log_density(one, train)
    misfit = lp_train - g1  # log p/G_1: > 0 where G_1 puts too little mass
    w = torch.softmax(-g1, dim=0)  # round 1's weights over the whole training set
    second = one.components[1] if len(one.components) > 1 else four.components[1]
    g2 = log_density(second, train)
    row = {
        "density": name,
        "seed": seed,
        "kl_train_C1": float(misfit.mean()),
        "kl_test_C1": float((lp_test - log_density(one, test)).mean()),
        "kl_train_C4": float((lp_train - log_density(four, train)).mean()),
        "kl_test_C4": float((lp_test - log_density(four, test)).mean()),
        "sd_neg_log_p": float(lp_train.std()),
        "sd_misfit": float(misfit.std()),
        "weight_on_least_likely_half": upper_half_share(w, -lp_train),
        "weight_on_worst_fitted_half": upper_half_share(w, misfit),
        "clipped_ess": clipped_ess(-g1, seed),
        "kl_train_second": float((lp_train - g2).mean()),
        "second_beats_G1": float((g2 > g1).double().mean()),
        "rho": [float(r) for r in four.rho],
    }
    row["points"] = (train, -g1, misfit)
    return row


def figure(rows: list[dict], path: Path) -> None:
    shown = [r for r in rows if r["seed"] == 0]
    fig, axes = plt.subplots(2, len(shown), figsize=(2.8 * len(shown), 5.8), squeeze=False)
    for j, r in enumerate(shown):
        y, neg_log_g, misfit = (t.numpy() for t in r["points"])
        for i, (values, label) in enumerate(((neg_log_g, "−log G₁"), (misfit, "log p − log G₁"))):
            ax = axes[i, j]
            # colours to the 1st-99th percentiles: a few far points would flatten the rest
            lo, hi = np.quantile(values, [0.01, 0.99])
            lim = max(abs(lo), abs(hi))
            kw = dict(cmap="RdBu_r", vmin=-lim, vmax=lim) if i else dict(vmin=lo, vmax=hi)
            im = ax.scatter(y[:, 0], y[:, 1], c=values, s=1.5, **kw)
            ax.set_title(f"{r['density']}: {label}", fontsize=8)
            ax.set_xticks([]), ax.set_yticks([])
            fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle("top: what the weights of round 1 see (∝ exp); bottom: what G₁ misses (seed 0)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def markdown(rows: list[dict], command: str) -> str:
    lines = [
        "# The boosting weights against the misfit of the first component",
        "",
        f"`{command}` (docstring of `benchmarks/boosting_gap.py`); the mixtures of",
        "`steps5000/` (4,000 training points, the defaults). KL: mean log p − log G in nats",
        "(exact p); w ∝ 1/G₁: round 1's weights over the training set; halves: the points the",
        "toy makes least likely (largest −log p) and those G₁ fits worst (largest log p/G₁);",
        "ESS: of a clipped minibatch of 128, as a share of it. On the checkerboard and the bars",
        "p is uniform on its support (sd −log p = 0): their least likely half is an arbitrary",
        "half of tied points, so about 50% there says nothing.",
        "",
        "| density | seed | KL train C=1 | KL test C=1 | KL train C=4 | KL test C=4 | sd −log p "
        "| sd log p/G₁ | w on least likely half | w on worst fitted half | clipped ESS "
        "| 2nd comp. KL train | 2nd beats G₁ on | ρ |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['density']} | {r['seed']} | {r['kl_train_C1']:.3f} | {r['kl_test_C1']:.3f} | "
            f"{r['kl_train_C4']:.3f} | {r['kl_test_C4']:.3f} | {r['sd_neg_log_p']:.2f} | "
            f"{r['sd_misfit']:.2f} | {r['weight_on_least_likely_half']:.0%} | "
            f"{r['weight_on_worst_fitted_half']:.0%} | {r['clipped_ess']:.0%} | "
            f"{r['kl_train_second']:.3f} | {r['second_beats_G1']:.0%} | "
            f"{', '.join(f'{x:.2f}' for x in r['rho'])} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoints", required=True, help="boosting_toys.py's --checkpoints")
    p.add_argument("--n", type=int, default=4000, help="the training points of those runs")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "boosting"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for name in TOY2D:
        for seed in (0, 1, 2):
            row = measure(Path(args.checkpoints) / f"{name}_seed{seed}", name, seed, args.n)
            if row is not None:
                rows.append(row)
                print(f"{name} {seed}: KL C=1 {row['kl_test_C1']:.3f}, C=4 {row['kl_test_C4']:.3f}")
    out = Path(args.out)
    figure(rows, out / "gap.png")
    for r in rows:
        del r["points"]
    command = "python benchmarks/boosting_gap.py --checkpoints ck"
    (out / "gap.json").write_text(json.dumps(rows, indent=1))
    (out / "gap.md").write_text(markdown(rows, command))


if __name__ == "__main__":
    main()
