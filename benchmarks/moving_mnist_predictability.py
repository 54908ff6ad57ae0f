"""How predictable is the next Moving MNIST frame at 16×16 and at 32×32 pixels?

The quality suite's FRMDNs continue Moving MNIST videos as blobs, even one step ahead given the
true past. This script asks what per-frame predictors fitted by least squares, in the suite's
pixel space (dequantised, logit-transformed), can do at each resolution:

- ``conv``: a small convolutional network reads the two previous frames (enough to see each
  digit's velocity) and predicts the change from the last one;
- ``motion``: a dynamic-motion predictor in the manner of CDNA (Finn, Goodfellow & Levine 2016,
  "Unsupervised learning for physical interaction through video prediction"): from the four
  previous frames a network computes ``M`` small translation kernels (each a softmax over
  ``k × k`` shifts) and per-pixel masks choosing between them; the prediction is the last frame
  moved by each kernel, blended by the masks. It can only move pixels, never invent them.

One-step predictions are the best a model whose spread around one mean per frame is Gaussian can
draw sharply. Roll-outs on its own predictions show how fast a mean forgets the digits' shapes;
the motion predictor is also rolled out *hard* (each pixel takes its most likely mask and each
kernel its most likely shift), which commits to one motion per region, as a sample would.

Printed per frame size and predictor: the test mean squared error of the training frames' mean
pixel, of copying the last frame, of the predictor (and of its hard version), and the fraction of
variance explained; ``predictability.png`` shows real frames, one-step predictions and roll-outs.

    python benchmarks/moving_mnist_predictability.py            # about 15 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import matplotlib
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyro_frmdn.data import sequences_to_frames
from pyro_frmdn.experiments import DATASETS, load_dataset

matplotlib.use("Agg")
import matplotlib.pyplot as plt


class ConvPredictor(nn.Module):
    """Two frames (N, 2, H, W), the last first -> the next frame (N, 1, H, W)."""

    history, decodes_hard = 2, False

    def __init__(self, side: int, channels: int = 32):  # every predictor is made from the side
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(2, channels, 5, padding=2), nn.ReLU(),
            nn.Conv2d(channels, channels, 5, padding=2), nn.ReLU(),
            nn.Conv2d(channels, 1, 5, padding=2),
        )  # fmt: skip

    def forward(self, past: Tensor, hard: bool = False) -> Tensor:
        return past[:, :1] + self.net(past)


class MotionPredictor(nn.Module):
    """Four frames (N, 4, H, W), the last first -> the last frame moved (N, 1, H, W).

    ``M`` kernels of ``k × k`` shifts (``k = 3`` at 16×16, 5 at 32×32: a digit moves up to about
    one or two pixels a frame) come from a dense layer over convolutional features, the masks
    from a convolution; pixel coordinates are inputs, so that the walls can be seen.
    """

    history, decodes_hard = 4, True

    def __init__(self, side: int, masks: int = 4, channels: int = 32):
        super().__init__()
        self.side, self.masks, self.k = side, masks, 3 if side <= 16 else 5
        grid = torch.linspace(-1, 1, side)
        self.register_buffer("coords", torch.stack(torch.meshgrid(grid, grid, indexing="ij")))
        self.body = nn.Sequential(
            nn.Conv2d(self.history + 2, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=2, dilation=2), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=4, dilation=4), nn.ReLU(),
        )  # fmt: skip
        self.mask_logits = nn.Conv2d(channels, masks, 3, padding=1)
        self.kernel_logits = nn.Sequential(
            nn.Conv2d(channels, 8, 1), nn.Flatten(), nn.ReLU(),
            nn.Linear(8 * side * side, 128), nn.ReLU(), nn.Linear(128, masks * self.k**2),
        )  # fmt: skip

    def forward(self, past: Tensor, hard: bool = False) -> Tensor:
        n, k = past.shape[0], self.k
        coords = self.coords.expand(n, 2, self.side, self.side)
        features = self.body(torch.cat([past / 3, coords], 1))  # logit pixels lie in about ±3
        masks = self.mask_logits(features).flatten(2)  # (N, M, H·W)
        kernels = self.kernel_logits(features).reshape(n, self.masks, k * k)
        if hard:  # the most likely mask per pixel, the most likely shift per kernel
            masks = F.one_hot(masks.argmax(1), self.masks).transpose(1, 2).to(past.dtype)
            kernels = F.one_hot(kernels.argmax(-1), k * k).to(past.dtype)
        else:
            masks, kernels = masks.softmax(1), kernels.softmax(-1)
        last = F.pad(past[:, :1], (k // 2,) * 4, mode="replicate")
        moved = torch.einsum("nmk,nkp->nmp", kernels, F.unfold(last, k))  # (N, M, H·W)
        return (masks * moved).sum(1).reshape(n, 1, self.side, self.side)


PREDICTORS = {"conv": ConvPredictor, "motion": MotionPredictor}


def windows(y: Tensor, side: int, history: int) -> tuple[Tensor, Tensor]:
    """Videos (B, T, side²) -> past frames (N, history, side, side), the last first, and the
    next frames (N, 1, side, side)."""
    frames = sequences_to_frames(y, side)
    steps = frames.shape[1] - history
    past = torch.stack([frames[:, history - 1 - j : history - 1 - j + steps]
                        for j in range(history)], 2)  # fmt: skip
    return past.flatten(0, 1), frames[:, history:].flatten(0, 1).unsqueeze(1)


def roll_out(net: nn.Module, frames: Tensor, start: int, hard: bool = False) -> Tensor:
    """Predict frames ``start:`` of videos (N, T, 1, H, W) each from the predictor's own ones."""
    history = [frames[:, t] for t in range(start)]
    while len(history) < frames.shape[1]:
        past = torch.cat(history[: -net.history - 1 : -1], 1)
        history.append(net(past, hard))
    return torch.stack(history[start:], 1)


def fit_predictor(kind: str, side: int, train: int, epochs: int, seed: int = 0) -> dict:
    spec = replace(DATASETS["moving_mnist"], frame_size=side, train=train, val=1, test=100)
    data = load_dataset(spec)
    torch.manual_seed(seed)
    net = PREDICTORS[kind](side)
    x, y = windows(data.train["y"], side, net.history)
    x_test, y_test = windows(data.test["y"], side, net.history)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    start = time.perf_counter()
    for epoch in range(epochs):
        for idx in torch.randperm(len(x)).split(128):
            loss = (net(x[idx]) - y[idx]).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"{side}x{side} {kind}: epoch {epoch + 1}/{epochs}, training MSE {loss.item():.3f}")
    seconds = time.perf_counter() - start
    with torch.no_grad():
        modes = (False, True) if net.decodes_hard else (False,)
        mse = {h: (net(x_test, h) - y_test).pow(2).mean().item() for h in modes}
        mean_pixel = (data.train["y"].mean() - y_test).pow(2).mean().item()
        copy = (x_test[:, :1] - y_test).pow(2).mean().item()
        frames = sequences_to_frames(data.test["y"][:3], side).unsqueeze(2)
        past = torch.stack([frames[:, t - net.history : t].flip(1).squeeze(2)
                            for t in range(10, 20)], 1)  # fmt: skip
        one_step = net(past.flatten(0, 1)).unflatten(0, (3, 10))
        rows = {"real": frames[:, 10:], "one step": one_step, "roll-out": roll_out(net, frames, 10)}
        if net.decodes_hard:
            rows["hard roll-out"] = roll_out(net, frames, 10, hard=True)
    return {
        "predictor": kind,
        "side": side,
        "train_videos": train,
        "epochs": epochs,
        "mse_mean_pixel": mean_pixel,
        "mse_copy_last": copy,
        "mse_network": mse[False],
        "mse_hard": mse.get(True),
        "variance_explained": 1 - mse[False] / mean_pixel,
        "seconds": seconds,
        "rows": rows,
    }


def plot(results: list[dict], path: Path) -> None:
    panels = [(r, label, frames) for r in results for label, frames in r["rows"].items()
              if label != "real" or r["predictor"] == "conv"]  # fmt: skip
    panels = [(r, label, frames, v) for v in range(2) for r, label, frames in panels]
    panels.sort(key=lambda p: p[0]["side"])  # stable: per size, video by video
    fig, axes = plt.subplots(len(panels), 10, figsize=(10, 1.05 * len(panels)))
    for row, (r, label, frames, video) in enumerate(panels):
        for t in range(10):
            axes[row, t].imshow(torch.sigmoid(frames[video, t, 0]), cmap="gray", vmin=0, vmax=1)
            axes[row, t].set_xticks([])
            axes[row, t].set_yticks([])
        name = "" if label == "real" else f"{r['predictor']} "
        axes[row, 0].set_ylabel(f"{r['side']}², {name}{label}", fontsize=6)
    title = (
        "Moving MNIST frames 11-20: real, one-step least-squares predictions from the true past, "
        "and roll-outs on the predictor's own frames"
    )
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="benchmarks/results/moving_mnist_predictability")
    p.add_argument("--train", type=int, default=600, help="training videos per frame size")
    p.add_argument("--epochs", type=int, default=6)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = [fit_predictor(kind, side, args.train, args.epochs)
               for side in (16, 32) for kind in PREDICTORS]  # fmt: skip
    plot(results, out / "predictability.png")
    table = [{k: v for k, v in r.items() if k != "rows"} for r in results]
    (out / "results.json").write_text(json.dumps(table, indent=2))
    print("| frame | predictor | mean-pixel MSE | copy-last MSE | MSE | hard MSE | "
          "variance explained | s |")  # fmt: skip
    for r in table:
        cells = (r["mse_mean_pixel"], r["mse_copy_last"], r["mse_network"])
        mse = " | ".join(f"{v:.3f}" for v in cells)
        hard = "" if r["mse_hard"] is None else f"{r['mse_hard']:.3f}"
        side = f"{r['side']}x{r['side']}"
        print(f"| {side} | {r['predictor']} | {mse} | {hard} | {r['variance_explained']:.2f} | "
              f"{r['seconds']:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
