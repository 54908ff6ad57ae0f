"""Why boosting did not pay: where each component's mass goes, the sample weights of each round,
how ρ evolves and how far each component's own fit gets, under several settings of fit_boosted.

On the four thin bars (:func:`pyro_frmdn.data.bars`: separated parts, entropy log 3.2 = 1.163
nats, 4,000 training points), one boosted flow of C = 4 per setting:

- ``old``: the defaults up to 0.2 (2 affine couplings of width 32, 20 epochs per component,
  batch 128, lr 1e-3, constant), which gave 0.03 nats from boosting and 2 nats above the entropy;
- ``reference``: the GBNF paper's code (PAPERS.md §5): minibatches resampled by the clipped
  weights and ρ never learned (equal weights 1/(c+1)), with the new components and epochs;
- ``new``: the current defaults (the same clip, the weighted NLL, ρ by line search).

For each: a figure ``diagnose_<setting>.png`` (top: the data, the mixture and each component's
density, titled with its weight, ρ and own NLL; bottom: the training points coloured by the
sample weights of rounds 1-3), and ``diagnose.json`` / ``diagnose.md`` with per component the
share of its samples on each bar and off the bars, ρ, its own NLL minus the entropy, and per
round the share of the sample weight on each bar and what the clip does to a minibatch.

    python benchmarks/boosting_diagnose.py             # ~10 min on one busy core
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import sys
import time
from pathlib import Path

import matplotlib
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import pyro_frmdn as pf
from pyro_frmdn.data import toy2d, toy2d_entropy, toy2d_log_prob
from pyro_frmdn.distributions import log_weights_from_rho
from pyro_frmdn.experiments import cpu_name
from pyro_frmdn.infer import boosting_sample_weights

OLD_COMPONENT = dict(flow="affine", flow_layers=2, hidden_dims=[32], bound=3.0)
CLIP = dict(weight_clip=(0.01, 0.1), weight_cap=None)  # the reference code's clip
OLD_FIT = dict(epochs_per_component=20, batch_size=128, lr=1e-3, lr_schedule="constant", **CLIP)
FIRST_ROUND = dict(hidden_dims=[64])  # issue 21's first-round default, as diagnose.md measured
SETTINGS = {
    "old": (OLD_COMPONENT, OLD_FIT),
    "reference": (FIRST_ROUND, dict(sample_weighting="resample", rho_search="fixed", **CLIP)),
    "new": (FIRST_ROUND, {}),
}
LIM, RES = 4.5, 150


def bar_of(y: torch.Tensor) -> torch.Tensor:
    """The bar (0-3) of each point, 4 for points off every bar."""
    k = torch.round((y[:, 1] + 3) / 2).long().clamp(0, 3)
    inside = torch.isfinite(toy2d_log_prob("bars", y))
    return torch.where(inside, k, torch.full_like(k, 4))


def shares(index: torch.Tensor, weights: torch.Tensor | None = None, bins: int = 5) -> list:
    w = torch.ones(len(index), dtype=torch.float64) if weights is None else weights.double()
    return (torch.zeros(bins, dtype=torch.float64).index_add_(0, index, w) / w.sum()).tolist()


@torch.no_grad()
def diagnose(key: str, train, test, entropy, seed, out: Path, batch: int) -> dict:
    component, fit = SETTINGS[key]
    torch.manual_seed(seed)
    model = pf.BoostedFlow(2, **component)
    t0 = time.perf_counter()
    with torch.enable_grad():
        history = pf.fit_boosted(model, train, num_components=4, seed=seed, progress=False, **fit)
    minutes = (time.perf_counter() - t0) / 60
    lp = model.component_log_probs(train).double()  # (N, C)
    defaults = inspect.signature(pf.fit_boosted).parameters
    clip = fit.get("weight_clip", defaults["weight_clip"].default)
    cap = fit.get("weight_cap", defaults["weight_cap"].default)
    result = {"setting": key, "minutes": minutes, "test_nll_minus_entropy": [], "components": []}
    rounds = []
    for c in range(model.num_components):
        log_w = log_weights_from_rho(model.rho[: c + 1].double())
        g_c = model.components[c].sample(20000).double()
        result["components"].append(
            {
                "rho": float(model.rho[c]),
                "weight": float(model.weights()[c]),
                "own_nll_minus_entropy": -float(lp[:, c].mean()) - entropy,
                "mass_per_bar_and_off": shares(bar_of(g_c)),
                "loss_per_epoch": history.records[c]["loss"],
            }
        )
        stage = torch.logsumexp(model.component_log_probs(test).double()[:, : c + 1] + log_w, -1)
        result["test_nll_minus_entropy"].append(-float(stage.mean()) - entropy)
        if c == 0:
            continue
        log_prev = torch.logsumexp(lp[:, :c] + log_weights_from_rho(model.rho[:c].double()), -1)
        w = torch.softmax(-log_prev, 0)  # the weights 1/G_{c-1} over the whole training set
        g = torch.Generator().manual_seed(c)
        floors, ess = [], []
        for _ in range(50):  # what the clip does to a minibatch of the default size
            idx = torch.randperm(len(train), generator=g)[:batch]
            wb = boosting_sample_weights(-log_prev[idx], clip, cap)
            floors.append(float(wb.sort(descending=True).values[: batch // 10].sum()))
            ess.append(float(1 / wb.pow(2).sum()) / batch)
        rounds.append(
            {
                "round": c,
                "weight_per_bar": shares(bar_of(train.double()), w),
                "ess_fraction_full_data": float(1 / w.pow(2).sum()) / len(train),
                "minibatch_top10_share": sum(floors) / len(floors),
                "minibatch_ess_fraction": sum(ess) / len(ess),
                "weights": w,
            }
        )
    plot(model, key, train, rounds, result, out)
    for r in rounds:
        del r["weights"]
    result["rounds"] = rounds
    return result


def plot(model, key, train, rounds, result, out: Path) -> None:
    axis = torch.linspace(-LIM, LIM, RES)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1).reshape(-1, 2)
    C = model.num_components
    fig, axes = plt.subplots(2, C + 2, figsize=(2.6 * (C + 2), 5.4))
    panels = [("data", None), ("mixture", model.log_prob(grid))]
    panels += [(c, model.components[c].log_prob(grid)) for c in range(C)]
    for ax, (name, lp) in zip(axes[0], panels, strict=True):
        if lp is None:
            ax.scatter(train[:, 0], train[:, 1], s=0.3, c="k")
            ax.set_title("data (4 bars)", fontsize=8)
        else:
            ax.imshow(lp.exp().reshape(RES, RES), origin="lower", extent=(-LIM, LIM, -LIM, LIM))
            if name == "mixture":
                ax.set_title(
                    f"mixture: NLL − H {result['test_nll_minus_entropy'][-1]:.2f}", fontsize=8
                )
            else:
                info = result["components"][name]
                ax.set_title(
                    f"g{name}: w {info['weight']:.2f}, ρ {info['rho']:.2f}\nown NLL − H "
                    f"{info['own_nll_minus_entropy']:.2f}",
                    fontsize=8,
                )
    axes[1, 0].axis("off")
    axes[1, 1].plot([r["rho"] for r in result["components"]], "o-")
    axes[1, 1].set_title("ρ_c", fontsize=8)
    axes[1, 1].set_ylim(0, 1.05)
    axes[1, 2].axis("off")
    for ax, r in zip(axes[1, 3:], rounds, strict=False):
        ax.scatter(train[:, 0], train[:, 1], s=0.5, c=r["weights"].log10(), cmap="viridis")
        ax.set_title(
            f"round {r['round']}: weights ∝ 1/G (log)\nbatch: "
            f"{100 * r['minibatch_top10_share']:.0f}% on the heaviest 10%",
            fontsize=8,
        )
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_xlim(-LIM, LIM), ax.set_ylim(-LIM, LIM)
    axes[1, 1].set_xlim(-0.5, C - 0.5), axes[1, 1].set_ylim(0, 1.05)
    fig.suptitle(f"{key}: boosted flow, C = {C}, on four thin bars", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / f"diagnose_{key}.png", dpi=80)
    plt.close(fig)


def numbers(values) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def markdown(results: list[dict], meta: dict) -> str:
    lines = [
        "# Where the boosted components go (four thin bars, C = 4)",
        "",
        f"`{meta['command']}`: {meta['machine']}.",
        "",
        "| setting | test NLL − H after C = 1, 2, 3, 4 | ρ | each component's own NLL − H "
        "| each component's mass on its likeliest bar / off the bars | minutes |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        comps = r["components"]
        mass = [c["mass_per_bar_and_off"] for c in comps]
        cells = [
            numbers(r["test_nll_minus_entropy"]),
            numbers([c["rho"] for c in comps]),
            numbers([c["own_nll_minus_entropy"] for c in comps]),
            ", ".join(f"{max(m[:4]):.2f}/{m[4]:.2f}" for m in mass),
            f"{r['minutes']:.1f}",
        ]
        lines.append(f"| {r['setting']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Sample weights of each round (1/G_{c−1} over the training set): share on each bar, "
        "effective sample size (ESS / N), and in a minibatch of the default size, the share of its "
        "weight on its heaviest 10% of points and its ESS / B, after the cap or clip.",
        "",
        "| setting | round | weight per bar | ESS/N (full data) | batch: top 10% | batch ESS/B |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        for q in r["rounds"]:
            lines.append(
                f"| {r['setting']} | {q['round']} | {numbers(q['weight_per_bar'][:4])} | "
                f"{q['ess_fraction_full_data']:.3f} | {q['minibatch_top10_share']:.2f} | "
                f"{q['minibatch_ess_fraction']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--append", action="store_true", help="keep the other settings' results")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "boosting"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train, test = toy2d("bars", 4000, seed=args.seed), toy2d("bars", 2000, seed=1000 + args.seed)
    entropy = toy2d_entropy("bars")
    batch = inspect.signature(pf.fit_boosted).parameters["batch_size"].default
    results = []
    if args.append and (out / "diagnose.json").exists():
        kept = json.loads((out / "diagnose.json").read_text())["results"]
        results = [r for r in kept if r["setting"] not in args.settings]
    meta = dict(
        command=(
            "python benchmarks/boosting_diagnose.py " + " ".join(argv or sys.argv[1:])
        ).strip(),
        machine=f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, 1 thread",
    )
    for key in args.settings:
        b = SETTINGS[key][1].get("batch_size", batch)
        results.append(diagnose(key, train, test, entropy, args.seed, out, b))
        (out / "diagnose.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
        (out / "diagnose.md").write_text(markdown(results, meta))
        print(key, [round(v, 3) for v in results[-1]["test_nll_minus_entropy"]], flush=True)
    assert math.isfinite(results[-1]["test_nll_minus_entropy"][-1])


if __name__ == "__main__":
    main()
