"""The boosted variational guide: an exact mixture density, reparameterised samples, Pyro use."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Trace_ELBO

from pyro_frmdn.nn import BoostedGuideFlow


def guide_flow(kind="affine"):
    torch.manual_seed(0)
    rho = torch.tensor([1.0, 0.4, 0.3])
    return BoostedGuideFlow(2, 3, num_components=3, flow=kind, hidden_dims=[8], rho=rho).double()


@pytest.mark.parametrize("kind", ["affine", "spline"])
def test_guide_log_prob_is_an_exact_mixture(kind):
    q = guide_flow(kind)
    h = torch.randn(4, 3, dtype=torch.float64)
    d = q(h)
    z = torch.randn(4, 2, dtype=torch.float64)
    lp = torch.stack([c(h).log_prob(z) for c in q.components], -1)
    manual = torch.logsumexp(lp + q.log_weights(), -1)
    assert torch.allclose(d.log_prob(z), manual, rtol=1e-12)


def test_guide_density_integrates_to_one():
    q = guide_flow()
    h = torch.randn(1, 3, dtype=torch.float64)
    axis = torch.linspace(-10, 10, 401, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        density = q(h.expand(len(grid), 3)).log_prob(grid).exp()
    assert float(density.sum() * (axis[1] - axis[0]) ** 2) == pytest.approx(1.0, abs=2e-3)


def test_guide_rsample_carries_gradients_to_every_component():
    q = guide_flow()
    h = torch.randn(64, 3, dtype=torch.float64)
    d = q(h)
    assert d.has_rsample and d.batch_shape == (64,) and d.event_shape == (2,)
    z = d.rsample((2,))
    assert z.shape == (2, 64, 2)
    z.square().sum().backward()
    for c in q.components:  # 128 draws from weights (0.42, 0.28, 0.3): every component is used
        assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in c.parameters())
    only = q(h).rsample(component=1)
    assert only.shape == (64, 2)


def test_guide_works_as_a_pyro_guide():
    q = guide_flow()
    x = torch.randn(8, 3, dtype=torch.float64)

    def model(x):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
            pyro.sample("x", dist.Normal(z.sum(-1, keepdim=True), 1.0).to_event(1), obs=x[:, :1])

    def guide(x):
        pyro.module("q", q)
        with pyro.plate("data", len(x)):
            pyro.sample("z", q(x))

    loss = Trace_ELBO().differentiable_loss(model, guide, x)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in q.parameters())


def test_set_trainable_picks_one_component_or_all_and_freeze_freezes_all():
    q = guide_flow()
    grads = [[p.requires_grad for p in c.parameters()] for c in q.components]
    assert all(all(g) for g in grads)  # a new guide trains jointly
    q.set_trainable(1)
    grads = [[p.requires_grad for p in c.parameters()] for c in q.components]
    assert not any(grads[0]) and all(grads[1]) and not any(grads[2])
    q.set_trainable(None)
    assert all(p.requires_grad for p in q.parameters())
    q.freeze()
    assert not any(p.requires_grad for p in q.parameters())
    with pytest.raises(ValueError, match="no component 3"):
        q.set_trainable(3)


def test_bad_context_raises_a_clear_error():
    with pytest.raises(ValueError, match="context has 2 features"):
        guide_flow()(torch.randn(4, 2, dtype=torch.float64))
