"""Tests of :func:`~pyro_frmdn.distributions.flow_mixture` and the transform-cache trap.

References are independent of the code under test: the mixture density is computed from dense
covariance (or precision) matrices with torch's ``MultivariateNormal``, the change of variables
from an autograd Jacobian of the data-to-base map, and "fresh" scores from Pyro's plain
``TransformedDistribution`` on a new tensor (no cache entry can match it).
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pyro.optim
import pytest
import scipy.stats
import torch
from pyro.distributions.conditional import ConditionalTransform
from pyro.distributions.testing.gof import auto_goodness_of_fit, exp_goodness_of_fit
from pyro.distributions.torch_transform import ComposeTransformModule
from pyro.infer import SVI, Trace_ELBO
from scipy.spatial import cKDTree
from torch.autograd.functional import jacobian
from torch.distributions import transforms as T

from pyro_frmdn.distributions import (
    FlowTransformedDistribution,
    clear_transform_cache,
    flow_mixture,
    low_rank_mixture,
)
from pyro_frmdn.distributions.transformed import event_size
from pyro_frmdn.flows import coupling_flow

# Pyro's convention for goodness-of-fit p-values (pyro.distributions.testing.gof): a correct
# sampler fails with this probability. The tests are seeded, so the outcome is fixed.
TEST_FAILURE_RATE = 1 / 20
F64 = torch.float64
CONTEXT_DIM = 3


def _params(batch, k, d, rank, parameterization):
    """Mixture parameters in float64; ``rank=None`` gives diagonal components."""
    logits = torch.randn(batch + (k,), dtype=F64)
    loc = torch.randn(batch + (k, d), dtype=F64)
    factor = None if rank is None else 0.5 * torch.randn(batch + (k, d, rank), dtype=F64)
    diag = torch.rand(batch + (k, d), dtype=F64) + 0.5
    return logits, loc, factor, diag, parameterization


def _dense_mixture_log_prob(params, z):
    """log sum_k softmax(logits)_k N(z; mu_k, Sigma_k) with dense matrices."""
    logits, loc, factor, diag, parameterization = params
    matrix = torch.diag_embed(diag)
    if factor is not None:
        matrix = matrix + factor @ factor.mT
    if parameterization == "covariance":
        comps = torch.distributions.MultivariateNormal(loc, covariance_matrix=matrix)
    else:
        comps = torch.distributions.MultivariateNormal(loc, precision_matrix=matrix)
    lp = comps.log_prob(z.unsqueeze(-2)) + torch.log_softmax(logits, -1)
    return lp.logsumexp(-1)


def _flow(dim, kind, context_dim, mixing="householder", num_layers=2):
    return coupling_flow(
        dim, num_layers, flow=kind, hidden_dims=[8], mixing=mixing, context_dim=context_dim
    ).double()


def _conditioned(flow, context):
    return [t.condition(context) if isinstance(t, ConditionalTransform) else t for t in flow]


def _vector_ladj(t, x, y):
    ladj = t.log_abs_det_jacobian(x, y)
    return ladj.sum(-1) if t.domain.event_dim == 0 else ladj


def _to_base(transforms, y):
    """Run the transforms backwards (data → base); also return ``sum log|det ∂t/∂x|``."""
    ladj = 0.0
    for t in reversed(transforms):
        x = t.inv(y)
        ladj = ladj + _vector_ladj(t, x, y)
        y = x
    return y, ladj


def _copy(flow, dim, kind, context_dim, mixing="householder", num_layers=2):
    """A new flow of the same build with the same state: it shares no cache with ``flow``."""
    new = _flow(dim, kind, context_dim, mixing, num_layers)
    new.load_state_dict(flow.state_dict())
    return new


def _fresh_log_prob(base, flow_copy, context, y):
    """Pyro's own TransformedDistribution over a copy of the flow, on a new tensor."""
    return dist.TransformedDistribution(base, _conditioned(flow_copy, context)).log_prob(y.clone())


# ---------------------------------------------------------------------------------------------
# log_prob: change of variables


@pytest.mark.parametrize("rank", [None, 2], ids=["diag", "rank2"])
@pytest.mark.parametrize("parameterization", ["covariance", "precision"])
@pytest.mark.parametrize("context_dim", [0, CONTEXT_DIM], ids=["uncond", "cond"])
@pytest.mark.parametrize("kind", ["affine", "spline"])
def test_log_prob_is_the_change_of_variables(kind, context_dim, parameterization, rank):
    n, k, dim = 6, 3, 3
    params = _params((n,), k, dim, rank, parameterization)
    base = low_rank_mixture(*params[:4], parameterization=params[4])
    flow = _flow(dim, kind, context_dim)
    context = torch.randn(n, context_dim, dtype=F64) if context_dim else None
    y = 1.5 * torch.randn(n, dim, dtype=F64)

    d = flow_mixture(base, flow, context)
    assert isinstance(d, FlowTransformedDistribution)
    assert d.batch_shape == (n,) and d.event_shape == (dim,)
    lp = d.log_prob(y)
    assert lp.shape == (n,)

    # by hand: the data → base map f, its log-det from the transforms and from autograd
    transforms = _conditioned(flow, context)
    clear_transform_cache(transforms)
    z, ladj = _to_base(transforms, y.clone())
    logdet = []
    for i in range(n):
        ts = _conditioned(flow, None if context is None else context[i : i + 1])
        jac = jacobian(lambda v, ts=ts: _to_base(ts, v.unsqueeze(0))[0].squeeze(0), y[i].clone())
        logdet.append(torch.linalg.slogdet(jac).logabsdet)
    logdet = torch.stack(logdet)

    assert logdet.abs().max() > 1e-2
    torch.testing.assert_close(-ladj, logdet, atol=1e-9, rtol=0)
    expected = _dense_mixture_log_prob(params, z) + logdet
    torch.testing.assert_close(lp, expected, atol=1e-9, rtol=1e-12)


def test_conditional_flow_without_context_raises():
    base = low_rank_mixture(*_params((), 2, 3, 1, "covariance")[:4])
    with pytest.raises(ValueError, match="context"):
        flow_mixture(base, _flow(3, "affine", CONTEXT_DIM))


def test_empty_flow_is_the_base():
    params = _params((4,), 3, 2, 1, "precision")
    base = low_rank_mixture(*params[:4], parameterization="precision")
    y = torch.randn(4, 2, dtype=F64)
    lp = flow_mixture(base, []).log_prob(y)
    torch.testing.assert_close(lp, _dense_mixture_log_prob(params, y), atol=1e-10, rtol=0)


def test_context_broadcasts_over_sample_dims():
    n, dim = 4, 3
    base = low_rank_mixture(*_params((n,), 3, dim, 1, "covariance")[:4])
    flow = _flow(dim, "spline", CONTEXT_DIM)
    context = torch.randn(n, CONTEXT_DIM, dtype=F64)
    d = flow_mixture(base, flow, context)
    y = torch.randn(5, n, dim, dtype=F64)
    lp = d.log_prob(y)
    assert lp.shape == (5, n)
    for s in range(5):
        torch.testing.assert_close(lp[s], d.log_prob(y[s].clone()), atol=1e-12, rtol=0)


# ---------------------------------------------------------------------------------------------
# sampling


@pytest.mark.parametrize("context_dim", [0, CONTEXT_DIM], ids=["uncond", "cond"])
@pytest.mark.parametrize("kind", ["affine", "spline"])
def test_sample_is_the_flow_of_base_samples(kind, context_dim):
    n, dim = 4, 3
    base = low_rank_mixture(*_params((n,), 3, dim, 2, "precision")[:4], "precision")
    flow = _flow(dim, kind, context_dim)
    context = torch.randn(n, context_dim, dtype=F64) if context_dim else None
    d = flow_mixture(base, flow, context)

    assert not d.has_rsample
    assert d.sample().shape == (n, dim)
    pyro.set_rng_seed(7)
    y = d.sample((7, 2))
    assert y.shape == (7, 2, n, dim)
    pyro.set_rng_seed(7)
    x = base.sample((7, 2))
    for t in _conditioned(flow, context):
        x = t(x)
    torch.testing.assert_close(y, x, atol=1e-12, rtol=0)


def _nearest_neighbour_statistics(sample, log_prob, num_reference=50000, num_query=5000):
    """Statistics that are Exp(1) when ``sample`` draws from the density ``exp(log_prob)``.

    For a query point ``q`` drawn independently of ``n`` reference samples, ``n p(q) V(r)``, with
    ``r`` the distance to the nearest reference sample and ``V`` the volume of the ball, is
    approximately Exp(1). (Pyro's ``auto_goodness_of_fit`` uses nearest neighbours *within* one
    sample instead, whose mutual pairs make the statistics dependent: it rejected 40-65 % of exact
    samplers of a 2-D standard normal at 1/20 in our checks, so it cannot serve in 2-D.)
    """
    reference = sample((num_reference,))
    query = sample((num_query,))
    radius, _ = cKDTree(reference.numpy()).query(query.numpy(), k=1)
    radius = torch.from_numpy(radius)
    dim = reference.shape[-1]
    volume = math.pi ** (dim / 2) / math.gamma(dim / 2 + 1) * radius**dim
    with torch.no_grad():
        density = log_prob(query).exp()
    return num_reference * density * volume


def _spacing_statistics(samples, probs):
    """The Exp(1) statistics of Pyro's 1-D ``density_goodness_of_fit``: spacings times density."""
    samples, index = samples.sort(0)
    sparsity = 1 / probs[index]
    return len(samples) / (0.5 * (sparsity[1:] + sparsity[:-1])) * (samples[1:] - samples[:-1])


def _ks_exponential(statistics):
    """Kolmogorov-Smirnov p-value against Exp(1).

    Pyro's binned test ends in ``pyro.distributions.testing.special.chi2sf``, which returns ~1
    for chi-square values between ~200 and 1000 (gross misfits pass), so every Pyro p-value here
    is backed by this one.
    """
    return scipy.stats.kstest(statistics.numpy(), "expon").pvalue


@pytest.mark.parametrize("context_dim", [0, CONTEXT_DIM], ids=["uncond", "cond"])
def test_sample_goodness_of_fit_2d(context_dim):
    """Affine couplings: a nearest-neighbour test needs a density nearly constant at the scale of
    nearest-neighbour distances, and randomly initialised spline couplings have ridges narrower
    than 1e-3 (checked against fine-grid integrals of ``log_prob``), which bias it; splines are
    tested in 1-D below with Pyro's spacing test, which does not care.
    """
    base = low_rank_mixture(*_params((), 3, 2, 1, "covariance")[:4])
    flow = _flow(2, "affine", context_dim, mixing="permute")
    context = torch.randn(context_dim, dtype=F64) if context_dim else None
    d = flow_mixture(base, flow, context)
    statistics = _nearest_neighbour_statistics(d.sample, d.log_prob)
    assert exp_goodness_of_fit(statistics) > TEST_FAILURE_RATE
    assert _ks_exponential(statistics) > TEST_FAILURE_RATE

    # the same test rejects a density with the log-Jacobian's sign flipped
    transforms = _conditioned(flow, context)

    def wrong_log_prob(y):
        z, ladj = _to_base(transforms, y.clone())
        return base.log_prob(z) + ladj

    statistics = _nearest_neighbour_statistics(d.sample, wrong_log_prob)
    assert _ks_exponential(statistics) < TEST_FAILURE_RATE


@pytest.mark.parametrize("context_dim", [0, CONTEXT_DIM], ids=["uncond", "cond"])
def test_sample_goodness_of_fit_1d(context_dim):
    num_samples = 20000
    base = low_rank_mixture(*_params((), 3, 1, None, "precision")[:4], "precision")
    flow = _flow(1, "spline", context_dim, num_layers=3)
    context = torch.randn(context_dim, dtype=F64) if context_dim else None
    d = flow_mixture(base, flow, context)
    samples = d.sample((num_samples,))
    with torch.no_grad():
        probs = d.log_prob(samples).exp()
    assert auto_goodness_of_fit(samples, probs) > TEST_FAILURE_RATE
    assert _ks_exponential(_spacing_statistics(samples[:, 0], probs)) > TEST_FAILURE_RATE

    # the same test rejects the base's samples scored with the flow's density
    wrong = base.sample((num_samples,))
    with torch.no_grad():
        probs = d.log_prob(wrong).exp()
    assert _ks_exponential(_spacing_statistics(wrong[:, 0], probs)) < TEST_FAILURE_RATE


# ---------------------------------------------------------------------------------------------
# the transform-cache trap (PAPERS.md §6)


def _fixed_base(n, dim, requires_grad=False):
    logits, loc, factor, diag, _ = _params((n,), 3, dim, 1, "covariance")
    loc.requires_grad_(requires_grad)
    return low_rank_mixture(logits, loc, factor, diag), loc


@pytest.mark.parametrize("reuse", [True, False], ids=["same-dist", "rebuilt-dist"])
@pytest.mark.parametrize("context_dim", [0, CONTEXT_DIM], ids=["uncond", "cond"])
@pytest.mark.parametrize("kind", ["affine", "spline"])
def test_rescoring_after_an_optimizer_step(kind, context_dim, reuse):
    n, dim = 8, 3
    base, _ = _fixed_base(n, dim)
    flow = _flow(dim, kind, context_dim)
    context = torch.randn(n, context_dim, dtype=F64) if context_dim else None
    y = torch.randn(n, dim, dtype=F64)
    optimizer = torch.optim.Adam(flow.parameters(), lr=0.05)
    d = flow_mixture(base, flow, context)

    previous = None
    for _ in range(3):
        dd = d if reuse else flow_mixture(base, flow, context)
        lp = dd.log_prob(y)
        with torch.no_grad():
            expected = _fresh_log_prob(base, _copy(flow, dim, kind, context_dim), context, y)
        torch.testing.assert_close(lp, expected, atol=1e-12, rtol=0)
        if previous is not None:
            assert (lp - previous).abs().max() > 1e-4  # the step changed the flow
        previous = lp.detach()
        optimizer.zero_grad()
        (-lp.sum()).backward()  # would raise "backward through the graph a second time"
        optimizer.step()


def _svi_losses(flow, base, y, distribution, kind, steps=3):
    def model(y):
        pyro.module("flow", flow)
        with pyro.plate("data", y.shape[0]):
            pyro.sample("obs", distribution(base, list(flow)), obs=y)

    def guide(y):
        pass

    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO())
    losses, expected = [], []
    for _ in range(steps):
        copy = _copy(flow, y.shape[-1], kind, 0)
        with torch.no_grad():
            expected.append(-_fresh_log_prob(base, copy, None, y).sum().item())
        losses.append(svi.step(y))
    return losses, expected


@pytest.mark.parametrize("kind", ["affine", "spline"])
def test_svi_steps_on_the_same_observations(kind):
    n, dim = 8, 3
    base, _ = _fixed_base(n, dim)
    flow = _flow(dim, kind, 0)
    y = torch.randn(n, dim, dtype=F64)
    losses, expected = _svi_losses(flow, base, y, FlowTransformedDistribution, kind)
    assert losses == pytest.approx(expected, abs=1e-9, rel=1e-12)
    assert abs(losses[2] - losses[0]) > 1e-3


def test_plain_transformed_distribution_fails_the_second_svi_step():
    """The trap is real: without clearing the caches, the second step fails."""
    n, dim = 8, 3
    base, _ = _fixed_base(n, dim)
    flow = _flow(dim, "affine", 0)
    y = torch.randn(n, dim, dtype=F64)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        _svi_losses(flow, base, y, dist.TransformedDistribution, "affine")


def _grads(flow):
    return {name: None if p.grad is None else p.grad.clone() for name, p in flow.named_parameters()}


def _fresh_grads(base, flow_copy, context, y):
    _fresh_log_prob(base, flow_copy, context, y).sum().backward()
    return _grads(flow_copy)


@pytest.mark.parametrize("first", ["no_grad", "sample"])
@pytest.mark.parametrize("reuse", [True, False], ids=["same-dist", "rebuilt-dist"])
@pytest.mark.parametrize("context_dim", [0, CONTEXT_DIM], ids=["uncond", "cond"])
@pytest.mark.parametrize("kind", ["affine", "spline"])
def test_gradients_after_scoring_without_grad(kind, context_dim, reuse, first):
    """A value first seen without autograd (scored under no_grad, or drawn by ``sample``)."""
    n, dim = 8, 3
    base, _ = _fixed_base(n, dim)
    flow = _flow(dim, kind, context_dim)
    context = torch.randn(n, context_dim, dtype=F64) if context_dim else None
    d = flow_mixture(base, flow, context)
    if first == "no_grad":
        y = torch.randn(n, dim, dtype=F64)
        with torch.no_grad():
            d.log_prob(y)
    else:
        y = d.sample()
    expected = _fresh_grads(base, _copy(flow, dim, kind, context_dim), context, y)

    dd = d if reuse else flow_mixture(base, flow, context)
    dd.log_prob(y).sum().backward()
    grads = _grads(flow)
    assert grads.keys() == expected.keys()
    for name, g in grads.items():
        assert g is not None, name
        assert expected[name].abs().sum() > 0, name
        torch.testing.assert_close(g, expected[name], atol=1e-10, rtol=1e-10, msg=name)


@pytest.mark.parametrize("kind", ["affine", "spline"])
def test_plain_transformed_distribution_gives_the_flow_no_gradient(kind):
    """The trap is real: Pyro's TransformedDistribution reuses the no_grad inverse."""
    n, dim = 8, 3
    base, loc = _fixed_base(n, dim, requires_grad=True)
    flow = _flow(dim, kind, 0)
    d = dist.TransformedDistribution(base, list(flow))
    y = torch.randn(n, dim, dtype=F64)
    with torch.no_grad():
        d.log_prob(y)
    d.log_prob(y).sum().backward()
    assert loc.grad is not None
    assert all(p.grad is None for p in flow.parameters())


# ---------------------------------------------------------------------------------------------
# clear_transform_cache on nested transforms


def _affine(dim):
    loc = torch.randn(dim, dtype=F64)
    return T.AffineTransform(loc, torch.rand(dim, dtype=F64) + 0.5, cache_size=1), loc


def _nested(structure, dim):
    """Transforms with caches, the one scoring sees first nested as ``structure`` says, and the
    tensors to mutate. (A transform whose input is recomputed misses its cache anyway: only the
    last one, which receives the value itself, can return a stale result.)
    """
    (a1, l1), (a2, l2), (a3, l3) = (_affine(dim) for _ in range(3))
    compose = T.ComposeTransform
    transforms = {
        "flat": [a1, a2, a3],
        "compose": [compose([a1, compose([a2, a3])])],
        "inverse": [a1, a2, a3.inv],
        "compose-inverse": [a3, compose([a1, a2]).inv],
        "inverse-in-compose": [compose([a3, compose([a1, a2.inv])])],
        "independent": [a2, a3, T.IndependentTransform(a1, 1, cache_size=1)],
    }[structure]
    return transforms, [l1, l2, l3]


def _pyro_nested(structure, dim):
    flow = list(_flow(dim, "affine", 0, mixing="permute", num_layers=3))
    transforms = {
        "pyro-compose-module": [*flow[:-2], ComposeTransformModule(flow[-2:])],
        "pyro-inverse": [t.inv for t in flow],
    }[structure]
    return transforms, [p for t in flow for p in t.parameters()]


def _data_to_base(transforms, y):
    for t in reversed(transforms):
        y = t.inv(y)
    return y


@pytest.mark.parametrize(
    "structure",
    [
        "flat",
        "compose",
        "inverse",
        "compose-inverse",
        "inverse-in-compose",
        "independent",
        "pyro-compose-module",
        "pyro-inverse",
    ],
)
def test_clear_transform_cache_reaches_nested_transforms(structure):
    dim = 3
    build = _pyro_nested if structure.startswith("pyro") else _nested
    transforms, tensors = build(structure, dim)
    y = torch.randn(5, dim, dtype=F64)

    with torch.no_grad():
        x0 = _data_to_base(transforms, y)
        for tensor in tensors:
            tensor.add_(0.5)
        stale = _data_to_base(transforms, y)
        assert torch.equal(stale, x0)  # the caches are in play: the test is not vacuous

        clear_transform_cache(transforms)
        x1 = _data_to_base(transforms, y)
        expected = _data_to_base(transforms, y.clone())
    assert (x1 - x0).abs().max() > 1e-3
    torch.testing.assert_close(x1, expected, atol=0, rtol=0)


@pytest.mark.parametrize("mixing", ["permute", "householder", "none"])
@pytest.mark.parametrize("context_dim", [0, CONTEXT_DIM], ids=["uncond", "cond"])
@pytest.mark.parametrize("kind", ["affine", "spline"])
@pytest.mark.parametrize(("d", "flow_d"), [(3, 2), (3, 5), (2, 4)])
def test_a_flow_built_for_another_dimension_is_refused(d, flow_d, kind, context_dim, mixing):
    base = low_rank_mixture(torch.zeros(6, 2), torch.zeros(6, 2, d), None, torch.ones(6, 2, d))
    flow = coupling_flow(flow_d, 2, flow=kind, mixing=mixing, context_dim=context_dim)
    context = torch.zeros(6, CONTEXT_DIM) if context_dim else None
    with pytest.raises(
        ValueError,
        match=rf"acts on vectors of size {flow_d}, but the base .*"
        rf"event shape is \({d},\)",
    ):
        flow_mixture(base, flow, context)


@pytest.mark.parametrize(
    "transform",
    [
        lambda d: T.ComposeTransform(list(coupling_flow(d, 2, flow="spline"))),
        lambda d: coupling_flow(d, 1)[0].inv,
        lambda d: pyro.distributions.transforms.affine_autoregressive(d),
        lambda d: pyro.distributions.transforms.conditional_affine_autoregressive(d, 2),
    ],
    ids=["compose", "inverse", "autoregressive", "conditional autoregressive"],
)
def test_the_size_of_other_transforms_is_read_too(transform):
    base = dist.Normal(torch.zeros(3), 1.0).to_event(1)
    assert event_size(transform(3)) == 3
    with pytest.raises(ValueError, match="acts on vectors of size 4"):
        flow_mixture(base, [transform(4)], torch.zeros(2))


def test_a_transform_of_unknown_size_is_left_to_itself():
    base = dist.Normal(torch.zeros(3), 1.0).to_event(1)
    d = flow_mixture(base, [T.ExpTransform()])
    assert event_size(T.ExpTransform()) is None
    spline = pyro.distributions.transforms.Spline(4)
    assert event_size(T.IndependentTransform(spline, 1, cache_size=1)) == 4
    assert d.log_prob(torch.ones(3)).shape == ()


def test_a_real_value_is_checked_by_a_sum_and_a_nan_still_raises(monkeypatch):
    # Pyro's support check of the flow's value costs an elementwise pass and a reduction at every
    # score; on real vectors the check now runs only when a NaN sum says it can fail. The
    # refusals are torch's: a NaN, a wrong event size, a batch that does not broadcast.
    pyro.enable_validation(True)
    base = low_rank_mixture(*_params((4,), 2, 3, 1, "covariance"))
    d = flow_mixture(base, coupling_flow(3, 2, seed=0).to(F64))
    calls = []
    real_check = torch.distributions.constraints._Real.check
    monkeypatch.setattr(
        torch.distributions.constraints._Real,
        "check",
        lambda self, value: calls.append(value.shape) or real_check(self, value),
    )
    value = torch.randn(4, 3, dtype=F64)
    expected = dist.TransformedDistribution(base, d.transforms, validate_args=False).log_prob(value)
    assert torch.equal(d.log_prob(value), expected)
    assert calls == []
    value[2, 0] = math.nan
    with pytest.raises(ValueError, match="support"):
        d.log_prob(value)
    assert calls
    with pytest.raises(ValueError, match="event_shape"):
        d.log_prob(torch.zeros(4, 2, dtype=F64))
    with pytest.raises(ValueError, match="broadcastable"):
        d.log_prob(torch.zeros(5, 3, dtype=F64))


def test_a_bounded_support_is_still_checked_whole():
    pyro.enable_validation(True)
    base = dist.Normal(torch.zeros(3), 1.0).to_event(1)
    d = flow_mixture(base, [T.IndependentTransform(T.SigmoidTransform(), 1)])
    assert torch.isfinite(d.log_prob(torch.full((3,), 0.5)))
    with pytest.raises(ValueError, match="support"):
        d.log_prob(torch.full((3,), 1.5))
