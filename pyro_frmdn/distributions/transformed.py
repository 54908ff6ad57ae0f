"""A distribution pushed through a normalizing flow, safe to score again and again."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pyro.distributions as dist
import torch
from pyro.distributions.conditional import ConditionalTransform
from pyro.nn import AutoRegressiveNN, ConditionalAutoRegressiveNN
from torch import Tensor
from torch.distributions import constraints
from torch.distributions import transforms as T

from .float32 import float32_math, promote
from .mixture import _check_value

__all__ = [
    "FlowTransformedDistribution",
    "clear_transform_cache",
    "event_size",
    "flow_mixture",
]


def clear_transform_cache(transforms: Iterable[T.Transform]) -> None:
    """Forget the cached ``(x, y)`` pair of every transform, including nested ones.

    Pyro's transform modules cache their last call, keyed by tensor identity. A stale entry makes
    a second scoring of the same tensor reuse a result computed under other parameters (or under
    ``torch.no_grad``, in which case the flow silently gets no gradient); see PAPERS.md §6.
    """
    for t in transforms:
        if getattr(t, "_cache_size", 0):
            t._cached_x_y = None, None
        if isinstance(t, T.ComposeTransform):
            clear_transform_cache(t.parts)
        if isinstance(t, T.IndependentTransform):
            clear_transform_cache([t.base_transform])
        if isinstance(t, T._InverseTransform):
            clear_transform_cache([t.inv])


def event_size(transform) -> int | None:
    """The size D of the vectors ``transform`` acts on, where its attributes tell it; else None.

    Known: transforms with an ``input_dim`` (splines, Householder, batch norm, ...), permutations,
    couplings (``split_dim`` plus the size of the transformed part: the upper spline's, or the
    first output of the conditioning network's ``param_dims``) and autoregressive transforms
    (their autoregressive network's ``input_dim``), conditional ones included.
    """
    if isinstance(transform, T.ComposeTransform):
        sizes = [event_size(t) for t in transform.parts]
        return next((s for s in sizes if s is not None), None)
    if isinstance(transform, T._InverseTransform):
        return event_size(transform.inv)
    if isinstance(transform, T.IndependentTransform):
        return event_size(transform.base_transform)
    size = getattr(transform, "input_dim", None)
    if isinstance(size, int):
        return size
    permutation = getattr(transform, "permutation", None)
    if isinstance(permutation, Tensor) and permutation.dim() == 1:
        return permutation.numel()
    split = getattr(transform, "split_dim", None)
    if isinstance(split, int):
        upper = getattr(getattr(transform, "upper_spline", None), "input_dim", None)
        if isinstance(upper, int):
            return split + upper
        param_dims = getattr(getattr(transform, "nn", None), "param_dims", None)
        if param_dims:
            return split + int(param_dims[0])
        return None
    net = getattr(transform, "arn", None) or getattr(transform, "nn", None)
    if isinstance(net, (AutoRegressiveNN, ConditionalAutoRegressiveNN)):
        return net.input_dim
    return None


class FlowTransformedDistribution(dist.TransformedDistribution):
    r"""``TransformedDistribution(base, transforms)`` that clears transform caches when scoring.

    .. math:: \log p(y) = \log p_{\text{base}}(f(y)) + \log\left|\det \partial f / \partial y\right|

    where :math:`f` is the inverse of the composition of ``transforms`` (which map the base space
    to the data space). Each :meth:`log_prob` call starts with empty caches, so the value is always
    recomputed from the current parameters with a fresh autograd graph; within one call the cache
    still saves the second pass of the coupling networks for the log-Jacobian.

    The flow runs in float32 under ``torch.autocast`` too (a bfloat16 value is promoted): its
    inverse and log-determinant are part of the density (:mod:`pyro_frmdn.distributions.float32`;
    the affine couplings' own ``precision`` option is what runs their networks in bfloat16).
    """

    def log_prob(self, value: Tensor) -> Tensor:
        clear_transform_cache(self.transforms)
        with float32_math():
            return super().log_prob(promote(value))

    def sample(self, sample_shape=torch.Size()) -> Tensor:
        with float32_math():
            return super().sample(sample_shape)

    def rsample(self, sample_shape=torch.Size()) -> Tensor:
        with float32_math():
            return super().rsample(sample_shape)

    def _validate_sample(self, value: Tensor) -> None:
        # On real vectors torch's support check is ``value == value`` everywhere and a reduction:
        # 0.7 ms of an FRMDN training step at B = 64, T = 50, D = 64 (issue 22). The same shape
        # checks, and the support check only when a NaN sum says it can fail.
        support = self.support
        if isinstance(support, constraints.independent):
            support = support.base_constraint
        if support is constraints.real:
            _check_value(self, value)
        else:
            super()._validate_sample(value)


def flow_mixture(
    base: dist.TorchDistribution,
    transforms: Sequence[T.Transform],
    context: Tensor | None = None,
) -> FlowTransformedDistribution:
    """Put ``base`` (typically a :func:`low_rank_mixture`) on the target through a flow.

    The FRMDN observation (Razavi et al. 2020): the mixture lives in the base space, ``transforms``
    map base to data, and scoring data runs them backwards. Conditional transforms (Pyro's
    :class:`~pyro.distributions.conditional.ConditionalTransform`, as built by
    :mod:`pyro_frmdn.flows` with ``context_dim > 0``) are conditioned on ``context``, whose batch
    dims must broadcast with the value's.

    Arguments:
        base: the distribution in the base space, event ``(D,)``.
        transforms: transforms (or conditional transforms) from the base space to the data space.
        context: the conditioning tensor ``(..., C)`` for conditional transforms.
    """
    transforms = list(transforms)
    if base.event_shape:
        d = base.event_shape[-1]
        for i, t in enumerate(transforms):
            size = event_size(t)
            if size is not None and size != d:
                raise ValueError(
                    f"the flow's transform {i} ({type(t).__name__}) acts on vectors of size "
                    f"{size}, but the base distribution's event shape is "
                    f"{tuple(base.event_shape)}: build the flow for D = {d}"
                )
    context = promote(context)  # the flow computes in float32 (see FlowTransformedDistribution)
    conditional = [isinstance(t, ConditionalTransform) for t in transforms]
    if any(conditional) and context is None:
        raise ValueError("the flow has conditional transforms: pass a context tensor (..., C)")
    pairs = zip(transforms, conditional, strict=True)
    transforms = [t.condition(context) if c else t for t, c in pairs]
    return FlowTransformedDistribution(base, transforms)
