"""Gradient-boosted normalizing flows: toy heat-maps and a real density task.

1. **2-D toys** (``pyro_frmdn.data.toy2d``: 8 Gaussians, moons, pinwheel, checkerboard, rings): one
   boosted flow per density, grown to 8 components; the density is drawn after 1, 2, 4 and 8
   components (``toys.png``) and the held-out NLL recorded.
2. **Dequantised 8×8 digits** (scikit-learn's ``load_digits``: 1,797 images, 64 pixels, values
   0-16; BSD-3). Pixels are dequantised (``v + u``, ``u ~ U(0, 1)``), divided by 17, mapped by
   ``logit(α + (1 - 2α) x)`` and standardised; the NLL is reported in bits per dimension of the
   dequantised data ``v + u`` (every Jacobian counted; the uniform density on [0, 17) gives
   log2(17) = 4.09). Several dequantised copies of the training images are used as training
   data. For each (C, K): a boosted flow of C components of K affine couplings, learned ρ
   (line search) and fixed ρ (equal weights, ``fixed_rho="uniform"``), against a single flow
   of C·K couplings (the same couplings, so exactly the same parameter count) trained for C
   times the epochs of one component (the same number of optimizer steps). Early stopping on a
   validation split; held-out NLL on a test split; several seeds (each its own split, noise
   and initialisation).

Results go to ``--out`` (``results.md``, ``results.json``, ``toys.png``) and a table is printed.

    python benchmarks/boosting.py --quick          # ~2 minutes on 2 CPU cores
    python benchmarks/boosting.py                  # the default run (~6 minutes on 2 CPU cores)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from torch import Tensor

from pyro_frmdn.data.toy2d import TOY2D, toy2d
from pyro_frmdn.infer.boosting import fit_boosted
from pyro_frmdn.models.boosted import BoostedFlow

# -- 2-D toys ---------------------------------------------------------------------------------


def toy_density_grid(args, out: Path) -> list[dict]:
    """Grow one boosted flow per toy density and draw it after 1, 2, 4, 8 components; fit a
    single flow of 4·K couplings (4× the epochs) as the matched reference of C = 4."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [1, 2, 4, 8]
    lim, res = 4.5, 120
    axis = torch.linspace(-lim, lim, res)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1).reshape(-1, 2)
    names = list(TOY2D)
    cols = len(stages) + 2
    fig, axes = plt.subplots(len(names), cols, figsize=(2.2 * cols, 2.2 * len(names)))
    rows = []

    def flow(layers: int) -> BoostedFlow:
        kind, hidden = args.toy_kind, [args.toy_hidden]
        return BoostedFlow(2, num_layers=layers, kind=kind, hidden_dims=hidden, bound=lim)

    def fit(model, train, c, epochs, seed):
        return fit_boosted(
            model,
            train,
            num_components=c,
            epochs_per_component=epochs,
            batch_size=256,
            lr=args.toy_lr,
            seed=seed,
            progress=False,
        )

    def show(ax, model, title):
        with torch.no_grad():
            density = model.log_prob(grid).exp().reshape(res, res)
        vmax = float(density.flatten().quantile(0.995))  # a few spikes would flatten the rest
        ax.imshow(density.numpy(), origin="lower", extent=[-lim, lim, -lim, lim], vmax=vmax)
        ax.set_title(title, fontsize=9)

    for i, name in enumerate(names):
        train, test = toy2d(name, args.toy_n, seed=0), toy2d(name, 2000, seed=1)
        x, y = train[:, 0].numpy(), train[:, 1].numpy()
        axes[i, 0].hist2d(x, y, bins=res // 2, range=[[-lim, lim]] * 2)
        axes[i, 0].set_ylabel(name)
        model, t0 = flow(args.toy_layers), time.perf_counter()
        for j, c in enumerate(stages):
            history = fit(model, train, c, args.toy_epochs, seed=c)
            with torch.no_grad():
                test_nll = -float(model.log_prob(test).mean())
            rows.append(
                {
                    "density": name,
                    "model": "boosted",
                    "components": c,
                    "couplings": c * args.toy_layers,
                    "test_nll": test_nll,
                    "train_nll": history["train_nll"][-1],
                    "rho": model.rho.tolist(),
                    "time": time.perf_counter() - t0,
                }
            )
            show(axes[i, j + 1], model, f"C={c}: {test_nll:.3f}")
            print(
                f"  {name:13s} boosted C={c}  test NLL {test_nll:.4f}  ({rows[-1]['time']:.0f} s)"
            )
        single, t0 = flow(4 * args.toy_layers), time.perf_counter()
        fit(single, train, 1, 4 * args.toy_epochs, seed=0)
        with torch.no_grad():
            test_nll = -float(single.log_prob(test).mean())
        rows.append(
            {
                "density": name,
                "model": "single",
                "components": 1,
                "couplings": 4 * args.toy_layers,
                "test_nll": test_nll,
                "time": time.perf_counter() - t0,
            }
        )
        show(axes[i, -1], single, f"single ×4: {test_nll:.3f}")
        print(f"  {name:13s} single {4 * args.toy_layers} couplings  test NLL {test_nll:.4f}")
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_title("data", fontsize=9)
    fig.suptitle(
        f"boosted flows of {args.toy_layers} {args.toy_kind} couplings per component, and one "
        f"flow of {4 * args.toy_layers} (title: test NLL, nats)"
    )
    fig.tight_layout()
    fig.savefig(out / "toys.png", dpi=80)
    plt.close(fig)
    return rows


# -- dequantised digits ---------------------------------------------------------------------


def digits_splits(seed: int, copies: int, pca: int = 0, alpha: float = 0.05):
    """Train (``copies`` dequantised copies), validation and test sets in the model's space, and
    the log-Jacobian of the map back to the dequantised pixels, for each set."""
    from sklearn.datasets import load_digits

    pixels = torch.tensor(load_digits().data, dtype=torch.float32)  # (1797, 64), 0..16
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(pixels), generator=g)
    parts = {"train": order[:1100], "val": order[1100:1450], "test": order[1450:]}

    def dequantise(idx: Tensor, n_copies: int) -> tuple[Tensor, Tensor]:
        v = pixels[idx].repeat(n_copies, 1)
        s = alpha + (1 - 2 * alpha) * (v + torch.rand(v.shape, generator=g)) / 17.0
        y = s.log() - torch.log1p(-s)
        ldj = (math.log((1 - 2 * alpha) / 17.0) - s.log() - torch.log1p(-s)).sum(-1)  # dy/d(v+u)
        return y, ldj

    data = {k: dequantise(idx, copies if k == "train" else 1) for k, idx in parts.items()}
    mean, std = data["train"][0].mean(0), data["train"][0].std(0)
    out = {}
    for k, (y, ldj) in data.items():
        out[k] = ((y - mean) / std, ldj - std.log().sum())
    if pca:
        # the density of the first `pca` whitened principal coordinates: a different (lower-D)
        # task; its log-Jacobian is a constant, left out (NLL in nats/dim of those coordinates)
        _, sv, vt = torch.linalg.svd(out["train"][0], full_matrices=False)
        basis = vt[:pca].T / (sv[:pca] / math.sqrt(len(out["train"][0]) - 1))
        out = {k: (y @ basis, torch.zeros(len(y))) for k, (y, _) in out.items()}
    return out


def bits_per_dim(model, y: Tensor, ldj: Tensor, pca: int = 0) -> float:
    """NLL of the dequantised pixels in bits per dimension (the flow's NLL minus log|dy/dx|);
    with a PCA reduction, the NLL in nats per dimension of the whitened coordinates."""
    with torch.no_grad():
        nll = -(model.log_prob(y) + ldj).mean()
    return float(nll) / (y.shape[-1] * (1.0 if pca else math.log(2)))


def digits_grid(args) -> list[dict]:
    rows = []
    configs = []
    for c in args.components:
        for k in args.depths:
            configs.append(("single", c, k))
            if c > 1:
                configs.append(("boosted", c, k))
                configs.append(("boosted-fixed", c, k))
    for seed in range(args.seeds):
        data = digits_splits(seed, args.copies, args.pca)
        (ytr, _), (yva, _) = data["train"], data["val"]
        dim = ytr.shape[-1]
        for kind, c, k in configs:
            torch.manual_seed(seed)
            if kind == "single":
                model = BoostedFlow(
                    dim, num_layers=c * k, kind=args.kind, hidden_dims=[args.hidden]
                )
                num, epochs, search = 1, c * args.epochs, "line"
            else:
                model = BoostedFlow(dim, num_layers=k, kind=args.kind, hidden_dims=[args.hidden])
                num, epochs = c, args.epochs
                search = "line" if kind == "boosted" else "fixed"
            t0 = time.perf_counter()
            history = fit_boosted(
                model,
                ytr,
                yva,
                num_components=num,
                epochs_per_component=epochs,
                batch_size=args.batch_size,
                lr=args.lr,
                rho_search=search,
                fixed_rho="uniform",
                patience=args.patience,
                seed=seed,
                progress=False,
            )
            row = {
                "model": kind,
                "C": c,
                "K": k,
                "seed": seed,
                "params": sum(p.numel() for p in model.parameters()),
                "test_bpd": bits_per_dim(model, *data["test"], args.pca),
                "val_bpd": bits_per_dim(model, *data["val"], args.pca),
                "train_bpd": bits_per_dim(model, *data["train"], args.pca),
                "rho": model.rho.tolist(),
                "epochs": sum(r["epochs"] for r in history.records),
                "time": time.perf_counter() - t0,
            }
            rows.append(row)
            print(
                f"  seed {seed} {kind:13s} C={c} K={k}  test {row['test_bpd']:.4f} bits/dim  "
                f"ρ={[round(r, 3) for r in row['rho']]}  ({row['time']:.1f} s)",
                flush=True,
            )
    return rows


def sem(values: list[float]) -> float | None:
    """The standard error of the mean (None for fewer than two values)."""
    return statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else None


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and standard error of the test bits/dim per (model, C, K), with the seeds' paired
    difference to the single flow of the same total depth (negative: better than it)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["C"], r["K"]), []).append(r)
    single = {(r["C"] * r["K"], r["C"], r["seed"]): r for r in rows if r["model"] == "single"}
    fixed = {(r["C"], r["K"], r["seed"]): r for r in rows if r["model"] == "boosted-fixed"}
    table = []
    for (kind, c, k), rs in sorted(
        groups.items(), key=lambda t: (t[0][1] * t[0][2], t[0][1], t[0][0])
    ):
        vals = [r["test_bpd"] for r in rs]
        diffs = [
            r["test_bpd"] - single[(c * k, c, r["seed"])]["test_bpd"]
            for r in rs
            if kind != "single"
        ]
        vs_fixed = [
            r["test_bpd"] - fixed[(c, k, r["seed"])]["test_bpd"] for r in rs if kind == "boosted"
        ]
        table.append(
            {
                "model": kind,
                "C": c,
                "K": k,
                "depth": c * k,
                "params": rs[0]["params"],
                "test_bpd": statistics.fmean(vals),
                "sem": sem(vals),
                "vs_single": statistics.fmean(diffs) if diffs else None,
                "vs_single_sem": sem(diffs),
                "vs_fixed": statistics.fmean(vs_fixed) if vs_fixed else None,
                "vs_fixed_sem": sem(vs_fixed),
                "time": statistics.fmean(r["time"] for r in rs),
                "seeds": len(rs),
            }
        )
    return table


def markdown(args, toys, table, elapsed) -> str:
    lines = [
        "# Boosted flows: measured results",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); mode "
        f"{'quick' if args.quick else 'default'}; total {elapsed / 60:.1f} min.",
        "",
    ]
    if toys:
        k = args.toy_layers
        lines += [
            f"## 2-D toys: test NLL (nats) of boosted flows after C components ({k} "
            f"{args.toy_kind} couplings per component, {args.toy_epochs} epochs each), and of "
            f"one flow of {4 * k} couplings trained {4 * args.toy_epochs} epochs (the same "
            "parameters and steps as C = 4)",
            "",
            f"| density | C=1 | C=2 | C=4 | C=8 | single, {4 * k} couplings | ρ at C=8 |",
            "|---|---|---|---|---|---|---|",
        ]
        for name in TOY2D:
            rs = [r for r in toys if r["density"] == name and r["model"] == "boosted"]
            single = [r for r in toys if r["density"] == name and r["model"] == "single"]
            if not rs:
                continue
            cells = " | ".join(f"{r['test_nll']:.3f}" for r in rs)
            rho = ", ".join(f"{x:.2f}" for x in rs[-1]["rho"])
            lines.append(f"| {name} | {cells} | {single[0]['test_nll']:.3f} | {rho} |")
        lines.append("")
    if table:
        unit = f"nats/dim of {args.pca} whitened principal coordinates" if args.pca else "bits/dim"
        lines += [
            f"## Dequantised digits: test {unit} ({args.seeds} seeds, mean ± s.e.)",
            "",
            f"{args.kind} couplings, hidden width {args.hidden}, {args.epochs} epochs per "
            f"component (single flows: C × that), batch {args.batch_size}, lr {args.lr}, patience "
            f"{args.patience}, {args.copies} dequantised copies of the 1,100 training images. "
            "Paired differences are per seed (same split, noise and initialisation seed); "
            "negative is better.",
            "",
            "| model | C | K | couplings | params | test | minus single | minus fixed ρ "
            "| time (s) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]

        def cell(mean, err):
            if mean is None:
                return ""
            return f"{mean:+.4f}" + ("" if err is None else f" ± {err:.4f}")

        for t in table:
            lines.append(
                f"| {t['model']} | {t['C']} | {t['K']} | {t['depth']} | {t['params']} | "
                f"{cell(t['test_bpd'], t['sem']).lstrip('+')} | "
                f"{cell(t['vs_single'], t['vs_single_sem'])} | "
                f"{cell(t['vs_fixed'], t['vs_fixed_sem'])} | {t['time']:.1f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="a small run (about 2 minutes)")
    p.add_argument("--out", default="runs/boosting")
    p.add_argument("--skip-toys", action="store_true")
    p.add_argument("--skip-digits", action="store_true")
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--components", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--depths", type=int, nargs="+", default=[1, 2])
    p.add_argument("--epochs", type=int, default=None, help="epochs per component (digits)")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--kind", default="affine", help="coupling kind of the digits flows")
    p.add_argument("--pca", type=int, default=0, help="model the first N principal coordinates")
    p.add_argument("--copies", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--toy-epochs", type=int, default=None)
    p.add_argument("--toy-n", type=int, default=None)
    p.add_argument("--toy-layers", type=int, default=2)
    p.add_argument("--toy-kind", default="spline")
    p.add_argument("--toy-hidden", type=int, default=32)
    p.add_argument("--toy-lr", type=float, default=5e-3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    args.seeds = args.seeds or (2 if args.quick else 3)
    args.epochs = args.epochs or (15 if args.quick else 40)
    args.toy_epochs = args.toy_epochs or (8 if args.quick else 20)
    args.toy_n = args.toy_n or (2000 if args.quick else 4000)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    toys, rows = [], []
    if not args.skip_toys:
        print("2-D toys")
        toys = toy_density_grid(args, out)
    if not args.skip_digits:
        try:
            import sklearn  # noqa: F401
        except ImportError:
            print(
                "scikit-learn is not installed: skipping the digits task (pip install scikit-learn)"
            )
        else:
            print("dequantised 8x8 digits")
            rows = digits_grid(args)
    table = summarise(rows) if rows else []
    text = markdown(args, toys, table, time.perf_counter() - t0)
    print()
    print(text)
    (out / "results.md").write_text(text)
    (out / "results.json").write_text(
        json.dumps({"args": vars(args), "toys": toys, "digits": rows, "summary": table}, indent=1)
    )
    print(f"written to {out}/")


if __name__ == "__main__":
    main()
