"""WithBernoulli: a continuous vector with Bernoulli bits appended (the pen state of strokes)."""

import math

import pyro.distributions as dist
import pytest
import torch

from pyro_frmdn.distributions import WithBernoulli, low_rank_mixture, temper


def mixture(batch=(5,), k=2, d=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = (*batch, k)
    logits = torch.randn(shape, generator=g, dtype=torch.float64)
    loc = torch.randn(*shape, d, generator=g, dtype=torch.float64)
    factor = torch.randn(*shape, d, 1, generator=g, dtype=torch.float64)
    diag = torch.rand(*shape, d, generator=g, dtype=torch.float64) + 0.5
    return low_rank_mixture(logits, loc, factor, diag)


def test_log_prob_is_the_continuous_part_plus_each_bits_log_mass():
    cont = mixture()
    logits = torch.randn(5, 2, dtype=torch.float64)
    d = WithBernoulli(cont, logits)
    y = torch.randn(5, 2, dtype=torch.float64)
    bits = torch.tensor([[0.0, 1], [1, 1], [0, 0], [1, 0], [0, 1]], dtype=torch.float64)
    p = 1 / (1 + torch.exp(-logits))
    by_hand = torch.where(bits == 1, p, 1 - p).log().sum(-1)
    lp = d.log_prob(torch.cat([y, bits], -1))
    assert torch.allclose(lp, cont.log_prob(y) + by_hand, rtol=1e-12)
    assert d.event_shape == (4,) and d.batch_shape == (5,)


def test_extreme_logits_stay_finite_and_exact():
    d = WithBernoulli(dist.Normal(torch.zeros(2), 1.0).to_event(1), torch.tensor([60.0, -60.0]))
    value = torch.tensor([0.0, 0.0, 1.0, 0.0])
    expected = dist.Normal(0.0, 1.0).log_prob(torch.zeros(2)).sum()
    assert torch.allclose(d.log_prob(value), expected, atol=1e-6)
    bad = torch.tensor([0.0, 0.0, 0.0, 1.0])  # both bits improbable: -120 nats from the bits
    assert torch.allclose(d.log_prob(bad), expected - 120.0, rtol=1e-5)


def test_samples_broadcast_and_bit_frequencies_match_the_probabilities():
    torch.manual_seed(0)
    cont = dist.Normal(torch.zeros(3, 2) + torch.tensor([[0.0], [5.0], [-5.0]]), 1.0).to_event(1)
    logits = torch.tensor([-1.0, 0.5])  # batch () against the continuous part's (3,)
    d = WithBernoulli(cont, logits)
    n = 20000
    s = d.sample((n,))
    assert s.shape == (n, 3, 4)
    assert set(s[..., 2:].unique().tolist()) <= {0.0, 1.0}
    p = torch.sigmoid(logits)
    freq = s[..., 2:].mean(0)  # (3, 2)
    se = (p * (1 - p) / n).sqrt()
    assert ((freq - p).abs() < 4.5 * se).all()
    means = s[..., :2].mean(0)
    assert torch.allclose(means, cont.mean, atol=4.5 / math.sqrt(n))
    assert d.expand((4, 3)).sample().shape == (4, 3, 4)


def test_temper_sharpens_bits_and_mixture_alike():
    cont = mixture(batch=(3,))
    logits = torch.tensor([[2.0], [-1.0], [0.3]], dtype=torch.float64)
    t = temper(WithBernoulli(cont, logits), pi_temperature=0.5, scale_temperature=0.25)
    assert torch.allclose(t.logits, logits / 0.5)
    sharpened = torch.softmax(cont.mixture_distribution.logits / 0.5, -1)
    assert torch.allclose(t.continuous.mixture_distribution.probs, sharpened)
    cov = t.continuous.component_distribution.covariance_matrix
    assert torch.allclose(cov, cont.component_distribution.covariance_matrix * 0.25)


def test_bad_arguments_and_values_are_refused():
    cont = dist.Normal(torch.zeros(2), 1.0).to_event(1)
    with pytest.raises(ValueError, match="event shape"):
        WithBernoulli(dist.Normal(torch.zeros(2), 1.0), torch.zeros(1))
    with pytest.raises(ValueError, match="B >= 1"):
        WithBernoulli(cont, torch.zeros(0))
    d = WithBernoulli(cont, torch.zeros(1), validate_args=True)
    with pytest.raises(ValueError, match="0 or 1"):
        d.log_prob(torch.tensor([0.0, 0.0, 0.5]))
