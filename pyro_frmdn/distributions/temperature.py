"""Tempered copies of mixture distributions, for sampling sharper or more diverse sequences."""

from __future__ import annotations

import math

import pyro.distributions as dist
from torch.distributions import Independent, Normal

from .binary import WithBernoulli
from .lowrank import LowRankCovarianceMultivariateNormal, LowRankPrecisionMultivariateNormal
from .mixture import LowRankMixture
from .transformed import FlowTransformedDistribution

__all__ = ["SCALE_MODES", "graves_bias", "temper"]

SCALE_MODES = ("variance", "std")
"""What :func:`temper`'s ``scale_temperature`` multiplies: the covariance (World Models) or the
standard deviations (sketch-rnn)."""


def graves_bias(bias: float) -> dict:
    r"""Temperatures equivalent to the sampling bias :math:`b \ge 0` of Graves (2013).

    Graves sharpens the weights as :math:`\mathrm{softmax}(\hat\pi (1 + b))` and the spread as
    :math:`\sigma = \exp(\hat\sigma - b)`, i.e. ``pi_temperature = 1 / (1 + b)`` and the standard
    deviation times :math:`e^{-b}`. Use as ``temper(d, **graves_bias(0.5))``.
    """
    if bias < 0:
        raise ValueError(f"the Graves bias must be >= 0, got {bias}")
    return {
        "pi_temperature": 1.0 / (1.0 + bias),
        "scale_temperature": math.exp(-bias),
        "scale_mode": "std",
    }


def _scale_component(c, factor: float):
    """A copy of component distribution ``c`` with covariance multiplied by ``factor``.

    With ``factor == 1`` a supported ``c`` is returned as it is; an unsupported one always raises.
    """
    gaussian = isinstance(c, (dist.LowRankMultivariateNormal, dist.MultivariateNormal))
    gaussian |= isinstance(c, LowRankPrecisionMultivariateNormal)
    gaussian |= isinstance(c, Independent) and isinstance(c.base_dist, Normal)
    if gaussian and factor == 1.0:
        return c
    if isinstance(c, LowRankPrecisionMultivariateNormal):
        return LowRankPrecisionMultivariateNormal(
            c.loc, c.prec_factor / math.sqrt(factor), c.prec_diag / factor
        )
    if isinstance(c, dist.LowRankMultivariateNormal):
        return LowRankCovarianceMultivariateNormal(
            c.loc, c.cov_factor * math.sqrt(factor), c.cov_diag * factor
        )
    if isinstance(c, Independent) and isinstance(c.base_dist, Normal):
        base = c.base_dist
        return dist.Normal(base.loc, base.scale * math.sqrt(factor)).to_event(
            c.reinterpreted_batch_ndims
        )
    if isinstance(c, dist.MultivariateNormal):
        return dist.MultivariateNormal(c.loc, scale_tril=c.scale_tril * math.sqrt(factor))
    raise TypeError(f"cannot temper components of type {type(c).__name__}")


def temper(
    d,
    pi_temperature: float = 1.0,
    scale_temperature: float = 1.0,
    scale_mode: str = "variance",
):
    r"""A tempered copy of a Gaussian mixture (or of a flow on one), for sampling.

    Semantics (the World Models convention, Ha & Schmidhuber 2018):

    - mixture weights: :math:`\pi \propto \exp(\text{logits} / \tau_\pi)` with
      :math:`\tau_\pi` = ``pi_temperature``; :math:`\tau_\pi \to 0` picks the most likely component,
      :math:`\tau_\pi > 1` flattens the weights. (sketch-rnn's :math:`\log \pi / \tau` is the same.)
    - spread, ``scale_mode="variance"`` (default; World Models, keras-mdn-layer): every component
      covariance is multiplied by :math:`\tau_s` = ``scale_temperature``.
    - spread, ``scale_mode="std"`` (sketch-rnn): standard deviations are multiplied by
      :math:`\tau_s`, covariances by :math:`\tau_s^2`. Graves' bias: see :func:`graves_bias`.

    In a flow model (:class:`FlowTransformedDistribution`) the spread is scaled in the base space,
    before the flow: the flow is left as learned. Bits appended by :class:`WithBernoulli` (a pen
    state) have their log-odds divided by :math:`\tau_\pi`, as sketch-rnn tempers its pen state.

    Arguments:
        d: a :class:`~pyro.distributions.MixtureSameFamily` of Gaussians, a single Gaussian
            component, a :class:`FlowTransformedDistribution` over one of these, or a
            :class:`WithBernoulli` over any of them.
        pi_temperature: :math:`\tau_\pi > 0`.
        scale_temperature: :math:`\tau_s > 0`.
        scale_mode: ``"variance"`` or ``"std"``.
    """
    if not (0 < pi_temperature < math.inf and 0 < scale_temperature < math.inf):
        raise ValueError(
            "temperatures must be finite numbers > 0, got "
            f"pi_temperature={pi_temperature}, scale_temperature={scale_temperature}"
        )
    if scale_mode not in SCALE_MODES:
        raise ValueError(f"scale_mode must be one of {SCALE_MODES}, got {scale_mode!r}")
    factor = scale_temperature if scale_mode == "variance" else scale_temperature**2
    if isinstance(d, WithBernoulli):
        continuous = temper(d.continuous, pi_temperature, scale_temperature, scale_mode)
        return WithBernoulli(continuous, d.logits / pi_temperature)
    if isinstance(d, FlowTransformedDistribution):
        base = temper(d.base_dist, pi_temperature, scale_temperature, scale_mode)
        return FlowTransformedDistribution(base, d.transforms)
    if isinstance(d, dist.MixtureSameFamily):
        logits = d.mixture_distribution.logits / pi_temperature
        comps = _scale_component(d.component_distribution, factor)
        return LowRankMixture(dist.Categorical(logits=logits), comps)
    return _scale_component(d, factor)
