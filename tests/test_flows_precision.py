"""Affine couplings whose networks run in bfloat16: an exact bijection with an exact
log-determinant, the hand-written backward against autograd through the same rounded network,
and the FRMDN option that turns it on."""

import pytest
import torch

import pyro_frmdn as pf
from pyro_frmdn.flows import AffineCoupling, coupling_flow


def coupling(precision="bfloat16", dim=6, hidden=(16, 12)) -> AffineCoupling:
    torch.manual_seed(0)
    return coupling_flow(dim, 1, hidden_dims=list(hidden), precision=precision)[0]


def rounded_network(t: AffineCoupling, x1: torch.Tensor):
    """The network by hand: every layer's input, weight and bias rounded to bfloat16, ReLUs,
    the output back to float32 (autograd passes the roundings unchanged)."""
    b = torch.bfloat16
    h = x1.to(b)
    for layer in t.nn.layers[:-1]:
        h = torch.relu(h @ layer.weight.to(b).T + layer.bias.to(b))
    last = t.nn.layers[-1]
    out = (h @ last.weight.to(b).T + last.bias.to(b)).float()
    mean, raw = out.chunk(2, -1)
    return mean, raw


def inverse_by_hand(t: AffineCoupling, y: torch.Tensor):
    """x = [y1, (y2 - mu) e^-s] and sum(s), s clamped with its gradient passed (Pyro's rule)."""
    y1, y2 = y[..., : t.split_dim], y[..., t.split_dim :]
    mean, raw = rounded_network(t, y1)
    s = raw + (raw.clamp(t.log_scale_min_clip, t.log_scale_max_clip) - raw).detach()
    return torch.cat([y1, (y2 - mean) * torch.exp(-s)], -1), s.sum(-1)


def test_both_directions_read_the_same_rounded_network():
    t = coupling()
    x = torch.randn(50, 6)
    y = t(x)
    forward = t.log_abs_det_jacobian(x, y)  # made by the forward direction
    back = t.inv(y)
    assert torch.allclose(back, x, rtol=1e-6, atol=1e-6)  # float32 rounding only
    # the fused inverse's log-determinant, at the same points, is the forward direction's
    assert torch.allclose(t.log_abs_det_jacobian(back, y), forward, rtol=1e-6, atol=1e-6)
    # against the network rounded by hand: bfloat16 keeps 8 bits, and the library may round
    # a product and its bias once or twice, so the two agree to a few of bfloat16's steps
    expected, logdet = inverse_by_hand(t, y)
    assert torch.allclose(back, expected, rtol=0, atol=3e-2)
    assert torch.allclose(t.log_abs_det_jacobian(x, y), logdet, rtol=0, atol=3e-2)
    # the network really is rounded: float32 products give another map
    plain = coupling(None)
    assert not torch.allclose(plain.inv(y), back, rtol=1e-4, atol=1e-4)


def test_the_log_determinant_is_the_jacobians():
    t = coupling()
    y = torch.randn(4, 6)
    for i in range(len(y)):
        row = y[i : i + 1]
        jac = torch.autograd.functional.jacobian(lambda v: t.inv(v), row)[0, :, 0, :]
        x = t.inv(row)
        logdet = t.log_abs_det_jacobian(x, row)  # of y = f(x): -log|det dx/dy|
        want = -float(torch.linalg.slogdet(jac)[1])
        assert float(logdet.detach()) == pytest.approx(want, abs=1e-5)


def test_the_fused_backward_matches_autograd_through_the_rounded_network():
    t = coupling()
    y = torch.randn(64, 6, requires_grad=True)
    w = torch.randn(64, 6)  # a weighting so every output's gradient differs
    params = list(t.parameters())
    x = t.inv(y)
    loss = (x * w).sum() + 0.7 * t.log_abs_det_jacobian(x, y).sum()
    fused = torch.autograd.grad(loss, [y, *params])
    xr, logdet = inverse_by_hand(t, y)
    reference = torch.autograd.grad((xr * w).sum() + 0.7 * logdet.sum(), [y, *params])
    for got, want in zip(fused, reference, strict=True):
        # both round the same products to bfloat16 (8 bits of mantissa), maybe in another order
        assert float((got - want).norm()) <= 2e-2 * float(want.norm())


def test_frmdn_with_bfloat16_couplings_scores_and_saves(tmp_path):
    torch.manual_seed(0)
    m = pf.FRMDN(
        4, hidden_dim=8, num_components=2, rank=1, flow_layers=2, flow_precision="bfloat16"
    )
    y = torch.randn(3, 5, 4)
    assert all(t.precision == "bfloat16" for t in m.flow if isinstance(t, AffineCoupling))
    lp = m.log_prob(y)
    assert lp.shape == (3,) and bool(torch.isfinite(lp).all())
    back = pf.load(m.save(tmp_path / "m.pt"))
    assert back.config["flow_precision"] == "bfloat16"
    assert torch.equal(back.log_prob(y), lp)
    plain = pf.FRMDN(4, hidden_dim=8, num_components=2, rank=1, flow_layers=2)
    plain.load_state_dict(m.state_dict())  # the same weights, float32 products
    assert torch.allclose(plain.log_prob(y), lp, rtol=1e-2) and not torch.equal(
        plain.log_prob(y), lp
    )


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(precision="float16"), "precision must be one of"),
        (dict(precision="bfloat16", flow="spline"), "unconditional affine couplings"),
        (dict(precision="bfloat16", context_dim=3), "unconditional affine couplings"),
    ],
)
def test_bad_precisions_are_refused_naming_the_argument(options, message):
    with pytest.raises(ValueError, match=message):
        coupling_flow(4, 2, **options)


def test_an_frmdn_refuses_an_unknown_precision():
    with pytest.raises(ValueError, match="flow_precision must be one of"):
        pf.FRMDN(4, flow_precision="half")


def test_without_onednn_the_products_give_the_same_numbers(monkeypatch):
    # where oneDNN has no bfloat16 (or on GPUs), each layer is addmm and a ReLU: the same values
    # and gradients as the fused oneDNN layer, so a model moves between machines unchanged
    import pyro_frmdn.coupling_kernel as kernel

    t = coupling()
    y = torch.randn(40, 6)
    runs = []
    for fused in (kernel._FUSED_LINEAR, None):
        monkeypatch.setattr(kernel, "_FUSED_LINEAR", fused)
        v = y.clone().requires_grad_()
        x = t.inv(v)
        logdet = t.log_abs_det_jacobian(x, v)
        grads = torch.autograd.grad((x * y).sum() + logdet.sum(), [v, *t.parameters()])
        runs.append((x, logdet, grads))
    (x0, l0, g0), (x1, l1, g1) = runs
    assert torch.equal(x0, x1) and torch.equal(l0, l1)
    for a, b in zip(g0, g1, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
