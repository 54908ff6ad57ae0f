"""Gaussian mixtures with diagonal or low-rank-plus-diagonal components."""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import Tensor

from .lowrank import LowRankCovarianceMultivariateNormal, LowRankPrecisionMultivariateNormal

__all__ = ["PARAMETERIZATIONS", "components", "low_rank_mixture", "positive"]

PARAMETERIZATIONS = ("covariance", "precision")
"""What factor and diagonal build: the covariance :math:`W W^\\top + \\mathrm{diag}(d)` or the
precision :math:`U U^\\top + \\mathrm{diag}(d)` of each component."""


def positive(raw: Tensor, floor: float = 1e-4) -> Tensor:
    r"""Map unconstrained outputs to diagonal entries: :math:`\mathrm{softplus}(x) + \text{floor}`.

    The floor keeps variances (or precisions) away from zero, where a component can collapse on
    a single point and the likelihood diverges. With data standardised to unit scale, the default
    ``1e-4`` bounds a standard deviation below by 0.01 in the covariance form. Softplus is linear
    for large inputs, so gradients neither vanish nor explode the way ``exp`` does.
    """
    return torch.nn.functional.softplus(raw) + floor


def _check_parameterization(parameterization: str) -> None:
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(
            f"parameterization must be one of {PARAMETERIZATIONS}, got {parameterization!r}"
        )


def components(
    loc: Tensor, factor: Tensor | None, diag: Tensor, parameterization: str = "covariance"
) -> dist.TorchDistribution:
    """The component Gaussians of :func:`low_rank_mixture`: batch ``(..., K)``, event ``(D,)``."""
    _check_parameterization(parameterization)
    if factor is None or factor.shape[-1] == 0:
        if diag.shape[-1] != loc.shape[-1]:
            raise ValueError(
                f"diag must have shape (..., {loc.shape[-1]}), got {tuple(diag.shape)}"
            )
        if torch.distributions.Distribution._validate_args and not bool((diag > 0).all()):
            raise ValueError("diag must be positive (a variance or a precision) everywhere")
        scale = diag.sqrt() if parameterization == "covariance" else diag.rsqrt()
        return dist.Normal(loc, scale).to_event(1)
    if parameterization == "covariance":
        return LowRankCovarianceMultivariateNormal(loc, factor, diag)
    return LowRankPrecisionMultivariateNormal(loc, factor, diag)


def low_rank_mixture(
    logits: Tensor,
    loc: Tensor,
    factor: Tensor | None,
    diag: Tensor,
    parameterization: str = "covariance",
) -> dist.MixtureSameFamily:
    r"""A mixture of Gaussians with low-rank-plus-diagonal structure, the per-step law of FRMDN.

    .. math::
        p(y) = \sum_{k=1}^K \pi_k \, \mathcal N(y; \mu_k, \Sigma_k),
        \qquad \pi = \mathrm{softmax}(\text{logits})

    with, for ``parameterization="covariance"`` (Pyro's
    :class:`~pyro.distributions.LowRankMultivariateNormal` family),
    :math:`\Sigma_k = W_k W_k^\top + \mathrm{diag}(d_k)`, and for ``"precision"`` (the FRMDN paper's
    form, :class:`LowRankPrecisionMultivariateNormal`), :math:`\Sigma_k^{-1} = U_k U_k^\top +
    \mathrm{diag}(d_k)`. ``factor=None`` (rank 0) gives diagonal components, the classic MDN of
    Bishop (1994); ``diag`` is then the variance (covariance form) or the precision.

    Arguments:
        logits: mixture logits, ``(..., K)``; kept as logits, never normalised probabilities.
        loc: component means, ``(..., K, D)``.
        factor: low-rank factors, ``(..., K, D, r)``, or ``None``.
        diag: positive diagonals, ``(..., K, D)`` (see :func:`positive` for a floored map).
        parameterization: ``"covariance"`` or ``"precision"``.

    Returns:
        A :class:`~pyro.distributions.MixtureSameFamily` with batch ``(...)`` (the broadcast of the
        arguments' batch shapes) and event ``(D,)``.

    Example:
        >>> K, D, r = 3, 4, 2
        >>> d = low_rank_mixture(torch.zeros(5, K), torch.randn(5, K, D), torch.randn(5, K, D, r),
        ...                      torch.ones(5, K, D), parameterization="precision")
        >>> d.batch_shape, d.event_shape
        (torch.Size([5]), torch.Size([4]))
    """
    _check_parameterization(parameterization)
    if logits.dim() < 1:
        raise ValueError("logits must have shape (..., K), got a scalar")
    k = logits.shape[-1]
    if loc.dim() < 2 or loc.shape[-2] != k:
        raise ValueError(
            f"loc must have shape (..., {k}, D) for {k} logits, got {tuple(loc.shape)}"
        )
    if diag.dim() < 2 or diag.shape[-2] != k:
        raise ValueError(f"diag must have shape (..., {k}, D), got {tuple(diag.shape)}")
    if factor is not None and (factor.dim() < 3 or factor.shape[-3] != k):
        raise ValueError(f"factor must have shape (..., {k}, D, r), got {tuple(factor.shape)}")
    comps = components(loc, factor, diag, parameterization)
    batch = comps.batch_shape[:-1]
    try:
        batch = torch.broadcast_shapes(batch, logits.shape[:-1])
    except RuntimeError as e:
        raise ValueError(
            f"logits batch shape {tuple(logits.shape[:-1])} does not broadcast with the "
            f"components' {tuple(batch)}"
        ) from e
    if comps.batch_shape != batch + (k,):
        comps = comps.expand(batch + (k,))
    return dist.MixtureSameFamily(dist.Categorical(logits=logits.expand(batch + (k,))), comps)
