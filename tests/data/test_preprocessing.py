"""Dequantisation, the logit transform and the bits/dim accounting (no optional package)."""

import math

import pytest
import torch
from torch.distributions import AffineTransform, SigmoidTransform, TransformedDistribution, Uniform

from pyro_frmdn.data.preprocessing import (
    bits_per_dim,
    dequantize,
    dequantize_grid,
    inverse_logit_transform,
    logit_transform,
    pixel_nll,
)


def test_dequantize_stays_in_the_bin_of_each_level():
    x = torch.arange(256, dtype=torch.uint8).repeat(4)
    v = dequantize(x, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert ((v >= 0) & (v < 1)).all()
    assert torch.equal(torch.floor(v * 256).long(), x.long())
    with pytest.raises(ValueError, match="whole levels"):
        dequantize(torch.tensor([256]))
    with pytest.raises(ValueError, match="whole levels"):
        dequantize(torch.tensor([0.5]))


def test_dequantize_grid_spreads_each_value_uniformly_over_its_cell():
    from scipy import stats

    step = 1 / 8.7  # a whole canvas unit over the kanji scale: not exact in binary
    x = torch.randint(-40, 40, (20000,)).to(torch.float32) * step
    y = dequantize_grid(x, step, torch.Generator().manual_seed(0))
    assert y.dtype == x.dtype and y.shape == x.shape
    assert torch.equal((y / step).round(), (x / step).round())  # each value stays in its cell
    u = ((y - x) / step + 0.5).double().numpy()
    assert stats.kstest(u, "uniform").pvalue > 1e-3  # uniform over the cell
    again = dequantize_grid(x, step, torch.Generator().manual_seed(0))
    assert torch.equal(y, again)
    with pytest.raises(ValueError, match="multiples of step"):
        dequantize_grid(x + 0.3 * step, step)
    with pytest.raises(ValueError, match="multiples of step"):
        dequantize_grid(torch.tensor([float("nan")]), step)
    with pytest.raises(ValueError, match="positive"):
        dequantize_grid(x, 0.0)


def test_logit_transform_round_trip():
    v = torch.rand(100, dtype=torch.float64)
    z = logit_transform(v, 0.05)
    assert torch.allclose(inverse_logit_transform(z, 0.05), v)
    with pytest.raises(ValueError, match="lambda"):
        logit_transform(v, 0.5)


@pytest.mark.parametrize("levels", [256, 17])
def test_the_uniform_density_gives_log2_levels_bits_per_dim(levels):
    """NLL 0 in the dequantised [0, 1)^D space: exactly log2(L) bits/dim (8 for 256 levels)."""
    x = torch.randint(0, levels, (5, 7, 28))
    v = dequantize(x, levels)
    assert bits_per_dim(torch.zeros(5, 7), v, levels=levels) == pytest.approx(
        math.log2(levels), abs=1e-12
    )
    assert bits_per_dim(0.0, pixels_per_step=28, levels=levels) == pytest.approx(
        math.log2(levels), abs=1e-12
    )


def test_the_uniform_density_after_the_logit_is_still_8_bits_per_dim():
    """The NLL of z = logit(λ + (1-2λ)v) for uniform v, computed by torch's own transforms."""
    lam = 0.05
    x = torch.randint(0, 256, (6, 5, 16))
    z = logit_transform(dequantize(x, dtype=torch.float64), lam)
    transforms = [AffineTransform(lam, 1 - 2 * lam), SigmoidTransform().inv]
    uniform = TransformedDistribution(Uniform(torch.zeros(()).double(), 1.0), transforms)
    nll_z = -uniform.log_prob(z).sum(-1)  # (6, 5) nats per step in z space
    assert bits_per_dim(nll_z, z, logit_lambda=lam) == pytest.approx(8.0, abs=1e-9)


def test_a_piecewise_constant_density_gives_the_discrete_code_length():
    """A density constant on each level's bin: bits/dim is exactly -log2 P(x) per pixel."""
    g = torch.Generator().manual_seed(0)
    probs = torch.distributions.Dirichlet(torch.ones(256).double()).sample()
    x = torch.multinomial(probs, 4 * 3 * 8, replacement=True, generator=g).view(4, 3, 8)
    v = dequantize(x, generator=g, dtype=torch.float64)
    level = torch.floor(v * 256).long()
    nll_v = -(256 * probs[level]).log().sum(-1)  # the density on [0, 1) is 256 P(bin)
    expected = float(-probs[x].log2().mean())
    assert bits_per_dim(nll_v, v) == pytest.approx(expected, rel=1e-12)


def test_pixel_nll_counts_the_logit_jacobian_measured_by_autograd():
    lam = 1e-6
    v = dequantize(torch.randint(0, 256, (3, 4)), dtype=torch.float64).requires_grad_()
    z = logit_transform(v, lam)
    (dz_dv,) = torch.autograd.grad(z.sum(), v)  # elementwise: the diagonal Jacobian
    nll_z = torch.tensor(1.7, dtype=torch.float64)
    expected = nll_z - dz_dv.log().sum(-1) + 4 * math.log(256)
    got = pixel_nll(nll_z, z.detach(), logit_lambda=lam)
    assert torch.allclose(got, expected, rtol=1e-12)
    mask = torch.tensor([True, False, True])
    nll_steps = torch.tensor([1.0, 1e9, 3.0])
    assert bits_per_dim(nll_steps, z.detach(), logit_lambda=lam, mask=mask) == pytest.approx(
        float((nll_steps - dz_dv.log().sum(-1) + 4 * math.log(256))[mask].mean())
        / (4 * math.log(2))
    )


def test_bits_per_dim_rejects_inconsistent_arguments():
    z = torch.zeros(2, 5)
    with pytest.raises(ValueError, match="pixels_per_step=4"):
        bits_per_dim(0.0, z, pixels_per_step=4)
    with pytest.raises(ValueError, match="x_transformed"):
        bits_per_dim(0.0, pixels_per_step=5, logit_lambda=0.05)
    with pytest.raises(ValueError, match="pixels_per_step"):
        bits_per_dim(0.0)
