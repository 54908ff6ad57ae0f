"""What generation reads from a per-step distribution (its greedy value, one component's draw),
and the spherical path between two codes."""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import Tensor

from ..distributions import (
    FlowTransformedDistribution,
    LowRankPrecisionMultivariateNormal,
    WithBernoulli,
)

__all__ = ["chosen", "component_noise", "greedy", "slerp"]


def greedy(d) -> Tensor:
    """The mean of the most likely component of a mixture, pushed through the flow if there is one.

    For a Gaussian component the mean is its mode; after a flow it is the image of the base mode.
    Bits appended by :class:`~pyro_frmdn.distributions.WithBernoulli` take their likelier value.
    """
    if isinstance(d, WithBernoulli):
        y = greedy(d.continuous)
        bits = (d.logits > 0).to(y.dtype).expand(*y.shape[:-1], d.num_bits)
        return torch.cat([y, bits], dim=-1)
    if isinstance(d, FlowTransformedDistribution):
        z = greedy(d.base_dist)
        for t in d.transforms:
            z = t(z)
        return z
    k = d.mixture_distribution.logits.argmax(-1)  # (...)
    means = d.component_distribution.mean  # (..., K, D)
    index = k[..., None, None].expand(*k.shape, 1, means.shape[-1])
    return means.gather(-2, index).squeeze(-2)


def chosen(t: Tensor, k: Tensor) -> Tensor:
    """Row i of ``t`` (N, K, ...) at component ``k[i]``: (N, ...)."""
    return t[torch.arange(k.shape[0], device=k.device), k]


def component_noise(comps, k: Tensor) -> Tensor:
    r"""A draw minus its mean from component ``k`` (N,) of ``comps`` (batch (N, K), event (D,)).

    Only the chosen component is drawn. With :math:`\epsilon_D \sim \mathcal N(0, I_D)`,
    :math:`\epsilon_r \sim \mathcal N(0, I_r)`: a covariance :math:`W W^\top + \mathrm{diag}(d)`
    gives :math:`W \epsilon_r + \sqrt d \odot \epsilon_D`; a precision :math:`P = U U^\top +
    \mathrm{diag}(d)` gives :math:`P^{-1}(\sqrt d \odot \epsilon_D + U \epsilon_r)`, whose
    covariance is :math:`P^{-1} P P^{-1} = P^{-1}`, with :math:`P^{-1}` applied by Woodbury
    through the :math:`r \times r` capacitance :math:`I + U^\top \mathrm{diag}(d)^{-1} U`; a
    diagonal Normal gives :math:`\sigma \odot \epsilon_D`.
    """
    if isinstance(comps, dist.Independent):  # diagonal components (rank 0)
        scale = chosen(comps.base_dist.scale, k)
        return scale * torch.randn_like(scale)
    if isinstance(comps, LowRankPrecisionMultivariateNormal):
        factor, diag = chosen(comps.prec_factor, k), chosen(comps.prec_diag, k)
    else:
        factor, diag = chosen(comps.cov_factor, k), chosen(comps.cov_diag, k)
    eps_d = torch.randn_like(diag)  # (N, D)
    eps_r = torch.randn_like(factor[..., 0, :])  # (N, r)
    v = diag.sqrt() * eps_d + (factor @ eps_r.unsqueeze(-1)).squeeze(-1)
    if not isinstance(comps, LowRankPrecisionMultivariateNormal):
        return v
    scaled = factor / diag.unsqueeze(-1)  # D^-1 U, (N, D, r)
    eye = torch.eye(factor.shape[-1], dtype=factor.dtype, device=factor.device)
    capacitance = torch.linalg.cholesky(eye + factor.mT @ scaled)  # (N, r, r)
    inner = torch.cholesky_solve(scaled.mT @ v.unsqueeze(-1), capacitance)  # (N, r, 1)
    return v / diag - (scaled @ inner).squeeze(-1)


def slerp(a: Tensor, b: Tensor, steps: int) -> Tensor:
    r"""``steps`` points ``(steps, Z)`` on the great circle from ``a`` to ``b`` ``(Z,)``, the
    ends exactly ``a`` and ``b`` (the straight line where they are (anti)parallel):

    .. math:: \mathrm{slerp}(a, b; t) = \frac{\sin((1-t)\omega)}{\sin\omega} a
        + \frac{\sin(t\omega)}{\sin\omega} b, \quad \cos\omega = \frac{a \cdot b}{|a||b|}

    (Shoemake 1985; sketch-rnn's interpolation between codes, Ha & Eck 2017.)
    """
    t = torch.linspace(0, 1, steps, dtype=a.dtype, device=a.device)[:, None]
    cos = (a @ b) / (a.norm() * b.norm()).clamp_min(torch.finfo(a.dtype).tiny)
    omega = torch.arccos(cos.clamp(-1, 1))
    if float(omega.sin().abs()) < 1e-6:
        out = (1 - t) * a + t * b
    else:
        out = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / omega.sin()
    out[0], out[-1] = a, b
    return out
