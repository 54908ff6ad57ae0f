r"""The step ρ of gradient boosting: the 1-D mixture NLL, its searches, and the sample weights.

Adding component :math:`g_c` to :math:`G_{c-1}` makes :math:`G_c = (1 - \rho) G_{c-1} + \rho g_c`
(Giaquinto & Banerjee 2020, §3.3); everything here works on cached log-densities
:math:`\log G_{c-1}(x_i)` and :math:`\log g_c(x_i)`, (N,).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..distributions import RHO_MAX

__all__ = [
    "boosting_sample_weights",
    "gradient_search_rho",
    "line_search_rho",
    "mixture_nll",
    "rho_gradient",
]

_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def _log_mixture(rho: float, log_prev: Tensor, log_new: Tensor) -> Tensor:
    if rho <= 0.0:
        return log_prev
    if rho >= 1.0:
        return log_new
    return torch.logaddexp(log_prev + math.log1p(-rho), log_new + math.log(rho))


def mixture_nll(rho: float, log_prev: Tensor, log_new: Tensor) -> float:
    r"""The mixture's mean NLL as a function of the new step :math:`\rho`:

    .. math::
        L(\rho) = -\frac1N \sum_i \log\left[(1 - \rho)\, G_{c-1}(x_i) + \rho\, g_c(x_i)\right]

    from ``log_prev`` :math:`= \log G_{c-1}(x_i)` and ``log_new`` :math:`= \log g_c(x_i)`, (N,).
    :math:`L` is convex in :math:`\rho` (minus the log of an affine function, averaged), so a
    line search on [0, 1] finds its global minimum (Giaquinto & Banerjee 2020, §3.3).
    """
    return -float(_log_mixture(rho, log_prev, log_new).mean())


def rho_gradient(rho: float, log_prev: Tensor, log_new: Tensor) -> float:
    r""":math:`dL/d\rho = -\frac1N \sum_i \big(g_c(x_i) - G_{c-1}(x_i)\big) / G_c(x_i)`, computed
    as differences of density ratios in log space (Giaquinto & Banerjee 2020, §3.3)."""
    log_g = _log_mixture(rho, log_prev, log_new)
    return -float((torch.exp(log_new - log_g) - torch.exp(log_prev - log_g)).mean())


def line_search_rho(
    log_prev: Tensor,
    log_new: Tensor,
    lo: float = 0.0,
    hi: float = RHO_MAX,
    grid: int = 17,
    tol: float = 1e-5,
) -> float:
    """The ρ in ``[lo, hi]`` that minimises :func:`mixture_nll`: a grid brackets the minimum, a
    golden-section search refines it; ``lo`` is always a candidate, so with ``lo = 0`` the
    result never has a larger NLL than leaving the mixture as it was."""
    if not 0.0 <= lo < hi <= 1.0:
        raise ValueError(f"need 0 <= lo < hi <= 1, got lo={lo}, hi={hi}")

    def f(r: float) -> float:
        return mixture_nll(r, log_prev, log_new)

    points = [lo + (hi - lo) * i / (grid - 1) for i in range(grid)]
    values = [f(r) for r in points]
    i = min(range(grid), key=values.__getitem__)
    a, b = points[max(i - 1, 0)], points[min(i + 1, grid - 1)]
    c, d = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tol:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - _GOLDEN * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + _GOLDEN * (b - a)
            fd = f(d)
    candidates = [(values[0], lo), (values[i], points[i]), (f(0.5 * (a + b)), 0.5 * (a + b))]
    return min(candidates)[1]


def gradient_search_rho(
    log_prev: Tensor,
    log_new: Tensor,
    lo: float = 0.0,
    hi: float = RHO_MAX,
    init: float | None = None,
    max_iter: int = 200,
    tol: float = 1e-7,
) -> float:
    """Projected gradient descent on :func:`mixture_nll` over ``[lo, hi]`` with the exact
    gradient (:func:`rho_gradient`) and a backtracking step (halved until the NLL does not rise,
    doubled after each accepted step). ``lo`` is compared at the end, as in the line search."""
    if not 0.0 <= lo < hi <= 1.0:
        raise ValueError(f"need 0 <= lo < hi <= 1, got lo={lo}, hi={hi}")
    rho = min(max(0.5 * (lo + hi) if init is None else init, lo), hi)
    f, step = mixture_nll(rho, log_prev, log_new), 0.05
    for _ in range(max_iter):
        g = rho_gradient(rho, log_prev, log_new)
        if math.isnan(g):
            break
        g = min(max(g, -1e6), 1e6)  # the gradient at ρ = 0 can overflow
        while True:
            new = min(max(rho - step * g, lo), hi)
            f_new = mixture_nll(new, log_prev, log_new)
            if f_new <= f or step < 1e-12:
                break
            step *= 0.5
        if f_new > f:
            break
        moved, rho, f, step = abs(new - rho), new, f_new, 2.0 * step
        if moved < tol:
            break
    return rho if f <= mixture_nll(lo, log_prev, log_new) else lo


def boosting_sample_weights(
    neg_log_prev: Tensor,
    clip: tuple[float, float] | None = (0.01, 0.1),
    cap: float | None = None,
) -> Tensor:
    r"""Minibatch weights :math:`w_i \propto 1 / G_{c-1}(x_i)`: a softmax of
    :math:`-\log G_{c-1}` over the batch.

    ``clip`` (default): the reference implementation of Giaquinto & Banerjee (2020): when the
    largest normalised weight exceeds ``clip[1]`` all are clamped to ``clip`` and
    renormalised. The clip is in units of the normalised weights, so it depends on the batch
    size; once it applies every point weighs at least a tenth of the heaviest, and the new
    component is trained on nearly all the data again, with the worst points emphasised.

    ``cap``: no weight exceeds ``cap`` times the batch's median weight (:math:`-\log G` is
    clamped at its median plus :math:`\log` ``cap``), applied before ``clip``. Points
    explained far worse than the others (a part of the data the mixture misses altogether)
    then share the weight instead of the single worst taking all of it (which the clip turns
    into nearly uniform weights), and points the mixture explains well keep weights near 0:
    the new component fits what is missed (``docs/boosting.md``; use it with ``clip=None``).
    """
    if cap is not None:
        neg_log_prev = neg_log_prev.clamp(max=float(neg_log_prev.median()) + math.log(cap))
    w = torch.softmax(neg_log_prev, dim=0)
    if clip is not None and float(w.max()) > clip[1]:
        w = w.clamp(*clip)
        w = w / w.sum()
    return w
