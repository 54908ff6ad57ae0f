"""Boosted mixtures of FRMDNs: an exact mixture over whole sequences, with inputs and masks."""

import math

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO

import pyro_frmdn as pf
from pyro_frmdn.models import BoostedFRMDN


def frmdn_mixture(components=0):
    torch.manual_seed(0)
    m = BoostedFRMDN(2, steps=4, hidden_dim=4, num_components=2, rank=1, flow_layers=1).double()
    for _ in range(components):
        m.add_component()
    return m


def test_frmdn_components_give_an_exact_mixture_over_sequences():
    m = frmdn_mixture(components=2)
    m.set_rho(torch.tensor([1.0, 0.3], dtype=torch.float64))
    y = torch.randn(5, 4, 2, dtype=torch.float64)
    lp = torch.stack([c.log_prob(y) for c in m.components], -1)
    manual = torch.logsumexp(lp + torch.tensor([0.7, 0.3], dtype=torch.float64).log(), -1)
    assert torch.allclose(m.log_prob(y), manual, rtol=1e-12)
    assert m.sample(3).shape == (3, 4, 2) and m.sample(2, steps=6).shape == (2, 6, 2)
    loss = Trace_ELBO().differentiable_loss(m.model, m.guide, y)
    assert torch.allclose(loss, -m.log_prob(y).sum(), rtol=1e-12)


def conditional_frmdn_mixture(rho=(1.0, 0.3)):
    """Two FRMDN components with inputs x (X = 2), weights from ``rho``."""
    torch.manual_seed(1)
    m = BoostedFRMDN(2, steps=5, input_dim=2, hidden_dim=4, num_components=2, flow_layers=1)
    m = m.double()
    for _ in rho:
        m.add_component()
    m.set_rho(torch.tensor(rho, dtype=torch.float64))
    return m


def ragged(n=5, steps=6, seed=0):
    """y (n, steps, 2) and x (n, steps, 2) with NaN padding after each sequence's length."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, steps + 1, (n,), generator=g)
    lengths[0] = steps
    mask = torch.arange(steps) < lengths[:, None]
    y = torch.randn(n, steps, 2, generator=g, dtype=torch.float64)
    x = torch.randn(n, steps, 2, generator=g, dtype=torch.float64)
    return y.masked_fill(~mask[..., None], math.nan), x, mask, lengths.tolist()


def test_masked_sequences_with_inputs_equal_a_manual_logsumexp_of_truncated_sequences():
    m = conditional_frmdn_mixture()
    y, x, mask, lengths = ragged()
    # each sequence on its own, cut to its length, no mask: the components are causal
    manual = torch.stack(
        [
            torch.logsumexp(
                torch.stack(
                    [c.log_prob(y[i : i + 1, :n], x[i : i + 1, :n])[0] for c in m.components]
                )
                + torch.tensor([0.7, 0.3], dtype=torch.float64).log(),
                0,
            )
            for i, n in enumerate(lengths)
        ]
    )
    assert torch.allclose(m.log_prob(y, x, mask), manual, rtol=1e-12, atol=1e-12)
    assert m.component_log_probs(y, x=x, mask=mask).shape == (5, 2)
    loss = Trace_ELBO().differentiable_loss(m.model, m.guide, y, x, mask)
    assert torch.allclose(loss, -manual.sum(), rtol=1e-12)
    assert pf.evaluate(m, {"y": y, "x": x, "mask": mask}) == pytest.approx(
        -float(manual.detach().sum()) / sum(lengths), rel=1e-12
    )


def test_sampling_with_inputs_gives_each_sequence_its_own_inputs():
    m = conditional_frmdn_mixture(rho=(1.0, 0.5))
    x = torch.randn(7, 5, 2, dtype=torch.float64)
    pyro.set_rng_seed(3)
    y, k = m.sample(7, x=x, return_components=True)
    assert y.shape == (7, 5, 2)
    pyro.set_rng_seed(3)  # the same draws by hand: components, then each component's rows
    k_manual = torch.multinomial(m.weights(), 7, replacement=True)
    assert torch.equal(k, k_manual)
    expected = torch.empty_like(y)
    for c, component in enumerate(m.components):
        rows = (k == c).nonzero().flatten()
        if len(rows):
            expected[rows] = component.sample(len(rows), steps=5, x=x[rows])
    assert torch.equal(y, expected)
    _, _, mask, _ = ragged(n=7, steps=5)
    drawn = m.distribution(x=x, mask=mask).sample()
    assert drawn.shape == (7, 5, 2) and bool((drawn[~mask] == 0).all())


def test_frmdn_mixture_input_errors():
    m = conditional_frmdn_mixture()
    y, x, mask, _ = ragged()
    with pytest.raises(ValueError, match="pass x"):
        m.log_prob(y, mask=mask)
    with pytest.raises(ValueError, match=r"mask must have shape \(5, 6\)"):
        m.log_prob(y, x, mask[:, :3])
    with pytest.raises(ValueError, match=r"x must have shape \(5, 6, 2\)"):
        m.log_prob(y, x[:, :3], mask)
    with pytest.raises(ValueError, match=r"x must have shape \(3, 5, 2\)"):
        m.sample(3)
    with pytest.raises(ValueError, match="has NaN"):
        m.log_prob(y, x)  # the padding is NaN: without the mask it is scored
    with pytest.raises(ValueError, match="x was given but"):
        frmdn_mixture(1).sample(2, x=torch.zeros(2, 4, 2))
    d = m.distribution((6, 2), x=x, mask=mask)
    with pytest.raises(ValueError, match="not broadcastable"):
        d.log_prob(y[:4])
    with pyro.validation_enabled(False):
        with pytest.raises(ValueError, match=r"batch shape \(4,\), the inputs are for \(5,\)"):
            m.distribution((6, 2), x=x, mask=mask).log_prob(y[:4])
    with pytest.raises(ValueError, match="cannot be expanded"):
        d.expand((2, 5))
    with pytest.raises(ValueError, match="sequence length"):
        frmdn_mixture(1).__class__(2, hidden_dim=4).distribution()


def test_a_config_saved_without_a_flow_width_rebuilds_the_old_uncapped_width():
    # before widths were stored, flow_hidden_dims absent meant max(32, 2 D); now it is capped
    from pyro_frmdn.flows import default_hidden_dims

    new = pf.BoostedFRMDN(80, steps=3, hidden_dim=4, num_components=1, flow_layers=1)
    assert new.config["flow_hidden_dims"] == default_hidden_dims(80) != [160]
    assert pf.BoostedFRMDN.upgrade_config(dict(new.config)) == new.config
    old = {k: v for k, v in new.config.items() if k != "flow_hidden_dims"}
    rebuilt = pf.BoostedFRMDN.from_config(old)
    assert rebuilt.config["flow_hidden_dims"] == [160]
    assert rebuilt.new_component(0).config["flow_hidden_dims"] == [160]
    flowless = {**old, "flow_layers": 0}
    assert pf.BoostedFRMDN.upgrade_config(flowless)["flow_hidden_dims"] is None
