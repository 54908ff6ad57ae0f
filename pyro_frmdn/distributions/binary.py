"""A continuous distribution with independent Bernoulli bits appended: the pen state of strokes."""

from __future__ import annotations

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import constraints

from .float32 import promote

__all__ = ["WithBernoulli"]


class WithBernoulli(dist.TorchDistribution):
    r"""The joint of a continuous vector and ``B`` independent bits, given the same features.

    .. math:: p(y) = p_c(y_{1:C}) \prod_{j=1}^{B} \mathrm{Bern}(y_{C+j}; \sigma(\ell_j))

    As handwriting models have it: Graves (2013) scores the pen offsets by a Gaussian mixture and
    the end-of-stroke bit by a Bernoulli, both given the RNN state, independent of each other.

    Arguments:
        continuous: the distribution of the first ``C`` coordinates, event ``(C,)`` (a mixture, or a
            flow on one).
        logits: the log-odds of the last ``B`` coordinates being 1, ``(..., B)``.

    The event is ``(C + B,)``; the batch shape is the broadcast of both batch shapes. The bits of a
    value must be 0 or 1 (checked when validation is on). Not reparameterizable (the bits are
    discrete); :meth:`sample` draws both parts.

    Example:
        >>> mix = dist.Normal(torch.zeros(4, 2), 1.0).to_event(1)
        >>> d = WithBernoulli(mix, torch.zeros(4, 1))
        >>> d.event_shape, d.sample().shape
        (torch.Size([3]), torch.Size([4, 3]))
    """

    arg_constraints = {"logits": constraints.real_vector}
    support = constraints.real_vector
    has_rsample = False

    def __init__(self, continuous, logits: Tensor, validate_args=None):
        if len(continuous.event_shape) != 1:
            raise ValueError(
                f"the continuous part needs event shape (C,), got {tuple(continuous.event_shape)}"
            )
        if logits.dim() < 1 or logits.shape[-1] < 1:
            raise ValueError(f"logits must have shape (..., B) with B >= 1, got {logits.shape}")
        logits = promote(logits)  # float32 under autocast
        self.continuous, self.logits = continuous, logits
        self.num_continuous, self.num_bits = continuous.event_shape[0], logits.shape[-1]
        batch_shape = torch.broadcast_shapes(continuous.batch_shape, logits.shape[:-1])
        event_shape = torch.Size([self.num_continuous + self.num_bits])
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        logits = self.logits.expand(batch_shape + (self.num_bits,))
        return WithBernoulli(self.continuous.expand(batch_shape), logits)

    @property
    def bits(self) -> dist.Bernoulli:
        """The distribution of the bits alone, batch ``(..., B)``."""
        return dist.Bernoulli(logits=self.logits)

    def split(self, value: Tensor) -> tuple[Tensor, Tensor]:
        """``value`` (..., C + B) -> its continuous part (..., C) and its bits (..., B)."""
        return value[..., : self.num_continuous], value[..., self.num_continuous :]

    def log_prob(self, value: Tensor) -> Tensor:
        y, b = self.split(value)
        if self._validate_args and not bool(((b == 0) | (b == 1)).all()):
            raise ValueError(f"the last {self.num_bits} coordinates of the value must be 0 or 1")
        logits = self.logits.expand(b.shape[:-1] + (self.num_bits,))
        bits = -F.binary_cross_entropy_with_logits(logits, b, reduction="none").sum(-1)
        return self.continuous.log_prob(y) + bits

    def sample(self, sample_shape=torch.Size()) -> Tensor:
        continuous = self.continuous
        if continuous.batch_shape != self.batch_shape:
            continuous = continuous.expand(self.batch_shape)
        y = continuous.sample(sample_shape)
        logits = self.logits.expand(self.batch_shape + (self.num_bits,))
        b = dist.Bernoulli(logits=logits).sample(sample_shape)
        return torch.cat([y, b.to(y.dtype)], dim=-1)
