"""MDN as a Pyro program: the exact likelihood, sampling (and the old argument order), errors."""

import math

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO
from support.tensors import with_value

import pyro_frmdn as pf


def test_mdn_log_prob_sample_and_errors():
    torch.manual_seed(0)
    m = pf.MDN(1, 2, num_components=3, hidden_dims=[8], rank=1)
    x, y = torch.randn(10, 1), torch.randn(10, 2)
    loss = Trace_ELBO().differentiable_loss(m.model, m.guide, x, y)
    assert torch.allclose(loss, -m.log_prob(x, y).sum())
    assert m.sample(4, x).shape == (4, 10, 2)
    assert m.sample(1, x, greedy_decoding=True).shape == (10, 2)
    pyro.set_rng_seed(5)
    new = m.sample(3, x)
    pyro.set_rng_seed(5)
    with (
        pytest.warns(FutureWarning, match=r"sample\(x, num_samples\) is deprecated"),
        pytest.warns(FutureWarning, match="num_samples= is deprecated.*use num="),
    ):
        old = m.sample(x, num_samples=3)  # the order of earlier releases: the same draws
    assert torch.equal(old, new)
    with pytest.raises(ValueError, match="needs the inputs x"):
        m.sample(3)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 1\)"):
        m.log_prob(torch.randn(10, 2), y)
    with pytest.raises(ValueError, match="y has NaN"):
        m.log_prob(x, with_value(y, (3, 1), math.nan))
