"""Boosted normalizing flows: the exact density from the components' flows, samples that follow
it, and BoostedFlow's errors."""

import math

import pyro
import pytest
import torch
from support.boosting import blobs, flow

from pyro_frmdn.models import BoostedFlow


@pytest.mark.parametrize("kind", ["affine", "spline"])
def test_log_prob_equals_a_manual_logsumexp_and_the_recursion(kind):
    m = flow(components=3, rho=(1.0, 0.35, 0.6), kind=kind)
    y = 1.5 * torch.randn(50, 2, dtype=torch.float64)
    lp = torch.stack([c.distribution().log_prob(y) for c in m.components], -1)
    w = [0.65 * 0.4, 0.35 * 0.4, 0.6]
    manual = torch.logsumexp(lp + torch.tensor(w, dtype=torch.float64).log(), -1)
    assert torch.allclose(m.log_prob(y), manual, rtol=1e-12, atol=1e-12)
    log_g = lp[:, 0]  # log G_c = logaddexp(log(1 - ρ_c) + log G_{c-1}, log ρ_c + log g_c)
    for c, r in ((1, 0.35), (2, 0.6)):
        log_g = torch.logaddexp(math.log1p(-r) + log_g, math.log(r) + lp[:, c])
    assert torch.allclose(m.log_prob(y), log_g, rtol=1e-12, atol=1e-12)
    assert m.component_log_probs(y).shape == (50, 3)


def test_samples_follow_the_mixture_density(binned_goodness_of_fit):
    m = flow(components=3, rho=(1.0, 0.4, 0.3), seed=3)
    with torch.no_grad():  # move the components apart so the test sees the mixture
        for c, shift in zip(m.components, (-2.0, 0.0, 2.0), strict=True):
            c.flow[0].nn.layers[-1].bias.zero_()
            c.loc.fill_(shift)
    pyro.set_rng_seed(2)
    y = m.sample(4000)

    def log_prob(grid):
        return m.log_prob(grid.reshape(-1, 2)).reshape(grid.shape[:-1])

    with torch.no_grad():
        p = binned_goodness_of_fit(y, log_prob, y.min(0).values, y.max(0).values)
    assert p > 1e-3


def test_samples_of_each_component_come_from_that_component():
    m = flow(components=2, rho=(1.0, 0.5))
    with torch.no_grad():
        m.components[0].loc.fill_(-20.0)
        m.components[1].loc.fill_(20.0)
    y, k = m.sample(200, return_components=True)
    lp = m.component_log_probs(y)
    assert torch.equal(lp.argmax(-1), k)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="need dim >= 1"):
        BoostedFlow(0)
    with pytest.raises(ValueError, match="flow must be one of"):
        BoostedFlow(2, flow="planar")
    with pytest.raises(ValueError, match="affine coupling needs dim >= 2"):
        BoostedFlow(1, flow="affine")
    m = flow(components=2)
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        m.log_prob(torch.randn(3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="NaN at position"):
        m.log_prob(torch.tensor([[0.0, math.nan]], dtype=torch.float64))
    with pytest.raises(ValueError, match="alone; got also"):
        flow(components=1).log_prob(blobs(4), mask=torch.ones(4, dtype=torch.bool))


def test_the_default_component_conditions_its_splines_on_two_hidden_layers_of_64():
    m = BoostedFlow(2)
    assert m.config["hidden_dims"] == [64, 64]
    coupling = m.new_component(0).flow[0]
    widths = [layer.out_features for layer in coupling.upper_spline.nn.layers]
    assert widths[:-1] == [64, 64]  # then the spline's parameters


def test_a_model_saved_with_the_previous_default_of_one_hidden_layer_rebuilds_it():
    torch.manual_seed(0)
    old = BoostedFlow(2, hidden_dims=[64]).double()  # the default before two hidden layers
    old.add_component(), old.add_component(rho=0.3)
    loaded = BoostedFlow.from_payload(old.payload())
    assert loaded.config["hidden_dims"] == [64]
    y = blobs()
    assert torch.equal(loaded.log_prob(y), old.log_prob(y))


def test_the_default_component_has_splines_of_16_bins():
    coupling = BoostedFlow(2).new_component(0).flow[0]
    # a rational-quadratic spline of K bins: K widths, K heights, K - 1 derivatives, K lambdas
    assert coupling.upper_spline.count_bins == 16
    assert coupling.upper_spline.nn.layers[-1].out_features == 16 + 16 + 15 + 16


def test_a_config_saved_without_count_bins_rebuilds_the_8_bins_of_then():
    torch.manual_seed(0)
    old = BoostedFlow(2, count_bins=8).double()
    old.add_component(), old.add_component(rho=0.3)
    payload = old.payload()
    payload["config"] = {k: v for k, v in payload["config"].items() if k != "count_bins"}
    loaded = BoostedFlow.from_payload(payload)
    assert loaded.config["count_bins"] == 8
    y = blobs()
    assert torch.equal(loaded.log_prob(y), old.log_prob(y))
