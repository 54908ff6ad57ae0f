"""MixtureHead: features -> the per-step low-rank mixture, against hand-built references."""

import pytest
import torch
from torch.distributions import MultivariateNormal
from torch.testing import assert_close

from pyro_frmdn.distributions import low_rank_mixture
from pyro_frmdn.nn import FACTOR_MODES, MixtureHead

F64 = torch.float64
H, D, K = 5, 4, 3
# Spelled out rather than imported, so that a mode dropped from the package fails here.
PARAMETERIZATION_LIST = ["covariance", "precision"]
FACTOR_LIST = ["per_step", "shared"]
RANKS = [0, 1, 3]
BATCH_SHAPES = [(), (6,), (2, 3)]

modes = pytest.mark.parametrize(
    "parameterization,factor",
    [(p, f) for p in PARAMETERIZATION_LIST for f in FACTOR_LIST],
)
ranks = pytest.mark.parametrize("rank", RANKS)


def make_head(parameterization, factor, rank, min_diag=1e-4, dtype=F64):
    head = MixtureHead(
        H, D, K, rank=rank, parameterization=parameterization, factor_mode=factor, min_diag=min_diag
    )
    return head.to(dtype)


def hand_built_arguments(head, h, parameterization, factor, rank, min_diag):
    """(logits, loc, factor, diag) from the head's raw linear output, sliced and shaped by hand.

    The output of the linear layer is laid out as ``[K logits | K*D means | K*D raw diagonals |
    K*D*r factors]`` (the factor block only with ``factor_mode="per_step"``), each block
    component-major;
    the diagonal is ``softplus(raw) + min_diag``.
    """
    raw = torch.nn.functional.linear(h, head.linear.weight, head.linear.bias)
    batch = h.shape[:-1]
    logits = raw[..., :K]
    loc = raw[..., K : K + K * D].reshape(batch + (K, D))
    raw_diag = raw[..., K + K * D : K + 2 * K * D].reshape(batch + (K, D))
    diag = torch.nn.functional.softplus(raw_diag) + min_diag
    if rank == 0:
        fac = None
    elif factor == "shared":
        fac = head.shared_factor
    else:
        fac = raw[..., K + 2 * K * D :].reshape(batch + (K, D, rank))
    return logits, loc, fac, diag


def dense_log_prob(logits, loc, fac, diag, parameterization, value):
    """log sum_k softmax(logits)_k N(value; loc_k, Sigma_k) with dense float64 Gaussians."""
    matrix = torch.diag_embed(diag)
    if fac is not None:
        matrix = matrix + fac @ fac.mT
    if parameterization == "precision":
        comps = MultivariateNormal(loc, precision_matrix=matrix)
    else:
        comps = MultivariateNormal(loc, covariance_matrix=matrix)
    return torch.logsumexp(
        torch.log_softmax(logits, -1) + comps.log_prob(value.unsqueeze(-2)), dim=-1
    )


def component_arguments(d, parameterization, rank):
    """(loc, factor, diag) read back from the components of a head's distribution."""
    comp = d.component_distribution
    if rank == 0:
        scale = comp.base_dist.scale
        diag = scale.square() if parameterization == "covariance" else scale.square().reciprocal()
        return comp.base_dist.loc, None, diag
    if parameterization == "covariance":
        return comp.loc, comp.cov_factor, comp.cov_diag
    return comp.loc, comp.prec_factor, comp.prec_diag


def test_modes_and_defaults():
    assert tuple(FACTOR_MODES) == tuple(FACTOR_LIST)
    head = MixtureHead(H, D, K)
    assert (head.rank, head.parameterization, head.factor_mode) == (0, "covariance", "per_step")
    assert head.min_diag == 1e-4
    assert head.shared_factor is None


@modes
@ranks
@pytest.mark.parametrize("batch", BATCH_SHAPES)
def test_shapes(parameterization, factor, rank, batch):
    head = make_head(parameterization, factor, rank, dtype=torch.float32)
    # The head's output: K(2D + 1) numbers a step, plus K D r with per-step factors.
    per_step = K * D * rank if factor == "per_step" else 0
    assert head.linear.in_features == H
    assert head.linear.out_features == K * (2 * D + 1) + per_step
    if rank and factor == "shared":
        assert isinstance(head.shared_factor, torch.nn.Parameter)
        assert head.shared_factor.shape == (K, D, rank)
        assert any(p is head.shared_factor for p in head.parameters())
    else:
        assert head.shared_factor is None
    d = head(torch.randn(batch + (H,)))
    assert d.batch_shape == batch
    assert d.event_shape == (D,)
    assert d.mixture_distribution.logits.shape == batch + (K,)
    assert d.component_distribution.batch_shape == batch + (K,)
    assert d.component_distribution.event_shape == (D,)
    loc, fac, diag = component_arguments(d, parameterization, rank)
    assert loc.shape == diag.shape == batch + (K, D)
    if rank == 0:
        assert fac is None
    else:
        assert fac.shape == batch + (K, D, rank)
    assert d.log_prob(torch.randn(batch + (D,))).shape == batch
    assert d.sample((7,)).shape == (7,) + batch + (D,)


@modes
@ranks
@pytest.mark.parametrize("batch", BATCH_SHAPES)
def test_equals_mixture_built_by_hand(parameterization, factor, rank, batch):
    min_diag = 0.05
    head = make_head(parameterization, factor, rank, min_diag=min_diag)
    h = torch.randn(batch + (H,), dtype=F64)
    y = torch.randn(batch + (D,), dtype=F64)
    args = hand_built_arguments(head, h, parameterization, factor, rank, min_diag)
    d = head(h)

    # The same arguments reach the mixture ...
    assert_close(d.mixture_distribution.logits, torch.log_softmax(args[0], -1))
    loc, fac, diag = component_arguments(d, parameterization, rank)
    assert_close(loc, args[1])
    assert_close(diag, args[3])
    if rank == 0:
        assert fac is None
    else:
        assert_close(fac, args[2].expand(batch + (K, D, rank)))

    # ... so it scores like the library mixture built from them and like a dense reference.
    expected = low_rank_mixture(*args, parameterization=parameterization)
    assert_close(d.log_prob(y), expected.log_prob(y))
    assert_close(d.log_prob(y), dense_log_prob(*args, parameterization, y))


@modes
@pytest.mark.parametrize("rank", [1, 3])
def test_factor_is_shared_or_per_step(parameterization, factor, rank):
    head = make_head(parameterization, factor, rank)
    d = head(torch.randn(4, H, dtype=F64))
    fac = component_arguments(d, parameterization, rank)[1]
    if factor == "shared":
        assert_close(fac, head.shared_factor.expand(4, K, D, rank), rtol=0, atol=0)
    else:
        # Different features give different factors.
        assert not torch.allclose(fac[0], fac[1])


@modes
@ranks
def test_gradients_equal_the_dense_reference(parameterization, factor, rank):
    """The head computes each part with its own rows of the weight; the gradients of every
    parameter and of the features must be those of the one linear output sliced by hand and
    scored by dense float64 Gaussians."""
    min_diag = 0.05
    head = make_head(parameterization, factor, rank, min_diag=min_diag)
    h = torch.randn(3, 4, H, dtype=F64, requires_grad=True)
    y = torch.randn(3, 4, D, dtype=F64)
    inputs = [h, *head.parameters()]
    ours = torch.autograd.grad(head(h).log_prob(y).sum(), inputs)
    args = hand_built_arguments(head, h, parameterization, factor, rank, min_diag)
    reference = torch.autograd.grad(dense_log_prob(*args, parameterization, y).sum(), inputs)
    for a, b in zip(ours, reference, strict=True):
        assert_close(a, b)


@modes
@ranks
def test_every_parameter_gets_a_finite_gradient(parameterization, factor, rank):
    head = make_head(parameterization, factor, rank)
    h = torch.randn(2, 6, H, dtype=F64, requires_grad=True)
    y = torch.randn(2, 6, D, dtype=F64)
    head(h).log_prob(y).sum().neg().backward()
    named = dict(head.named_parameters())
    expected = {"linear.weight", "linear.bias"} | (
        {"shared_factor"} if rank and factor == "shared" else set()
    )
    assert set(named) == expected
    for name, p in named.items():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    assert torch.isfinite(h.grad).all()
    assert h.grad.abs().sum() > 0


@modes
@ranks
@pytest.mark.parametrize("min_diag", [1e-4, 0.3])
def test_diag_floor(parameterization, factor, rank, min_diag):
    head = make_head(parameterization, factor, rank, min_diag=min_diag)
    diag_block = slice(K + K * D, K + 2 * K * D)

    # Large raw outputs of either sign stay at or above the floor.
    with torch.no_grad():
        head.linear.weight.mul_(50.0)
    d = head(torch.randn(64, H, dtype=F64))
    if rank == 0:
        # Diagonal components keep a scale; compare it with the floor's, mapped by the same op.
        scale, floor = d.component_distribution.base_dist.scale, torch.tensor(min_diag, dtype=F64)
        if parameterization == "covariance":
            assert (scale >= floor.sqrt()).all()
        else:
            assert (scale <= floor.rsqrt()).all()
    else:
        assert (component_arguments(d, parameterization, rank)[2] >= min_diag).all()

    # Raw diagonals far below zero land exactly on the floor (softplus(-1e4) == 0 in float64).
    with torch.no_grad():
        head.linear.weight.zero_()
        head.linear.bias[diag_block] = -1e4
    d = head(torch.randn(8, H, dtype=F64))
    diag = component_arguments(d, parameterization, rank)[2]
    assert_close(diag, torch.full_like(diag, min_diag))
    if rank == 0:
        # Diagonal components: the scale is the floor's square root (covariance) or its inverse.
        scale = d.component_distribution.base_dist.scale
        expected = min_diag**0.5 if parameterization == "covariance" else min_diag**-0.5
        assert_close(scale, torch.full_like(scale, expected))


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"parameterization": "cov"}, "parameterization"),
        ({"parameterization": None}, "parameterization"),
        ({"factor_mode": "global"}, "factor_mode"),
        ({"factor_mode": "per-step"}, "factor_mode"),
        ({"in_features": 0}, "in_features"),
        ({"obs_dim": 0}, "obs_dim"),
        ({"num_components": 0}, "num_components"),
        ({"rank": -1}, "rank"),
        ({"min_diag": -1e-3}, "min_diag"),
    ],
)
def test_bad_arguments_are_refused(kwargs, name):
    args = {"in_features": H, "obs_dim": D, "num_components": K, "rank": 1}
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        MixtureHead(**args)
