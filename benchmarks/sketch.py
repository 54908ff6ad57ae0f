"""sketch-rnn on KanjiVG: does the code pay for itself? SketchVAE against the same decoder without a
code (latent_dim=0, sketch-rnn's unconditional model), each with an RMDN and an FRMDN decoder.

Held-out (the "test" kanji, which no model saw): the IWAE bound (k particles) in nats per drawing,
the KL of q(z | S) from the prior per drawing, and the reconstruction rate: how often a test
drawing, encoded and decoded (greedy; sampled at temperature 0.2; and the best of 16 samples
at 0.2 by the code, ``SketchVAE.reconstruct``), is nearer to its own input
than to every other test drawing under a stroke distance (the symmetric Chamfer distance between
the points the pen draws, in canvas units; chance 1/N), and the mean rank of its own input
(chance (N + 1) / 2). Writes ``results.json``, ``README.md``'s tables (``results.md``),
``curves.png`` (the validation bound against SVI steps), ``reconstructions_*.png`` and
``interpolation_*.png`` into ``--out``; ``--append`` adds seeds or variants to earlier results.

    python benchmarks/sketch.py --out benchmarks/results/sketch
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import pyro
import torch
from scipy.spatial.distance import cdist
from sketch_code import code_gain, decoded_lengths, pairwise_rate  # the file beside this one
from torch.utils.data import DataLoader

import pyro_frmdn as pf
from pyro_frmdn.data import StrokeAugmentation, augment_stroke5, from_stroke5, kanji_stroke5
from pyro_frmdn.plots import plot_drawings

VARIANTS = {
    "vae_rmdn": dict(flow_layers=0),
    "vae_frmdn": dict(flow_layers=2),
    "decoder_rmdn": dict(latent_dim=0, flow_layers=0),
    "decoder_frmdn": dict(latent_dim=0, flow_layers=2),
    "vae_frmdn_tol1": dict(flow_layers=2, kl_tolerance=1.0),  # a floor of 1 nat per dimension
    "vae_rmdn_half": dict(flow_layers=0, kl_end=0.5),  # sketch-rnn's final KL weight
    "vae_rmdn_skip": dict(flow_layers=0, z_to_output=True),
    "vae_rmdn_drop": dict(flow_layers=0, input_dropout=0.5),  # Bowman et al. 2016
    # a code that must carry the drawing: a floor of 2 nats per dimension and half the
    # decoder's inputs dropped (Bowman et al. 2016), so that the pen's own history cannot
    "vae_frmdn_strong": dict(flow_layers=2, kl_tolerance=2.0, input_dropout=0.5),
    # the decoder told where the pen is (the offsets summed), so that the code's layout need not
    # be found by integrating its own offsets
    "vae_frmdn_pos": dict(flow_layers=2, kl_tolerance=1.0, position_input=True),
    "decoder_frmdn_pos": dict(latent_dim=0, flow_layers=2, position_input=True),
    # and 30% of the previous rows hidden (the position kept), so that what comes next must be
    # read from the code more often than from the last offset
    "vae_frmdn_pos_drop": dict(
        flow_layers=2, kl_tolerance=1.0, position_input=True, input_dropout=0.3
    ),
}


def arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    a = p.add_argument
    a("--out", default="benchmarks/results/sketch")
    a("--variants", nargs="+", default=list(VARIANTS)[:4], choices=list(VARIANTS))
    a("--train", type=int, default=1000, help="training kanji (the first of the train split)")
    a("--val", type=int, default=100)
    a("--test", type=int, default=200)
    a("--spacing", type=float, default=8.0, help="canvas units between points")
    a("--grid", type=float, default=1.0, help="points rounded to it, offsets dequantised")
    a("--epochs", type=int, default=10)
    a("--batch-size", type=int, default=32)
    a("--lr", type=float, default=2e-3)
    a("--latent", type=int, default=32)
    a("--encoder", type=int, default=64)
    a("--hidden", type=int, default=128)
    a("--components", type=int, default=10)
    a("--kl-warmup", type=int, default=200, help="SVI steps of KL annealing")
    a("--particles", type=int, default=64, help="k of the IWAE bound")
    a("--seeds", type=int, nargs="+", default=[0])
    a("--append", action="store_true", help="keep --out's earlier results (other seeds/variants)")
    a(
        "--augment",
        type=float,
        nargs=2,
        metavar=("SCALE", "DROP"),
        help="sketch-rnn's augmentation of the training drawings every epoch (0.15 0.1)",
    )
    a(
        "--seen",
        type=int,
        default=0,
        help="also reconstruct this many new drawings of training kanji (each augmented anew)",
    )
    a(
        "--trained",
        type=int,
        default=0,
        help="also reconstruct the first this many training drawings as they were trained on",
    )
    a("--last", action="store_true", help="keep the last epoch, not the best validated one")
    a("--save-models", action="store_true", help="save each trained model into --out")
    return p.parse_args()


def points(drawing: torch.Tensor, scale: float) -> np.ndarray:
    """The absolute positions of a stroke-5 drawing's points, in canvas units."""
    d = from_stroke5(drawing[None])
    n = int(d["mask"].sum())
    xy = d["y"][0, :n, :2].double().numpy() * scale
    return np.cumsum(xy, 0) if n else np.zeros((1, 2))


def chamfer(a: np.ndarray, b: np.ndarray) -> float:
    d = cdist(a, b)
    return 0.5 * (d.min(1).mean() + d.min(0).mean())


def reconstruction_ranks(inputs: list[np.ndarray], outputs: list[np.ndarray]) -> list[int]:
    """The rank of each reconstruction's own input among all N inputs by distance (1 = its
    nearest: the reconstruction rate is the fraction of ranks 1, chance 1/N; the mean rank's
    chance is (N + 1) / 2)."""
    ranks = []
    for i, out in enumerate(outputs):
        distances = np.array([chamfer(out, x) for x in inputs])
        ranks.append(1 + int((distances < distances[i]).sum()))
    return ranks


def saved_model_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of the scripts that read a model this one saved (``--save-models``)."""
    p.add_argument("model", help="a SketchVAE saved by sketch.py --save-models")
    p.add_argument("--train", type=int, default=4000, help="sketch.py's --train")
    p.add_argument("--val", type=int, default=100)
    p.add_argument("--test", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)


def saved_model(args, split: str = "test", count: int | None = None):
    """The saved model (one torch thread, eval mode), ``count`` drawings of ``split`` (test:
    ``args.test``; train: the first training drawings, as trained on) read and padded as
    :func:`main` reads them, and the scale."""
    torch.set_num_threads(1)
    model = pf.load(args.model)
    model.eval()
    common = dict(spacing=8.0, grid=1.0)
    train, scale = kanji_stroke5("train", limit=args.train + args.val, **common)
    test, _ = kanji_stroke5("test", limit=args.test, scale=scale, **common)
    length = max(train["y"].shape[1], test["y"].shape[1])  # main's padded length
    y = (train if split == "train" else test)["y"][:count]
    end = y.new_tensor([0, 0, 0, 0, 1.0]).expand(len(y), length - y.shape[1], 5)
    return model, torch.cat([y, end], 1), scale


def run(name: str, options: dict, data: dict, scale: float, args, seed: int) -> dict:
    pyro.set_rng_seed(seed)
    config = dict(
        latent_dim=args.latent,
        encoder_dim=args.encoder,
        hidden_dim=args.hidden,
        num_components=args.components,
        rank=1,
        kl_warmup=args.kl_warmup,
        kl_tolerance=0.2,
    )
    model = pf.SketchVAE(**{**config, **options, "name": name})
    train = data["train"]
    if args.augment:
        train = DataLoader(
            list(train["y"]), batch_size=args.batch_size, shuffle=True,
            generator=torch.Generator().manual_seed(seed),
            collate_fn=StrokeAugmentation(*args.augment, seed=seed),
        )  # fmt: skip
    start = time.perf_counter()
    history = pf.fit(
        model,
        train,
        val=data["val"],
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=seed,
        restore_best=not args.last,
    )
    seconds = time.perf_counter() - start
    model.eval()
    if args.save_models:  # pf.load(...) rebuilds it, for decodings tried after the run
        model.save(Path(args.out) / f"model_{name}_seed{seed}.pt")
    test = data["test"]["y"]
    with torch.no_grad():
        pyro.set_rng_seed(seed)
        iwae = torch.cat(
            [
                model.iwae(test[i : i + 50], num_particles=args.particles)
                for i in range(0, len(test), 50)
            ]
        )
        elbo = torch.cat(
            [model.elbo(test[i : i + 50], num_particles=8) for i in range(0, len(test), 50)]
        )
    result = {
        "variant": name,
        "seed": seed,
        "parameters": sum(p.numel() for p in model.parameters()),
        "epochs": len(history),
        "train_seconds": round(seconds, 1),
        "val_nll_per_row": history["val_nll"][-1],
        "test_iwae": float(iwae.mean()),
        "test_elbo": float(elbo.mean()),
        "test_drawings": len(test),
        "rows": test.shape[1],
        "steps_per_epoch": -(-len(data["train"]["y"]) // args.batch_size),
        "history": history.records,
    }
    if model.latent_dim:
        with torch.no_grad():
            result["test_kl"] = float(model.kl(test).mean())
            result["kl_floor"] = model.kl_tolerance * model.latent_dim
            result.update(reconstruction(model, test, scale, seed))
            result.update(code_gain(model, test, model.encode(test)))
            for part in ("seen", "trained"):
                if part in data:
                    more = reconstruction(model, data[part]["y"], scale, seed)
                    result.update({f"{part}_{k}": v for k, v in more.items()})
        if seed == args.seeds[0]:
            figures(model, test, scale, Path(args.out), name)
    return result


def reconstruction(model, drawings: torch.Tensor, scale: float, seed: int) -> dict:
    """The reconstruction rate, mean rank and pairwise rate of ``drawings`` decoded greedily,
    at 0.2, and as the best of 16 decodings at 0.2 by the code (``SketchVAE.reconstruct``:
    the one under which the guide finds the code likeliest), and the decodings' lengths
    against their inputs'."""
    codes = model.encode(drawings)
    inputs = [points(d, scale) for d in drawings]
    out = {}
    steps = drawings.shape[1]
    for label, decode in (
        ("greedy", lambda: model.decode(codes, steps=steps, greedy_decoding=True)),
        ("tau_0.2", lambda: model.decode(codes, steps=steps, temperature=0.2)),
        ("best_of_16", lambda: torch.cat([model.reconstruct(part, candidates=16)
                                          for part in drawings.split(50)])),
    ):  # fmt: skip
        pyro.set_rng_seed(seed)
        decoded = decode()
        ranks = reconstruction_ranks(inputs, [points(d, scale) for d in decoded])
        out[f"reconstruction_rate_{label}"] = float(np.mean(np.array(ranks) == 1))
        out[f"reconstruction_rank_{label}"] = float(np.mean(ranks))
        out[f"reconstruction_pairwise_{label}"] = pairwise_rate(ranks, len(ranks))
        out.update({f"{k}_{label}": v for k, v in decoded_lengths(drawings, decoded).items()})
    return out


def canvas(drawing: torch.Tensor, scale: float) -> torch.Tensor:
    out = drawing.clone()
    out[..., :2] *= scale
    return out


def figures(model, test, scale: float, out: Path, name: str) -> None:
    """Six test kanji, each with its greedy and tau = 0.2 reconstructions; an interpolation."""
    picks = test[:6]
    codes = model.encode(picks)
    pyro.set_rng_seed(0)
    greedy = model.decode(codes, steps=test.shape[1], greedy_decoding=True)
    sampled = model.decode(codes, steps=test.shape[1], temperature=0.2)
    rows = [[canvas(d, scale) for d in ds] for ds in (picks, greedy, sampled)]
    titles = [[label] * len(picks) for label in ("input", "greedy", "τ = 0.2")]
    plot_drawings(rows, out / f"reconstructions_{name}.png", titles)
    path = model.interpolate(test[0], test[1], steps=8)
    drawn = model.decode(path, steps=test.shape[1], greedy_decoding=True)
    plot_drawings([[canvas(d, scale) for d in drawn]], out / f"interpolation_{name}.png")


def main() -> None:
    args = arguments()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common = dict(spacing=args.spacing, grid=args.grid)
    train, scale = kanji_stroke5("train", limit=args.train + args.val, **common)
    test, _ = kanji_stroke5("test", limit=args.test, scale=scale, **common)
    length = max(train["y"].shape[1], test["y"].shape[1])  # one padded length for all

    def pad(y: torch.Tensor) -> torch.Tensor:  # more end rows
        end = y.new_tensor([0, 0, 0, 0, 1.0]).expand(len(y), length - y.shape[1], 5)
        return torch.cat([y, end], 1)

    y = pad(train["y"])
    data = {
        "train": {"y": y[: args.train]},
        "val": {"y": y[args.train :]},
        "test": {"y": pad(test["y"])},
    }
    if args.seen:  # new drawings of training kanji, as QuickDraw's test drawings of its classes
        redrawn = augment_stroke5(
            y[: args.seen], *(args.augment or (0.15, 0.1)),
            generator=torch.Generator().manual_seed(12345),
        )  # fmt: skip
        data["seen"] = {"y": redrawn}
    if args.trained:  # can the model give back what it trained on?
        data["trained"] = {"y": y[: args.trained]}
    results = []
    if args.append and (out / "results.json").is_file():
        done = {(v, s) for v in args.variants for s in args.seeds}
        earlier = json.loads((out / "results.json").read_text())["results"]
        results = [r for r in earlier if (r["variant"], r["seed"]) not in done]
    for seed in args.seeds:
        for name in args.variants:
            results.append(run(name, VARIANTS[name], data, scale, args, seed))
            print(json.dumps(results[-1]), flush=True)
            (out / "results.json").write_text(
                json.dumps(
                    {
                        "results": results,
                        "args": vars(args),
                        "scale": scale,
                        "padded_rows": length,
                        "machine": f"{platform.machine()}, torch {torch.__version__}",
                    },
                    indent=1,
                )
            )
    table(results, out / "results.md")
    curves(results, out / "curves.png")


def curves(results: list[dict], path: Path) -> None:
    """The validation bound per drawing (the VAE's one-draw ELBO, the decoder's exact
    log-likelihood) after each epoch against SVI steps: one line per variant and seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colours = {}
    for r in results:
        h = r.get("history")
        if not h:
            continue
        colour = colours.setdefault(r["variant"], f"C{len(colours)}")
        steps = [x["epoch"] * r["steps_per_epoch"] for x in h]
        bound = [-x["val_nll"] * r["rows"] for x in h]
        label = r["variant"] if r["seed"] == min(q["seed"] for q in results) else None
        ax.plot(steps, bound, color=colour, label=label, alpha=0.8)
    ax.set_xlabel("SVI steps")
    ax.set_ylabel("validation bound on log p(S), nats per drawing")
    ax.set_ylim(bottom=0)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def table(results: list[dict], path: Path) -> None:
    keys = [
        "test_iwae",
        "test_elbo",
        "test_kl",
        "reconstruction_rate_greedy",
        "reconstruction_rate_tau_0.2",
        "reconstruction_rank_greedy",
        "reconstruction_rank_tau_0.2",
        "reconstruction_rate_best_of_16",
        "reconstruction_rank_best_of_16",
        "seen_reconstruction_rate_greedy",
        "seen_reconstruction_rate_tau_0.2",
        "trained_reconstruction_rate_greedy",
        "trained_reconstruction_rate_tau_0.2",
        "reconstruction_pairwise_greedy",
        "code_gain_total",
        "code_gain_end_row",
        "parameters",
        "train_seconds",
    ]
    lines = ["| variant | seed | " + " | ".join(keys) + " |", "|---" * (len(keys) + 2) + "|"]
    for r in results:
        cells = [f"{r[k]:.3f}" if isinstance(r.get(k), float) else str(r.get(k, "–")) for k in keys]
        lines.append(f"| {r['variant']} | {r['seed']} | " + " | ".join(cells) + " |")
    lines += ["", "| variant | seeds | " + " | ".join(keys[:-2]) + " |", "|---" * len(keys) + "|"]
    for variant in dict.fromkeys(r["variant"] for r in results):
        runs = [r for r in results if r["variant"] == variant]
        cells = []
        for k in keys[:-2]:
            values = np.array([r[k] for r in runs if k in r], dtype=float)
            spread = f" ± {values.std(ddof=1):.3f}" if len(values) > 1 else ""
            cells.append(f"{values.mean():.3f}{spread}" if len(values) else "–")
        lines.append(f"| {variant} | {len(runs)} | " + " | ".join(cells) + " |")
    diffs = _paired(results)
    if diffs:
        lines += ["", "paired IWAE differences, VAE minus decoder (nats per drawing):", *diffs]
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _paired(results: list[dict]) -> list[str]:
    """Per seed, each VAE's IWAE minus that of the decoder with the same decoder head."""
    by = {(r["variant"], r["seed"]): r["test_iwae"] for r in results}
    lines = []
    for (variant, seed), iwae in by.items():
        head = "frmdn" if "frmdn" in variant else "rmdn"
        base = by.get((f"decoder_{head}", seed))
        if variant.startswith("vae") and base is not None:
            lines.append(f"- {variant} seed {seed}: {iwae - base:+.2f}")
    return lines


if __name__ == "__main__":
    main()
