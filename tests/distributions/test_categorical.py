"""WithCategorical: a continuous vector with a one-hot K-state categorical (stroke-5's pen)."""

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from scipy.special import log_softmax, logsumexp
from scipy.stats import multivariate_normal

from pyro_frmdn.distributions import WithCategorical, low_rank_mixture


def mixture(batch=(6,), k=3, d=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = (*batch, k)
    logits = torch.randn(shape, generator=g, dtype=torch.float64)
    loc = torch.randn(*shape, d, generator=g, dtype=torch.float64)
    factor = torch.randn(*shape, d, 1, generator=g, dtype=torch.float64)
    diag = torch.rand(*shape, d, generator=g, dtype=torch.float64) + 0.5
    return low_rank_mixture(logits, loc, factor, diag), (logits, loc, factor, diag)


def scipy_mixture_log_prob(params, y):
    """The mixture's log density by scipy, one row at a time (dense covariances)."""
    logits, loc, factor, diag = (p.numpy() for p in params)
    out = []
    for i in range(len(y)):
        comps = [
            multivariate_normal(
                loc[i, k], factor[i, k] @ factor[i, k].T + np.diag(diag[i, k])
            ).logpdf(y[i].numpy())
            for k in range(logits.shape[-1])
        ]
        out.append(logsumexp(log_softmax(logits[i]) + comps))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("terminal", [None, 2])
def test_log_prob_is_the_mixture_plus_the_log_weight_of_the_state(terminal):
    cont, params = mixture()
    logits = torch.randn(6, 3, dtype=torch.float64)
    d = WithCategorical(cont, logits, terminal_state=terminal)
    y = torch.randn(6, 2, dtype=torch.float64)
    index = torch.tensor([0, 1, 2, 2, 1, 0])
    s = torch.nn.functional.one_hot(index, 3).double()
    by_hand = torch.tensor(log_softmax(logits.numpy(), -1))[torch.arange(6), index]
    continuous = scipy_mixture_log_prob(params, y)
    if terminal is not None:  # the end state has no offsets: they are not scored
        continuous = torch.where(index == terminal, 0.0, continuous)
    lp = d.log_prob(torch.cat([y, s], -1))
    assert d.event_shape == (5,) and d.batch_shape == (6,)
    assert torch.allclose(lp, continuous + by_hand, rtol=1e-10)


def test_state_probabilities_sum_to_one_over_the_states():
    logits = torch.randn(4, 3, dtype=torch.float64)
    d = WithCategorical(dist.Normal(torch.zeros(4, 1, dtype=torch.float64), 1.0).to_event(1),
                        logits)  # fmt: skip
    y = torch.zeros(4, 1, dtype=torch.float64)
    lps = torch.stack([d.log_prob(torch.cat([y, torch.eye(3)[k].expand(4, 3).double()], -1))
                       for k in range(3)])  # fmt: skip
    base = d.continuous.log_prob(y)
    assert torch.allclose(torch.logsumexp(lps - base, 0), torch.zeros(4, dtype=torch.float64))


def test_samples_are_one_hot_with_the_state_frequencies_and_zero_offsets_at_the_end():
    torch.manual_seed(0)
    cont = dist.Normal(torch.full((2, 2), 3.0), 1.0).to_event(1)
    logits = torch.tensor([0.0, -1.0, 0.5])  # batch () against the offsets' (2,)
    d = WithCategorical(cont, logits, terminal_state=2)
    n = 20000
    s = d.sample((n,))
    assert s.shape == (n, 2, 5)
    states = s[..., 2:]
    assert set(states.unique().tolist()) <= {0.0, 1.0}
    assert (states.sum(-1) == 1).all()
    p = torch.softmax(logits, -1)
    freq = states.mean((0, 1))
    assert ((freq - p).abs() < 4.5 * (p * (1 - p) / (2 * n)).sqrt()).all()
    ended = states[..., 2] == 1
    assert (s[..., :2][ended] == 0).all() and (s[..., :2][~ended] != 0).all()
    assert d.expand((4, 2)).sample().shape == (4, 2, 5)


def test_compose_then_split_round_trips_exactly():
    d = WithCategorical(dist.Normal(torch.zeros(7, 2), 1.0).to_event(1), torch.zeros(7, 3))
    y = torch.randn(7, 2)
    index = torch.tensor([0, 1, 2, 0, 1, 2, 1])
    value = d.compose(y, index)
    back_y, back_s = d.split(value)
    assert torch.equal(back_y, y) and torch.equal(back_s.argmax(-1), index)


def test_tempered_divides_the_state_logits_and_scales_the_offsets():
    cont, _ = mixture(batch=(2,))
    logits = torch.randn(2, 3, dtype=torch.float64)
    d = WithCategorical(cont, logits, terminal_state=2).tempered(0.5, 0.2, scale_mode="std")
    assert torch.allclose(d.logits, logits / 0.5)
    cov = d.continuous.component_distribution.covariance_matrix
    original = cont.component_distribution.covariance_matrix
    assert torch.allclose(cov, original * 0.04)
    assert d.terminal_state == 2
    with pytest.raises(ValueError, match="temperatures"):
        d.tempered(0.0)


def test_works_in_plates_with_a_mask_and_observations():
    cont, _ = mixture(batch=(3, 4))
    logits = torch.randn(3, 4, 3, dtype=torch.float64)
    d = WithCategorical(cont, logits, terminal_state=2)
    value = d.sample()
    mask = torch.tensor([[True] * 4, [True, True, False, False], [True, False, False, False]])

    def model():
        with pyro.plate("drawings", 3, dim=-2), pyro.plate("time", 4, dim=-1):
            pyro.sample("y", d.mask(mask), obs=value)

    trace = pyro.poutine.trace(model).get_trace()
    trace.compute_log_prob()
    expected = d.log_prob(value)[mask].sum()
    assert torch.allclose(trace.nodes["y"]["log_prob_sum"], expected)


def test_bad_inputs_are_refused_naming_what_was_expected():
    cont = dist.Normal(torch.zeros(2), 1.0).to_event(1)
    with pytest.raises(ValueError, match="K >= 2"):
        WithCategorical(cont, torch.zeros(1))
    with pytest.raises(ValueError, match="terminal_state"):
        WithCategorical(cont, torch.zeros(3), terminal_state=3)
    with pytest.raises(ValueError, match="event shape"):
        WithCategorical(dist.Normal(torch.zeros(2), 1.0), torch.zeros(3))
    d = WithCategorical(cont, torch.zeros(3), validate_args=True)
    with pytest.raises(ValueError, match="one-hot"):
        d.log_prob(torch.tensor([0.0, 0.0, 1.0, 1.0, 0.0]))
