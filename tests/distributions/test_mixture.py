"""Gaussian mixtures with diagonal or low-rank-plus-diagonal components vs dense references."""

import math

import numpy as np
import pyro.distributions as dist
import pytest
import scipy.special
import scipy.stats
import torch
from pyro.distributions.testing.gof import auto_goodness_of_fit
from torch.distributions import MultivariateNormal
from torch.testing import assert_close

from pyro_frmdn.distributions import (
    PARAMETERIZATIONS,
    LowRankCovarianceMultivariateNormal,
    LowRankMixture,
    LowRankPrecisionMultivariateNormal,
    components,
    low_rank_mixture,
    positive,
)

F64 = torch.float64
BATCH_SHAPES = [(), (3,), (2, 3)]
COMPONENT_CLASSES = {
    "covariance": LowRankCovarianceMultivariateNormal,
    "precision": LowRankPrecisionMultivariateNormal,
}
# Pyro's convention (pyro.distributions.testing.gof): smaller than 1 / number of gof tests.
TEST_FAILURE_RATE = 1e-2


def make_params(batch, k, d, r, dtype=F64):
    """Mixture arguments; ``r = 0`` gives ``factor=None``."""
    logits = torch.randn(batch + (k,), dtype=dtype)
    loc = 2 * torch.randn(batch + (k, d), dtype=dtype)
    factor = torch.randn(batch + (k, d, r), dtype=dtype) if r else None
    diag = torch.rand(batch + (k, d), dtype=dtype) + 0.5
    return logits, loc, factor, diag


def dense_matrix(factor, diag):
    matrix = torch.diag_embed(diag)
    return matrix if factor is None else matrix + factor @ factor.mT


def dense_mixture_log_prob(logits, loc, factor, diag, parameterization, value):
    """log Σ_k softmax(logits)_k N(value; loc_k, Σ_k) with dense float64 components."""
    matrix = dense_matrix(factor, diag)
    if parameterization == "precision":
        comps = MultivariateNormal(loc, precision_matrix=matrix)
    else:
        comps = MultivariateNormal(loc, covariance_matrix=matrix)
    return torch.logsumexp(
        torch.log_softmax(logits, -1) + comps.log_prob(value.unsqueeze(-2)), dim=-1
    )


def scipy_mixture_log_prob(logits, loc, factor, diag, parameterization, value):
    matrix = dense_matrix(factor, diag).numpy()
    cov = np.linalg.inv(matrix) if parameterization == "precision" else matrix
    k, d = loc.shape[-2:]
    batch = np.broadcast_shapes(value.shape[:-1], logits.shape[:-1], loc.shape[:-2])
    log_w = np.broadcast_to(scipy.special.log_softmax(logits.numpy(), -1), batch + (k,))
    x = np.broadcast_to(value.numpy(), batch + (d,))
    mu = np.broadcast_to(loc.numpy(), batch + (k, d))
    cov = np.broadcast_to(cov, batch + (k, d, d))
    out = np.empty(batch)
    for idx in np.ndindex(*batch):
        terms = [
            log_w[idx][j] + scipy.stats.multivariate_normal.logpdf(x[idx], mu[idx][j], cov[idx][j])
            for j in range(k)
        ]
        out[idx] = scipy.special.logsumexp(terms)
    return torch.from_numpy(out)


def grads_of(fn, tensors, weights):
    leaves = [t.detach().clone().requires_grad_() for t in tensors]
    out = fn(*leaves)
    return out.detach(), torch.autograd.grad((out * weights).sum(), leaves)


# ----------------------------------------------------------------------------------------------
# log_prob, float64


@pytest.mark.parametrize("r", [0, 1, 2])
@pytest.mark.parametrize("d", [1, 4])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("batch", BATCH_SHAPES, ids=str)
@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
def test_log_prob_matches_dense_and_scipy(parameterization, batch, k, d, r):
    params = make_params(batch, k, d, r)
    mixture = low_rank_mixture(*params, parameterization=parameterization)
    assert mixture.batch_shape == batch
    assert mixture.event_shape == (d,)
    value = torch.randn((5,) + batch + (d,), dtype=F64)
    lp = mixture.log_prob(value)
    assert lp.shape == (5,) + batch
    assert_close(
        lp, dense_mixture_log_prob(*params, parameterization, value), rtol=1e-10, atol=1e-10
    )
    assert_close(lp, scipy_mixture_log_prob(*params, parameterization, value), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("r", [0, 2])
@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
def test_log_prob_grads_match_dense(parameterization, r):
    logits, loc, factor, diag = make_params((2, 3), 3, 4, r)
    value = torch.randn(5, 2, 3, 4, dtype=F64)
    weights = torch.randn(5, 2, 3, dtype=F64)
    tensors = [t for t in (logits, loc, factor, diag, value) if t is not None]

    def unpack(ts):
        return (ts[0], ts[1], ts[2], ts[3], ts[4]) if r else (ts[0], ts[1], None, ts[2], ts[3])

    def mixture_lp(*ts):
        a, m, w, s, x = unpack(ts)
        return low_rank_mixture(a, m, w, s, parameterization=parameterization).log_prob(x)

    def dense_lp(*ts):
        a, m, w, s, x = unpack(ts)
        return dense_mixture_log_prob(a, m, w, s, parameterization, x)

    lp, grads = grads_of(mixture_lp, tensors, weights)
    ref_lp, ref_grads = grads_of(dense_lp, tensors, weights)
    assert_close(lp, ref_lp, rtol=1e-10, atol=1e-10)
    for g, ref in zip(grads, ref_grads, strict=True):
        assert_close(g, ref, rtol=1e-8, atol=1e-10)


# (logits, loc, factor, diag) shapes with K = 3, D = 4, r = 2 and the mixture's batch shape.
BROADCAST_SHAPES = [
    (((5, 3), (5, 3, 4), (3, 4, 2), (3, 4)), (5,)),
    (((3,), (5, 3, 4), (3, 4, 2), (5, 3, 4)), (5,)),
    (((2, 1, 3), (4, 3, 4), (3, 4, 2), (3, 4)), (2, 4)),
    (((2, 3), (3, 4), (2, 3, 4, 2), (1, 3, 4)), (2,)),
]


@pytest.mark.parametrize("shapes, batch", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
def test_shared_parameters_broadcast(parameterization, shapes, batch):
    logits_s, loc_s, factor_s, diag_s = shapes
    tensors = (
        torch.randn(logits_s, dtype=F64),
        torch.randn(loc_s, dtype=F64),
        torch.randn(factor_s, dtype=F64),
        torch.rand(diag_s, dtype=F64) + 0.5,
        torch.randn((6,) + batch + (4,), dtype=F64),
    )
    weights = torch.randn((6,) + batch, dtype=F64)
    mixture = low_rank_mixture(*tensors[:4], parameterization=parameterization)
    assert mixture.batch_shape == batch
    assert mixture.event_shape == (4,)
    assert mixture.component_distribution.batch_shape == batch + (3,)
    assert mixture.sample((2,)).shape == (2,) + batch + (4,)

    lp, grads = grads_of(
        lambda a, m, w, s, x: low_rank_mixture(a, m, w, s, parameterization).log_prob(x),
        tensors,
        weights,
    )
    ref_lp, ref_grads = grads_of(
        lambda a, m, w, s, x: dense_mixture_log_prob(a, m, w, s, parameterization, x),
        tensors,
        weights,
    )
    assert_close(lp, ref_lp, rtol=1e-10, atol=1e-10)
    for t, g, ref in zip(tensors, grads, ref_grads, strict=True):
        assert g.shape == t.shape
        assert_close(g, ref, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
def test_rank_zero_factor_is_diagonal(parameterization):
    logits, loc, _, diag = make_params((2,), 3, 4, 0)
    value = torch.randn(5, 2, 4, dtype=F64)
    empty = torch.zeros(2, 3, 4, 0, dtype=F64)
    diagonal = low_rank_mixture(logits, loc, None, diag, parameterization)
    assert_close(
        low_rank_mixture(logits, loc, empty, diag, parameterization).log_prob(value),
        diagonal.log_prob(value),
    )
    comps = diagonal.component_distribution
    expected_var = diag if parameterization == "covariance" else diag.reciprocal()
    assert_close(comps.variance, expected_var)


# ----------------------------------------------------------------------------------------------
# Shapes and the TorchDistribution interface


@pytest.mark.parametrize("r", [0, 2])
@pytest.mark.parametrize("batch", BATCH_SHAPES, ids=str)
@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
def test_components_and_shapes(parameterization, batch, r):
    k, d = 3, 4
    logits, loc, factor, diag = make_params(batch, k, d, r)
    comps = components(loc, factor, diag, parameterization)
    if r:
        assert type(comps) is COMPONENT_CLASSES[parameterization]
    else:
        assert isinstance(comps, dist.Independent)
        assert isinstance(comps.base_dist, dist.Normal)
    assert comps.batch_shape == batch + (k,)
    assert comps.event_shape == (d,)

    mixture = low_rank_mixture(logits, loc, factor, diag, parameterization=parameterization)
    assert isinstance(mixture, dist.MixtureSameFamily)
    assert mixture.batch_shape == batch
    assert mixture.event_shape == (d,)
    assert mixture.sample().shape == batch + (d,)
    assert mixture.sample((7, 2)).shape == (7, 2) + batch + (d,)
    assert_close(mixture.mixture_distribution.logits, torch.log_softmax(logits, -1))

    value = torch.randn((2,) + batch + (d,), dtype=F64)
    if batch:
        mask = torch.rand(batch) < 0.5
        assert_close(
            mixture.mask(mask).log_prob(value), torch.where(mask, mixture.log_prob(value), 0.0)
        )
        independent = mixture.to_event(len(batch))
        assert independent.batch_shape == ()
        assert independent.event_shape == batch + (d,)
        assert_close(independent.log_prob(value), mixture.log_prob(value).flatten(1).sum(-1))
    expanded = mixture.expand((5,) + batch)
    assert expanded.batch_shape == (5,) + batch
    assert_close(expanded.log_prob(value[:1]), mixture.log_prob(value[:1]).expand((5,) + batch))


# ----------------------------------------------------------------------------------------------
# Sampling


def mixture_box(mixture, width=3.5):
    """A box holding all but a sliver of every component's mass, from the parameters alone."""
    comps = mixture.component_distribution
    half = width * comps.variance.sqrt()
    return (comps.mean - half).min(-2).values, (comps.mean + half).max(-2).values


def mixture_goodness_of_fit(samples, mixture, binned_goodness_of_fit):
    if samples.shape[-1] == 1:
        return auto_goodness_of_fit(samples, mixture.log_prob(samples).exp())
    lo, hi = mixture_box(mixture)
    return binned_goodness_of_fit(samples, mixture.log_prob, lo, hi, cells=12)


@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("r", [0, 2])
@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
def test_sample_goodness_of_fit(parameterization, r, d, binned_goodness_of_fit):
    mixture = low_rank_mixture(*make_params((), 3, d, r), parameterization=parameterization)
    samples = mixture.sample((20_000,))
    assert mixture_goodness_of_fit(samples, mixture, binned_goodness_of_fit) > TEST_FAILURE_RATE


@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
def test_goodness_of_fit_rejects_wrong_weights(parameterization, d, binned_goodness_of_fit):
    logits, loc, factor, diag = make_params((), 3, d, 2)
    logits = torch.tensor([1.0, 0.0, -1.0], dtype=F64)
    samples = low_rank_mixture(logits, loc, factor, diag, parameterization).sample((20_000,))
    wrong = low_rank_mixture(logits.flip(0), loc, factor, diag, parameterization)
    assert mixture_goodness_of_fit(samples, wrong, binned_goodness_of_fit) < TEST_FAILURE_RATE


# ----------------------------------------------------------------------------------------------
# positive()


def test_positive():
    x = torch.linspace(-20, 20, 101, dtype=F64, requires_grad=True)
    y = positive(x)
    assert_close(y, torch.log1p(torch.exp(x)) + 1e-4)
    assert_close(positive(x, floor=0.5), torch.log1p(torch.exp(x)) + 0.5)
    assert (y > 1e-4).all()
    (g,) = torch.autograd.grad(y.sum(), x)
    assert_close(g, torch.sigmoid(x))
    extreme = torch.tensor([-1e4, -100.0, 100.0, 1e4], requires_grad=True)
    y = positive(extreme)
    assert_close(y, torch.tensor([1e-4, 1e-4, 100.0, 1e4]))
    (g,) = torch.autograd.grad(y.sum(), extreme)
    assert torch.isfinite(g).all()
    assert_close(g, torch.tensor([0.0, 0.0, 1.0, 1.0]))


# ----------------------------------------------------------------------------------------------
# float32 at the edges of the parameter range


EXTREME_LOGITS = [1e4, -1e4, -1e30]


def extreme_params(r, value_scale, k=3, d=4, n=6):
    """float32 mixture arguments at the edges of the range, and values far from the means."""
    logits = torch.tensor(EXTREME_LOGITS).expand(n, k).clone()
    loc = 2 * torch.rand(n, k, d) - 1
    factor = 10 * (2 * torch.rand(n, k, d, r) - 1) if r else None
    diag = 10 ** (8 * torch.rand(n, k, d) - 4)  # log-uniform in [1e-4, 1e4]
    value = value_scale * (2 * torch.rand(n, d) - 1)
    return (logits, loc, factor, diag), value


@pytest.mark.parametrize("value_scale", [1.0, 1e3])
@pytest.mark.parametrize("r", [0, 2])
@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
def test_float32_extremes_finite(parameterization, r, value_scale):
    params, value = extreme_params(r, value_scale)
    leaves = [t.requires_grad_() for t in params if t is not None]
    lp = low_rank_mixture(*params, parameterization=parameterization).log_prob(value)
    assert lp.dtype == torch.float32
    assert torch.isfinite(lp).all(), lp
    for g in torch.autograd.grad(lp.sum(), leaves):
        assert torch.isfinite(g).all()


@pytest.mark.parametrize("value_scale", [1.0, 1e3])
@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
def test_float32_extremes_accuracy(parameterization, value_scale):
    params, value = extreme_params(2, value_scale)
    lp = low_rank_mixture(*params, parameterization=parameterization).log_prob(value).double()
    ref = dense_mixture_log_prob(*(t.double() for t in params), parameterization, value.double())
    if parameterization == "precision":
        # The precision form's log-density adds terms of one sign: no cancellation.
        assert_close(lp, ref, rtol=1e-5, atol=1e-3)
    else:
        # The covariance form subtracts the Woodbury correction from eᵀ diag⁻¹ e: compare the
        # error with that of Pyro's own LowRankMultivariateNormal on the same float32 inputs.
        # Row by row the two rounding errors are not comparable (on seed 0 row 1 is off by 0.11
        # nats in Pyro's and by 4.1 in ours, row 0 by 5.3 in both, of |log p| ~ 3e4): the worst
        # row of ours must stay within 10x the worst row of Pyro's.
        logits, loc, factor, diag = params
        control = dist.MixtureSameFamily(
            dist.Categorical(logits=logits), dist.LowRankMultivariateNormal(loc, factor, diag)
        ).log_prob(value)
        control_err = (control.double() - ref).abs()
        assert (lp - ref).abs().max() <= 10 * control_err.max() + 1e-3, (lp - ref, control_err)


@pytest.mark.parametrize("r", [0, 2])
@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
def test_float32_extreme_logits_select_one_component(parameterization, r):
    logits = torch.tensor(EXTREME_LOGITS, requires_grad=True)
    _, loc, factor, diag = make_params((), 3, 2, r, dtype=torch.float32)
    value = torch.randn(10, 2)
    mixture = low_rank_mixture(logits, loc, factor, diag, parameterization=parameterization)
    lp = mixture.log_prob(value)
    first = mixture.component_distribution.log_prob(value.unsqueeze(-2))[..., 0]
    assert_close(lp, first)
    # d log p / d logits = responsibilities - weights = 0 when one weight is 1 (to float32).
    (g,) = torch.autograd.grad(lp.sum(), logits)
    assert torch.isfinite(g).all()
    assert_close(g, torch.zeros(3))


# ----------------------------------------------------------------------------------------------
# Bad arguments


def test_unknown_parameterization_raises():
    logits, loc, factor, diag = make_params((), 3, 4, 2)
    with pytest.raises(ValueError, match="parameterization must be one of"):
        low_rank_mixture(logits, loc, factor, diag, parameterization="cholesky")
    with pytest.raises(ValueError, match="parameterization must be one of"):
        components(loc, None, diag, parameterization="Precision")


# (logits, loc, factor, diag) shapes with K = 3, D = 4; None for factor=None.
BAD_SHAPES = [
    (((), (3, 4), (3, 4, 2), (3, 4)), "logits must have shape"),
    (((3,), (2, 4), (3, 4, 2), (3, 4)), "loc must have shape"),
    (((3,), (4,), (3, 4, 2), (3, 4)), "loc must have shape"),
    (((3,), (3, 4), (3, 4, 2), (2, 4)), "diag must have shape"),
    (((3,), (3, 4), (3, 4, 2), (4,)), "diag must have shape"),
    (((3,), (3, 4), (2, 4, 2), (3, 4)), "factor must have shape"),
    (((3,), (3, 4), (4, 2), (3, 4)), "factor must have shape"),
    (((3,), (3, 4), (3, 5, 2), (3, 4)), "factor must have shape"),
    (((3,), (3, 4), (3, 4, 2), (3, 5)), "diag must have shape"),
    (((3,), (3, 4), None, (3, 5)), "diag must have shape"),
    (((2, 3), (4, 3, 4), (3, 4, 2), (3, 4)), "does not broadcast"),
    (((2, 3), (4, 3, 4), None, (3, 4)), "does not broadcast"),
    (((3,), (2, 3, 4), (5, 3, 4, 2), (3, 4)), "incompatible batch shapes"),
]


@pytest.mark.parametrize("shapes, match", BAD_SHAPES, ids=str)
@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
def test_bad_shapes_raise(parameterization, shapes, match):
    logits_s, loc_s, factor_s, diag_s = shapes
    factor = None if factor_s is None else torch.ones(factor_s)
    with pytest.raises(ValueError, match=match):
        low_rank_mixture(
            torch.zeros(logits_s), torch.zeros(loc_s), factor, torch.ones(diag_s), parameterization
        )


@pytest.mark.parametrize("bad", [0.0, -1.0])
@pytest.mark.parametrize("r", [0, 2])
@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
def test_non_positive_diag_raises(parameterization, r, bad):
    logits, loc, factor, diag = make_params((), 3, 4, r)
    diag[1, 2] = bad
    # diagonal components check at construction, low-rank ones when first used (log_prob checks
    # inside its one pass over the arguments)
    with pytest.raises(ValueError, match=r"diag|scale"):
        d = low_rank_mixture(logits, loc, factor, diag, parameterization=parameterization)
        d.log_prob(torch.zeros(4, dtype=loc.dtype))


def test_non_finite_logits_raise():
    _, loc, factor, diag = make_params((), 3, 4, 2)
    logits = torch.tensor([0.0, math.nan, 1.0], dtype=F64)
    with pytest.raises(ValueError, match="logits"):
        low_rank_mixture(logits, loc, factor, diag)


@pytest.mark.parametrize("r", [0, 2])
@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
def test_log_prob_equals_pyros_mixture_of_the_same_components(parameterization, r):
    # LowRankMixture scores without the second check of the value and without normalising the
    # logits again: the numbers are Pyro's MixtureSameFamily's, for finite values and for values
    # with infinite entries (which Pyro's support check lets through)
    logits, loc, factor, diag = make_params((2, 3), 4, 5, r)
    d = low_rank_mixture(logits, loc, factor, diag, parameterization=parameterization)
    assert isinstance(d, LowRankMixture) and isinstance(d, dist.MixtureSameFamily)
    pyros = dist.MixtureSameFamily(d.mixture_distribution, d.component_distribution)
    value = torch.randn(7, 2, 3, 5, dtype=F64)
    value[0, 0, 0, 1] = math.inf
    value[1, 0, 1, 2], value[1, 0, 1, 3] = math.inf, -math.inf
    expected = pyros.log_prob(value)
    assert torch.isneginf(expected[:2]).any()
    assert_close(d.log_prob(value), expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("r", [0, 2])
def test_nan_or_misshapen_value_raises_as_pyro_does(r):
    logits, loc, factor, diag = make_params((3,), 4, 5, r)
    d = low_rank_mixture(logits, loc, factor, diag)
    value = torch.randn(3, 5, dtype=F64)
    value[2, 1] = math.nan
    with pytest.raises(ValueError, match="support"):
        d.log_prob(value)
    with pytest.raises(ValueError, match="event_shape"):
        d.log_prob(torch.zeros(3, 4, dtype=F64))
    with pytest.raises(ValueError, match="broadcastable"):
        d.log_prob(torch.zeros(2, 5, dtype=F64))
    quiet = low_rank_mixture(logits, loc, factor, diag)
    quiet._validate_args = False
    quiet.component_distribution._validate_args = False
    assert torch.isnan(quiet.log_prob(value)[2]) and torch.isfinite(quiet.log_prob(value)[:2]).all()
