"""How predictable is the next Moving MNIST frame at 16×16 and at 32×32 pixels?

The quality suite's FRMDNs continue Moving MNIST videos as blobs, even one step ahead given the
true past. This script asks whether any per-frame predictor could do better at the suite's
resolution: a small convolutional network reads the two previous frames (enough to see each
digit's velocity) and predicts the next one, fitted by least squares in the suite's pixel space
(dequantised, logit-transformed). Its one-step predictions are the best a model whose spread
around one mean per frame is Gaussian can draw sharply; rolled out on its own predictions it shows
how fast a mean forgets the digits' shapes.

Printed per frame size: the test mean squared error of (a) the training frames' mean pixel,
(b) copying the last frame, (c) the network, and the fraction of variance (c) explains; a figure
``predictability.png`` shows real frames, one-step predictions and roll-outs.

    python benchmarks/moving_mnist_predictability.py            # about 6 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import matplotlib
import torch
from torch import Tensor, nn

from pyro_frmdn.bench import DATASETS, load_dataset

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def predictor(channels: int = 32) -> nn.Module:
    """Two frames (N, 2, H, W) -> the change from the second to the next frame (N, 1, H, W)."""
    return nn.Sequential(
        nn.Conv2d(2, channels, 5, padding=2), nn.ReLU(),
        nn.Conv2d(channels, channels, 5, padding=2), nn.ReLU(),
        nn.Conv2d(channels, 1, 5, padding=2),
    )  # fmt: skip


def triples(y: Tensor, side: int) -> tuple[Tensor, Tensor]:
    """Videos (B, T, side²) -> inputs (N, 2, side, side) and next frames (N, 1, side, side)."""
    frames = y.reshape(y.shape[0], y.shape[1], side, side)
    past = torch.stack([frames[:, :-2], frames[:, 1:-1]], 2).flatten(0, 1)
    return past, frames[:, 2:].flatten(0, 1).unsqueeze(1)


def predict(net: nn.Module, past: Tensor) -> Tensor:
    return past[:, 1:] + net(past)


def fit_predictor(side: int, train: int, epochs: int, seed: int = 0) -> dict:
    spec = replace(DATASETS["moving_mnist"], frame_size=side, train=train, val=1, test=100)
    data = load_dataset(spec)
    x, y = triples(data.train["y"], side)
    x_test, y_test = triples(data.test["y"], side)
    torch.manual_seed(seed)
    net = predictor()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    start = time.perf_counter()
    for epoch in range(epochs):
        for idx in torch.randperm(len(x)).split(256):
            loss = (predict(net, x[idx]) - y[idx]).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"{side}x{side}: epoch {epoch + 1}/{epochs}, training MSE {loss.item():.3f}")
    with torch.no_grad():
        mse = (predict(net, x_test) - y_test).pow(2).mean().item()
        mean_pixel = (data.train["y"].mean() - y_test).pow(2).mean().item()
        copy = (x_test[:, 1:] - y_test).pow(2).mean().item()
        frames = data.test["y"][:3].reshape(3, -1, 1, side, side)
        pairs = [torch.cat([frames[:, t - 2], frames[:, t - 1]], 1) for t in range(10, 20)]
        one_step = torch.stack([predict(net, pair) for pair in pairs], 1)
        history = [frames[:, 8], frames[:, 9]]
        for _ in range(10):
            history.append(predict(net, torch.cat(history[-2:], 1)))
    return {
        "side": side,
        "train_videos": train,
        "epochs": epochs,
        "mse_mean_pixel": mean_pixel,
        "mse_copy_last": copy,
        "mse_network": mse,
        "variance_explained": 1 - mse / mean_pixel,
        "seconds": time.perf_counter() - start,
        "rows": [frames[:, 10:], one_step, torch.stack(history[2:], 1)],
    }


def plot(results: list[dict], path: Path) -> None:
    labels = ("real", "one step", "roll-out")
    fig, axes = plt.subplots(len(results) * 6, 10, figsize=(10, len(results) * 6.3))
    row = 0
    for r in results:
        for video in range(2):
            for label, frames in zip(labels, r["rows"], strict=True):
                for t in range(10):
                    ax = axes[row, t]
                    ax.imshow(torch.sigmoid(frames[video, t, 0]), cmap="gray", vmin=0, vmax=1)
                    ax.set_xticks([])
                    ax.set_yticks([])
                axes[row, 0].set_ylabel(f"{r['side']}², {label}", fontsize=7)
                row += 1
    title = (
        "Moving MNIST frames 11-20: real, one-step least-squares predictions from the two true "
        "previous frames, and roll-outs on its own predictions"
    )
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="benchmarks/results/moving_mnist_predictability")
    p.add_argument("--train", type=int, default=600, help="training videos per frame size")
    p.add_argument("--epochs", type=int, default=4)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = [fit_predictor(side, args.train, args.epochs) for side in (16, 32)]
    plot(results, out / "predictability.png")
    table = [{k: v for k, v in r.items() if k != "rows"} for r in results]
    (out / "results.json").write_text(json.dumps(table, indent=2))
    print("| frame | mean-pixel MSE | copy-last MSE | network MSE | variance explained | s |")
    for r in table:
        cells = (r["mse_mean_pixel"], r["mse_copy_last"], r["mse_network"])
        mse = " | ".join(f"{v:.3f}" for v in cells)
        side = f"{r['side']}x{r['side']}"
        print(f"| {side} | {mse} | {r['variance_explained']:.2f} | {r['seconds']:.0f} |")


if __name__ == "__main__":
    main()
