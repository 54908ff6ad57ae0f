"""Data transforms: invertible, Jacobians as autograd finds them, saved with a model, and the NLL
in the user's units equal to closed forms."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

import pyro_frmdn as pf
from pyro_frmdn.data.transforms import (
    Compose,
    LogitTransform,
    Standardize,
    UniformDequantize,
    transform_from_state,
)

N, T, D = 6, 5, 3


def real_data(seed=0):
    g = torch.Generator().manual_seed(seed)
    scale = torch.tensor([0.01, 1.0, 300.0], dtype=torch.float64)
    return torch.randn(N, T, D, generator=g, dtype=torch.float64) * scale + 5.0


def unit_data(seed=0):
    return torch.rand(N, T, D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def integer_data(seed=0, low=0, high=256):
    return torch.randint(low, high, (N, T, D), generator=torch.Generator().manual_seed(seed))


CASES = {  # name: (a new transform, data in the user's units)
    "standardize": (Standardize, real_data),
    "logit": (lambda: LogitTransform(lam=0.05), unit_data),
    "logit, no squeeze": (lambda: LogitTransform(lam=0.0), unit_data),
    "dequantize": (UniformDequantize, lambda: integer_data(low=-40, high=40)),
    "dequantize 256": (lambda: UniformDequantize(levels=256), integer_data),
    "compose": (
        lambda: Compose([UniformDequantize(levels=256), LogitTransform(), Standardize()]),
        integer_data,
    ),
}
SMOOTH = ["standardize", "logit", "logit, no squeeze"]  # bijections of the reals: autograd


@pytest.mark.parametrize("case", list(CASES))
def test_inverse_undoes_forward(case):
    make, data = CASES[case]
    y = data()
    t = make().fit(y)
    z = t(y)
    assert z.shape == y.shape and z.is_floating_point() and torch.isfinite(z).all()
    back = t.inverse(z)
    if y.is_floating_point():
        assert torch.allclose(back, y, rtol=1e-9, atol=1e-9)
    else:
        assert torch.equal(back, y.to(back.dtype))  # dequantised data come back whole


@pytest.mark.parametrize("case", SMOOTH)
def test_log_abs_det_jacobian_is_autograd_s(case):
    make, data = CASES[case]
    y = data()
    t = make().fit(y)
    steps = y.reshape(-1, D)[:7]
    expected = [torch.linalg.slogdet(torch.autograd.functional.jacobian(t, s))[1] for s in steps]
    assert torch.allclose(t.log_abs_det_jacobian(steps), torch.stack(expected), atol=1e-10)
    assert t.log_abs_det_jacobian(y).shape == (N, T)


def test_dequantize_then_logit_jacobian_is_the_scale_plus_autograd_s_logit():
    t = Compose([UniformDequantize(levels=256), LogitTransform(lam=0.01)])
    x = integer_data().to(torch.float64)
    z, log_det = t.forward_and_log_abs_det_jacobian(x)
    v = t.transforms[1].inverse(z)  # the dequantised values
    logit = t.transforms[1]
    expected = torch.stack(
        [
            torch.linalg.slogdet(torch.autograd.functional.jacobian(logit, s))[1]
            for s in v.reshape(-1, D)
        ]
    ).reshape(N, T) - D * math.log(256)
    assert torch.allclose(log_det, expected, atol=1e-8)
    assert torch.equal(torch.floor(v * 256), x)  # the noise stayed within each level


def test_standardize_fits_the_observed_steps_only():
    y = real_data()
    mask = torch.arange(T) < torch.tensor([5, 1, 3, 2, 5, 4])[:, None]
    y[~mask] = 1e6  # padding: must not move the statistics
    t = Standardize().fit(y, mask)
    steps = y.numpy()[mask.numpy()]
    assert np.allclose(t.loc.numpy(), steps.mean(0)) and np.allclose(t.scale.numpy(), steps.std(0))
    const = Standardize().fit(torch.ones(2, 3, 1))
    assert const.scale.item() == 1.0 and const(torch.ones(1, 1, 1)).item() == 0.0


@pytest.mark.parametrize("case", list(CASES))
def test_saved_with_the_model_and_rebuilt(tmp_path, case):
    make, data = CASES[case]
    y = data()
    t = make().fit(y)
    model = pf.RMDN(obs_dim=D, hidden_dim=4, num_components=2)
    path = model.save(tmp_path / "m.pt", transform=t.state_dict())
    loaded, state = pf.load(path, with_transform=True)  # weights_only=True inside
    u = transform_from_state(state)
    assert isinstance(loaded, pf.RMDN) and type(u) is type(t)
    seeded = []
    for transform in (t, u):
        torch.manual_seed(0)  # the same dequantisation noise
        z, log_det = transform.forward_and_log_abs_det_jacobian(y)
        seeded.append((z, log_det, transform.inverse(z)))
    for a, b in zip(*seeded, strict=True):
        assert torch.equal(a, b)


def test_nll_in_user_units_of_a_standardised_gaussian_is_its_closed_form():
    """Model N(0, I) on standardised data = N(m, s^2) per feature in the user's units."""
    g = torch.Generator().manual_seed(1)
    loc, scale = torch.tensor([3.0, -200.0, 0.5]), torch.tensor([0.01, 40.0, 2.0])
    y = (torch.randn(400, 50, D, generator=g, dtype=torch.float64) * scale + loc).double()
    mask = torch.arange(50) < torch.randint(1, 51, (400, 1), generator=g)
    t = Standardize().fit(y, mask)
    z = t(y)
    model_nll = -torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)[mask].mean()
    user_nll = float(model_nll) - t.mean_log_abs_det_jacobian(y, mask)
    steps = y.numpy()[mask.numpy()]
    m, s = t.loc.numpy(), t.scale.numpy()
    assert np.allclose(user_nll, -stats.norm.logpdf(steps, m, s).sum(-1).mean(), rtol=1e-12)
    entropy = D * 0.5 * math.log(2 * math.pi * math.e) + float(scale.double().log().sum())
    assert abs(user_nll - entropy) < 0.01  # the Gaussian's entropy: the expected NLL


def test_nll_in_user_units_of_uniform_data_under_the_logistic_is_zero():
    """sigmoid(Logistic(0, 1)) is U(0, 1): its NLL in the user's units is 0 at every step."""
    y = unit_data()
    t = LogitTransform(lam=0.0)
    z = t(y)
    logistic_nll = (z + 2 * torch.nn.functional.softplus(-z)).sum(-1)  # -log p of Logistic(0, 1)
    assert torch.allclose(
        logistic_nll - t.log_abs_det_jacobian(y), torch.zeros(N, T, dtype=torch.float64), atol=1e-9
    )


@pytest.mark.parametrize("levels", [256, 17])
def test_nll_of_dequantised_integers_under_a_uniform_model_is_log_levels(levels):
    """A model uniform on [0, 1)^D (NLL 0) gives D log L nats per step: log2 L bits a value."""
    t = UniformDequantize(levels=levels)
    x = integer_data(high=levels)
    z, log_det = t.forward_and_log_abs_det_jacobian(x)
    assert ((z >= 0) & (z < 1)).all()
    assert torch.allclose(0.0 - log_det, torch.full((N, T), D * math.log(levels)))
    assert t.mean_log_abs_det_jacobian(x) == pytest.approx(-D * math.log(levels), rel=1e-6)


def test_compose_fits_each_transform_on_the_output_of_those_before():
    x = torch.randint(0, 4, (200, 50, D), generator=torch.Generator().manual_seed(0))
    t = Compose([UniformDequantize(levels=4), Standardize()]).fit(x)
    # (x + u) / 4 with x uniform on 0..3 and u on [0, 1) is U[0, 1): mean 1/2, variance 1/12
    standardize = t.transforms[1]
    assert torch.allclose(standardize.loc, torch.full((D,), 0.5, dtype=torch.float64), atol=0.02)
    assert torch.allclose(standardize.scale, torch.full((D,), 12**-0.5).double(), atol=0.01)


def test_bad_uses_are_refused():
    with pytest.raises(ValueError, match="not fitted"):
        Standardize()(torch.ones(1, 2, 3))
    with pytest.raises(ValueError, match="y has 2 features; Standardize was fitted on 3"):
        Standardize().fit(real_data())(torch.ones(1, 2, 2))
    with pytest.raises(ValueError, match="NaN or Inf"):
        Standardize().fit(torch.tensor([[[float("nan")]]]))
    with pytest.raises(ValueError, match="data in \\[0, 1\\]"):
        LogitTransform()(torch.tensor([1.5]))
    with pytest.raises(ValueError, match="lambda"):
        LogitTransform(lam=0.5)
    with pytest.raises(ValueError, match=r"whole levels 0\.\.3"):
        UniformDequantize(levels=4).fit(torch.tensor([[[4]]]))
    with pytest.raises(ValueError, match="multiples of step"):
        UniformDequantize().fit(torch.tensor([[[0.5]]]))
    with pytest.raises(ValueError, match="levels must be"):
        UniformDequantize(levels=1)
    with pytest.raises(ValueError, match="no observed step"):
        Standardize().fit(torch.ones(2, 3, 1), torch.zeros(2, 3, dtype=torch.bool))


@pytest.mark.parametrize(
    "state",
    [
        {"kind": "whiten"},
        {"kind": "standardize", "loc": torch.zeros(2)},
        {"kind": "compose"},
        {"kind": "compose", "transforms": [{"kind": "logit"}]},
        ["standardize"],
    ],
)
def test_damaged_states_are_refused(state):
    with pytest.raises(ValueError, match="state"):
        transform_from_state(state)
