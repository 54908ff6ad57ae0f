"""SequenceDistribution: an FRMDN over whole latent sequences inside Pyro programs."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO
from torch import nn

import pyro_frmdn as pf
from pyro_frmdn.models import SequenceDistribution, shift_actions

D, X, B, T = 2, 3, 4, 6


def prior(input_dim=X, **kwargs):
    torch.manual_seed(0)
    config = dict(hidden_dim=8, num_components=2, rank=1, flow_layers=2) | kwargs
    return pf.FRMDN(D, input_dim=input_dim, **config).double()


def inputs(seed=1):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(B, T, D, generator=g, dtype=torch.float64)
    x = torch.randn(B, T, X, generator=g, dtype=torch.float64)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 4:] = False
    mask[2, 2] = False
    return z, x, mask


def test_shift_actions_puts_the_previous_action_at_each_step():
    a = torch.arange(12.0).reshape(2, 3, 2)
    x = shift_actions(a)
    assert torch.equal(x[:, 0], torch.zeros(2, 2))
    assert torch.equal(x[:, 1:], a[:, :-1])
    with pytest.raises(ValueError, match="batch, time, A"):
        shift_actions(torch.zeros(3, 2))


def test_log_prob_is_the_masked_sum_of_step_log_probs():
    p = prior()
    z, x, mask = inputs()
    d = SequenceDistribution(p, x, mask)
    assert d.batch_shape == (B,) and d.event_shape == (T, D)
    lp = d.log_prob(z)
    steps = p.step_log_prob(z, x, mask)
    assert torch.allclose(lp, (steps * mask).sum(-1), rtol=1e-12)
    # by hand with the step API: z at masked steps is replaced by zeros before the RNN reads it
    zz = torch.where(mask[..., None], z, torch.zeros(()))
    state, prev, manual = p.initial_state(B), None, torch.zeros(B, dtype=torch.float64)
    for t in range(T):
        step, state = p.step(state, prev, x[:, t])
        manual = manual + step.log_prob(zz[:, t]) * mask[:, t]
        prev = zz[:, t]
    assert torch.allclose(lp, manual, rtol=1e-10)


def test_values_at_masked_steps_change_nothing():
    p = prior()
    z, x, mask = inputs()
    noisy = torch.where(mask[..., None], z, torch.full((), float("nan"), dtype=torch.float64))
    d = SequenceDistribution(p, x, mask)
    assert torch.equal(d.log_prob(z), d.log_prob(noisy))


def test_leading_sample_dims_broadcast_like_a_loop():
    p = prior()
    _, x, mask = inputs()
    z = torch.randn(3, B, T, D, dtype=torch.float64)
    d = SequenceDistribution(p, x, mask)
    lp = d.log_prob(z)
    assert lp.shape == (3, B)
    for i in range(3):
        assert torch.allclose(lp[i], d.log_prob(z[i]), rtol=1e-12)
    assert d.expand((5, B)).batch_shape == (5, B)
    with pytest.raises(ValueError, match="before the batch dim"):
        d.expand((B + 1,))


def test_sample_shapes_and_that_it_is_the_frmdn_sampler():
    p = prior()
    _, x, _ = inputs()
    d = SequenceDistribution(p, x)
    assert d.sample().shape == (B, T, D)
    torch.manual_seed(5)
    z = d.sample((2,))
    assert z.shape == (2, B, T, D)
    torch.manual_seed(5)
    direct = p.sample(2 * B, T, x=x.expand(2, B, T, X).reshape(2 * B, T, X))
    assert torch.equal(z, direct.reshape(2, B, T, D))
    free = SequenceDistribution(prior(0), batch_size=3, steps=4)
    assert free.sample().shape == (3, 4, D)


def test_errors_say_what_was_expected():
    p = prior()
    z, x, mask = inputs()
    with pytest.raises(ValueError, match="pass x"):
        SequenceDistribution(p, mask=mask)
    with pytest.raises(ValueError, match="batch_size and steps"):
        SequenceDistribution(prior(0))
    with pytest.raises(ValueError, match="mask must have shape"):
        SequenceDistribution(p, x, mask[:, :3])
    with pytest.raises(ValueError, match="event shape"):
        SequenceDistribution(p, x).log_prob(z[:, :3])


class Encoder(nn.Module):
    """A user-written guide network: an MLP per step, q(z_t | y_t) diagonal Normal."""

    def __init__(self, obs, latent):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(obs, 16), nn.Tanh(), nn.Linear(16, 2 * latent))

    def forward(self, y):
        loc, raw = self.net(y).chunk(2, -1)
        return dist.Normal(loc, nn.functional.softplus(raw) + 1e-3).to_event(1)


def test_the_prior_composes_with_a_user_written_encoder_guide():
    """A state-space model y_t | z_t with the FRMDN prior on z: the Trace_ELBO loss is the sum of
    the pieces, every parameter (prior included) gets a gradient, and SVI lowers the loss."""
    p = prior(0)
    enc = Encoder(5, D).double()
    emit = nn.Linear(D, 5).double()
    g = torch.Generator().manual_seed(3)
    y = torch.randn(B, T, 5, generator=g, dtype=torch.float64)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[0, 3:] = False

    def model(y, mask):
        pyro.module("prior", p)
        pyro.module("emit", emit)
        with pyro.plate("sequences", B):
            z = pyro.sample("z", SequenceDistribution(p, mask=mask))
            px = dist.Normal(emit(z), 0.5).to_event(1).mask(mask).to_event(1)
            pyro.sample("y", px, obs=y)

    def guide(y, mask):
        pyro.module("encoder", enc)
        with pyro.plate("sequences", B):
            pyro.sample("z", enc(y).mask(mask).to_event(1))

    guide_trace = poutine.trace(guide).get_trace(y, mask)
    z = guide_trace.nodes["z"]["value"]
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(y, mask)
    manual = (
        p.log_prob(z, mask=mask)
        + (dist.Normal(emit(z), 0.5).log_prob(y).sum(-1) * mask).sum(-1)
        - (enc(y).log_prob(z) * mask).sum(-1)
    ).sum()
    assert torch.allclose(model_trace.log_prob_sum() - guide_trace.log_prob_sum(), manual)

    loss = Trace_ELBO().differentiable_loss(model, guide, y, mask)
    loss.backward()
    for module in (p, enc, emit):
        for name, param in module.named_parameters():
            assert param.grad is not None and bool(param.grad.abs().sum() > 0), name

    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.02}), Trace_ELBO(num_particles=8))
    before = sum(svi.evaluate_loss(y, mask) for _ in range(5))
    for _ in range(60):
        svi.step(y, mask)
    after = sum(svi.evaluate_loss(y, mask) for _ in range(5))
    assert after < before


def test_vectorised_particles_use_expand_and_broadcast():
    """Trace_ELBO(vectorize_particles=True) expands the site to (particles, B): the loss is the
    mean over particles of the per-particle loss."""
    p = prior(0)
    enc = Encoder(5, D).double()
    y = torch.randn(B, T, 5, dtype=torch.float64)

    def model(y):
        pyro.module("prior", p)
        with pyro.plate("sequences", B):
            z = pyro.sample("z", SequenceDistribution(p, batch_size=B, steps=T))
            pyro.sample("y", dist.Normal(z.sum(-1, keepdim=True), 1.0).to_event(2), obs=y)

    def guide(y):
        with pyro.plate("sequences", B):
            pyro.sample("z", enc(y).to_event(1))

    elbo = Trace_ELBO(num_particles=4, vectorize_particles=True, max_plate_nesting=1)
    loss = elbo.differentiable_loss(model, guide, y)
    assert loss.shape == () and torch.isfinite(loss)
