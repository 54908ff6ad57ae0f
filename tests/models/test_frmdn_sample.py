"""FRMDN.sample draws only the chosen component: the same law as the step distributions' samples."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.distributions.testing.gof import auto_goodness_of_fit
from scipy import stats

import pyro_frmdn as pf
from pyro_frmdn.distributions import WithBernoulli, temper
from pyro_frmdn.models import greedy

TEST_FAILURE_RATE = 1e-3  # p-values below it fail (fixed seeds: each test is deterministic)
D = 2
CONFIGS = {
    "covariance + affine flow": dict(rank=1, flow_layers=2),
    "precision": dict(rank=2, parameterization="precision", flow_layers=0),
    "precision + conditional affine flow": dict(
        rank=1, parameterization="precision", flow_layers=2, conditional_flow=True, num_layers=2
    ),
    "spline flow": dict(rank=1, flow_layers=1, flow="spline"),
    "diagonal + affine flow": dict(rank=0, flow_layers=1),
    "shared factor, gru": dict(rank=1, factor_mode="shared", flow_layers=0, cell="gru"),
}
TEMPERATURES = [
    dict(),
    dict(pi_temperature=0.5, scale_temperature=0.6),
    dict(pi_temperature=2.0, scale_temperature=1.5, scale_mode="std"),
]


def make(config, seed=0, bits=0, **kwargs):
    """A model of D continuous coordinates and ``bits`` bits after them."""
    torch.manual_seed(seed)
    return pf.FRMDN(
        D + bits, hidden_dim=8, num_components=3, binary_dims=bits, **config, **kwargs
    ).double()


@torch.no_grad()
def stepwise(m, num, steps, x=None, prime=None, mode=False, **temperatures):
    """The path sample() replaced: each step's distribution built, tempered, sampled in full."""
    state, y, out = m.initial_state(num), None, []
    p = 0 if prime is None else prime.shape[-2]
    for t in range(p + steps):
        d, state = m.step(state, y, None if x is None else x[:, t])
        if t < p:
            y = prime.expand(num, p, -1)[:, t]
            continue
        d = temper(d, **temperatures)
        y = greedy(d) if mode else d.sample()
        out.append(y)
    return torch.stack(out, dim=1)


@torch.no_grad()
def first_step(m, **temperatures):
    """The law of y_1 (every sequence starts alike), tempered: batch (1,), event (D,)."""
    d, _ = m.step(m.initial_state(1))
    return temper(d, **temperatures)


def goodness_of_fit(samples, d, reference, binned_goodness_of_fit):
    """Binned Pearson test of 2-D ``samples`` against ``d``, the box from ``reference`` draws."""
    lo, hi = reference.quantile(0.002, dim=0), reference.quantile(0.998, dim=0)
    return binned_goodness_of_fit(samples, d.log_prob, lo, hi, cells=10)


# A spline flow of random weights squeezes a coordinate into spikes narrower than the test's
# cells resolve: even the step distribution's own draws fail the binned test there. Spline flows
# are checked by the two-sample tests against the stepwise path below.
SMOOTH = {k: v for k, v in CONFIGS.items() if v.get("flow") != "spline"}


@pytest.mark.parametrize("temperatures", TEMPERATURES)
@pytest.mark.parametrize("config", SMOOTH.values(), ids=SMOOTH.keys())
def test_the_first_step_follows_the_tempered_step_distribution(
    config, temperatures, binned_goodness_of_fit
):
    m = make(config)
    d = first_step(m, **temperatures)
    pyro.set_rng_seed(1)
    samples = m.sample(20_000, 1, **temperatures)[:, 0]
    reference = d.sample((20_000,))[:, 0]
    assert goodness_of_fit(samples, d, reference, binned_goodness_of_fit) > TEST_FAILURE_RATE


def test_the_goodness_of_fit_test_tells_a_wrong_temperature(binned_goodness_of_fit):
    m = make(CONFIGS["precision"])
    samples = m.sample(20_000, 1, scale_temperature=0.5)[:, 0]
    d = first_step(m)
    reference = d.sample((20_000,))[:, 0]
    assert goodness_of_fit(samples, d, reference, binned_goodness_of_fit) < TEST_FAILURE_RATE


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_whole_sequences_match_the_stepwise_path(config):
    """Two-sample tests (Kolmogorov-Smirnov on every coordinate of the last step and on the
    sequence's sum) and means within 5 standard errors, after the RNN has read its own draws."""
    m, n, steps = make(config), 4000, 4
    pyro.set_rng_seed(2)
    fast = m.sample(n, steps, pi_temperature=0.8, scale_temperature=1.2)
    slow = stepwise(m, n, steps, pi_temperature=0.8, scale_temperature=1.2)
    stats_ = [*(s[:, -1].T for s in (fast, slow))]
    pairs = [*zip(stats_[0], stats_[1], strict=True), (fast.sum((1, 2)), slow.sum((1, 2)))]
    for a, b in pairs:
        assert stats.ks_2samp(a.numpy(), b.numpy()).pvalue > TEST_FAILURE_RATE / len(pairs)
    se = (fast.var(0) / n + slow.var(0) / n).sqrt()
    assert ((fast.mean(0) - slow.mean(0)).abs() < 5 * se).all()


def test_the_two_sample_test_tells_another_temperature():
    m, n = make(CONFIGS["covariance + affine flow"]), 4000
    fast = m.sample(n, 4, scale_temperature=0.5)
    slow = stepwise(m, n, 4)
    pvalue = stats.ks_2samp(fast.sum((1, 2)).numpy(), slow.sum((1, 2)).numpy()).pvalue
    assert pvalue < TEST_FAILURE_RATE


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_greedy_decoding_with_prime_and_inputs_is_unchanged(config):
    m = make(config, bits=1, input_dim=1)
    x = torch.randn(5, 3 + 4, 1, dtype=torch.float64)
    prime = torch.cat([torch.randn(3, D), torch.tensor([[0.0], [1.0], [1.0]])], -1).double()
    for temperatures in TEMPERATURES:
        fast = m.sample(5, 4, x=x, prime=prime, greedy_decoding=True, **temperatures)
        slow = stepwise(m, 5, 4, x=x, prime=prime, mode=True, **temperatures)
        assert torch.allclose(fast, slow, rtol=1e-10, atol=1e-10)


def test_bits_follow_their_tempered_bernoulli():
    m = make(CONFIGS["covariance + affine flow"], bits=1)
    d = first_step(m, pi_temperature=0.5)
    assert isinstance(d, WithBernoulli)
    p = float(torch.sigmoid(d.logits[0, 0]))
    bits = m.sample(20_000, 1, pi_temperature=0.5)[:, 0, -1]
    assert set(bits.unique().tolist()) <= {0.0, 1.0}
    assert stats.binomtest(int(bits.sum()), len(bits), p).pvalue > TEST_FAILURE_RATE


def test_one_dimensional_models_sample_their_law():
    torch.manual_seed(0)
    m = pf.FRMDN(1, hidden_dim=8, num_components=3, flow_layers=1, flow="spline").double()
    samples = m.sample(20_000, 1)[:, 0]
    d = first_step(m)
    assert auto_goodness_of_fit(samples, d.log_prob(samples).exp()) > TEST_FAILURE_RATE


def test_seeds_reproduce_samples():
    m = make(CONFIGS["precision + conditional affine flow"], bits=1)
    pyro.set_rng_seed(5)
    a = m.sample(6, 5, pi_temperature=0.7)
    pyro.set_rng_seed(5)
    b = m.sample(6, 5, pi_temperature=0.7)
    assert torch.equal(a, b) and not torch.equal(a, m.sample(6, 5, pi_temperature=0.7))


def test_no_mixture_is_sampled_whole(monkeypatch):
    """Only the chosen component is drawn: the full mixture's and the bits' samplers never run."""

    def refuse(*args, **kwargs):
        raise AssertionError("sample() drew from a whole step distribution")

    monkeypatch.setattr(dist.MixtureSameFamily, "sample", refuse)
    monkeypatch.setattr(WithBernoulli, "sample", refuse)
    for config in CONFIGS.values():
        assert make(config, bits=1).sample(3, 2).shape == (3, 2, D + 1)


def test_a_bad_scale_mode_is_refused():
    with pytest.raises(ValueError, match="scale_mode must be one of"):
        make(CONFIGS["precision"]).sample(2, 2, scale_mode="sd")
