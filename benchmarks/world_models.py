"""World models with three transition priors: held-out ELBO and IWAE bound per frame.

For each data set, seed and prior a :class:`pyro_frmdn.WorldModel` is trained jointly (SVI,
``Trace_ELBO``, KL warm-up, the same ``fit``, the same budget), then scored on held-out sequences
with ``evaluate_bounds``: the ELBO and the importance-weighted bound with ``--k`` samples, in nats
per frame (higher is better) and bits/dim of the pixels. The priors differ only in the law of
z_t given the LSTM state: ``frmdn`` (5-component low-rank mixture after a 2-layer coupling flow),
``rmdn`` (5-component diagonal mixture, World Models' MDN-RNN) and ``gaussian`` (one diagonal
Gaussian: a DMM-like transition). ``two-stage`` is the World Models recipe: a VAE (``prior=
"normal"``) for the same number of epochs, then an FRMDN fitted on its codes (posterior means;
``two-stage-sampled``: one draw of q per frame, as World Models did), composed; with
``--vae-frames N`` that VAE is fitted on the videos' frames shuffled, N per step, for
``--vae-epochs`` (many more, and more varied, steps than batches of whole videos).

Data sets:

- ``carracing``: random-policy CarRacing-v3 rollouts (``--episodes`` of ``--steps`` steps,
  collected into ``--data`` if missing; 64×64 stored, resized to 32×32), windows of 16 steps
  with their actions; the last 1/6 of the episodes held out (64 windows of them scored).
  Discretised logistic pixels (8 bit). Gradients are not clamped (``clip_value=1e6``): the
  default clamp of ``fit`` (10 per element) saturates on a loss summed over 3,072 pixels.
- ``mmnist``: Moving MNIST, 2 digits in 16×16 frames, 16 frames, binarised (pixel > 127),
  Bernoulli pixels, no actions (``pip install 'pyro-frmdn[data]'``).
- ``mmnist32``: the same at 32×32 (14×14 digits), 20 frames, a 32-D latent and a wider network
  (its dreams: ``benchmarks/results/world_models_mmnist32/README.md``).
- ``mmnist32-sprites``: the same frames and encoder, the sprite decoder (two sprites of 16×16,
  each with a 16-D what-latent and a position: a 36-D latent).

Dreams (the first seed of every model with dynamics): ``--context`` real frames encoded, the rest
of the video dreamed at each temperature of ``--tau``, saved as
``dream_<data>[_<model>][_tau<τ>].png/.gif`` (the τ suffix, e.g. ``_tau0p5``, only with several)
beside the real future.

    python benchmarks/world_models.py --quick     # a smoke run, ~2 min
    python benchmarks/world_models.py             # the documented run (single thread)
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

import pyro_frmdn as pf
from pyro_frmdn.infer import evaluate_bounds
from pyro_frmdn.models import PRIORS, shift_actions
from pyro_frmdn.plots import save_dream

MODELS = ("frmdn", "rmdn", "gaussian", "two-stage", "two-stage-sampled")


def carracing(args) -> dict:
    from pyro_frmdn.data.carracing import collect_rollouts, load_rollouts

    collect_rollouts(args.data, args.episodes, steps=args.steps, seed=0)
    data = load_rollouts(args.data, args.episodes, window=16, size=32)
    test = data["episode"] >= args.episodes - max(1, args.episodes // 6)
    keys = ("frames", "actions", "mask")
    return {
        "train": {k: data[k][~test] for k in keys},
        "test": {k: data[k][test][:64] for k in keys},
        "model": dict(frame_shape=(3, 32, 32), latent_dim=16, action_dim=3, likelihood="logistic",
                      channels=(16, 32, 64), features=128, hidden_dim=128),
    }  # fmt: skip


def _moving_digits(args, size: int, frames: int) -> dict:
    from pyro_frmdn.data import moving_mnist

    def split(name, n):
        video = moving_mnist(name, num_sequences=n, num_frames=frames, frame_size=size)
        binary = (video > 127).float().unsqueeze(2)  # (n, frames, 1, size, size)
        return {"frames": binary, "mask": torch.ones(n, frames, dtype=torch.bool)}

    return {"train": split("train", args.mmnist_train), "test": split("test", args.mmnist_test)}


def mmnist(args) -> dict:
    model = dict(frame_shape=(1, 16, 16), latent_dim=8, likelihood="bernoulli", channels=(16, 32),
                 features=64, hidden_dim=64)  # fmt: skip
    return {**_moving_digits(args, 16, 16), "model": model}


def mmnist32(args) -> dict:
    model = dict(frame_shape=(1, 32, 32), latent_dim=32, likelihood="bernoulli",
                 channels=(32, 64, 128), features=256, hidden_dim=256)  # fmt: skip
    return {**_moving_digits(args, 32, 20), "model": model}


def mmnist32_sprites(args) -> dict:
    model = dict(frame_shape=(1, 32, 32), latent_dim=36, likelihood="bernoulli",
                 channels=(32, 64, 128), features=256, hidden_dim=256, decoder="sprites",
                 num_sprites=2, sprite_size=16)  # fmt: skip
    return {**_moving_digits(args, 32, 20), "model": model}


DATA = {
    "carracing": carracing,
    "mmnist": mmnist,
    "mmnist32": mmnist32,
    "mmnist32-sprites": mmnist32_sprites,
}


def run_one(name, kind, seed, data, args, out: Path) -> dict:
    config = dict(data["model"])
    shape = config.pop("frame_shape")
    fit_options = dict(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, clip_value=1e6, seed=seed,
        progress=args.progress, lr_decay=args.lr_decay,
    )  # fmt: skip
    annealing = dict(kl_warmup=args.kl_warmup, kl_end=args.kl_end)
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    if kind.startswith("two-stage"):
        vae = pf.WorldModel(shape, prior="normal", **annealing, **config)
        train = data["train"]
        if args.vae_frames:  # the VAE on shuffled single frames, args.vae_frames per step
            frames = train["frames"].flatten(0, 1).unsqueeze(1)
            vae_data = {"frames": frames, "mask": train["mask"].reshape(-1, 1)}
            vae_fit = dict(fit_options, batch_size=args.vae_frames, epochs=args.vae_epochs)
            pf.fit(vae, vae_data, **vae_fit)
        else:
            pf.fit(vae, train, **fit_options)
        codes = vae.encode(train["frames"], train["mask"], sample=kind == "two-stage-sampled")
        actions = train.get("actions")
        rnn = pf.FRMDN(
            config["latent_dim"], input_dim=config.get("action_dim", 0),
            hidden_dim=config["hidden_dim"], **PRIORS["frmdn"],
        )  # fmt: skip
        x = None if actions is None else shift_actions(actions)
        pf.fit(rnn, (codes, x, train["mask"]), **fit_options)
        wm = vae.with_prior(rnn)
    else:
        wm = pf.WorldModel(shape, prior=kind, **annealing, **config)
        pf.fit(wm, data["train"], **fit_options)
    train_time = time.perf_counter() - t0
    torch.manual_seed(1000 + seed)
    bounds = evaluate_bounds(wm, data["test"], num_samples=args.k, batch_size=8)
    if seed == args.seeds[0]:
        test, p = data["test"], args.context
        full = test["mask"].all(1).nonzero().squeeze(1)[:4]
        frames = test["frames"][full]
        actions = test.get("actions")
        real = frames[:, p:].float() / (255 if frames.dtype == torch.uint8 else 1)
        label = name + ("" if kind == "frmdn" else "_" + kind)
        stem = "dream_" + label
        for tau in args.tau:
            torch.manual_seed(2000 + seed)
            d = pf.dream(
                wm, frames[:, :p], None if actions is None else actions[full], frames.shape[1] - p,
                pi_temperature=tau, scale_temperature=tau,
            )  # fmt: skip
            save_dream(
                out / (stem + (f"_tau{tau:g}".replace(".", "p") if len(args.tau) > 1 else "")),
                d.frames,
                real,
            )
        if args.save:
            torch.save({"config": wm.config, "state": wm.state_dict()}, out / f"model_{label}.pt")
    return {
        "data": name,
        "model": kind,
        "seed": seed,
        "elbo": bounds["elbo"],
        "iwae": bounds["iwae"],
        "elbo_bits_per_dim": bounds["elbo_bits_per_dim"],
        "iwae_bits_per_dim": bounds["iwae_bits_per_dim"],
        "test_frames": bounds["frames"],
        "train_seconds": train_time,
        "eval_seconds": time.perf_counter() - t0 - train_time,
    }


def _cell(rs: list[dict], key: str, digits: int) -> str:
    values = [r[key] for r in rs]
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"


def table(rows: list[dict], args) -> str:
    lines = [
        f"k = {args.k} importance samples; {args.epochs} epochs; seeds {args.seeds}; "
        "mean ± sd over seeds; nats per frame (higher is better) and bits/dim (lower is better)",
        "",
        "| data | prior | ELBO | IWAE | ELBO bits/dim | IWAE bits/dim | train s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(r["data"] for r in rows):
        for kind in MODELS:
            rs = [r for r in rows if r["data"] == name and r["model"] == kind]
            if not rs:
                continue

            lines.append(
                f"| {name} | {kind} | {_cell(rs, 'elbo', 1)} | {_cell(rs, 'iwae', 1)} | "
                f"{_cell(rs, 'elbo_bits_per_dim', 4)} | {_cell(rs, 'iwae_bits_per_dim', 4)} | "
                f"{statistics.mean(r['train_seconds'] for r in rs):.0f} |"
            )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-sets", default="carracing,mmnist")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--kl-warmup", type=int, default=200, help="SVI steps of KL annealing")
    p.add_argument("--kl-end", type=float, default=1.0, help="the KL weight after the warm-up")
    p.add_argument("--batch-size", type=int, default=16, help="sequences per SVI step")
    p.add_argument("--lr-decay", type=float, default=1.0, help="learning-rate factor per epoch")
    p.add_argument(
        "--vae-frames", type=int, default=0,
        help="two-stage: fit the VAE on shuffled single frames, this many per step (0: videos)",
    )  # fmt: skip
    p.add_argument("--vae-epochs", type=int, default=8, help="epochs of that VAE (--vae-frames)")
    p.add_argument("--context", type=int, default=4, help="real frames before a dream")
    p.add_argument("--tau", default="1.0", help="the dreams' temperatures (comma-separated)")
    p.add_argument(
        "--save", action="store_true", help="save the first seed's models (model_<data>_<model>.pt)"
    )
    p.add_argument("--k", type=int, default=64, help="importance samples")
    p.add_argument("--episodes", type=int, default=48)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--mmnist-train", type=int, default=512)
    p.add_argument("--mmnist-test", type=int, default=128)
    p.add_argument("--data", default="runs/world/carracing64", help="CarRacing rollout folder")
    p.add_argument("--out", default="runs/world/bench")
    p.add_argument("--quick", action="store_true", help="1 seed, 2 epochs, k = 8, small data")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    args = p.parse_args()
    if args.quick:
        args.seeds, args.epochs, args.k, args.episodes = "0", 2, 8, 12
        args.mmnist_train, args.mmnist_test = 128, 32
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.tau = [float(t) for t in args.tau.split(",")]
    if not all(t > 0 for t in args.tau):
        p.error(f"--tau must be > 0, got {args.tau}")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, t0 = [], time.perf_counter()
    for name in args.data_sets.split(","):
        data = DATA[name](args)
        if args.vae_frames and "actions" in data["train"]:
            p.error(f"--vae-frames needs an action-free data set; {name} has actions")
        frames = data["test"]["frames"].shape[1]
        if not 1 <= args.context < frames:  # before any training, not after it in `dream`
            p.error(
                f"--context must be 1 to {frames - 1} real frames for {name}, got {args.context}"
            )
        for seed in args.seeds:
            for kind in args.models.split(","):
                row = run_one(name, kind, seed, data, args, out)
                rows.append(row)
                print(
                    f"{name} {kind} seed {seed}: ELBO {row['elbo']:.2f} IWAE {row['iwae']:.2f} "
                    f"nats/frame ({row['iwae_bits_per_dim']:.4f} bits/dim), "
                    f"{row['train_seconds']:.0f} s",
                    flush=True,
                )
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    meta = {
        "torch": torch.__version__,
        "machine": machine,
        "minutes": (time.perf_counter() - t0) / 60,
    }
    text = table(rows, args)
    (out / "results.json").write_text(
        json.dumps({"meta": meta, "args": vars(args), "rows": rows}, indent=1)
    )
    (out / "results.md").write_text(text + f"\n\n{meta}\n")
    print(text)
    print(meta)
    assert all(math.isfinite(r["iwae"]) for r in rows)


if __name__ == "__main__":
    main()
