"""MixtureOfFlows: its density against a direct computation, training by pf.fit, persistence."""

import math

import pytest
import torch
from pyro.distributions.transforms import ComposeTransform

import pyro_frmdn as pf
from pyro_frmdn.models import MixtureOfFlows


def mixture(seed=0, **kwargs):
    torch.manual_seed(seed)
    m = MixtureOfFlows(2, **{"num_components": 3, "flow_layers": 2, "hidden_dims": [8], **kwargs})
    for p in m.parameters():  # move every parameter off its initial value
        p.data.add_(0.3 * torch.randn_like(p))
    return m.double()


@pytest.mark.parametrize("flow", ["affine", "spline"])
def test_log_prob_equals_a_direct_change_of_variables(flow):
    m = mixture(flow=flow, init_loc=[[0.0, 0.0], [1.0, -1.0], [-2.0, 0.5]])
    y = torch.randn(7, 2, dtype=torch.float64)
    log_pi = m.logits - torch.logsumexp(m.logits, 0)
    direct = []
    for c, component in enumerate(m.components):
        f = ComposeTransform(list(component.flow))
        cols = []
        for x in y:  # z = f⁻¹(x), log|det ∂f/∂z| by autograd, base N(loc_c, I)
            z = f.inv(x[None]).squeeze(0).detach()
            jac = torch.autograd.functional.jacobian(lambda v, f=f: f(v[None]).squeeze(0), z)
            base = -0.5 * (z - component.loc).pow(2).sum() - math.log(2 * math.pi)
            cols.append(base - torch.linalg.slogdet(jac)[1])
        direct.append(torch.stack(cols) + log_pi[c])
    expected = torch.logsumexp(torch.stack(direct, -1), -1)
    assert torch.allclose(m.log_prob(y), expected, atol=1e-8)


def test_fit_learns_the_weights_of_two_separated_blobs():
    g = torch.Generator().manual_seed(0)
    left = torch.rand(600, generator=g) < 0.75  # a known answer: weights 0.75 and 0.25
    y = 0.3 * torch.randn(600, 2, generator=g)
    y[:, 0] += torch.where(left, -2.0, 2.0)
    centres = MixtureOfFlows.centres(y, 2)
    assert sorted(round(float(c), 0) for c in centres[:, 0]) == [-2.0, 2.0]
    torch.manual_seed(0)
    # a small component (one coupling, width 8, 8 bins) that cannot draw both blobs well: with
    # 16 bins one component learns both within these 15 epochs and the weights stay unlearnt
    m = MixtureOfFlows(
        2, num_components=2, flow_layers=1, hidden_dims=[8], count_bins=8, init_loc=centres
    )
    h = pf.fit(m, y, epochs=15, batch_size=100, lr=2e-2, progress=False)
    assert h["train_nll"][-1] < h["train_nll"][0]
    left_component = int(centres[:, 0].argmin())
    assert abs(float(m.weights()[left_component]) - 0.75) < 0.05


def test_samples_come_from_components_by_weight_and_it_saves(tmp_path):
    m = mixture()
    m.logits.data = torch.tensor([0.0, math.log(3.0), -50.0], dtype=torch.float64)
    _, k = m.sample(4000, return_components=True)
    freq = torch.bincount(k, minlength=3).double() / 4000
    assert torch.allclose(freq, torch.tensor([0.25, 0.75, 0.0], dtype=torch.float64), atol=0.03)
    m.save(tmp_path / "m.pt")
    loaded = pf.load(tmp_path / "m.pt")
    y = torch.randn(5, 2, dtype=torch.float64)
    assert isinstance(loaded, MixtureOfFlows) and torch.equal(loaded.log_prob(y), m.log_prob(y))


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match=r"init_loc must be finite of shape \(2, 2\)"):
        MixtureOfFlows(2, num_components=2, init_loc=[[0.0, 0.0]])
    with pytest.raises(ValueError, match="num_components"):
        MixtureOfFlows(2, num_components=0)
    with pytest.raises(ValueError, match=r"y must have shape \(N, 2\)"):
        mixture().log_prob(torch.zeros(3, 5, dtype=torch.float64))
