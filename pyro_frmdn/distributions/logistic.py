"""The logistic distribution discretised to L levels on [0, 1] (PixelCNN++'s, one component)."""

from __future__ import annotations

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions import constraints
from torch import Tensor

__all__ = ["DiscretizedLogistic"]


class DiscretizedLogistic(dist.TorchDistribution):
    r"""A logistic distribution discretised to ``levels`` values ``k / (L - 1)`` on ``[0, 1]``.

    The probability of level :math:`k` is the logistic mass of its bin; the two end bins take the
    tails (Salimans et al. 2017, PixelCNN++, with one component):

    .. math::
        P(k) = \sigma\!\left(\frac{x_k + h - \mu}{s}\right)
             - \sigma\!\left(\frac{x_k - h - \mu}{s}\right), \qquad
        x_k = \frac{k}{L - 1},\; h = \frac{1}{2 (L - 1)},

    with :math:`\sigma(\cdot)` replaced by 1 above the top bin and 0 below the bottom one. The
    log-probability is computed as :math:`\log\sigma(a) + \log\sigma(-b) + \log(1 - e^{b - a})`,
    stable for any scale. Being a probability of a discrete value, :math:`-\log P / \ln 2` is a
    code length in bits: per pixel, exactly the bits/dim of the literature.

    Arguments:
        loc: :math:`\mu`, in the units of ``[0, 1]``.
        scale: :math:`s > 0`.
        levels: :math:`L \ge 2` (256 for 8-bit pixels).

    Example:
        >>> d = DiscretizedLogistic(torch.tensor(0.5), torch.tensor(0.1), levels=4)
        >>> d.log_prob(torch.arange(4) / 3.0).exp().sum()
        tensor(1.0000)
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.unit_interval
    has_rsample = False

    def __init__(self, loc: Tensor, scale: Tensor, levels: int = 256, validate_args=None):
        if levels < 2:
            raise ValueError(f"levels must be >= 2, got {levels}")
        self.loc, self.scale = torch.broadcast_tensors(loc, scale)
        self.levels = int(levels)
        super().__init__(self.loc.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(DiscretizedLogistic, _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc, new.scale = self.loc.expand(batch_shape), self.scale.expand(batch_shape)
        new.levels = self.levels
        super(DiscretizedLogistic, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        top = self.levels - 1
        k = (value * top).round().clamp(0, top)
        half = 0.5 / top
        upper = (k / top + half - self.loc) / self.scale  # a
        lower = (k / top - half - self.loc) / self.scale  # b
        log_cdf_upper = -F.softplus(-upper)  # log σ(a)
        log_sf_lower = -F.softplus(lower)  # log(1 - σ(b))
        width = 1.0 / (top * self.scale)  # a - b
        inner = log_cdf_upper + log_sf_lower + torch.log(-torch.expm1(-width))
        return torch.where(k == 0, log_cdf_upper, torch.where(k == top, log_sf_lower, inner))

    def sample(self, sample_shape=torch.Size()) -> Tensor:
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            u = torch.rand(shape, dtype=self.loc.dtype, device=self.loc.device)
            u = u.clamp(1e-6, 1 - 1e-6)
            x = self.loc + self.scale * (torch.log(u) - torch.log1p(-u))
            top = self.levels - 1
            return (x * top).round().clamp(0, top) / top
