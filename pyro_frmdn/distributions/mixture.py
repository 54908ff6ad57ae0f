"""Gaussian mixtures with diagonal or low-rank-plus-diagonal components."""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import Tensor

from .float32 import promote
from .lowrank import (
    LowRankCovarianceMultivariateNormal,
    LowRankPrecisionMultivariateNormal,
    _DeferredChecks,
)

__all__ = ["PARAMETERIZATIONS", "LowRankMixture", "components", "low_rank_mixture", "positive"]

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


class LowRankMixture(dist.MixtureSameFamily):
    """Pyro's :class:`~pyro.distributions.MixtureSameFamily`, what :func:`low_rank_mixture`
    returns: the same distribution, whose :meth:`log_prob` costs the components' scoring and
    little else.

    Pyro's ``log_prob`` checks the value twice when validation is on (the mixture, then the
    components: ``value == value`` over the whole value each time) and normalises the mixing
    logits again although :class:`~pyro.distributions.Categorical` stored them normalised; at
    D = 64, 12,800 points and 10 components these were 7 ms of a 55 ms forward. Here the value is
    checked once, by a sum that is NaN exactly when the value holds a NaN or both infinities (Pyro's
    exact check runs only then, and gives Pyro's error), and the stored logits are used as they are.
    """

    def log_prob(self, value: Tensor) -> Tensor:
        comps = self.component_distribution
        if self._validate_args:
            _check_value(self, value)
        x = self._pad(value)
        if isinstance(comps, _DeferredChecks):
            lp = comps.log_prob(x, value_checked=True)
        else:
            lp = comps.log_prob(x)
        return torch.logsumexp(lp + self.mixture_distribution.logits, dim=-1)


def _check_value(d: dist.MixtureSameFamily, value: Tensor) -> None:
    """The shape checks of torch's ``_validate_sample``; its support check (``value == value``
    everywhere, for the real vectors of Gaussian components) only when a NaN sum says it can
    fail."""
    if not isinstance(value, Tensor):
        raise ValueError("The value argument to log_prob must be a Tensor")
    event = d.event_shape
    if value.shape[value.dim() - len(event) :] != event:
        raise ValueError(
            f"The right-most size of value must match event_shape: {tuple(value.shape)} vs "
            f"{tuple(event)}."
        )
    for i, j in zip(reversed(value.shape), reversed(d.batch_shape + event), strict=False):
        if i != 1 and j != 1 and i != j:
            raise ValueError(
                f"Value is not broadcastable with batch_shape+event_shape: "
                f"{tuple(value.shape)} vs {tuple(d.batch_shape + event)}."
            )
    if not value.is_floating_point() or bool(value.sum().isnan()):
        torch.distributions.Distribution._validate_sample(d, value)


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

    bfloat16 or float16 arguments (a head's output under ``torch.autocast``) are promoted to
    float32: the density is computed in float32 (:mod:`pyro_frmdn.distributions.float32`).

    Returns:
        A :class:`LowRankMixture` (a :class:`~pyro.distributions.MixtureSameFamily`) with batch
        ``(...)`` (the broadcast of the arguments' batch shapes) and event ``(D,)``.

    Example:
        >>> K, D, r = 3, 4, 2
        >>> d = low_rank_mixture(torch.zeros(5, K), torch.randn(5, K, D), torch.randn(5, K, D, r),
        ...                      torch.ones(5, K, D), parameterization="precision")
        >>> d.batch_shape, d.event_shape
        (torch.Size([5]), torch.Size([4]))
    """
    _check_parameterization(parameterization)
    logits, loc, factor, diag = (promote(t) for t in (logits, loc, factor, diag))
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
    return LowRankMixture(dist.Categorical(logits=logits.expand(batch + (k,))), comps)
