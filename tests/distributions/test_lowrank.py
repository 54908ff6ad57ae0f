"""Low-rank-plus-diagonal Gaussians and their fused log-density kernel, against dense references."""

import math
import multiprocessing
import sys

import numpy as np
import pyro.distributions as dist
import pytest
import scipy.stats
import torch
from pyro.distributions.testing.gof import auto_goodness_of_fit
from torch.distributions import MultivariateNormal
from torch.testing import assert_close

from pyro_frmdn.distributions import (
    LowRankCovarianceMultivariateNormal,
    LowRankPrecisionMultivariateNormal,
    _lowrank,
    _lowrank_cpu,
)
from pyro_frmdn.distributions._lowrank import lowrank_gaussian_log_prob, use_kernel
from pyro_frmdn.distributions._lowrank_cpu import AVAILABLE as COMPILED

F64 = torch.float64
FORMS = ("precision", "covariance")
CLASSES = {
    "precision": LowRankPrecisionMultivariateNormal,
    "covariance": LowRankCovarianceMultivariateNormal,
}
PREFIX = {"precision": "prec", "covariance": "cov"}
# both implementations of the kernel, each against the same references
KERNEL_NAMES = ["torch"] + (["compiled"] if COMPILED else [])
BATCH_SHAPES = [(), (3,), (2, 3)]
# Pyro's convention (pyro.distributions.testing.gof): smaller than 1 / number of gof tests.
TEST_FAILURE_RATE = 1e-2
# Monte Carlo checks accept a deviation of this many standard errors.
Z_SCORE = 5.0


def make_params(batch, d, r, dtype=F64):
    loc = torch.randn(batch + (d,), dtype=dtype)
    factor = torch.randn(batch + (d, r), dtype=dtype)
    diag = torch.rand(batch + (d,), dtype=dtype) + 0.5
    return loc, factor, diag


def dense_mvn(form, loc, factor, diag):
    matrix = factor @ factor.mT + torch.diag_embed(diag)
    if form == "precision":
        return MultivariateNormal(loc, precision_matrix=matrix)
    return MultivariateNormal(loc, covariance_matrix=matrix)


def scipy_covariance(form, factor, diag):
    matrix = (factor @ factor.mT + torch.diag_embed(diag)).detach().numpy()
    return np.linalg.inv(matrix) if form == "precision" else matrix


def scipy_log_prob(form, loc, factor, diag, value):
    cov = scipy_covariance(form, factor, diag)
    loc, value = loc.detach().numpy(), value.detach().numpy()
    d = loc.shape[-1]
    batch = np.broadcast_shapes(value.shape[:-1], loc.shape[:-1], cov.shape[:-2])
    x = np.broadcast_to(value, batch + (d,))
    mu = np.broadcast_to(loc, batch + (d,))
    cov = np.broadcast_to(cov, batch + (d, d))
    out = np.empty(batch)
    for idx in np.ndindex(*batch):
        out[idx] = scipy.stats.multivariate_normal.logpdf(x[idx], mu[idx], cov[idx])
    return torch.from_numpy(out)


def grads_of(fn, tensors, weights=None):
    """Gradients of ``sum(weights * fn(*tensors))`` with respect to fresh copies of ``tensors``."""
    leaves = [t.detach().clone().requires_grad_() for t in tensors]
    out = fn(*leaves)
    if weights is not None:
        out = out * weights
    return out.detach(), torch.autograd.grad(out.sum(), leaves)


def finite_difference_grads(fn, tensors, h=1e-6):
    """Central differences of the scalar ``fn(*tensors)``, one element at a time."""
    tensors = [t.detach().clone() for t in tensors]
    grads = []
    for t in tensors:
        g = torch.zeros_like(t)
        flat, gflat = t.view(-1), g.view(-1)
        for i in range(flat.numel()):
            orig = flat[i].item()
            flat[i] = orig + h
            up = fn(*tensors).item()
            flat[i] = orig - h
            down = fn(*tensors).item()
            flat[i] = orig
            gflat[i] = (up - down) / (2 * h)
        grads.append(g)
    return grads


# ----------------------------------------------------------------------------------------------
# log_prob and the closed-form properties, float64


@pytest.mark.parametrize("r", [1, 3])
@pytest.mark.parametrize("d", [1, 2, 7])
@pytest.mark.parametrize("batch", BATCH_SHAPES, ids=str)
@pytest.mark.parametrize("form", FORMS)
def test_log_prob_matches_dense_and_scipy(form, batch, d, r):
    loc, factor, diag = make_params(batch, d, r)
    mvn = CLASSES[form](loc, factor, diag)
    ref = dense_mvn(form, loc, factor, diag)
    assert mvn.batch_shape == batch
    assert mvn.event_shape == (d,)
    full = torch.randn((5,) + batch + (d,), dtype=F64)
    broadcasting = torch.randn((5,) + (1,) * len(batch) + (d,), dtype=F64)
    for value in (full, broadcasting):
        lp = mvn.log_prob(value)
        assert lp.shape == (5,) + batch
        assert_close(lp, ref.log_prob(value), rtol=1e-10, atol=1e-10)
        assert_close(lp, scipy_log_prob(form, loc, factor, diag, value), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("r", [1, 3])
@pytest.mark.parametrize("d", [1, 2, 7])
@pytest.mark.parametrize("batch", BATCH_SHAPES, ids=str)
@pytest.mark.parametrize("form", FORMS)
def test_properties_match_dense_and_scipy(form, batch, d, r):
    loc, factor, diag = make_params(batch, d, r)
    mvn = CLASSES[form](loc, factor, diag)
    ref = dense_mvn(form, loc, factor, diag)
    assert_close(mvn.mean, loc, rtol=0, atol=0)
    assert_close(mvn.variance, ref.variance, rtol=1e-10, atol=1e-12)
    assert_close(mvn.covariance_matrix, ref.covariance_matrix, rtol=1e-10, atol=1e-12)
    assert_close(mvn.precision_matrix, ref.precision_matrix, rtol=1e-10, atol=1e-10)
    assert_close(mvn.entropy(), ref.entropy(), rtol=1e-10, atol=1e-10)
    assert mvn.entropy().shape == batch
    cov = np.broadcast_to(scipy_covariance(form, factor, diag), batch + (d, d))
    mu = loc.numpy()
    expected = np.empty(batch)
    for idx in np.ndindex(*batch):
        expected[idx] = scipy.stats.multivariate_normal(mu[idx], cov[idx]).entropy()
    assert_close(mvn.entropy(), torch.from_numpy(expected), rtol=1e-9, atol=1e-9)
    assert_close(mvn.covariance_matrix, torch.from_numpy(cov.copy()), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("form", FORMS)
def test_broadcast_parameters(form):
    d, r = 4, 2
    loc = torch.randn(2, 3, d, dtype=F64)
    factor = torch.randn(d, r, dtype=F64)
    diag = torch.rand(3, d, dtype=F64) + 0.5
    mvn = CLASSES[form](loc, factor, diag)
    ref = dense_mvn(form, loc, factor, diag)
    assert mvn.batch_shape == (2, 3)
    assert mvn.event_shape == (d,)
    assert mvn.variance.shape == (2, 3, d)
    assert mvn.covariance_matrix.shape == (2, 3, d, d)
    assert mvn.precision_matrix.shape == (2, 3, d, d)
    assert mvn.entropy().shape == (2, 3)
    assert mvn.rsample((4,)).shape == (4, 2, 3, d)
    assert_close(mvn.covariance_matrix, ref.covariance_matrix.expand(2, 3, d, d))
    assert_close(mvn.entropy(), ref.entropy().expand(2, 3))
    value = torch.randn(5, 1, 1, d, dtype=F64)
    assert_close(mvn.log_prob(value), ref.log_prob(value), rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------------------------
# Gradients of log_prob: the hand-written backward of the fused kernel


@pytest.mark.parametrize("r", [1, 3])
@pytest.mark.parametrize("d", [1, 2, 7])
@pytest.mark.parametrize("batch", BATCH_SHAPES, ids=str)
@pytest.mark.parametrize("form", FORMS)
def test_log_prob_grads_match_dense(form, batch, d, r):
    tensors = (*make_params(batch, d, r), torch.randn((4,) + batch + (d,), dtype=F64))
    weights = torch.randn((4,) + batch, dtype=F64)
    lp, grads = grads_of(lambda m, w, s, x: CLASSES[form](m, w, s).log_prob(x), tensors, weights)
    ref_lp, ref_grads = grads_of(
        lambda m, w, s, x: dense_mvn(form, m, w, s).log_prob(x), tensors, weights
    )
    assert_close(lp, ref_lp, rtol=1e-10, atol=1e-10)
    for name, g, ref in zip(("loc", "factor", "diag", "value"), grads, ref_grads, strict=True):
        assert g.shape == ref.shape, name
        assert_close(g, ref, rtol=1e-8, atol=1e-10, msg=lambda m, name=name: f"{name}: {m}")


# (loc, factor, diag, value) shapes with D = 4, r = 2: parameters shared over some batch dims.
BROADCAST_SHAPES = [
    ((3, 4), (4, 2), (4,), (2, 3, 4)),
    ((4,), (3, 4, 2), (1, 4), (2, 1, 4)),
    ((2, 1, 4), (1, 3, 4, 2), (3, 4), (5, 1, 1, 4)),
    ((1, 4), (2, 1, 4, 2), (2, 3, 4), (4,)),
]


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize("form", FORMS)
def test_log_prob_grads_sum_over_broadcast_dims(form, shapes):
    loc_s, factor_s, diag_s, value_s = shapes
    tensors = (
        torch.randn(loc_s, dtype=F64),
        torch.randn(factor_s, dtype=F64),
        torch.rand(diag_s, dtype=F64) + 0.5,
        torch.randn(value_s, dtype=F64),
    )
    out_shape = torch.broadcast_shapes(loc_s[:-1], factor_s[:-2], diag_s[:-1], value_s[:-1])
    weights = torch.randn(out_shape, dtype=F64)
    lp, grads = grads_of(lambda m, w, s, x: CLASSES[form](m, w, s).log_prob(x), tensors, weights)
    ref_lp, ref_grads = grads_of(
        lambda m, w, s, x: dense_mvn(form, m, w, s).log_prob(x), tensors, weights
    )
    assert lp.shape == out_shape
    assert_close(lp, ref_lp, rtol=1e-10, atol=1e-10)
    for t, g, ref in zip(tensors, grads, ref_grads, strict=True):
        assert g.shape == t.shape
        assert_close(g, ref, rtol=1e-8, atol=1e-10)


# (diff, factor, diag) shapes for the kernel itself.
KERNEL_SHAPES = [
    ((2, 3, 4), (3, 4, 2), (3, 4)),
    ((2, 3, 4), (3, 4, 2), (4,)),
    ((3, 4), (2, 3, 4, 1), (2, 1, 4)),
    ((2, 1, 4), (1, 3, 4, 3), (1, 1, 4)),
    ((5, 1), (1, 2), (1,)),
]


@pytest.fixture(params=KERNEL_NAMES)
def kernel(request):
    with use_kernel(request.param):
        yield request.param


def kernel_inputs(shapes):
    diff_s, factor_s, diag_s = shapes
    return (
        torch.randn(diff_s, dtype=F64, requires_grad=True),
        torch.randn(factor_s, dtype=F64, requires_grad=True),
        (torch.rand(diag_s, dtype=F64) + 0.5).requires_grad_(),
    )


@pytest.mark.parametrize("precision", [True, False])
@pytest.mark.parametrize("shapes", KERNEL_SHAPES, ids=str)
def test_kernel_gradcheck(shapes, precision, kernel):
    inputs = kernel_inputs(shapes)
    assert torch.autograd.gradcheck(
        lambda e, w, s: lowrank_gaussian_log_prob(e, w, s, precision), inputs
    )


@pytest.mark.parametrize("precision", [True, False])
@pytest.mark.parametrize("shapes", KERNEL_SHAPES, ids=str)
def test_kernel_matches_dense(shapes, precision, kernel):
    diff, factor, diag = (t.detach() for t in kernel_inputs(shapes))
    form = "precision" if precision else "covariance"
    zero = torch.zeros(diff.shape[-1], dtype=F64)
    out = lowrank_gaussian_log_prob(diff, factor, diag, precision)
    ref = dense_mvn(form, zero, factor, diag).log_prob(diff)
    assert out.shape == ref.shape
    assert_close(out, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("precision", [True, False])
def test_kernel_only_requested_grads(precision, kernel):
    diff, factor, diag = kernel_inputs(((3, 4), (4, 2), (4,)))
    factor.requires_grad_(False)
    lp = lowrank_gaussian_log_prob(diff, factor, diag, precision)
    g_diff, g_diag = torch.autograd.grad(lp.sum(), (diff, diag))
    assert factor.grad is None
    ref = grads_of(lambda e, s: lowrank_gaussian_log_prob(e, factor, s, precision), (diff, diag))[1]
    assert_close(g_diff, ref[0])
    assert_close(g_diag, ref[1])


@pytest.mark.parametrize("chunk", [64, 16], ids=["3_rows_per_chunk", "1_row_per_chunk"])
@pytest.mark.parametrize("precision", [True, False])
def test_chunked_kernel_matches_one_chunk(monkeypatch, precision, chunk):
    monkeypatch.setattr(_lowrank, "_kernel", "torch")
    d, r = 7, 3
    tensors = (
        torch.randn(5, 4, d, dtype=F64),
        torch.randn(4, d, r, dtype=F64),
        torch.rand(5, 1, d, dtype=F64) + 0.5,
    )
    weights = torch.randn(5, 4, dtype=F64)

    def run():
        return grads_of(
            lambda e, w, s: lowrank_gaussian_log_prob(e, w, s, precision), tensors, weights
        )

    monkeypatch.setattr(_lowrank, "_CHUNK_ELEMENTS", 1 << 40)
    ref_lp, ref_grads = run()
    monkeypatch.setattr(_lowrank, "_CHUNK_ELEMENTS", chunk)
    lp, grads = run()
    assert_close(lp, ref_lp, rtol=1e-13, atol=1e-13)
    for g, ref in zip(grads, ref_grads, strict=True):
        assert_close(g, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("form", FORMS)
def test_default_chunking_spans_several_chunks(form, kernel):
    d, r = 64, 4
    rows_per_chunk = _lowrank._CHUNK_ELEMENTS // (d * r)
    n = 2 * rows_per_chunk + 452
    assert n > 2 * rows_per_chunk
    tensors = (
        torch.randn(d, dtype=F64),
        0.3 * torch.randn(d, r, dtype=F64),
        torch.rand(d, dtype=F64) + 0.5,
        torch.randn(n, d, dtype=F64),
    )
    weights = torch.randn(n, dtype=F64)
    lp, grads = grads_of(lambda m, w, s, x: CLASSES[form](m, w, s).log_prob(x), tensors, weights)
    ref_lp, ref_grads = grads_of(
        lambda m, w, s, x: dense_mvn(form, m, w, s).log_prob(x), tensors, weights
    )
    assert_close(lp, ref_lp, rtol=1e-10, atol=1e-10)
    for g, ref in zip(grads, ref_grads, strict=True):
        assert_close(g, ref, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("precision", [True, False])
def test_kernel_empty_batch(precision, kernel):
    diff, factor, diag = kernel_inputs(((0, 3), (3, 2), (3,)))
    lp = lowrank_gaussian_log_prob(diff, factor, diag, precision)
    assert lp.shape == (0,)
    g_diff, g_factor, g_diag = torch.autograd.grad(lp.sum(), (diff, factor, diag))
    assert g_diff.shape == (0, 3)
    assert_close(g_factor, torch.zeros(3, 2, dtype=F64))
    assert_close(g_diag, torch.zeros(3, dtype=F64))


@pytest.mark.parametrize("precision", [True, False])
def test_kernel_loc_broadcast_and_layouts(precision, kernel):
    # the mixture's case: one value per point read by K components (a zero stride), a factor
    # shared by every point (zero strides), a factor whose rank axis is outermost in memory (the
    # mixture head's layout); values and gradients against dense float64 densities
    b, k, d, r = 3, 4, 6, 2
    value = torch.randn(b, 1, d, dtype=F64, requires_grad=True)
    loc = torch.randn(b, k, d, dtype=F64, requires_grad=True)
    shared = torch.randn(k, d, r, dtype=F64, requires_grad=True)
    head = torch.randn(b, k, r, d, dtype=F64).mT.requires_grad_()  # (b, k, d, r), rank outermost
    diag = (torch.rand(b, k, d, dtype=F64) + 0.5).requires_grad_()
    form = "precision" if precision else "covariance"
    weights = torch.randn(b, k, dtype=F64)
    for factor in (shared, head):
        tensors = (value, loc, factor, diag)
        lp, grads = grads_of(
            lambda x, m, w, s: lowrank_gaussian_log_prob(x, w, s, precision, loc=m),
            tensors,
            weights,
        )
        ref_lp, ref_grads = grads_of(
            lambda x, m, w, s: dense_mvn(form, m, w, s).log_prob(x), tensors, weights
        )
        assert_close(lp, ref_lp, rtol=1e-10, atol=1e-10)
        for g, ref in zip(grads, ref_grads, strict=True):
            assert g.shape == ref.shape
            assert_close(g, ref, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("precision", [True, False])
def test_kernel_float32_against_float64(precision, kernel):
    torch.manual_seed(3)
    n, d, r = 200, 32, 4
    args64 = (
        torch.randn(n, d, dtype=F64),
        0.3 * torch.randn(n, d, r, dtype=F64),
        torch.rand(n, d, dtype=F64) + 0.5,
    )
    lp64 = lowrank_gaussian_log_prob(*args64, precision)
    lp32 = lowrank_gaussian_log_prob(*(t.float() for t in args64), precision)
    assert lp32.dtype == torch.float32
    assert ((lp32.double() - lp64).abs() / lp64.abs()).max() < 1e-5


@pytest.mark.parametrize("precision", [True, False])
def test_kernel_infinite_value_has_zero_density(precision, kernel):
    value = torch.tensor([[0.5, math.inf, 0.0], [0.1, 0.2, 0.3]], dtype=F64)
    lp = lowrank_gaussian_log_prob(
        value, torch.zeros(3, 1, dtype=F64), torch.ones(3, dtype=F64), precision
    )
    assert lp[0] == -math.inf and torch.isfinite(lp[1])


@pytest.mark.skipif(not COMPILED, reason="needs numba")
@pytest.mark.parametrize("precision", [True, False])
def test_compiled_kernel_threads_agree(precision):
    # the parallel loops give the serial loops' numbers exactly (each row is one task's)
    torch.manual_seed(4)
    tensors = (
        torch.randn(300, 5, dtype=F64),
        torch.randn(300, 5, 2, dtype=F64),
        torch.rand(300, 5, dtype=F64) + 0.5,
    )
    weights = torch.randn(300, dtype=F64)
    threads = torch.get_num_threads()
    out = {}
    with use_kernel("compiled"):
        for n in (1, 2):
            torch.set_num_threads(n)
            try:
                out[n] = grads_of(
                    lambda e, w, s: lowrank_gaussian_log_prob(e, w, s, precision), tensors, weights
                )
            finally:
                torch.set_num_threads(threads)
    assert torch.equal(out[1][0], out[2][0])
    for a, b in zip(out[1][1], out[2][1], strict=True):
        assert torch.equal(a, b)


def test_use_kernel_refuses_unknown_names():
    with pytest.raises(ValueError, match="kernel must be one of"):
        use_kernel("fast")


# ----------------------------------------------------------------------------------------------
# Sampling


@pytest.mark.parametrize("sample_shape", [(), (5,), (4, 2)], ids=str)
@pytest.mark.parametrize("batch", BATCH_SHAPES, ids=str)
@pytest.mark.parametrize("form", FORMS)
def test_sample_shapes(form, batch, sample_shape):
    params = [t.requires_grad_() for t in make_params(batch, 3, 2)]
    mvn = CLASSES[form](*params)
    z = mvn.rsample(sample_shape)
    assert z.shape == sample_shape + batch + (3,)
    assert z.requires_grad
    s = mvn.sample(sample_shape)
    assert s.shape == sample_shape + batch + (3,)
    assert not s.requires_grad


def check_moments(samples, loc, cov):
    """Sample mean and covariance within ``Z_SCORE`` standard errors of ``loc`` and ``cov``."""
    n = samples.shape[0]
    var = cov.diagonal(dim1=-2, dim2=-1)
    mean = samples.mean(0)
    assert ((mean - loc).abs() < Z_SCORE * (var / n).sqrt()).all(), (mean, loc)
    centered = samples - mean
    sample_cov = torch.einsum("n...i,n...j->...ij", centered, centered) / (n - 1)
    # Var of a Gaussian sample covariance entry: (Σ_ii Σ_jj + Σ_ij²) / n.
    se = ((var.unsqueeze(-1) * var.unsqueeze(-2) + cov.square()) / n).sqrt()
    assert ((sample_cov - cov).abs() < Z_SCORE * se).all(), (sample_cov, cov)


@pytest.mark.parametrize("form", FORMS)
def test_rsample_moments(form):
    loc, factor, diag = make_params((2,), 4, 2)
    samples = CLASSES[form](loc, factor, diag).rsample((200_000,))
    cov = torch.from_numpy(scipy_covariance(form, factor, diag))
    check_moments(samples, loc, cov)


def goodness_of_fit(samples, scorer, binned_goodness_of_fit):
    if samples.shape[-1] == 1:
        return auto_goodness_of_fit(samples, scorer.log_prob(samples).exp())
    half = 3.5 * scorer.variance.sqrt()
    return binned_goodness_of_fit(samples, scorer.log_prob, scorer.loc - half, scorer.loc + half)


@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("form", FORMS)
def test_sample_goodness_of_fit(form, d, binned_goodness_of_fit):
    mvn = CLASSES[form](*make_params((), d, 2))
    samples = mvn.sample((20_000,))
    assert goodness_of_fit(samples, mvn, binned_goodness_of_fit) > TEST_FAILURE_RATE


@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("sampler, scorer", [FORMS, FORMS[::-1]])
def test_goodness_of_fit_rejects_the_other_family(sampler, scorer, d, binned_goodness_of_fit):
    params = make_params((), d, 2)
    samples = CLASSES[sampler](*params).sample((20_000,))
    gof = goodness_of_fit(samples, CLASSES[scorer](*params), binned_goodness_of_fit)
    assert gof < TEST_FAILURE_RATE


def rsample_objective(form, weights, seed=1):
    def f(loc, factor, diag):
        torch.manual_seed(seed)
        z = CLASSES[form](loc, factor, diag).rsample((3,))
        return (weights * z + 0.5 * z.square()).sum()

    return f


@pytest.mark.parametrize("form", FORMS)
def test_rsample_grads_match_finite_differences(form):
    d, r = 3, 2
    tensors = (
        torch.randn(2, d, dtype=F64),
        torch.randn(d, r, dtype=F64),
        torch.rand(2, d, dtype=F64) + 0.5,
    )
    f = rsample_objective(form, torch.randn(3, 2, d, dtype=F64))
    _, grads = grads_of(f, tensors)
    for g, fd in zip(grads, finite_difference_grads(f, tensors), strict=True):
        assert_close(g, fd, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kind", ["zero", "repeated_columns"])
@pytest.mark.parametrize("form", FORMS)
def test_rank_deficient_factor(form, kind):
    d = 4
    loc = torch.randn(d, dtype=F64)
    diag = torch.rand(d, dtype=F64) + 0.5
    if kind == "zero":
        factor = torch.zeros(d, 2, dtype=F64)
    else:
        factor = torch.randn(d, 1, dtype=F64).expand(d, 2).clone()
    value = torch.randn(6, d, dtype=F64)
    tensors = (loc, factor, diag, value)
    lp, grads = grads_of(lambda m, w, s, x: CLASSES[form](m, w, s).log_prob(x), tensors)
    ref_lp, ref_grads = grads_of(lambda m, w, s, x: dense_mvn(form, m, w, s).log_prob(x), tensors)
    assert_close(lp, ref_lp, rtol=1e-10, atol=1e-10)
    for g, ref in zip(grads, ref_grads, strict=True):
        assert torch.isfinite(g).all()
        assert_close(g, ref, rtol=1e-8, atol=1e-10)
    f = rsample_objective(form, torch.randn(3, d, dtype=F64))
    _, grads = grads_of(f, tensors[:3])
    for g, fd in zip(grads, finite_difference_grads(f, tensors[:3]), strict=True):
        assert torch.isfinite(g).all()
        assert_close(g, fd, rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------------------------
# Behaving like every other TorchDistribution


@pytest.mark.parametrize("form", FORMS)
def test_expand_mask_to_event(form):
    d = 4
    mvn = CLASSES[form](*make_params((3,), d, 2))
    e = mvn.expand((2, 3))
    assert type(e) is CLASSES[form]
    assert e.batch_shape == (2, 3)
    assert e.event_shape == (d,)
    prefix = PREFIX[form]
    assert e.loc.shape == (2, 3, d)
    assert getattr(e, f"{prefix}_factor").shape == (2, 3, d, 2)
    assert getattr(e, f"{prefix}_diag").shape == (2, 3, d)
    value = torch.randn(2, 3, d, dtype=F64)
    assert_close(e.log_prob(value), mvn.log_prob(value))
    assert_close(e.log_prob(value[0]), mvn.log_prob(value[0]).expand(2, 3))
    assert_close(e.entropy(), mvn.entropy().expand(2, 3))
    assert_close(e.variance, mvn.variance.expand(2, 3, d))
    assert_close(e.covariance_matrix, mvn.covariance_matrix.expand(2, 3, d, d))
    assert e.rsample((5,)).shape == (5, 2, 3, d)
    assert e.expand((4, 2, 3)).batch_shape == (4, 2, 3)
    with pytest.raises(ValueError):
        e.log_prob(torch.randn(2, 3, d + 1, dtype=F64))

    mask = torch.tensor([[True, False, True], [False, True, True]])
    masked = e.mask(mask)
    assert masked.batch_shape == (2, 3)
    assert_close(masked.log_prob(value), torch.where(mask, e.log_prob(value), 0.0))

    independent = e.to_event(1)
    assert independent.batch_shape == (2,)
    assert independent.event_shape == (3, d)
    assert_close(independent.log_prob(value), e.log_prob(value).sum(-1))
    assert independent.sample((7,)).shape == (7, 2, 3, d)


def test_covariance_form_is_pyro_low_rank_mvn():
    loc, factor, diag = make_params((3,), 4, 2)
    mvn = LowRankCovarianceMultivariateNormal(loc, factor, diag)
    ref = dist.LowRankMultivariateNormal(loc, factor, diag)
    assert isinstance(mvn, dist.LowRankMultivariateNormal)
    assert isinstance(mvn.expand((2, 3)), dist.LowRankMultivariateNormal)
    value = torch.randn(5, 3, 4, dtype=F64)
    assert_close(mvn.log_prob(value), ref.log_prob(value), rtol=1e-10, atol=1e-10)
    assert_close(mvn.entropy(), ref.entropy())
    assert_close(mvn.scale_tril, ref.scale_tril)
    torch.manual_seed(3)
    z = mvn.rsample((4,))
    torch.manual_seed(3)
    assert_close(z, ref.rsample((4,)))


# ----------------------------------------------------------------------------------------------
# Bad arguments


# (loc, factor, diag) shapes and the message; {p} is "prec" or "cov".
BAD_SHAPES = [
    (((), (3, 1), (3,)), "loc must have at least one dim"),
    (((3,), (4, 1), (3,)), "{p}_factor must have shape"),
    (((3,), (3,), (3,)), "{p}_factor must have shape"),
    (((3,), (3, 0), (3,)), "rank r >= 1"),
    (((3,), (3, 1), (4,)), "{p}_diag must have shape"),
    (((3,), (3, 1), ()), "{p}_diag must have shape"),
    (((2, 3), (4, 3, 1), (3,)), "incompatible batch shapes"),
    (((2, 3), (3, 1), (5, 3)), "incompatible batch shapes"),
]


@pytest.mark.parametrize("shapes, match", BAD_SHAPES, ids=str)
@pytest.mark.parametrize("form", FORMS)
def test_bad_shapes_raise(form, shapes, match):
    loc_s, factor_s, diag_s = shapes
    with pytest.raises(ValueError, match=match.format(p=PREFIX[form])):
        CLASSES[form](torch.zeros(loc_s), torch.ones(factor_s), torch.ones(diag_s))


# values are checked at first use (log_prob checks them inside its pass over the arguments),
# by every method that reads them, on both kernels
USES = {
    "log_prob": lambda d: d.log_prob(torch.zeros(d.event_shape)),
    "rsample": lambda d: d.rsample(),
    "entropy": lambda d: d.entropy(),
    "variance": lambda d: d.variance,
}


@pytest.mark.parametrize("kernel", KERNEL_NAMES)
@pytest.mark.parametrize("use", USES)
@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
@pytest.mark.parametrize("form", FORMS)
def test_invalid_diag_raises(form, bad, use, kernel):
    diag = torch.ones(3)
    diag[1] = bad
    with use_kernel(kernel), pytest.raises(ValueError, match=f"{PREFIX[form]}_diag"):
        USES[use](CLASSES[form](torch.zeros(3), torch.ones(3, 1), diag))


@pytest.mark.parametrize("kernel", KERNEL_NAMES)
@pytest.mark.parametrize("use", USES)
@pytest.mark.parametrize("form", FORMS)
def test_invalid_loc_factor_and_value_raise(form, use, kernel):
    with use_kernel(kernel):
        with pytest.raises(ValueError, match="loc"):
            USES[use](CLASSES[form](torch.tensor([0.0, math.nan]), torch.ones(2, 1), torch.ones(2)))
        factor = torch.ones(2, 1)
        factor[0, 0] = math.inf
        with pytest.raises(ValueError, match=f"{PREFIX[form]}_factor"):
            USES[use](CLASSES[form](torch.zeros(2), factor, torch.ones(2)))
        mvn = CLASSES[form](torch.zeros(2), torch.ones(2, 1), torch.ones(2))
        with pytest.raises(ValueError):
            mvn.log_prob(torch.zeros(3))
        with pytest.raises(ValueError):
            mvn.log_prob(torch.tensor([0.0, math.nan]))


@pytest.mark.parametrize("form", FORMS)
def test_invalid_values_pass_without_validation(form):
    # with validation off, as in Pyro, bad values give NaN rather than an error
    d = CLASSES[form](
        torch.zeros(2), torch.ones(2, 1), torch.tensor([1.0, math.nan]), validate_args=False
    )
    assert torch.isnan(d.log_prob(torch.zeros(2)))


# ----------------------------------------------------------------------------------------------
# float32


# (D, r, diag, factor scale, collinear columns): the capacitance I + Wᵀ diag⁻¹ W has a condition
# number κ of 5e5 and 1e5 (κ·eps ≈ 0.06 and 0.01 in float32), inside the float32 range.
ILL_CONDITIONED = [(4, 2, 1e-3, 10.0, True), (1, 2, 1e-3, 10.0, False)]
# Torch's own LowRankMultivariateNormal, on these inputs in float32, stays within 4e-3 nats of the
# float64 value; so does the precision form. The gradient w.r.t. the value is a Woodbury difference
# (e/d - D⁻¹W C⁻¹ Wᵀ D⁻¹ e) whose first-order rounding error is of order κ(C)·eps: over seeds 0-7
# torch's own class reaches 1.4 κ·eps and ours 2.3 κ·eps, so the bound is 4 κ·eps for both.
FLOAT32_LOG_PROB_ATOL = 0.05
FLOAT32_GRAD_KAPPA_EPS = 4.0


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("case", ILL_CONDITIONED, ids=str)
@pytest.mark.parametrize("form", FORMS)
def test_float32_accuracy_with_ill_conditioned_capacitance(form, case, seed):
    torch.manual_seed(seed)
    d, r, diag_value, scale, collinear = case
    base = torch.randn(d, 1 if collinear else r, dtype=F64).clamp(-1, 1)
    factor = scale * base.expand(d, r).contiguous()
    diag = torch.full((d,), diag_value, dtype=F64)
    loc = torch.zeros(d, dtype=F64)
    value = base[:, 0] + 0.1 * torch.randn(d, dtype=F64)  # near the span of the factor
    ref_lp, (ref_grad,) = grads_of(
        lambda x: dense_mvn(form, loc, factor, diag).log_prob(x), [value]
    )
    cap = torch.eye(r, dtype=F64) + factor.mT @ (factor / diag.unsqueeze(-1))
    kappa_eps = torch.linalg.cond(cap).item() * torch.finfo(torch.float32).eps

    def check(cls):
        lp, (grad,) = grads_of(
            lambda x: cls(loc.float(), factor.float(), diag.float()).log_prob(x), [value.float()]
        )
        assert abs(lp.double() - ref_lp) < FLOAT32_LOG_PROB_ATOL, (cls.__name__, lp, ref_lp)
        grad_err = (grad.double() - ref_grad).abs().max() / ref_grad.abs().max()
        assert grad_err < FLOAT32_GRAD_KAPPA_EPS * kappa_eps, (cls.__name__, grad, ref_grad)

    if form == "covariance":
        check(torch.distributions.LowRankMultivariateNormal)  # the control
    check(CLASSES[form])


def test_float32_precision_form_near_the_singular_capacitance_boundary():
    # Two equal columns u, u: C = I + a 11ᵀ with a = |u|²/d and κ(C) = 1 + 2a. In float32 the
    # log-density stays within 0.05 nats up to a ≈ 2e6 (here a = 1e6); the error reaches 0.15 at
    # a = 5e6, and from a ≈ 5e7 on, 1 + a rounds to a and C is numerically singular.
    d = torch.tensor([1e-6])
    factor = torch.ones(1, 2)
    value = torch.ones(1)
    lp = LowRankPrecisionMultivariateNormal(torch.zeros(1), factor, d).log_prob(value)
    ref = dense_mvn("precision", torch.zeros(1, dtype=F64), factor.double(), d.double())
    assert abs(lp.double() - ref.log_prob(value.double())) < FLOAT32_LOG_PROB_ATOL


@pytest.mark.parametrize("precision", [True, False])
def test_float32_singular_capacitance_raises_clear_error(precision):
    # 1 + 2**28 rounds to 2**28 in float32, so the capacitance [[2**28, 2**28], [2**28, 2**28]]
    # is exactly singular and the torch kernel's float32 Cholesky factorization fails.
    diag = torch.tensor([2.0**-28])
    with use_kernel("torch"), pytest.raises(ValueError, match="not positive definite"):
        lowrank_gaussian_log_prob(torch.ones(1), torch.ones(1, 2), diag, precision)


@pytest.mark.skipif(not COMPILED, reason="needs numba")
@pytest.mark.parametrize("precision", [True, False])
def test_float32_singular_capacitance_compiled_sums_in_float64(precision):
    # the compiled kernel forms the capacitance in float64, where it is well conditioned
    diag = torch.tensor([2.0**-28])
    with use_kernel("compiled"):
        lp = lowrank_gaussian_log_prob(torch.ones(1), torch.ones(1, 2), diag, precision)
    ref = dense_mvn(
        "precision" if precision else "covariance",
        torch.zeros(1, dtype=F64),
        torch.ones(1, 2, dtype=F64),
        diag.double(),
    ).log_prob(torch.ones(1, dtype=F64))
    assert abs(lp.double() - ref) <= 1e-6 * abs(ref)


@pytest.mark.parametrize("form", FORMS)
def test_float32_extreme_parameters_rsample_finite(form):
    d, r = 4, 2
    loc = 1e3 * (2 * torch.rand(3, d) - 1)
    factor = (10 * (2 * torch.rand(3, d, r) - 1)).requires_grad_()
    diag = torch.tensor([1e-4, 1e-2, 1e2, 1e4]).expand(3, d).clone().requires_grad_()
    z = CLASSES[form](loc, factor, diag).rsample((100,))
    assert torch.isfinite(z).all()
    grads = torch.autograd.grad(z.sin().sum(), (factor, diag))
    assert all(torch.isfinite(g).all() for g in grads)


def test_float32_covariance_log_density_never_exceeds_its_true_maximum():
    # a factor far larger than the diagonal and y in its span: in float32 the Woodbury
    # Mahalanobis term cancels catastrophically (measured: 3e7 nats above the maximum before the
    # guard); the maximum, at y = loc, is -(D log 2π + log det Σ) / 2, computed in float64
    g = torch.Generator().manual_seed(0)
    d, r = 16, 2
    for _ in range(100):
        w = torch.randn(d, r, generator=g) * 10 ** (1 + 3 * torch.rand(1, generator=g))
        diag = torch.full((d,), 1e-4)
        y = w @ torch.randn(r, generator=g) * 3 + 1e-2 * torch.randn(d, generator=g)
        lp = LowRankCovarianceMultivariateNormal(torch.zeros(d), w, diag).log_prob(y)
        cap = torch.eye(r, dtype=torch.float64) + (w.double().T / diag.double()) @ w.double()
        logdet = torch.logdet(cap) + diag.double().log().sum()
        ceiling = -0.5 * (d * math.log(2 * math.pi) + float(logdet))
        assert float(lp) <= ceiling + 1e-3


@pytest.mark.parametrize(("dtype", "far"), [(torch.float32, 1e20), (F64, 1e160)], ids=str)
@pytest.mark.parametrize("form", FORMS)
def test_a_density_that_underflows_scores_minus_infinity_not_nan(form, dtype, far):
    # the squared distance is beyond the dtype: Σ e²/d and ‖L⁻¹b‖² both overflowed to Inf, and
    # the covariance form's Inf - Inf was NaN
    g = torch.Generator().manual_seed(0)
    loc, factor, diag = (t.to(dtype) for t in make_params((3,), 4, 2))
    value = torch.randn(3, 4, generator=g, dtype=dtype)
    value[1, 2] = far
    value[2] = math.inf
    lp = CLASSES[form](loc, factor, diag).log_prob(value)
    assert torch.isfinite(lp[0]) and lp[1] == -math.inf and lp[2] == -math.inf, lp


@pytest.mark.parametrize("form", FORMS)
def test_a_far_value_whose_squared_distance_fits_is_scored_exactly_in_float32(form):
    # e = 3e19: e² overflows float32 but e²/d (covariance, d = 1e4) or e² d (precision,
    # d = 1e-4) is 9e34, which fits; reference: the dense Gaussian in float64
    g = torch.Generator().manual_seed(0)
    d, r = 4, 2
    loc = torch.zeros(d)
    factor = 0.1 * torch.randn(d, r, generator=g)
    diag = torch.full((d,), 1e4 if form == "covariance" else 1e-4)
    value = torch.tensor([3e19, -1e19, 2e18, 0.0])
    lp = CLASSES[form](loc, factor, diag).log_prob(value)
    reference = dense_mvn(form, loc.double(), factor.double(), diag.double()).log_prob(
        value.double()
    )
    assert torch.isfinite(lp)
    assert_close(lp.double(), reference, rtol=1e-5, atol=0)


# ----------------------------------------------------------------------------------------------
# the compiled kernel's written-out loops (one per rank up to MAX_RANK) and its general loops


@pytest.mark.skipif(not COMPILED, reason="needs numba")
@pytest.mark.parametrize("r", [1, 2, 3, 4, 5, 6, 7, 8, 9, 12])
@pytest.mark.parametrize("precision", [True, False])
def test_compiled_kernel_every_rank_matches_dense(precision, r):
    # ranks 1-8 take the written-out loops, 9 and 12 the general ones: values and gradients of
    # loc, factor and diag against the dense float64 Gaussian, with value broadcast over K
    g = torch.Generator().manual_seed(r)
    k, d = 3, 13
    value = torch.randn(4, 1, d, generator=g, dtype=F64)
    loc = torch.randn(4, k, d, generator=g, dtype=F64)
    factor = 0.5 * torch.randn(4, k, d, r, generator=g, dtype=F64)
    diag = torch.rand(4, k, d, generator=g, dtype=F64) + 0.3
    weights = torch.randn(4, k, generator=g, dtype=F64)
    form = "precision" if precision else "covariance"
    with use_kernel("compiled"):
        lp, grads = grads_of(
            lambda x, m, w, s: lowrank_gaussian_log_prob(x, w, s, precision, loc=m),
            (value, loc, factor, diag),
            weights,
        )
    ref_lp, ref_grads = grads_of(
        lambda x, m, w, s: dense_mvn(form, m, w, s).log_prob(x), (value, loc, factor, diag), weights
    )
    assert_close(lp, ref_lp, rtol=1e-10, atol=1e-10)
    for got, ref in zip(grads, ref_grads, strict=True):
        assert got.shape == ref.shape
        assert_close(got, ref, rtol=1e-8, atol=1e-10)


@pytest.mark.skipif(not COMPILED, reason="needs numba")
@pytest.mark.parametrize("precision", [True, False])
def test_compiled_kernel_reads_any_layout(precision):
    # a factor whose rank axis is outermost in memory, a diagonal read with a stride of 2 and a
    # loc sliced out of a wider head output: the same numbers as contiguous copies
    g = torch.Generator().manual_seed(0)
    b, k, d, r = 5, 3, 6, 4
    value = torch.randn(b, 1, d, generator=g, dtype=F64)
    head = torch.randn(b, k, 3 * d, generator=g, dtype=F64)
    loc = head[..., d : 2 * d]
    factor = torch.randn(b, k, r, d, generator=g, dtype=F64).mT
    diag = (torch.rand(b, k, 2 * d, generator=g, dtype=F64) + 0.5)[..., ::2]
    weights = torch.randn(b, k, generator=g, dtype=F64)
    with use_kernel("compiled"):
        fn = lambda x, m, w, s: lowrank_gaussian_log_prob(x, w, s, precision, loc=m)  # noqa: E731
        strided = grads_of(fn, (value, loc, factor, diag), weights)
        dense = grads_of(fn, tuple(t.contiguous() for t in (value, loc, factor, diag)), weights)
    assert torch.equal(strided[0], dense[0])
    for a, c in zip(strided[1], dense[1], strict=True):
        assert torch.equal(a, c)


@pytest.mark.parametrize("r", [2, 10])
@pytest.mark.parametrize("precision", [True, False])
def test_squared_distance_near_the_float64_limit_is_rescaled_exactly(precision, r, kernel):
    # e ~ 1e152: e² overflows float64 but the squared distance (~1e300) fits. Scaling e by
    # s = 2^-510 is exact, and the log-density is lp(0) + s⁻² (lp(s e) - lp(0)) (reference:
    # the dense float64 Gaussian at the scaled value)
    g = torch.Generator().manual_seed(1)
    d = 5
    factor = 0.3 * torch.randn(d, r, generator=g, dtype=F64)
    diag = torch.rand(d, generator=g, dtype=F64) + (1e3 if not precision else 1e-5)
    e = torch.randn(d, generator=g, dtype=F64) * 1e152
    lp = lowrank_gaussian_log_prob(e, factor, diag, precision)
    s = 2.0**-510
    form = "precision" if precision else "covariance"
    ref = dense_mvn(form, torch.zeros(d, dtype=F64), factor, diag)
    at_zero = ref.log_prob(torch.zeros(d, dtype=F64))
    expected = at_zero + (ref.log_prob(e * s) - at_zero) / (s * s)
    assert torch.isfinite(lp)
    assert_close(lp, expected, rtol=1e-9, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("precision", [True, False])
def test_log_det_of_the_diagonal_from_exponents_and_mantissas(precision, dtype):
    # the loops take Σ log d_i from the floats' exponents and one log of the product of the
    # mantissas; with W = 0 and value = loc the log-density is -½(D log 2π ± Σ log d_i), whose
    # sum float64 logs give (known answer). Rows: diagonals spanning the format's exponents,
    # mantissas near 2 (their product near 2^D), and subnormal float32 entries (exponent field
    # zero; float64 ones near the smallest normal: 1 / d of a subnormal float64 overflows)
    g = torch.Generator().manual_seed(3)
    d = 40
    tiny = torch.finfo(dtype).tiny / (64 if dtype == torch.float32 else 1 / 4)
    rows = [
        torch.exp2(torch.randint(-120, 120, (d,), generator=g).to(F64))
        * (1 + torch.rand(d, generator=g)),
        torch.full((d,), 1.9999999, dtype=F64),
        torch.cat([torch.full((3,), tiny, dtype=F64), torch.rand(d - 3, generator=g) + 0.5]),
    ]
    diag = torch.stack(rows).to(dtype)
    if dtype == torch.float32:
        assert (diag[2, :3] > 0).all() and (diag[2, :3] < torch.finfo(dtype).tiny).all()
    loc = torch.randn(3, d, generator=g, dtype=dtype)
    factor = torch.zeros(3, d, 2, dtype=dtype)
    lp = lowrank_gaussian_log_prob(loc, factor, diag, precision, loc=loc)
    sign = -1.0 if precision else 1.0
    expected = -0.5 * (d * math.log(2 * math.pi) + sign * diag.to(F64).log().sum(-1))
    assert_close(lp.to(F64), expected, rtol=1e-6 if dtype == torch.float32 else 1e-13, atol=0)


@pytest.mark.parametrize("d", [1000, 1100])
def test_log_det_of_the_diagonal_at_large_d_against_the_dense_gaussian(d):
    # D <= 1000: the loops' product of mantissas, up to 2^1000; above, the sum passed in
    g = torch.Generator().manual_seed(4)
    factor = 0.1 * torch.randn(2, d, 3, generator=g, dtype=F64)
    diag = 1.9 + 0.09 * torch.rand(2, d, generator=g, dtype=F64)
    loc = torch.randn(2, d, generator=g, dtype=F64)
    value = torch.randn(d, generator=g, dtype=F64)
    lp = lowrank_gaussian_log_prob(value, factor, diag, False, loc=loc)
    assert_close(lp, dense_mvn("covariance", loc, factor, diag).log_prob(value), rtol=1e-12, atol=0)


def _score_in_child(queue, args):
    queue.put(_lowrank_cpu.forward_unrolled(*args, 2, None)[0])


@pytest.mark.skipif(not COMPILED or sys.platform != "linux", reason="needs numba and fork")
def test_compiled_kernel_threads_work_in_a_forked_child():
    # the parent's thread pool is not inherited by a forked worker (its threads do not exist
    # there): the child makes its own and gets the parent's numbers, rather than waiting forever
    rng = np.random.default_rng(0)
    n, d, r = 3000, 6, 2
    value, diag = rng.random(n * d), rng.random(n * d) + 0.5
    strides = np.array([[d, 0], [d, 0], [d * r, 0], [d, 0]], dtype=np.int64)
    args = (value, value * 0.5, rng.random(n * d * r), diag, strides, n, d, r, 1, False)
    parent = _lowrank_cpu.forward_unrolled(*args, 2, None)[0]
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_score_in_child, args=(queue, args))
    child.start()
    try:
        np.testing.assert_array_equal(queue.get(timeout=120), parent)
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()
