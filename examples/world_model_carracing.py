"""World Models on CarRacing end to end: collect, train jointly with SVI, evaluate, dream.

1. Collect random-policy rollouts (resumable; gymnasium[box2d], headless) into ``--data``.
2. Cut the episodes into windows of ``--window`` steps; hold out the last ``--test-episodes``.
3. Train a :class:`pyro_frmdn.WorldModel` (a VAE whose latent dynamics are an FRMDN conditioned
   on the actions, with reward and done heads) with ``pyro_frmdn.fit``: SVI, ``Trace_ELBO``, KL
   warm-up, checkpoints (``--resume`` continues a run).
4. Report the held-out ELBO and importance-weighted bound per frame (and bits/dim of the 8-bit
   pixels), with ``--two-stage`` also for the World Models recipe (a VAE first, then an FRMDN
   fitted on its codes).
5. Dream: encode ``--context`` frames of held-out windows, roll the prior forward under the
   recorded actions, decode, and save ``dream.gif`` / ``dream.png`` beside the real future.

CPU scale (a few minutes on 2 cores; frames resized to 32×32)::

    python examples/world_model_carracing.py --out runs/carracing

GPU scale, close to the paper's (64×64 frames, z of 32, 256 LSTM units, 5 components)::

    python examples/world_model_carracing.py --out runs/carracing64 --device cuda \\
        --episodes 500 --steps 1000 --size 64 --channels 32,64,128,256 --latent 32 \\
        --features 1024 --hidden 256 --epochs 30 --batch-size 64 --k 256
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import pyro_frmdn as pf
from pyro_frmdn.data.carracing import collect_rollouts, load_rollouts
from pyro_frmdn.infer import evaluate_bounds
from pyro_frmdn.models import shift_actions
from pyro_frmdn.plots import save_dream


def arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    a = p.add_argument
    a("--out", default="runs/carracing", help="run folder (checkpoints, plots, results)")
    a("--data", default="runs/carracing-rollouts", help="rollout folder (shared between runs)")
    a("--episodes", type=int, default=24, help="episodes to collect")
    a("--test-episodes", type=int, default=4, help="the last episodes, held out")
    a("--steps", type=int, default=300, help="most steps per episode")
    a("--size", type=int, default=32, help="frame side used for training")
    a("--window", type=int, default=32, help="training sequence length")
    a("--latent", type=int, default=16, help="latent size D")
    a("--channels", default="16,32,64", help="encoder convolution channels")
    a("--features", type=int, default=128, help="encoder features")
    a("--hidden", type=int, default=128, help="prior LSTM units")
    a("--prior", default="frmdn", choices=["frmdn", "rmdn", "gaussian"], help="dynamics")
    a("--guide-flow", default=None, choices=["iaf", "boosted"], help="refine q(z | x)")
    a("--backward-rnn", action="store_true", help="condition q on the future frames")
    a("--epochs", type=int, default=30)
    a("--batch-size", type=int, default=16)
    a("--lr", type=float, default=2e-3)
    a("--clip-value", type=float, default=1e6, help="the per-element gradient clamp of fit")
    a("--kl-warmup", type=int, default=300, help="SVI steps of KL annealing")
    a("--k", type=int, default=32, help="importance samples of the IWAE bound")
    a("--context", type=int, default=8, help="frames encoded before dreaming")
    a("--dream-steps", type=int, default=16)
    a("--two-stage", action="store_true", help="also fit VAE, then FRMDN on its codes")
    a("--device", default=None, help="cpu, cuda...; default: CUDA when available")
    a("--threads", type=int, default=1, help="torch threads on CPU")
    a("--resume", action="store_true", help="continue the run's training from last.pt")
    a("--seed", type=int, default=0)
    return p.parse_args()


def plot_history(histories: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, h in histories.items():
        ax.plot(h["epoch"], h["train_nll"], marker=".", label=f"{label} (train, annealed)")
        if h["val_nll"][0] is not None:
            ax.plot(h["epoch"], h["val_nll"], "--", marker=".", label=f"{label} (held out)")
    ax.set(xlabel="epoch", ylabel="-ELBO, nats per frame")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    args = arguments()
    if args.window < args.context + args.dream_steps:  # checked before hours of work, not after
        raise SystemExit(
            f"--window {args.window} is shorter than --context + --dream-steps "
            f"({args.context} + {args.dream_steps})"
        )
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    collect_rollouts(args.data, args.episodes, steps=args.steps, seed=args.seed)
    print(f"rollouts ready in {time.perf_counter() - t0:.0f} s")
    data = load_rollouts(args.data, args.episodes, window=args.window, size=args.size)
    test_rows = data["episode"] >= args.episodes - args.test_episodes
    keys = ("frames", "actions", "mask", "rewards", "dones")
    train = {k: data[k][~test_rows] for k in keys}
    test = {k: data[k][test_rows] for k in keys}
    print(f"{len(train['frames'])} training windows, {len(test['frames'])} held out")

    channels = [int(c) for c in args.channels.split(",")]
    common = dict(
        latent_dim=args.latent,
        action_dim=3,
        likelihood="logistic",
        channels=channels,
        features=args.features,
        hidden_dim=args.hidden,
        reward=True,
        done=True,
    )
    torch.manual_seed(args.seed)
    world = pf.WorldModel(
        (3, args.size, args.size),
        prior=args.prior,
        guide_flow=args.guide_flow,
        backward_rnn=args.backward_rnn,
        kl_warmup=args.kl_warmup,
        **common,
    )
    train_options = dict(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, clip_value=args.clip_value,
        device=args.device, seed=args.seed,
    )  # fmt: skip
    histories = {"joint": pf.fit(
        world, train, test, checkpoint=out / "joint", resume=args.resume, **train_options
    )}  # fmt: skip
    results = {"joint": evaluate_bounds(world, test, num_samples=args.k, progress=True)}

    if args.two_stage:
        torch.manual_seed(args.seed)
        vae = pf.WorldModel((3, args.size, args.size), prior="normal", **common)
        histories["VAE"] = pf.fit(vae, train, test, checkpoint=out / "vae", **train_options)
        codes = vae.encode(train["frames"].to(vae.device), train["mask"].to(vae.device)).cpu()
        rnn = pf.FRMDN(
            args.latent, input_dim=3, hidden_dim=args.hidden, **pf.models.PRIORS[args.prior]
        )
        pf.fit(rnn, (codes, shift_actions(train["actions"]), train["mask"]), **train_options)
        two_stage = vae.with_prior(rnn)
        results["two-stage"] = evaluate_bounds(two_stage, test, num_samples=args.k)

    plot_history(histories, out / "learning_curve.png")
    for name, r in results.items():
        print(
            f"{name:>9}: held-out ELBO {r['elbo']:.1f}, IWAE(k={r['num_samples']}) "
            f"{r['iwae']:.1f} nats/frame = {r['iwae_bits_per_dim']:.3f} bits/dim"
        )
    (out / "results.json").write_text(json.dumps(results, indent=1))

    n, p, s = 4, args.context, args.dream_steps
    full = test["mask"].all(1).nonzero().squeeze(1)[:n]
    frames, actions = test["frames"][full], test["actions"][full]
    d = pf.dream(world, frames[:, :p], actions[:, : p + s], steps=s)
    gif, png = save_dream(out / "dream", d.frames, frames[:, p : p + s].float() / 255)
    print(f"dreams: {gif} and {png}; learning curve: {out / 'learning_curve.png'}")
    print(f"predicted rewards of the first dream: {d.rewards[0].cpu().numpy().round(2)}")
    print(f"total time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
