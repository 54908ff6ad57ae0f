"""World Models' V and M at the paper's sizes, trained jointly on a GPU (issue 20).

The sizes of Ha & Schmidhuber (2018) for CarRacing: 64×64 RGB frames, a convolutional VAE with
32-64-128-256 channels and a 32-D code, M an LSTM of 256 units with a 5-component mixture (here
the package's default ``WorldModel``: an FRMDN prior of rank 1 after 2 affine couplings), with
reward and done heads. The data: CarRacing-v3 random-policy rollouts collected beforehand with
``pyro_frmdn.data.carracing.collect_rollouts`` (the GPU machine has no Box2D), cut into windows
of ``--window`` steps; the last ``--test`` episodes held out.

Two parts, both with ``pf.fit`` as users call it:

1. speed: one epoch at a time of a float32 and a bf16-mixed model, interleaved, ``--rounds``
   rounds after a warm-up epoch each; ms per SVI step and frames per second (medians);
2. training: a fresh model fitted for ``--epochs`` epochs (fewer if ``--budget`` seconds would
   not hold them at the measured speed) in the faster precision, then scored on the held-out
   windows by ``evaluate_bounds`` (ELBO and IWAE bound per frame, bits/dim of the pixels).

Writes ``results.json``, ``results.md`` and ``dream.png``/``dream.gif`` (held-out windows:
``--context`` real frames, then M's dream under the real actions, beside the real future)
into ``--out``.

    python -c "from pyro_frmdn.data.carracing import collect_rollouts; \\
        collect_rollouts('gpu_data/carracing64', 32, steps=300, seed=0)"
    python benchmarks/world_models_gpu.py --device cuda --out benchmarks/results/gpu/world
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import pyro
import torch

import pyro_frmdn as pf
from pyro_frmdn.data.carracing import load_rollouts
from pyro_frmdn.infer.bounds import evaluate_bounds
from pyro_frmdn.plots import save_dream

KEYS = ("frames", "actions", "mask", "rewards", "dones")
# World Models' CarRacing budget (the paper): 10,000 random rollouts of up to 1,000 frames
PAPER_FRAMES = 10_000 * 1_000


def arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    a = p.add_argument
    a("--data", default="gpu_data/carracing64", help="folder of collect_rollouts' episodes")
    a("--episodes", type=int, default=32)
    a("--test", type=int, default=4, help="episodes held out")
    a("--window", type=int, default=32, help="steps per training sequence")
    a("--batch-size", type=int, default=16)
    a("--lr", type=float, default=1e-3)
    a("--rounds", type=int, default=3, help="timed epochs of each precision")
    a("--epochs", type=int, default=60)
    a("--budget", type=float, default=90.0, help="seconds for the training part")
    a("--k", type=int, default=16, help="importance samples of the held-out bound")
    a("--context", type=int, default=8, help="real frames before the dream of the figure")
    a("--device", default="cuda")
    a("--quick", action="store_true", help="a CPU check that the script runs: tiny sizes")
    a("--out", default="benchmarks/results/gpu/world")
    return p.parse_args()


def data(a) -> tuple[dict, dict]:
    d = load_rollouts(a.data, a.episodes, window=a.window, size=32 if a.quick else 64)
    test = d["episode"] >= a.episodes - a.test
    train = {k: d[k][~test] for k in KEYS}
    held = {k: d[k][test] for k in KEYS}
    if a.quick:
        train = {k: v[:4] for k, v in train.items()}
        held = {k: v[:2] for k, v in held.items()}
    return train, held


def world_model(a, seed: int) -> pf.WorldModel:
    pyro.clear_param_store()
    torch.manual_seed(seed)
    small = dict(channels=(8, 16), features=32, hidden_dim=32, latent_dim=8) if a.quick else {}
    shape = (3, 32, 32) if a.quick else (3, 64, 64)
    return pf.WorldModel(shape, action_dim=3, reward=True, done=True, kl_warmup=200, **small)


def epoch_seconds(model, train, a, precision: str) -> float:
    history = pf.fit(model, train, epochs=1, batch_size=a.batch_size, lr=a.lr, clip_value=None,
                     device=a.device, precision=precision, progress=False)  # fmt: skip
    return history["time"][-1]


def speed(a, train) -> dict:
    steps = math.ceil(len(train["frames"]) / a.batch_size)
    models = {p: world_model(a, 0) for p in pf.infer.TRAINING_PRECISIONS}
    for p, m in models.items():  # warm-up: cuDNN's choices, autocast's caches
        epoch_seconds(m, train, a, p)
    times = {p: [] for p in models}
    for _ in range(a.rounds):
        for p, m in models.items():
            times[p].append(epoch_seconds(m, train, a, p) / steps)
    frames = float(train["mask"].sum()) / steps  # unmasked frames per step, on average
    out = {}
    for p, t in times.items():
        ms = 1000 * statistics.median(t)
        out[p] = {"ms_per_step": ms, "frames_per_s": frames / (ms / 1000), "all": t}
    return out


@torch.no_grad()
def dream(model, held: dict, context: int, path: Path) -> None:
    """Four held-out windows: ``context`` real frames encoded, the rest dreamed by M under the
    real actions (τ = 1), saved beside the real future (``dream.png`` and ``dream.gif``)."""
    full = held["mask"].all(1).nonzero().squeeze(1)[:4]
    frames, actions = held["frames"][full], held["actions"][full]
    device = next(model.parameters()).device
    torch.manual_seed(3)
    d = pf.dream(model, frames[:, :context].to(device), actions.to(device),
                 frames.shape[1] - context)  # fmt: skip
    real = frames[:, context:].float() / 255
    save_dream(path, d.frames.cpu(), real)


def main() -> None:
    a = arguments()
    if a.quick:
        a.episodes, a.test, a.window, a.rounds, a.epochs, a.k, a.context = 6, 2, 8, 1, 2, 2, 4
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    train, held = data(a)
    card = torch.cuda.get_device_name() if a.device.startswith("cuda") else "cpu"
    print(f"# {card}; torch {torch.__version__}, pyro {pyro.__version__}")
    print(f"train {tuple(train['frames'].shape)}, held out {tuple(held['frames'].shape)}")
    t0 = time.perf_counter()
    fast = speed(a, train)
    for p, s in fast.items():
        ms, fps = s["ms_per_step"], s["frames_per_s"]
        print(f"{p:>11}: {ms:8.1f} ms per SVI step, {fps:9.0f} frames/s")
    best = min(fast, key=lambda p: fast[p]["ms_per_step"])
    steps = math.ceil(len(train["frames"]) / a.batch_size)
    per_epoch = steps * fast[best]["ms_per_step"] / 1000
    epochs = max(1, min(a.epochs, int(a.budget / (1.2 * per_epoch))))
    print(f"speed part {time.perf_counter() - t0:.0f} s; training {epochs} epochs in {best}")

    model = world_model(a, 1)
    t0 = time.perf_counter()
    history = pf.fit(model, train, held, epochs=epochs, batch_size=a.batch_size, lr=a.lr,
                     clip_value=None, device=a.device, precision=best, progress=False,
                     restore_best=False)  # fmt: skip
    train_s = time.perf_counter() - t0
    torch.manual_seed(2)
    bounds = evaluate_bounds(model, held, num_samples=a.k, batch_size=8)
    params = sum(p.numel() for p in model.parameters())
    result = {
        "card": card, "torch": torch.__version__, "pyro": pyro.__version__,
        "args": vars(a), "params": params, "speed": fast, "precision": best,
        "epochs": epochs, "train_seconds": train_s, "history": history.records,
        "bounds": bounds,
        "paper_frames_hours_per_epoch": PAPER_FRAMES / fast[best]["frames_per_s"] / 3600,
    }  # fmt: skip
    (out / "results.json").write_text(json.dumps(result, indent=1, default=float))
    dream(model, held, a.context, out / "dream")
    lines = [
        f"# World Models' V and M at the paper's sizes on {card}",
        "",
        f"{params:,} parameters; train {tuple(train['frames'].shape)} (windows of "
        f"{a.window} steps), held out {tuple(held['frames'].shape)}; batch {a.batch_size}.",
        "",
        "| precision | ms per SVI step | frames/s |",
        "|---|---|---|",
        *[f"| {p} | {s['ms_per_step']:.1f} | {s['frames_per_s']:.0f} |" for p, s in fast.items()],
        "",
        f"Training: {epochs} epochs in {best}, {train_s:.0f} s; held-out ELBO "
        f"{bounds['elbo']:.1f}, IWAE ({a.k}) {bounds['iwae']:.1f} nats per frame.",
        f"The paper's 10M frames: {result['paper_frames_hours_per_epoch']:.2f} h per epoch at "
        "this speed.",
    ]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print("bounds:", {k: v for k, v in bounds.items() if isinstance(v, float)})


if __name__ == "__main__":
    main()
