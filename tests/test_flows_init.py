"""Couplings started as the identity (``coupling_flow(init="identity")``): the untrained flow is
its base whatever the seed, yet every part of it can learn; and the boosted components' default."""

import math

import pytest
import torch
from support.boosting import blobs

from pyro_frmdn.flows import INITS, coupling_flow, identity_start
from pyro_frmdn.models import BoostedFlow, MixtureOfFlows
from pyro_frmdn.models.boosted_flow import CONFIG_INIT_BEFORE, DEFAULT_COMPONENT, FlowComponent

CASES = [("spline", 1), ("spline", 2), ("spline", 5), ("affine", 2), ("affine", 5)]


def base_log_prob(x):
    """A standard normal's log-density, in float64, by hand."""
    x = x.double()
    return -0.5 * (x**2).sum(-1) - 0.5 * x.shape[-1] * torch.log(torch.tensor(2 * torch.pi))


# Pyro pins a spline's slope at both ends of its interval to 1 - 1e-3: its end bins bend by that
END_SLOPE_NATS = -math.log(1 - 1e-3)


@pytest.mark.parametrize("kind,dim", CASES)
def test_each_coupling_starts_as_the_identity(kind, dim):
    torch.manual_seed(0)
    bound, bins = 3.0, 8
    flow = coupling_flow(
        dim, 3, flow=kind, hidden_dims=[16, 16], init="identity", bound=bound, count_bins=bins
    ).double()
    end_bin = 2 * bound / bins
    x = 4 * torch.rand(400, dim, dtype=torch.float64) - 2  # inner bins: [-2, 2] of [-3, 3]
    far = 3.2 * torch.randn(400, dim, dtype=torch.float64)  # the end bins and outside
    for layer in flow[::2]:  # the couplings; the permutations between them mix coordinates
        y = layer(x)  # exact inside the end bins (Pyro's spline adds epsilons of 1e-6 to some
        assert torch.allclose(y, x, atol=1e-9, rtol=0)  # terms: its log-determinant is 1e-8 off)
        assert layer.log_abs_det_jacobian(x, y).abs().max() < 1e-7
        y = layer(far)
        error, logdet = (y - far).abs(), layer.log_abs_det_jacobian(far, y).abs()
        if kind == "affine":
            assert torch.equal(y, far) and torch.equal(logdet, torch.zeros_like(logdet))
        else:  # within what the pinned end slopes allow, each coordinate
            assert error.max() < 2e-4 * end_bin and logdet.max() <= dim * END_SLOPE_NATS + 1e-12
            assert error.max() > 0  # (the bend is there: this test sees it)


@pytest.mark.parametrize("kind,dim", CASES)
def test_the_untrained_component_is_its_base_whatever_the_seed(kind, dim):
    x = 2 * torch.randn(50, dim, dtype=torch.float64)
    reference, densities = base_log_prob(x), []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)  # draws the hidden layers: the map must not depend on them
        component = FlowComponent(dim, 2, flow=kind, hidden_dims=[16], init="identity").double()
        densities.append(component.log_prob(x))
        # two couplings of D coordinates, each within its splines' end bend
        assert (densities[-1] - reference).abs().max() <= 2 * dim * END_SLOPE_NATS + 1e-12
    assert torch.equal(densities[0], densities[1]) and torch.equal(densities[0], densities[2])
    torch.manual_seed(1)
    drawn = FlowComponent(dim, 2, flow=kind, hidden_dims=[16], init="random").double()
    assert (drawn.log_prob(x) - reference).abs().max() > 10 * dim * END_SLOPE_NATS


@pytest.mark.parametrize("kind,dim", CASES)
def test_every_parameter_of_an_identity_start_learns(kind, dim):
    torch.manual_seed(0)
    component = FlowComponent(dim, 2, flow=kind, hidden_dims=[16], init="identity")
    data = 1.5 * torch.randn(64, dim) + torch.linspace(-1, 1, dim)
    optimizer = torch.optim.SGD(component.parameters(), lr=0.05)
    for step in range(2):
        optimizer.zero_grad()
        (-component.log_prob(data).mean()).backward()
        if step == 0:  # the zeroed output layers learn first (the hidden layers' gradients
            # pass through their zero weights); nothing is left without a gradient
            assert all(p.grad is not None for p in component.parameters())
            for layer in component.flow[::2] if dim > 1 else []:
                net = layer.nn if kind == "affine" else layer.upper_spline.nn
                assert net.layers[-1].weight.grad.abs().sum() > 0
        optimizer.step()
    # after one step every parameter moves: the start is not a fixed point
    for name, p in component.named_parameters():
        assert p.grad.abs().sum() > 0, name


def test_identity_start_refuses_what_it_cannot_start():
    with pytest.raises(TypeError, match="unconditional coupling or spline"):
        identity_start(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="init must be one of"):
        coupling_flow(2, 1, flow="spline", init="zeros")
    with pytest.raises(ValueError, match="context_dim=3"):
        coupling_flow(2, 1, flow="spline", context_dim=3, init="identity")
    with pytest.raises(ValueError, match="init must be one of"):
        BoostedFlow(2, init="zeros")
    assert INITS == ("random", "identity")


def test_boosted_components_start_as_the_identity_by_default():
    assert DEFAULT_COMPONENT["init"] == "identity"
    m = BoostedFlow(2)
    assert m.config["init"] == "identity"
    x = 3 * torch.randn(40, 2)
    for c in range(3):  # each new component, whatever its permutation's seed
        torch.manual_seed(10 + c)
        component = m.new_component(c)
        difference = (component.log_prob(x).double() - base_log_prob(x)).abs().max()
        assert difference <= 2 * 2 * END_SLOPE_NATS + 1e-5  # two couplings of 2 coordinates


def test_a_config_saved_without_init_rebuilds_and_grows_with_the_random_start_of_then():
    torch.manual_seed(0)
    old = BoostedFlow(2, init="random").double()
    old.add_component(), old.add_component(rho=0.3)
    payload = old.payload()
    payload["config"] = {k: v for k, v in payload["config"].items() if k != "init"}
    loaded = BoostedFlow.from_payload(payload)
    assert loaded.config["init"] == CONFIG_INIT_BEFORE == "random"
    y = blobs()
    assert torch.equal(loaded.log_prob(y), old.log_prob(y))


def test_a_joint_mixture_passes_its_start_to_every_component():
    centres = torch.tensor([[-2.0, 0.0], [2.0, 1.0]])
    m = MixtureOfFlows(2, num_components=2, init="identity", init_loc=centres).double()
    assert m.config["init"] == "identity"
    x = torch.randn(30, 2, dtype=torch.float64)
    for c, component in enumerate(m.components):  # a standard normal at its centre, which the
        centre = component.loc  # flow's permutations carry to the data's coordinates
        for layer in component.flow:
            centre = layer(centre)
        assert torch.allclose(centre.sort().values, centres[c].double().sort().values, atol=1e-9)
        difference = (component.log_prob(x) - base_log_prob(x - centre)).abs().max()
        assert difference <= 2 * 2 * END_SLOPE_NATS + 1e-12
    assert MixtureOfFlows(2, num_components=2).config["init"] == "random"
