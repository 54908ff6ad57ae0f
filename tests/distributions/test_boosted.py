"""The boosting recursion's weights: ρ to log-weights and back, and the check of ρ."""

import pytest
import torch

from pyro_frmdn.distributions import (
    RHO_MAX,
    check_rho,
    log_weights_from_rho,
    rho_from_log_weights,
)


def test_log_weights_follow_the_boosting_recursion():
    rho = torch.tensor([1.0, 0.3, 0.0, 0.6, 0.25], dtype=torch.float64)
    w = torch.ones(1, dtype=torch.float64)
    for r in rho[1:]:  # G_c = (1 - ρ_c) G_{c-1} + ρ_c g_c, on the weights
        w = torch.cat([(1 - r) * w, r.reshape(1)])
    assert torch.allclose(log_weights_from_rho(rho).exp(), w, rtol=1e-14)
    positive = rho.clone()
    positive[2] = 0.4
    assert torch.allclose(rho_from_log_weights(log_weights_from_rho(positive)), positive)


def test_bad_rho_raises_clear_errors():
    check_rho(torch.tensor([1.0, 0.0, RHO_MAX], dtype=torch.float64))
    with pytest.raises(ValueError, match=r"rho\[c\] for c >= 1 must lie in"):
        check_rho(torch.tensor([1.0, 1.0]))
    with pytest.raises(ValueError, match=r"rho\[0\] must be 1"):
        check_rho(torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="non-empty vector"):
        log_weights_from_rho(torch.zeros(0))
    with pytest.raises(ValueError, match="first component's weight must be positive"):
        rho_from_log_weights(torch.tensor([-torch.inf, 0.0]))
