"""Export to ArviZ: one-step-ahead predictive draws and pointwise log-likelihoods, and PIT plots."""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..models.validation import check_sequences

__all__ = ["pit", "plot_pit", "to_inference_data"]


def _from_dict(groups: dict, coords: dict, dims: dict):
    """``arviz.from_dict`` in both of its forms: groups as keywords (< 1.0) or as one dict."""
    import arviz

    if next(iter(inspect.signature(arviz.from_dict).parameters)) == "posterior":
        return arviz.from_dict(**groups, coords=coords, dims=dims)
    return arviz.from_dict(groups, coords=coords, dims=dims)


def _numpy(t: Tensor, mask: Tensor | None) -> np.ndarray:
    """To numpy on the CPU, NaN at masked steps; ``mask`` (B, T) lines up with t's dims -2, -1
    for (..., B, T) or -3, -2 for (..., B, T, D)."""
    t = t.detach().float().cpu()
    if mask is not None:
        m = mask.cpu()
        m = m if t.shape[-2:] == m.shape else m.unsqueeze(-1)
        t = t.masked_fill(~m, math.nan)
    return t.numpy()


def to_inference_data(
    model: nn.Module,
    y: Tensor,
    x: Tensor | None = None,
    mask: Tensor | None = None,
    num_samples: int = 100,
    seed: int | None = None,
    var_name: str = "y",
    pointwise: str = "step",
):
    r"""An ArviZ ``InferenceData`` of a sequence model's one-step-ahead predictions on data.

    Groups, with named dims ``sequence`` (B), ``step`` (T) and ``dim`` (D):

    - ``observed_data``: ``y`` ``(sequence, step, dim)``.
    - ``posterior_predictive``: ``num_samples`` draws from :math:`p(y_t \mid y_{<t}, x_{\le t})`
      given the *true* history: ``model.step_distribution(h_t)`` with ``h`` from
      ``model.features(y, x)``; ``(chain=1, draw=num_samples, sequence, step, dim)``.
    - ``log_likelihood``: :math:`\log p(y_t \mid y_{<t}, x_{\le t})` in nats,
      ``model.step_log_prob``; ``(chain=1, draw=1, sequence, step)``. The model's parameters are
      point estimates, so there is one draw: summed over steps it is ``model.log_prob``.

    Steps where ``mask`` is false are NaN in all three. Built with ``arviz.from_dict`` only, so it
    works with arviz 0.x (where this returns an ``InferenceData``) and 1.x (a ``DataTree``).

    Comparing models with ``arviz.loo`` / ``arviz.compare``: pass ``pointwise="sequence"``. The
    ``log_likelihood`` is then one value per sequence, :math:`\sum_t \log p(y_t \mid y_{<t},
    x_{\le t})` over its scored steps ``(chain=1, draw=2, sequence)``, and a ``posterior`` group
    is added. The models' parameters are point estimates (an empty guide), so that posterior is
    degenerate: two identical draws of a placeholder ``point_estimate`` (arviz's PSIS needs at
    least two), and on data the model was not fitted to, ``elpd_loo`` is exactly the summed
    held-out log-likelihood (arviz warns that the Pareto k of such weights is high: with one
    distinct draw there is nothing to reweight). ``arviz.compare`` then ranks models by it, with
    the spread over sequences as its standard error.

    Arguments:
        model: an :class:`~pyro_frmdn.FRMDN` or :class:`~pyro_frmdn.RMDN` (anything with
            ``features``, ``step_distribution``, ``step_log_prob``, ``obs_dim``,
            ``input_dim``), in eval mode while this runs.
        y, x, mask: ``(B, T, D)``, ``(B, T, X)`` or ``None``, ``(B, T)`` bool or ``None``.
        num_samples: predictive draws per step; the draws take ``num_samples·B·T·D`` floats.
        seed: draw with this seed, leaving torch's global random state as it was; ``None``
            draws from the global state (``pyro.set_rng_seed``).
        var_name: the name of the variable in every group.
        pointwise: ``"step"`` (one log-likelihood per step, as above) or ``"sequence"`` (one per
            sequence, and the degenerate posterior: what ``arviz.loo`` needs).

    Example:
        >>> from pyro_frmdn import RMDN
        >>> m = RMDN(obs_dim=2, hidden_dim=8, num_components=2)
        >>> idata = to_inference_data(m, torch.randn(3, 5, 2), num_samples=10, seed=0)
        >>> dict(idata.posterior_predictive.sizes)
        {'chain': 1, 'draw': 10, 'sequence': 3, 'step': 5, 'dim': 2}
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if pointwise not in ("step", "sequence"):
        raise ValueError(f"pointwise must be 'step' or 'sequence', got {pointwise!r}")
    y, x, mask = check_sequences(
        y, x, mask, model.obs_dim, model.input_dim, model.start.dtype, model.device
    )
    was_training = model.training
    model.eval()
    devices = [y.device] if y.device.type == "cuda" else []
    try:
        with torch.no_grad(), torch.random.fork_rng(devices, enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            d = model.step_distribution(model.features(y, x))  # batch (B, T), event (D,)
            draws = d.sample((num_samples,))  # (S, B, T, D)
            log_lik = model.step_log_prob(y, x, mask)  # (B, T)
    finally:
        model.train(was_training)
    b, t, n = y.shape
    groups = {
        "observed_data": {var_name: _numpy(y, mask)},
        "posterior_predictive": {var_name: _numpy(draws, mask)[None]},
        "log_likelihood": {var_name: _numpy(log_lik, mask)[None, None]},
    }
    dims = {var_name: ["sequence", "step", "dim"]}
    if pointwise == "sequence":
        scored = log_lik if mask is None else log_lik.masked_fill(~mask, 0.0)
        per_sequence = scored.double().sum(-1).cpu().numpy()  # (B,)
        groups["log_likelihood"] = {var_name: np.stack([per_sequence] * 2)[None]}
        groups["posterior"] = {"point_estimate": np.zeros((1, 2))}
    coords = {"sequence": np.arange(b), "step": np.arange(t), "dim": np.arange(n)}
    return _from_dict(groups, coords, dims)


def pit(idata, var_name: str = "y", seed: int = 0) -> np.ndarray:
    r"""Randomised probability integral transforms of the observed values, ``(N, D)``.

    For each unmasked step and output dimension, with :math:`S` predictive draws of which
    :math:`b` fall below the observed value and :math:`e` equal it,
    :math:`u = (b + V (e + 1)) / (S + 1)`, :math:`V \sim \mathcal U(0, 1)`. If the model's
    one-step-ahead marginals are right, ``u`` is exactly uniform on ``(0, 1)`` (the rank of the
    observation among the draws is uniform on ``0..S``), ties included; a U shape means the
    predictions are too narrow, a hump too wide, a slope biased. ``N`` counts the steps that
    are not NaN in ``observed_data`` (see :func:`to_inference_data`).
    """
    observed = np.asarray(idata["observed_data"][var_name])  # (B, T, D)
    draws = np.asarray(idata["posterior_predictive"][var_name])
    draws = draws.reshape(-1, *observed.shape)  # (chains · draws, B, T, D)
    valid = ~np.isnan(observed).any(-1)  # (B, T)
    observed, draws = observed[valid], draws[:, valid]  # (N, D), (S, N, D)
    below = (draws < observed).sum(0)
    equal = (draws == observed).sum(0)
    v = np.random.default_rng(seed).random(observed.shape)
    return (below + v * (equal + 1)) / (len(draws) + 1)


def plot_pit(
    idata,
    path: str | Path,
    var_name: str = "y",
    dims: Sequence[int] | None = None,
    bins: int = 20,
    max_panels: int = 16,
    seed: int = 0,
    title: str | None = None,
) -> Path:
    """Save a calibration plot: a histogram of the PIT values (:func:`pit`) per output dimension.

    Each panel shows the density of the PIT values of one dimension against the uniform density
    (the line at 1) and a band of ±2 binomial standard deviations of a bin's height under
    uniformity. Drawn on a bare matplotlib ``Figure`` (Agg), so no pyplot state or display is
    touched.

    Arguments:
        idata: from :func:`to_inference_data`.
        path: the image file to write (its suffix picks the format, e.g. ``.png``).
        var_name: the variable.
        dims: the output dimensions to show; default all when there are at most
            ``max_panels``, else ``max_panels`` of them evenly spaced (image rows have many).
        bins: histogram bins on ``[0, 1]``.
        seed: for the randomisation of :func:`pit`.
        title: the figure's title.

    Returns:
        ``path``.
    """
    from matplotlib.figure import Figure

    u = pit(idata, var_name, seed)  # (N, D)
    n, d = u.shape
    if dims is None:
        dims = range(d) if d <= max_panels else np.linspace(0, d - 1, max_panels).round()
    dims = [int(i) for i in dims]
    if not dims or min(dims) < 0 or max(dims) >= d:
        raise ValueError(f"dims must be indices in 0..{d - 1}, got {dims}")
    cols = min(4, len(dims))
    rows = math.ceil(len(dims) / cols)
    fig = Figure(figsize=(3 * cols, 2.4 * rows + 0.5), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    p = 1 / bins
    band = 2 * math.sqrt((1 - p) / (n * p))  # of a bin's density under uniformity
    for ax, i in zip(axes.flat, dims, strict=False):
        ax.hist(u[:, i], bins=bins, range=(0, 1), density=True, color="C0", alpha=0.7)
        ax.axhspan(max(1 - band, 0), 1 + band, color="0.4", alpha=0.25, lw=0, zorder=3)
        ax.axhline(1, color="k", lw=1, zorder=4)
        ax.set_xlim(0, 1)
        ax.set_title(f"dim {i}", fontsize=9)
    for ax in axes.flat[len(dims) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("PIT")
    fig.suptitle(title or f"PIT of one-step-ahead predictions ({n} steps)")
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path
