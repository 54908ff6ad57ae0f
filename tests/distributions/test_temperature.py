"""Tests of :func:`~pyro_frmdn.distributions.temper` and :func:`graves_bias`.

References are dense float64 matrices built from the *original* parameters (``W Wᵀ + diag(d)``,
or the inverse of ``U Uᵀ + diag(d)`` for the precision form) and the formulas of the papers:
``softmax(logits / τ)``, covariance ``τ Σ`` (``scale_mode="variance"``) or ``τ² Σ`` (``"std"``), and
Graves' ``softmax(π̂ (1 + b))`` and ``σ = exp(σ̂ − b)``.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import pytest
import torch
from pyro.distributions.conditional import ConditionalTransform
from torch.distributions import Independent, Normal

from pyro_frmdn.distributions import (
    FlowTransformedDistribution,
    LowRankPrecisionMultivariateNormal,
    flow_mixture,
    graves_bias,
    low_rank_mixture,
    temper,
)
from pyro_frmdn.flows import coupling_flow

F64 = torch.float64
KINDS = ["lowrank-covariance", "lowrank-precision", "diagonal-covariance", "diagonal-precision"]


def _mixture(kind, batch=(2,), k=3, dim=4, rank=2, shared_components=False):
    """A mixture of ``kind`` and its parameters; ``shared_components`` broadcasts the components
    (no batch dims) against batched logits."""
    cbatch = () if shared_components else batch
    logits = torch.randn(batch + (k,), dtype=F64)
    loc = torch.randn(cbatch + (k, dim), dtype=F64)
    diag = torch.rand(cbatch + (k, dim), dtype=F64) + 0.5
    if kind == "full":
        tril = torch.randn(cbatch + (k, dim, dim), dtype=F64).tril(-1) + torch.diag_embed(diag)
        comps = dist.MultivariateNormal(loc, scale_tril=tril)
        if shared_components:
            comps = comps.expand(batch + (k,))
        d = dist.MixtureSameFamily(dist.Categorical(logits=logits), comps)
        return d, (logits, tril @ tril.mT)
    family, parameterization = kind.split("-")
    factor = 0.5 * torch.randn(cbatch + (k, dim, rank), dtype=F64) if family == "lowrank" else None
    d = low_rank_mixture(logits, loc, factor, diag, parameterization)
    matrix = torch.diag_embed(diag)
    if factor is not None:
        matrix = matrix + factor @ factor.mT
    cov = matrix if parameterization == "covariance" else torch.linalg.inv(matrix)
    return d, (logits, cov)


def _covariance(c):
    """Dense covariance of Gaussian ``c``, from its own parameters."""
    if isinstance(c, LowRankPrecisionMultivariateNormal):
        return torch.linalg.inv(c.prec_factor @ c.prec_factor.mT + torch.diag_embed(c.prec_diag))
    if isinstance(c, dist.LowRankMultivariateNormal):
        return c.cov_factor @ c.cov_factor.mT + torch.diag_embed(c.cov_diag)
    if isinstance(c, Independent) and isinstance(c.base_dist, Normal):
        return torch.diag_embed(c.base_dist.scale**2)
    if isinstance(c, dist.MultivariateNormal):
        return c.scale_tril @ c.scale_tril.mT
    raise TypeError(type(c))


def _dense_mixture_log_prob(logits, loc, cov, y):
    comps = torch.distributions.MultivariateNormal(loc, covariance_matrix=cov)
    return (comps.log_prob(y.unsqueeze(-2)) + torch.log_softmax(logits, -1)).logsumexp(-1)


TEMPERATURES = [(0.5, 0.3), (2.0, 1.7), (1.0, 0.6), (0.25, 1.0)]


@pytest.mark.parametrize("shared", [False, True], ids=["batched", "shared-components"])
@pytest.mark.parametrize("pi_temperature, scale_temperature", TEMPERATURES)
@pytest.mark.parametrize("scale_mode", ["variance", "std"])
@pytest.mark.parametrize("kind", [*KINDS, "full"])
def test_weights_and_covariances(kind, scale_mode, pi_temperature, scale_temperature, shared):
    d, (logits, cov) = _mixture(kind, shared_components=shared)
    tempered = temper(d, pi_temperature, scale_temperature, scale_mode)

    assert isinstance(tempered, dist.MixtureSameFamily)
    assert tempered.batch_shape == d.batch_shape and tempered.event_shape == d.event_shape
    assert type(tempered.component_distribution) is type(d.component_distribution)
    expected_probs = torch.softmax(logits / pi_temperature, -1)
    torch.testing.assert_close(
        tempered.mixture_distribution.probs, expected_probs, atol=1e-12, rtol=0
    )
    factor = scale_temperature if scale_mode == "variance" else scale_temperature**2
    comps_cov = _covariance(tempered.component_distribution)
    torch.testing.assert_close(comps_cov, (factor * cov).expand_as(comps_cov), atol=1e-10, rtol=0)

    # and the density is the dense tempered mixture's
    y = 2 * torch.randn((5,) + d.batch_shape + d.event_shape, dtype=F64)
    loc = d.component_distribution.mean
    expected = _dense_mixture_log_prob(logits / pi_temperature, loc, factor * cov, y)
    torch.testing.assert_close(tempered.log_prob(y), expected, atol=1e-9, rtol=0)
    # the original is untouched
    torch.testing.assert_close(_covariance(d.component_distribution), cov.expand_as(comps_cov))


@pytest.mark.parametrize("scale_mode", ["variance", "std"])
@pytest.mark.parametrize("kind", [*KINDS, "full"])
def test_unit_temperatures_leave_log_prob_unchanged(kind, scale_mode):
    d, _ = _mixture(kind)
    y = 2 * torch.randn((5,) + d.batch_shape + d.event_shape, dtype=F64)
    expected = d.log_prob(y)
    torch.testing.assert_close(temper(d).log_prob(y), expected, atol=1e-12, rtol=0)
    tempered = temper(d, 1.0, 1.0, scale_mode)
    torch.testing.assert_close(tempered.log_prob(y), expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("scale_mode", ["variance", "std"])
@pytest.mark.parametrize("kind", [*KINDS, "full"])
def test_single_component(kind, scale_mode):
    d, (_, cov) = _mixture(kind)
    component = d.component_distribution
    tempered = temper(component, pi_temperature=0.5, scale_temperature=0.4, scale_mode=scale_mode)
    factor = 0.4 if scale_mode == "variance" else 0.16
    assert tempered.batch_shape == component.batch_shape
    torch.testing.assert_close(_covariance(tempered), factor * cov, atol=1e-10, rtol=0)
    torch.testing.assert_close(tempered.mean, component.mean, atol=0, rtol=0)


@pytest.mark.parametrize("context_dim", [0, 3], ids=["uncond", "cond"])
@pytest.mark.parametrize("kind", KINDS)
def test_flow_is_tempered_in_base_space(kind, context_dim):
    n, dim = 2, 4
    base, (logits, cov) = _mixture(kind, batch=(n,), dim=dim)
    flow = coupling_flow(dim, 2, flow="spline", hidden_dims=[8], context_dim=context_dim)
    flow = flow.double()
    context = torch.randn(n, context_dim, dtype=F64) if context_dim else None
    d = flow_mixture(base, flow, context)
    tempered = temper(d, pi_temperature=0.5, scale_temperature=0.3, scale_mode="std")

    assert isinstance(tempered, FlowTransformedDistribution)
    assert len(tempered.transforms) == len(d.transforms)
    assert all(a is b for a, b in zip(tempered.transforms, d.transforms, strict=True))
    tbase = tempered.base_dist
    torch.testing.assert_close(
        tbase.mixture_distribution.probs, torch.softmax(logits / 0.5, -1), atol=1e-12, rtol=0
    )
    torch.testing.assert_close(
        _covariance(tbase.component_distribution), 0.09 * cov, atol=1e-10, rtol=0
    )

    # log p_T(y) - log p(y) = log p_T,base(z) - log p_base(z): the Jacobian term is unchanged
    y = torch.randn(5, n, dim, dtype=F64)
    z = y.clone()
    for t in reversed(flow):
        t = t.condition(context) if isinstance(t, ConditionalTransform) else t
        z = t.inv(z)
    loc = base.component_distribution.mean
    expected = _dense_mixture_log_prob(logits / 0.5, loc, 0.09 * cov, z) - _dense_mixture_log_prob(
        logits, loc, cov, z
    )
    torch.testing.assert_close(tempered.log_prob(y) - d.log_prob(y), expected, atol=1e-9, rtol=0)


@pytest.mark.parametrize("bias", [0.0, 0.5, 2.0])
def test_graves_bias_values(bias):
    assert graves_bias(bias) == {
        "pi_temperature": pytest.approx(1 / (1 + bias), rel=1e-15),
        "scale_temperature": pytest.approx(math.exp(-bias), rel=1e-15),
        "scale_mode": "std",
    }


@pytest.mark.parametrize("bias", [0.0, 0.5, 2.0])
def test_graves_bias_matches_graves_formulas(bias):
    """Graves (2013), eqs. 61-62: pi = softmax(pi_hat (1 + b)), sigma = exp(sigma_hat - b)."""
    k, dim = 5, 2
    pi_hat = torch.randn(3, k, dtype=F64)
    sigma_hat = torch.randn(3, k, dim, dtype=F64)  # log standard deviations, as the network emits
    loc = torch.randn(3, k, dim, dtype=F64)
    d = low_rank_mixture(pi_hat, loc, None, torch.exp(2 * sigma_hat), "covariance")
    tempered = temper(d, **graves_bias(bias))

    torch.testing.assert_close(
        tempered.mixture_distribution.probs,
        torch.softmax(pi_hat * (1 + bias), -1),
        atol=1e-12,
        rtol=0,
    )
    scale = tempered.component_distribution.base_dist.scale
    torch.testing.assert_close(scale, torch.exp(sigma_hat - bias), atol=1e-12, rtol=0)


@pytest.mark.parametrize("kind", ["lowrank-covariance", "lowrank-precision"])
def test_graves_bias_on_low_rank_components(kind):
    d, (logits, cov) = _mixture(kind)
    tempered = temper(d, **graves_bias(0.7))
    torch.testing.assert_close(
        tempered.mixture_distribution.probs, torch.softmax(logits * 1.7, -1), atol=1e-12, rtol=0
    )
    comps_cov = _covariance(tempered.component_distribution)
    torch.testing.assert_close(comps_cov, math.exp(-1.4) * cov, atol=1e-10, rtol=0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"pi_temperature": 0.0},
        {"pi_temperature": -1.0},
        {"pi_temperature": math.nan},
        {"scale_temperature": 0.0},
        {"scale_temperature": -0.5},
        {"scale_temperature": math.nan},
        {"pi_temperature": math.inf},
        {"scale_temperature": math.inf},
        {"scale_mode": "log"},
        {"scale_mode": "Variance"},
    ],
    ids=[
        "pi-0",
        "pi-neg",
        "pi-nan",
        "scale-0",
        "scale-neg",
        "scale-nan",
        "pi-inf",
        "scale-inf",
        "mode-log",
        "mode-case",
    ],
)
def test_invalid_arguments_raise(kwargs):
    d, _ = _mixture("lowrank-precision")
    with pytest.raises(ValueError, match="scale_mode" if "scale_mode" in kwargs else "temperature"):
        temper(d, **kwargs)


@pytest.mark.parametrize("bias", [-0.1, -2.0])
def test_negative_bias_raises(bias):
    with pytest.raises(ValueError, match="bias"):
        graves_bias(bias)


def test_unsupported_distribution_is_not_silently_left_untempered():
    """A plain TransformedDistribution is none of the documented inputs: with a scale
    temperature it raises TypeError; with only a weight temperature it must not come back
    unchanged."""
    d, _ = _mixture("lowrank-covariance")
    plain = dist.TransformedDistribution(d, [])
    with pytest.raises(TypeError):
        temper(plain, pi_temperature=0.5, scale_temperature=0.5)
    try:
        tempered = temper(plain, pi_temperature=0.1)
    except (TypeError, ValueError):
        return
    assert tempered is not plain, "pi_temperature=0.1 was silently ignored"
    y = torch.randn(3, *d.batch_shape, *d.event_shape, dtype=F64)
    assert not torch.allclose(tempered.log_prob(y), plain.log_prob(y))


@pytest.mark.parametrize("kind", [*KINDS, "full"])
def test_cold_weights_sample_the_most_likely_component(kind):
    k, dim, num_samples = 4, 3, 4000
    d, _ = _mixture(kind, batch=(), k=k, dim=dim)
    logits = torch.tensor([0.2, 1.0, 0.6, -0.3], dtype=F64)
    means = 20.0 * torch.arange(k, dtype=F64).unsqueeze(-1).expand(k, dim)  # far apart
    comps = d.component_distribution
    comps = _shifted(comps, means - comps.mean)
    d = dist.MixtureSameFamily(dist.Categorical(logits=logits), comps)

    def fraction_of_most_likely(samples):
        nearest = torch.cdist(samples, means).argmin(-1)
        return (nearest == logits.argmax()).double().mean().item()

    # untempered, the most likely component draws about its weight, 0.42
    assert fraction_of_most_likely(d.sample((num_samples,))) < 0.5
    # cold: softmax(logits / 0.01) gives the others < 1e-17
    cold = temper(d, pi_temperature=0.01)
    assert fraction_of_most_likely(cold.sample((num_samples,))) == 1.0


def _shifted(c, shift):
    """Component distribution ``c`` with its means moved by ``shift``."""
    if isinstance(c, LowRankPrecisionMultivariateNormal):
        return LowRankPrecisionMultivariateNormal(c.loc + shift, c.prec_factor, c.prec_diag)
    if isinstance(c, dist.LowRankMultivariateNormal):
        return type(c)(c.loc + shift, c.cov_factor, c.cov_diag)
    if isinstance(c, Independent):
        return dist.Normal(c.base_dist.loc + shift, c.base_dist.scale).to_event(1)
    return dist.MultivariateNormal(c.loc + shift, scale_tril=c.scale_tril)
