"""The step ρ: the mixture NLL, its derivative, the line and gradient searches, sample weights."""

import math

import pytest
import torch

from pyro_frmdn.distributions import RHO_MAX
from pyro_frmdn.infer import (
    boosting_sample_weights,
    gradient_search_rho,
    line_search_rho,
    mixture_nll,
    rho_gradient,
)


@pytest.mark.parametrize("seed", range(4))
def test_line_and_gradient_searches_find_the_minimum(seed):
    g = torch.Generator().manual_seed(seed)
    log_prev = torch.randn(300, generator=g, dtype=torch.float64) * 2
    log_new = log_prev + torch.randn(300, generator=g, dtype=torch.float64) * 3 + seed - 2
    grid = torch.linspace(0, RHO_MAX, 20001, dtype=torch.float64).tolist()
    best = min(mixture_nll(r, log_prev, log_new) for r in grid)
    for search in (line_search_rho, gradient_search_rho):
        rho = search(log_prev, log_new)
        assert 0.0 <= rho <= RHO_MAX
        assert mixture_nll(rho, log_prev, log_new) <= best + 1e-7
        assert mixture_nll(rho, log_prev, log_new) <= mixture_nll(0.0, log_prev, log_new)


def test_a_useless_new_component_gets_rho_zero():
    log_prev = torch.zeros(100, dtype=torch.float64)
    log_new = torch.full((100,), -5.0, dtype=torch.float64)
    assert line_search_rho(log_prev, log_new) == 0.0
    assert gradient_search_rho(log_prev, log_new) == 0.0


def test_rho_gradient_is_the_derivative_of_the_mixture_nll():
    g = torch.Generator().manual_seed(0)
    log_prev, log_new = torch.randn(2, 50, generator=g, dtype=torch.float64)
    for value in (0.1, 0.5, 0.9):
        rho = torch.tensor(value, dtype=torch.float64, requires_grad=True)
        nll = -torch.logaddexp(log_prev + torch.log1p(-rho), log_new + rho.log()).mean()
        (autograd,) = torch.autograd.grad(nll, rho)
        assert math.isclose(rho_gradient(value, log_prev, log_new), float(autograd), rel_tol=1e-10)
        assert math.isclose(
            mixture_nll(value, log_prev, log_new), float(nll.detach()), rel_tol=1e-12
        )


def test_sample_weights_are_normalised_and_clipped():
    neg_log_g = torch.tensor([0.0, 0.0, 0.0, 10.0] + [0.0] * 60, dtype=torch.float64)
    w = boosting_sample_weights(neg_log_g, clip=None, cap=None)
    assert torch.allclose(w, torch.softmax(neg_log_g, 0))
    capped = boosting_sample_weights(neg_log_g, clip=None, cap=10.0)  # 10 × the median weight
    assert float(capped[3]) == pytest.approx(10 / (10 + 63), rel=1e-12)
    assert torch.allclose(capped[:3], torch.full((3,), 1 / 73, dtype=torch.float64))
    clipped = boosting_sample_weights(neg_log_g, clip=(0.01, 0.1), cap=None)
    assert math.isclose(float(clipped.sum()), 1.0)
    assert float(clipped.max() / clipped.min()) <= 10 + 1e-9
    flat = boosting_sample_weights(torch.zeros(64, dtype=torch.float64))
    assert torch.allclose(flat, torch.full((64,), 1 / 64, dtype=torch.float64))


def test_bad_bounds_raise_clear_errors():
    y = torch.randn(16, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="lo < hi"):
        line_search_rho(y[:, 0], y[:, 1], lo=0.5, hi=0.5)
