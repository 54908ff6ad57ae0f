"""Tests of :mod:`pyro_frmdn.flows`: invertibility, log-Jacobians, gradients and options.

Every check runs in float64 over every combination of options the builder offers, against
references computed independently: the identity map for round trips, and the log-determinant of
the autograd Jacobian, per single point, for log-Jacobians.
"""

from __future__ import annotations

import itertools

import pyro
import pyro.distributions.transforms as PT
import pytest
import torch
from pyro.distributions.conditional import ConditionalTransform
from torch.autograd.functional import jacobian

from pyro_frmdn.distributions import clear_transform_cache, flow_mixture, low_rank_mixture
from pyro_frmdn.flows import AffineCoupling, ConditionalSplineCoupling, Permutation, coupling_flow

BOUND = 3.0
NUM_LAYERS = 2  # two couplings with a mixing layer between them
CONTEXT_DIM = 3
HIDDEN = [8]
ATOL = 1e-9  # float64 round trips and log-dets are exact to ~1e-13; bugs show at >= 1e-3


def _config_id(kind, dim, mixing, batchnorm, context_dim):
    return f"{kind}-D{dim}-{mixing}-{'bn' if batchnorm else 'nobn'}-ctx{context_dim}"


CONFIGS = [
    pytest.param(*c, id=_config_id(*c))
    for c in itertools.product(
        ("affine", "spline"),
        (1, 2, 5),
        ("permute", "householder", "none"),
        (False, True),
        (0, CONTEXT_DIM),
    )
    if not (c[0] == "affine" and c[1] == 1)
]


def _build(kind, dim, mixing, batchnorm, context_dim):
    """A float64 flow whose batch norms have non-trivial parameters and running statistics."""
    flow = coupling_flow(
        dim,
        NUM_LAYERS,
        flow=kind,
        hidden_dims=HIDDEN,
        mixing=mixing,
        batchnorm=batchnorm,
        context_dim=context_dim,
        bound=BOUND,
        seed=0,
    ).double()
    with torch.no_grad():
        for t in flow:
            if isinstance(t, PT.BatchNorm):
                t.gamma.uniform_(0.5, 2.0)
                t.beta.normal_(0.0, 0.3)
                t.moving_mean.normal_(0.0, 0.3)
                t.moving_variance.uniform_(0.5, 2.0)
            if isinstance(t, Permutation) and dim > 2:  # not its own inverse: a wrong one shows
                assert not torch.equal(t.permutation[t.permutation], torch.arange(dim))
    return flow


def _conditioned(flow, context):
    return [t.condition(context) if isinstance(t, ConditionalTransform) else t for t in flow]


def _vector_ladj(t, x, y):
    """``t.log_abs_det_jacobian`` per point, summed over the event dim if ``t`` is elementwise.

    (Pyro's BatchNorm in eval mode returns one term per dimension, without the batch dims.)
    """
    ladj = t.log_abs_det_jacobian(x, y)
    if t.domain.event_dim == 0:
        ladj = ladj.sum(-1)
    return ladj.expand(x.shape[:-1])


def _forward(transforms, x):
    """Base → data; returns ``y`` and ``log|det ∂y/∂x|`` from the forward pass."""
    ladj = x.new_zeros(x.shape[:-1])
    for t in transforms:
        y = t(x)
        ladj = ladj + _vector_ladj(t, x, y)
        x = y
    return x, ladj


def _inverse(transforms, y):
    """Data → base; returns ``x`` and ``log|det ∂y/∂x|`` (at ``x``) from the inverse pass."""
    ladj = y.new_zeros(y.shape[:-1])
    for t in reversed(transforms):
        x = t.inv(y)
        ladj = ladj + _vector_ladj(t, x, y)
        y = x
    return y, ladj


def _points(dim, n_inside=4, n_outside=4):
    """Points inside ``[-BOUND, BOUND]^D``, then points with their first coordinate outside."""
    inside = (2 * torch.rand(n_inside + n_outside, dim, dtype=torch.float64) - 1) * 0.9 * BOUND
    sign = torch.tensor([1.0, -1.0], dtype=torch.float64).repeat(n_outside // 2)
    inside[n_inside:, 0] = sign * (BOUND + 0.5 + torch.rand(n_outside, dtype=torch.float64))
    return inside


def _context(n, context_dim):
    return torch.randn(n, context_dim, dtype=torch.float64) if context_dim else None


def _stages(transforms, v, inverse=False):
    """The points between the layers: ``[x_0, ..., x_L]`` with ``x_{l+1} = t_l(x_l)``."""
    stages = [v]
    for t in reversed(transforms) if inverse else transforms:
        stages.append(t.inv(stages[-1]) if inverse else t(stages[-1]))
    return stages[::-1] if inverse else stages


def _layer_jacobians(transforms, stages):
    """Per-point Jacobians ``∂t_l/∂x`` at ``stages[l]``, each ``(N, D, D)``.

    The points of a batch are independent (batch norms in eval mode), so the Jacobian of the
    batch sum holds every point's own Jacobian.
    """
    jacs = []
    for t, x in zip(transforms, stages, strict=False):
        jac = jacobian(lambda v, t=t: t(v).sum(0), x.detach().clone())  # (D, N, D)
        jacs.append(jac.permute(1, 0, 2))
    return jacs


def _round_trip_tolerance(jacs):
    """``ATOL * (1 + sum_l ||J_{L-1} ... J_l||)`` per point.

    Rounding errors (``<= ATOL``, checked layer by layer) made at layer ``l`` reach the output
    multiplied by the Jacobian of the layers above it; randomly initialised spline couplings have
    slopes of 1e3 and more, so a composite round trip is only as exact as this sum allows.
    """
    dim = jacs[0].shape[-1]
    suffix = torch.eye(dim, dtype=torch.float64).expand_as(jacs[0])
    total = torch.ones(jacs[0].shape[0], dtype=torch.float64)
    for jac in reversed(jacs):
        suffix = suffix @ jac
        total = total + torch.linalg.matrix_norm(suffix, ord=2)
    return ATOL * total


@pytest.mark.parametrize("kind, dim, mixing, batchnorm, context_dim", CONFIGS)
def test_inverse_of_forward(kind, dim, mixing, batchnorm, context_dim):
    flow = _build(kind, dim, mixing, batchnorm, context_dim).eval()
    x = _points(dim)
    context = _context(len(x), context_dim)
    stages = [s.detach() for s in _stages(_conditioned(flow, context), x)]
    y = stages[-1]
    assert (y - x).abs().max() > 1e-2  # the flow is not the identity: the check is not vacuous

    # every layer's inverse, on fresh tensors and empty caches: exact to rounding
    transforms = _conditioned(flow, context)
    clear_transform_cache(transforms)
    for t, a, b in zip(transforms, stages[:-1], stages[1:], strict=True):
        torch.testing.assert_close(t.inv(b.clone()), a, atol=ATOL, rtol=0)

    # the whole stack, inverted: exact up to the propagation of rounding errors
    clear_transform_cache(transforms)
    x_back, _ = _inverse(transforms, y.clone())
    inverse_jacs = [torch.linalg.inv(j) for j in _layer_jacobians(transforms, stages)]
    tol = _round_trip_tolerance(inverse_jacs[::-1])
    assert ((x_back - x).abs().amax(-1) <= tol).all(), ((x_back - x).abs().amax(-1), tol)


@pytest.mark.parametrize("kind, dim, mixing, batchnorm, context_dim", CONFIGS)
def test_forward_of_inverse(kind, dim, mixing, batchnorm, context_dim):
    flow = _build(kind, dim, mixing, batchnorm, context_dim).eval()
    y = _points(dim)
    context = _context(len(y), context_dim)
    stages = [s.detach() for s in _stages(_conditioned(flow, context), y, inverse=True)]
    x = stages[0]
    assert (y - x).abs().max() > 1e-2

    transforms = _conditioned(flow, context)
    clear_transform_cache(transforms)
    for t, a, b in zip(transforms, stages[:-1], stages[1:], strict=True):
        torch.testing.assert_close(t(a.clone()), b, atol=ATOL, rtol=0)

    clear_transform_cache(transforms)
    y_back, _ = _forward(transforms, x.clone())
    tol = _round_trip_tolerance(_layer_jacobians(transforms, stages))
    assert ((y_back - y).abs().amax(-1) <= tol).all(), ((y_back - y).abs().amax(-1), tol)


@pytest.mark.parametrize("kind, dim, mixing, batchnorm, context_dim", CONFIGS)
def test_log_abs_det_jacobian_matches_autograd(kind, dim, mixing, batchnorm, context_dim):
    flow = _build(kind, dim, mixing, batchnorm, context_dim).eval()
    x = _points(dim)
    context = _context(len(x), context_dim)

    # layer by layer, at the points the forward pass goes through, from the forward pass's cache
    # and from the inverse pass's cache (as ``log_prob`` computes it)
    transforms = _conditioned(flow, context)
    stages = [s.detach() for s in _stages(transforms, x)]
    jacs = _layer_jacobians(transforms, stages)
    clear_transform_cache(transforms)
    for t, a, b, jac in zip(transforms, stages[:-1], stages[1:], jacs, strict=True):
        expected = torch.linalg.slogdet(jac).logabsdet
        a, b = a.clone(), b.clone()
        torch.testing.assert_close(_vector_ladj(t, a, t(a)), expected, atol=ATOL, rtol=0)
        torch.testing.assert_close(_vector_ladj(t, t.inv(b), b), expected, atol=ATOL, rtol=0)

    # the whole stack, one point at a time
    _, ladj = _forward(_conditioned(flow, context), x)
    index = [0, 1, len(x) - 2, len(x) - 1]  # two points inside the spline interval, two outside
    expected = []
    for i in index:
        ts = _conditioned(flow, None if context is None else context[i : i + 1])
        jac = jacobian(lambda v, ts=ts: _forward(ts, v.unsqueeze(0))[0].squeeze(0), x[i].clone())
        expected.append(torch.linalg.slogdet(jac).logabsdet)
    expected = torch.stack(expected)

    assert expected.abs().max() > 1e-2  # not volume preserving: a zero log-det would fail
    torch.testing.assert_close(ladj[index], expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("kind, dim, mixing, batchnorm, context_dim", CONFIGS)
def test_every_parameter_gets_a_gradient(kind, dim, mixing, batchnorm, context_dim):
    flow = _build(kind, dim, mixing, batchnorm, context_dim)  # train mode, as in training
    n, k = 16, 3
    y = (2 * torch.rand(n, dim, dtype=torch.float64) - 1) * 0.9 * BOUND
    base = low_rank_mixture(
        torch.randn(k, dtype=torch.float64),
        torch.randn(k, dim, dtype=torch.float64),
        0.3 * torch.randn(k, dim, 1, dtype=torch.float64),
        torch.rand(k, dim, dtype=torch.float64) + 0.5,
    )
    d = flow_mixture(base, flow, _context(n, context_dim))
    d.log_prob(y).sum().backward()

    named = list(flow.named_parameters())
    assert named
    for name, p in named:
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


def test_spline_flow_is_the_identity_outside_the_bound():
    for dim in (1, 2, 5):
        flow = coupling_flow(dim, 2, flow="spline", hidden_dims=HIDDEN, mixing="none", bound=2.0)
        flow = flow.double()
        x = torch.tensor([3.0, -2.5, 7.0, -4.0, 2.1], dtype=torch.float64)[:dim].expand(3, dim)
        y, ladj = _forward(list(flow), x)
        torch.testing.assert_close(y, x, atol=1e-12, rtol=0)
        torch.testing.assert_close(ladj, torch.zeros(3, dtype=torch.float64), atol=1e-12, rtol=0)


@pytest.mark.parametrize("kind, dim, mixing, batchnorm, context_dim", CONFIGS)
def test_structure(kind, dim, mixing, batchnorm, context_dim):
    num_layers = 3
    flow = coupling_flow(
        dim, num_layers, flow=kind, mixing=mixing, batchnorm=batchnorm, context_dim=context_dim
    )
    if dim == 1:
        coupling = PT.ConditionalSpline if context_dim else PT.Spline
    elif kind == "affine":
        coupling = PT.ConditionalAffineCoupling if context_dim else AffineCoupling
    else:
        coupling = ConditionalSplineCoupling if context_dim else PT.SplineCoupling
    mixer = {
        "permute": Permutation,
        "householder": PT.ConditionalHouseholder if context_dim else PT.Householder,
        "none": None,
    }[mixing]

    expected = []
    for i in range(num_layers):
        expected.append(coupling)
        if batchnorm:
            expected.append(PT.BatchNorm)
        if dim > 1 and mixer is not None and i < num_layers - 1:
            expected.append(mixer)
    assert [type(t) for t in flow] == expected
    conditional = [isinstance(t, ConditionalTransform) for t in flow]
    assert any(conditional) == bool(context_dim)


def test_zero_layers_is_an_empty_stack():
    assert len(coupling_flow(3, 0)) == 0


def _hidden_sizes(coupling):
    return [layer.out_features for layer in coupling.nn.layers[:-1]]


def test_default_hidden_dims():
    assert _hidden_sizes(coupling_flow(2, 1, flow="affine")[0]) == [32]
    assert _hidden_sizes(coupling_flow(40, 1, flow="affine")[0]) == [80]
    assert _hidden_sizes(coupling_flow(64, 1, flow="affine")[0]) == [128]
    assert _hidden_sizes(coupling_flow(1000, 1, flow="affine")[0]) == [128]
    assert _hidden_sizes(coupling_flow(4, 1, flow="affine", hidden_dims=[5, 7])[0]) == [5, 7]


def test_default_parameters_grow_linearly_with_dim():
    """An affine coupling of width w on D = 2s: Linear(s, w) and Linear(w, 2s), with biases."""
    for dim in (256, 4096):
        flow = coupling_flow(dim, 4, flow="affine")
        s, w = dim // 2, 128
        assert sum(p.numel() for p in flow.parameters()) == 4 * (s * w + w + w * 2 * s + 2 * s)


@pytest.mark.parametrize("context_dim", [0, CONTEXT_DIM])
def test_affine_dim_1_raises(context_dim):
    with pytest.raises(ValueError, match="dim >= 2"):
        coupling_flow(1, 2, flow="affine", context_dim=context_dim)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"flow": "planar"},
        {"flow": "Affine"},
        {"mixing": "shuffle"},
        {"mixing": None},
        {"flow_layers": -1},
        {"dim": 0},
        {"context_dim": -2},
    ],
    ids=["kind-planar", "kind-case", "mixing-shuffle", "mixing-None", "layers", "dim", "context"],
)
def test_bad_options_raise(kwargs):
    args = {"dim": 3, "flow_layers": 2, **kwargs}
    with pytest.raises(ValueError):
        coupling_flow(**args)


def test_the_old_argument_names_still_work_with_a_warning():
    with pytest.warns(FutureWarning, match="num_layers= is deprecated.*use flow_layers="):
        old = coupling_flow(3, num_layers=2, seed=1)
    with pytest.warns(FutureWarning, match="kind= is deprecated.*use flow="):
        spline = coupling_flow(3, 2, kind="spline", seed=1)
    assert [type(t) for t in old] == [type(t) for t in coupling_flow(3, 2, seed=1)]
    assert [type(t) for t in spline] == [type(t) for t in coupling_flow(3, 2, "spline", seed=1)]
    with pytest.raises(TypeError, match="both num_layers= and flow_layers="):
        coupling_flow(3, 2, num_layers=2)
    with pytest.raises(TypeError, match="unexpected keyword arguments \\['layers'\\]"):
        coupling_flow(3, 2, layers=2)


def _permutations(flow):
    return [t.permutation.clone() for t in flow if isinstance(t, Permutation)]


def test_permutation_maps_and_inverts():
    perm = torch.tensor([2, 0, 3, 1])
    t = Permutation(perm).double()
    x = torch.randn(6, 4, dtype=torch.float64)
    y = t(x)
    torch.testing.assert_close(y, x[:, [2, 0, 3, 1]], atol=0, rtol=0)
    torch.testing.assert_close(t.inv(y.clone()), x, atol=0, rtol=0)
    assert t.log_abs_det_jacobian(x, y).shape == (6,)
    assert (t.log_abs_det_jacobian(x, y) == 0).all()


def test_permutation_buffers_are_state_and_survive_dtype_moves():
    perm = torch.tensor([3, 1, 4, 0, 2])
    t = Permutation(perm)
    state = t.state_dict()
    assert set(state) == {"permutation", "inverse_permutation"}
    assert torch.equal(state["permutation"], perm)
    assert torch.equal(state["inverse_permutation"], torch.argsort(perm))

    t = t.to(torch.float64)  # index buffers must stay integer
    assert t.permutation.dtype == torch.long and t.inverse_permutation.dtype == torch.long
    x = torch.randn(2, 5, dtype=torch.float64)
    torch.testing.assert_close(t(x), x[:, perm], atol=0, rtol=0)

    other = Permutation(torch.arange(5))
    other.load_state_dict(state)
    torch.testing.assert_close(other(x.clone()), x[:, perm], atol=0, rtol=0)


DEVICES = ["meta"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_permutation_buffers_follow_device_moves(device):
    flow = coupling_flow(4, 3, flow="affine", mixing="permute").to(device)
    perms = [t for t in flow if isinstance(t, Permutation)]
    assert len(perms) == 2
    for t in perms:
        assert t.permutation.device.type == device
        assert t.inverse_permutation.device.type == device
    if device != "meta":
        x = torch.randn(3, 4, device=device)
        torch.testing.assert_close(perms[0](x), x[:, perms[0].permutation], atol=0, rtol=0)


def test_seed_makes_permutations_reproducible():
    pyro.set_rng_seed(1)
    first = _permutations(coupling_flow(6, 4, seed=3))
    pyro.set_rng_seed(2)  # the global RNG state must not matter
    torch.rand(7)
    second = _permutations(coupling_flow(6, 4, seed=3))
    other = _permutations(coupling_flow(6, 4, seed=4))

    assert len(first) == 3
    for p in first:
        assert torch.equal(torch.sort(p).values, torch.arange(6))
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))
    # the layers' permutations differ from each other (a fixed one would undo no mixing)
    assert not all(torch.equal(first[0], p) for p in first[1:])


@pytest.mark.parametrize("hidden_dims", [[16], [8, 8]], ids=str)
@pytest.mark.parametrize("dim", [2, 5])
def test_fused_affine_coupling_is_pyros_in_both_directions(dim, hidden_dims):
    # same weights as Pyro's AffineCoupling: the inverse, the log-determinant the score uses and
    # the gradients of a score with respect to the input and every weight, in float64, with
    # log-scales pushed past both clamps so the straight-through gradient is exercised
    torch.manual_seed(0)
    split = dim // 2
    ours = AffineCoupling(split, pyro.nn.DenseNN(split, hidden_dims, [dim - split] * 2)).double()
    with torch.no_grad():
        ours.nn.layers[-1].weight.mul_(40.0)  # log-scales far beyond [-5, 3] for some points
    theirs = PT.AffineCoupling(split, ours.nn)
    y = (3 * torch.randn(200, dim, dtype=torch.float64)).requires_grad_()
    weights = torch.randn(200, dtype=torch.float64)

    def score(t):
        clear_transform_cache([t])
        x = t.inv(y)
        return x, (weights * (x.square().sum(-1) - t.log_abs_det_jacobian(x, y))).sum()

    x_ours, s_ours = score(ours)
    x_theirs, s_theirs = score(theirs)
    with torch.no_grad():
        raw = ours.nn(y[:, :split])[1]
    at_clamp = (raw < -5.0) | (raw > 3.0)
    assert at_clamp.any() and not at_clamp.all()
    torch.testing.assert_close(x_ours, x_theirs, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(s_ours, s_theirs, rtol=1e-12, atol=1e-12)
    params = [y, *ours.parameters()]
    for a, b in zip(
        torch.autograd.grad(s_ours, params), torch.autograd.grad(s_theirs, params), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # and the forward direction is Pyro's own
    z = torch.randn(7, dim, dtype=torch.float64)
    torch.testing.assert_close(ours(z), theirs(z), rtol=0, atol=0)


def test_permutation_gradients_are_those_of_index_select():
    perm = torch.tensor([3, 0, 4, 1, 2])
    t = Permutation(perm).double()
    x = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 5, dtype=torch.float64)
    for fn in (t, t.inv):
        clear_transform_cache([t])
        (got,) = torch.autograd.grad((w * fn(x)).sum(), x)
        index = perm if fn is t else torch.argsort(perm)
        (expected,) = torch.autograd.grad((w * x.index_select(-1, index)).sum(), x)
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert torch.autograd.gradcheck(lambda v: (clear_transform_cache([t]), t(v))[1], (x,))
