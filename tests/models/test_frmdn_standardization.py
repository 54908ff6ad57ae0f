"""FRMDN.set_standardization: the model of u = (y - loc) / scale, in y's units, exactly."""

import pytest
import torch

import pyro_frmdn as pf

B, T, D, X = 3, 6, 4, 2


def pair(binary_dims=0, flow_layers=1):
    """A model and its standardised twin with the same weights."""
    torch.manual_seed(0)
    options = dict(input_dim=X, hidden_dim=8, num_components=2, rank=1, flow_layers=flow_layers,
                   binary_dims=binary_dims)  # fmt: skip
    plain = pf.FRMDN(D, **options).double()
    twin = pf.FRMDN(D, **options).double()
    twin.load_state_dict(plain.state_dict())
    c = D - binary_dims
    loc = torch.linspace(-3.0, 5.0, c, dtype=torch.float64)
    scale = torch.linspace(0.01, 2.0, c, dtype=torch.float64)
    twin.set_standardization(loc, scale)
    return plain, twin, loc, scale, c


@pytest.mark.parametrize("binary_dims, flow_layers", [(0, 1), (0, 0), (1, 2)])
def test_the_density_is_the_standard_units_one_with_the_jacobian(binary_dims, flow_layers):
    plain, twin, loc, scale, c = pair(binary_dims, flow_layers)
    g = torch.Generator().manual_seed(1)
    u = torch.randn(B, T, D, generator=g, dtype=torch.float64)
    if binary_dims:
        u[..., c:] = (u[..., c:] > 0).double()
    x = torch.randn(B, T, X, generator=g, dtype=torch.float64)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[0, 4:] = False
    y = u.clone()
    y[..., :c] = loc + scale * u[..., :c]
    expected = plain.step_log_prob(u, x, mask) - mask * scale.log().sum()
    torch.testing.assert_close(twin.step_log_prob(y, x, mask), expected, rtol=1e-12, atol=1e-12)
    # one step at a time, from the same state, the same law
    state = twin.initial_state(B)
    d, state = twin.step(state, None, x[:, 0])
    d, _ = twin.step(state, y[:, 0], x[:, 1])
    p_state = plain.initial_state(B)
    p, p_state = plain.step(p_state, None, x[:, 0])
    p, _ = plain.step(p_state, u[:, 0], x[:, 1])
    torch.testing.assert_close(d.log_prob(y[:, 1]), p.log_prob(u[:, 1]) - scale.log().sum())


def test_samples_are_the_standard_units_samples_mapped_back():
    plain, twin, loc, scale, _ = pair()
    x = torch.randn(B, T + 2, X, dtype=torch.float64)
    prime_u = torch.randn(B, 2, D, dtype=torch.float64)
    for kwargs in ({}, {"greedy_decoding": True}, {"pi_temperature": 0.5, "scale_temperature": 2}):
        torch.manual_seed(3)
        u = plain.sample(B, T, x=x, prime=prime_u, **kwargs)
        torch.manual_seed(3)
        y = twin.sample(B, T, x=x, prime=loc + scale * prime_u, **kwargs)
        torch.testing.assert_close(y, loc + scale * u, rtol=1e-10, atol=1e-10)


def test_it_is_saved_and_files_without_it_load_as_identity(tmp_path):
    plain, twin, loc, scale, _ = pair()
    twin.save(tmp_path / "m.pt")
    back = pf.load(tmp_path / "m.pt").double()
    y = torch.randn(B, T, D, dtype=torch.float64)
    x = torch.randn(B, T, X, dtype=torch.float64)
    # (saved in float32: equal to its rounding; without the standardisation, off by far more)
    torch.testing.assert_close(back.log_prob(y, x), twin.log_prob(y, x), rtol=1e-6, atol=0)
    old = {k: v for k, v in plain.state_dict().items() if k not in ("y_loc", "y_scale")}
    again = pf.FRMDN(D, **{k: v for k, v in plain.config.items() if k != "obs_dim"}).double()
    again.set_standardization(loc, scale)
    again.load_state_dict(old)  # a file from before: no standardisation
    torch.testing.assert_close(again.log_prob(y, x), plain.log_prob(y, x), rtol=0, atol=0)


def test_bad_standardizations_are_refused():
    m = pf.FRMDN(D, hidden_dim=4, flow_layers=0, binary_dims=1)
    with pytest.raises(ValueError, match=r"loc and scale must have shape \(3,\)"):
        m.set_standardization(torch.zeros(4), torch.ones(4))
    with pytest.raises(ValueError, match="scale must be > 0 everywhere"):
        m.set_standardization(torch.zeros(3), torch.tensor([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="scale"):
        m.set_standardization(torch.zeros(3), torch.tensor([1.0, float("nan"), 1.0]))
