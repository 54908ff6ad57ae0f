r"""The boosting recursion's weights and the distributions of boosted mixtures.

Giaquinto & Banerjee, "Gradient Boosted Normalizing Flows", NeurIPS 2020 (arXiv 2002.11896): a
density grown one component at a time,

.. math::
    G_c(x) = (1 - \rho_c)\, G_{c-1}(x) + \rho_c\, g_c(x), \qquad G_0 = g_0,

is the mixture :math:`G_C = \sum_c w_c g_c` with :math:`w_c = \rho_c \prod_{j>c} (1 - \rho_j)`.
"""

from __future__ import annotations

import math
from typing import Protocol

import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from torch import Tensor

__all__ = [
    "RHO_MAX",
    "BoostedGuideDistribution",
    "BoostedMixtureDistribution",
    "check_rho",
    "log_weights_from_rho",
    "rho_from_log_weights",
]

RHO_MAX = 0.999
"""Largest ρ_c (c ≥ 1) allowed: it keeps every earlier weight, w_0 above all, strictly positive."""


def log_weights_from_rho(rho: Tensor) -> Tensor:
    r"""Mixture log-weights from the boosting steps, in log space.

    .. math::
        \log w_c = \log \rho_c + \sum_{j > c} \log(1 - \rho_j), \qquad \rho_0 = 1

    (Giaquinto & Banerjee 2020, eq. for :math:`G_c`). ``rho`` has shape ``(C,)``; the result sums
    to one after ``exp``. A component with :math:`\rho_c = 0` gets :math:`\log w_c = -\infty`.

    Example:
        >>> log_weights_from_rho(torch.tensor([1.0, 0.5, 0.5])).exp()
        tensor([0.2500, 0.2500, 0.5000])
    """
    if rho.dim() != 1 or rho.numel() == 0:
        raise ValueError(f"rho must be a non-empty vector (C,), got shape {tuple(rho.shape)}")
    log_keep = torch.log1p(-rho[1:])  # log(1 - ρ_j), j ≥ 1
    tail = torch.cat([log_keep.flip(0).cumsum(0).flip(0), log_keep.new_zeros(1)])  # Σ_{j>c}
    return rho.log() + tail


def rho_from_log_weights(log_w: Tensor) -> Tensor:
    r"""The boosting steps that give mixture weights ``exp(log_w)`` (the inverse of
    :func:`log_weights_from_rho`): :math:`\rho_c = w_c / \sum_{j \le c} w_j`, :math:`\rho_0 = 1`.

    Needs :math:`w_0 > 0`. Example:
        >>> rho_from_log_weights(torch.tensor([0.25, 0.25, 0.5]).log())
        tensor([1.0000, 0.5000, 0.5000])
    """
    if not bool(torch.isfinite(log_w[0])):
        raise ValueError("the first component's weight must be positive")
    return (log_w - torch.logcumsumexp(log_w, 0)).exp()


def check_rho(rho: Tensor) -> None:
    """ρ_0 = 1 and ρ_c ∈ [0, RHO_MAX] for c ≥ 1: weights in [0, 1) (w_0 > 0) summing to one.

    Raises a ValueError naming the step that breaks this.
    """
    if rho.numel() and float(rho[0]) != 1.0:
        raise ValueError(f"rho[0] must be 1 (the first component is G_0), got {float(rho[0])}")
    rest = rho[1:]
    if rest.numel() and not bool(((rest >= 0) & (rest <= RHO_MAX)).all()):
        raise ValueError(f"rho[c] for c >= 1 must lie in [0, {RHO_MAX}], got {rest.tolist()}")


class _Mixture(Protocol):
    """What :class:`BoostedMixtureDistribution` needs of its mixture (a
    :class:`~pyro_frmdn.models.BoostedMixture`)."""

    def log_prob(self, y: Tensor, **inputs) -> Tensor: ...

    def sample(self, n: int, **kwargs) -> Tensor: ...

    def sample_kwargs(self, event_shape: torch.Size) -> dict: ...


class BoostedMixtureDistribution(dist.TorchDistribution):
    """A :class:`~pyro_frmdn.models.BoostedMixture` as a Pyro ``TorchDistribution`` (no
    ``rsample``: a mixture's component choice is not reparameterizable; use it as an
    observation); :meth:`~pyro_frmdn.models.BoostedMixture.distribution` builds it.

    ``inputs`` are per-example tensors for the components (``x``, ``mask`` of
    :class:`~pyro_frmdn.models.BoostedFRMDN`), each with a leading dim N: the batch shape is
    then ``(N,)`` and ``log_prob`` takes values of batch shape ``(N,)``; ``sample`` zeroes
    masked steps.
    """

    arg_constraints = {}
    has_rsample = False

    def __init__(
        self,
        mixture: _Mixture,
        event_shape,
        batch_shape=None,
        validate_args=None,
        inputs: dict[str, Tensor] | None = None,
    ):
        self.mixture, self.inputs = mixture, dict(inputs or {})
        sizes = {len(v) for v in self.inputs.values()}
        if len(sizes) > 1:
            raise ValueError(f"the inputs have different lengths along dim 0: {sorted(sizes)}")
        if batch_shape is None:
            batch_shape = tuple(sizes)
        if self.inputs and tuple(batch_shape) != tuple(sizes):
            raise ValueError(
                f"with inputs of {sizes.pop()} examples the batch shape must be that, "
                f"got {tuple(batch_shape)}"
            )
        super().__init__(torch.Size(batch_shape), torch.Size(event_shape), validate_args)

    @constraints.dependent_property
    def support(self):
        return constraints.independent(constraints.real, len(self.event_shape))

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        if self.inputs and batch_shape != self.batch_shape:
            raise ValueError(
                f"a mixture with per-example inputs has batch shape {tuple(self.batch_shape)}; "
                f"it cannot be expanded to {tuple(batch_shape)}"
            )
        new = self._get_checked_instance(BoostedMixtureDistribution, _instance)
        new.mixture, new.inputs = self.mixture, self.inputs
        super(BoostedMixtureDistribution, new).__init__(
            batch_shape, self.event_shape, validate_args=False
        )
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        shape = value.shape[: value.dim() - len(self.event_shape)]
        if self.inputs:
            if shape != self.batch_shape:
                raise ValueError(
                    f"value has batch shape {tuple(shape)}, the inputs are for "
                    f"{tuple(self.batch_shape)}"
                )
            return self.mixture.log_prob(value, **self.inputs)
        lp = self.mixture.log_prob(value.reshape(-1, *self.event_shape))
        return lp.reshape(shape)

    def sample(self, sample_shape=torch.Size()) -> Tensor:
        shape = self._extended_shape(sample_shape)
        n = math.prod(shape[: len(shape) - len(self.event_shape)])
        kwargs = self.mixture.sample_kwargs(self.event_shape)
        if not self.inputs:
            return self.mixture.sample(n, **kwargs).reshape(shape)
        if torch.Size(sample_shape):
            raise ValueError("a mixture with per-example inputs draws one sample per example")
        y = self.mixture.sample(n, x=self.inputs.get("x"), **kwargs)
        mask = self.inputs.get("mask")
        if mask is not None:  # padding is zero, as check_sequences makes it
            y = y.masked_fill(~mask.bool()[..., None], 0.0)
        return y


class BoostedGuideDistribution(dist.TorchDistribution):
    r"""q(z | h) = Σ_c w_c q_c(z | h) with ``rsample`` (one component per sample) and an exact
    ``log_prob`` (every component inverted at z). See :class:`~pyro_frmdn.nn.BoostedGuideFlow`."""

    arg_constraints = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, components, log_weights: Tensor, validate_args=None):
        self.components, self.log_w = list(components), log_weights
        first = self.components[0]
        super().__init__(first.batch_shape, first.event_shape, validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(BoostedGuideDistribution, _instance)
        new.components = [d.expand(batch_shape) for d in self.components]
        new.log_w = self.log_w
        super(BoostedGuideDistribution, new).__init__(
            torch.Size(batch_shape), self.event_shape, validate_args=False
        )
        new._validate_args = self._validate_args
        return new

    def component_log_probs(self, value: Tensor) -> Tensor:
        """``log q_c(z | h)`` for every component, stacked last: (..., C)."""
        return torch.stack([d.log_prob(value) for d in self.components], dim=-1)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return torch.logsumexp(self.component_log_probs(value) + self.log_w, dim=-1)

    def rsample(self, sample_shape=torch.Size(), component: int | None = None) -> Tensor:
        """One reparameterised sample per (sample, batch) entry, from a component drawn by the
        weights (or from ``component``). Every component is run and one kept per entry: C times
        the cost of one flow, which keeps the batch whole for the conditional networks."""
        if component is not None:
            return self.components[component].rsample(sample_shape)
        z = torch.stack([d.rsample(sample_shape) for d in self.components], dim=-1)  # (..., D, C)
        shape = z.shape[:-2]
        k = torch.multinomial(self.log_w.exp(), math.prod(shape), replacement=True).reshape(shape)
        index = k[..., None, None].expand(*shape, z.shape[-2], 1)
        return z.gather(-1, index).squeeze(-1)

    def sample(self, sample_shape=torch.Size()) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)
