"""Bishop's inverse problem: an MDN fits p(y | x) where least-squares regression cannot.

The data are ``x = y + 0.3 sin(2πy) + noise`` with ``y ~ U(0, 1)``, and the task is the inverse,
p(y | x): for x near 0.5 there are three values of y. An MLP trained by mean squared error learns
the conditional mean, which runs between the branches where no data lie; a mixture density
network (:class:`pyro_frmdn.MDN`, same hidden layers, trained with :func:`pyro_frmdn.fit`) learns
the whole conditional density. Both are scored by held-out NLL: the MDN's own, and for the MSE
fit a Gaussian around its prediction with the variance of its training residuals. NLLs of
continuous data can be negative; lower is better. The plot shows the data, the MSE curve, samples
from the MDN and its density p(y | x) as a heat map.

    python examples/mdn_inverse_sine.py --epochs 300 --out mdn_inverse_sine.png
"""

from __future__ import annotations

import argparse
import math
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from matplotlib.colors import PowerNorm
from torch import nn
from tqdm.auto import trange

import pyro_frmdn
from pyro_frmdn.data import inverse_sine


def mlp(hidden_dims: list[int]) -> nn.Sequential:
    """x (N, 1) -> prediction (N, 1) through tanh layers: the MDN's network with a scalar output."""
    layers, size = [], 1
    for h in hidden_dims:
        layers += [nn.Linear(size, h), nn.Tanh()]
        size = h
    return nn.Sequential(*layers, nn.Linear(size, 1))


def fit_mse(
    net: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, batch_size: int, lr: float
) -> None:
    """Least squares with Adam, same epochs and minibatches as the MDN."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    g = torch.Generator().manual_seed(0)
    for _ in trange(epochs, desc="mse", leave=False):
        for idx in torch.randperm(len(x), generator=g).split(batch_size):
            opt.zero_grad()
            nn.functional.mse_loss(net(x[idx]), y[idx]).backward()
            opt.step()


def gaussian_nll(residuals: torch.Tensor, variance: float) -> float:
    """Mean NLL (nats) of residuals under N(0, variance)."""
    return float(
        0.5 * math.log(2 * math.pi * variance) + residuals.square().mean() / (2 * variance)
    )


def plot(path: str, mdn: pyro_frmdn.MDN, net: nn.Module, x, y) -> None:
    grid_x = torch.linspace(float(x.min()), float(x.max()), 200).unsqueeze(-1)  # (G, 1)
    grid_y = torch.linspace(-0.1, 1.1, 200)
    with torch.no_grad():
        mse_curve = net(grid_x).squeeze(-1)
        samples = mdn.sample(5, grid_x).squeeze(-1)  # (5, G)
        d = mdn.distribution(grid_x)  # batch (G,)
        density = d.log_prob(grid_y[:, None, None].expand(-1, len(grid_x), 1)).exp()  # (Y, G)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    ax = axes[0]
    ax.scatter(x, y, s=3, alpha=0.3, color="grey", label="data")
    ax.scatter(grid_x.expand(-1, 5).T, samples, s=3, color="C1", label="MDN samples")
    ax.plot(grid_x, mse_curve, color="C0", lw=2, label="MSE regression")
    ax.set(xlabel="x", ylabel="y", title="data, MSE fit and MDN samples")
    ax.legend(loc="upper left", markerscale=3)
    ax = axes[1]
    extent = (float(grid_x.min()), float(grid_x.max()), float(grid_y[0]), float(grid_y[-1]))
    ax.imshow(
        density,
        origin="lower",
        extent=extent,
        aspect="auto",
        cmap="viridis",
        norm=PowerNorm(gamma=0.4),
    )
    ax.plot(grid_x, mse_curve, color="white", lw=1, ls="--", label="MSE regression")
    ax.set(xlabel="x", title="MDN density p(y | x) (colour ∝ density^0.4)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000, help="training points (as many held out)")
    p.add_argument("--components", type=int, default=5, help="mixture components K")
    p.add_argument("--hidden", type=int, nargs="+", default=[32, 32], help="hidden layer sizes")
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=200)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--out", default="mdn_inverse_sine.png", help="where to save the plot")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (small nets: 1)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    t0 = time.perf_counter()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    x, y = inverse_sine(a.n, seed=a.seed)
    x_test, y_test = inverse_sine(a.n, seed=a.seed + 1)

    mdn = pyro_frmdn.MDN(1, 1, num_components=a.components, hidden_dims=a.hidden)
    pyro_frmdn.fit(
        mdn, (x, y), epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, device="cpu", seed=a.seed
    )
    net = mlp(a.hidden)
    fit_mse(net, x, y, a.epochs, a.batch_size, a.lr)

    with torch.no_grad():
        variance = float((net(x) - y).square().mean())
        mse_nll = gaussian_nll(net(x_test) - y_test, variance)
        mse_rmse = float((net(x_test) - y_test).square().mean().sqrt())
    mdn_nll = pyro_frmdn.evaluate(mdn, (x_test, y_test))
    print(f"held-out NLL, nats per point ({len(x_test)} points; lower is better):")
    print(f"  MDN (K={a.components}, hidden {a.hidden})           {mdn_nll:8.3f}")
    print(f"  MSE MLP + Gaussian (residual sd {variance**0.5:.3f})  {mse_nll:8.3f}")
    print(f"  (MSE MLP held-out RMSE {mse_rmse:.3f})")
    plot(a.out, mdn, net, x, y)
    print(f"plot saved to {a.out}; {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
