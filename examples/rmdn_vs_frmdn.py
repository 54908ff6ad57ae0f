"""A single Gaussian, an RMDN and an FRMDN per step, side by side on two sequence tasks.

Three recurrent models share the same LSTM and differ only in the law of ``y_t`` given the state:

- one diagonal Gaussian per step (``RMDN(num_components=1, rank=0)``);
- an RMDN: a mixture of K Gaussians (Graves 2013);
- an FRMDN: the same mixture on a target transformed by an affine coupling flow
  (Razavi et al. 2020).

Tasks (``pyro_frmdn.data.make_task``): ``banana``, where every step is curved, ``(u, a u² + v)``,
which a coupling flow straightens exactly, and ``branching``, 2-D pen offsets whose future splits
into two (bimodal, which a single Gaussian cannot express). Each model is fitted with
``pyro_frmdn.fit`` on a training split, keeping the epoch with the best validation NLL, and
scored on held-out sequences with ``pyro_frmdn.evaluate`` in nats per step (lower is better;
negative values are normal for continuous data). The plot compares generated sequences with
real ones: the points of all steps for ``banana``, the paths (cumulated offsets) for
``branching``.

    python examples/rmdn_vs_frmdn.py --epochs 100 --out rmdn_vs_frmdn.png
"""

from __future__ import annotations

import argparse
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import pyro_frmdn
from pyro_frmdn import FRMDN, RMDN
from pyro_frmdn.data import make_task

TASKS = ("banana", "branching")


def build_models(a: argparse.Namespace) -> dict[str, torch.nn.Module]:
    """The three models, same RNN; names are distinct so their Pyro params never collide."""
    rnn = dict(obs_dim=2, hidden_dim=a.hidden)
    mix = dict(num_components=a.components, rank=a.rank)
    return {
        "Gaussian": RMDN(num_components=1, rank=0, name="gaussian", **rnn),
        f"RMDN (K={a.components})": RMDN(name="rmdn", **mix, **rnn),
        f"FRMDN (K={a.components}, {a.flow_layers} couplings)": FRMDN(
            flow_layers=a.flow_layers, flow_hidden_dims=[a.flow_hidden], name="frmdn", **mix, **rnn
        ),
    }


def points(task: str, y: torch.Tensor) -> torch.Tensor:
    """What is drawn: banana, the values of every step; branching, paths (cumulated offsets)."""
    return y.reshape(-1, 2) if task == "banana" else y[:40].cumsum(dim=1)


def draw(ax, task: str, y: torch.Tensor, title: str, color: str, limits: torch.Tensor) -> None:
    """Scatter (banana) or paths (branching) of ``y`` (N, T, 2) in the real data's box."""
    if task == "banana":
        pts = points(task, y)
        ax.scatter(pts[:, 0], pts[:, 1], s=1, alpha=0.25, color=color)
    else:
        for path in points(task, y):
            ax.plot(path[:, 0], path[:, 1], lw=0.7, alpha=0.6, color=color)
    ax.set(xlim=limits[:, 0].tolist(), ylim=limits[:, 1].tolist(), xticks=[], yticks=[])
    ax.set_title(title, fontsize=9)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    p.add_argument("--n", type=int, default=512, help="training + validation sequences")
    p.add_argument("--val", type=int, default=64, help="of which held out for validation")
    p.add_argument("--n-test", type=int, default=256, help="test sequences (another seed)")
    p.add_argument("--steps", type=int, default=24, help="steps per sequence")
    p.add_argument("--hidden", type=int, default=64, help="LSTM size")
    p.add_argument("--components", type=int, default=5, help="mixture components K")
    p.add_argument("--rank", type=int, default=1, help="low-rank part of each component")
    p.add_argument("--flow-layers", type=int, default=2, help="affine couplings of the FRMDN")
    p.add_argument("--flow-hidden", type=int, default=32, help="hidden size of each coupling")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--out", default="rmdn_vs_frmdn.png", help="where to save the plot")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (small nets: 1)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    t0 = time.perf_counter()
    torch.set_num_threads(a.threads)

    fig, axes = plt.subplots(len(a.tasks), 4, figsize=(12, 3 * len(a.tasks)), squeeze=False)
    results = {}
    for row, task in enumerate(a.tasks):
        data = make_task(task, n=a.n, steps=a.steps, seed=a.seed)
        train, val = data[a.val :], data[: a.val]
        test = make_task(task, n=a.n_test, steps=a.steps, seed=a.seed + 1)
        real = points(task, test).reshape(-1, 2)
        pad = 0.1 * (real.amax(0) - real.amin(0))
        limits = torch.stack([real.amin(0) - pad, real.amax(0) + pad])  # (2, 2): min/max, x/y
        draw(axes[row, 0], task, test, f"{task}: real", "black", limits)
        torch.manual_seed(a.seed)
        for col, (label, model) in enumerate(build_models(a).items(), start=1):
            t = time.perf_counter()
            history = pyro_frmdn.fit(
                model,
                train,
                val,
                epochs=a.epochs,
                batch_size=a.batch_size,
                lr=a.lr,
                device="cpu",
                seed=a.seed,
            )
            nll = pyro_frmdn.evaluate(model, test)
            best = min(history["val_nll"])
            results[task, label] = (nll, best, time.perf_counter() - t)
            torch.manual_seed(a.seed)
            generated = model.sample(200, a.steps)
            draw(axes[row, col], task, generated, f"{task}: {label}", f"C{col - 1}", limits)

    print(f"held-out NLL, nats per step ({a.n_test} test sequences x {a.steps} steps):")
    print(f"  {'task':10s} {'model':34s} {'test':>8s} {'best val':>9s} {'fit s':>7s}")
    for (task, label), (nll, best, seconds) in results.items():
        print(f"  {task:10s} {label:34s} {nll:8.3f} {best:9.3f} {seconds:7.1f}")
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    plt.close(fig)
    print(f"plot saved to {a.out}; {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
