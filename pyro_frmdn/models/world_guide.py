r"""The amortised guide of a world model: :math:`q(z_t \mid x)` from encoder features and a flow.

The guide of :class:`~pyro_frmdn.models.WorldModel` is a diagonal Gaussian whose mean and scale a
linear map reads from a per-frame context (the convolutional encoder's features, and optionally
the state of a GRU run backwards over them, as in the DMM of Krishnan et al. 2017), optionally
pushed through an IAF (Kingma et al. 2016) or replaced by a boosted mixture of conditional flows
(Giaquinto & Banerjee 2020). The functions here build and evaluate those pieces; the model owns
them as its parameters.
"""

from __future__ import annotations

import pyro.distributions as dist
import pyro.distributions.transforms as PT
import torch
import torch.nn.functional as F
from pyro.distributions.conditional import ConditionalTransformModule
from torch import Tensor, nn

from ..distributions import promote
from ..flows import Permutation
from ..nn import BoostedGuideFlow

__all__ = [
    "GUIDE_FLOWS",
    "amortized_posterior",
    "backward_context",
    "build_guide",
    "posterior_code",
]

GUIDE_FLOWS = (None, "iaf", "boosted")
"""Refinements of the guide's Gaussian: none, ``"iaf"`` (conditional affine autoregressive
layers, the order reversed between them) or ``"boosted"`` (a
:class:`~pyro_frmdn.nn.BoostedGuideFlow`, a mixture of conditional flows)."""


def build_guide(
    kind: str | None,
    latent_dim: int,
    context_dim: int,
    num_layers: int,
    num_components: int,
    min_scale: float,
) -> tuple[nn.Linear | None, nn.Module]:
    """The guide's head (context to Gaussian parameters) and flow, for ``kind`` in
    :data:`GUIDE_FLOWS`; with ``"boosted"`` there is no head and the flow is a
    :class:`~pyro_frmdn.nn.BoostedGuideFlow`, otherwise the flow is a (possibly empty)
    :class:`~torch.nn.ModuleList` of transforms."""
    flow_hidden = [max(32, 2 * latent_dim)]
    if kind == "boosted":
        flow = BoostedGuideFlow(
            latent_dim, context_dim, num_components, num_layers, hidden_dims=flow_hidden,
            min_scale=min_scale,
        )  # fmt: skip
        return None, flow
    head = nn.Linear(context_dim, 2 * latent_dim)
    layers = []
    for i in range(num_layers if kind == "iaf" else 0):
        if i:  # reverse the order between autoregressive layers
            layers.append(Permutation(torch.arange(latent_dim - 1, -1, -1)))
        layers.append(PT.conditional_affine_autoregressive(latent_dim, context_dim, flow_hidden))
    return head, nn.ModuleList(layers)


def backward_context(features: Tensor, rnn: nn.GRU, mask: Tensor | None) -> Tensor:
    """Features ``(B, T, F)`` and the state of ``rnn`` run backwards over frames t..T of each
    sequence (up to its last unmasked frame), ``(B, T, F + R)``."""
    e = features
    b, t, _ = e.shape
    steps = torch.arange(t, device=e.device)
    if mask is None:
        length = torch.full((b, 1), t, device=e.device)
    else:
        length = (mask * (steps + 1)).amax(1, keepdim=True)  # last unmasked step + 1
    index = torch.where(steps < length, length - 1 - steps, steps)  # reverse within length
    reverse = e.gather(1, index[..., None].expand_as(e))
    g = rnn(reverse)[0]
    g = g.gather(1, index[..., None].expand(b, t, g.shape[-1]))
    return torch.cat([e, g], dim=-1)


def amortized_posterior(
    context: Tensor, head: nn.Linear | None, flow: nn.Module, min_scale: float
) -> dist.TorchDistribution:
    """:math:`q(z_t \\mid x)` per frame for a context ``(..., F)``: batch ``(...)``, event
    ``(D,)``; ``head`` and ``flow`` as :func:`build_guide` makes them."""
    if head is None:
        return flow(context)
    loc, raw = promote(head(context)).chunk(2, dim=-1)  # float32 under autocast
    context = promote(context)
    q = dist.Normal(loc, F.softplus(raw) + min_scale).to_event(1)
    if len(flow) == 0:
        return q
    transforms = [
        t.condition(context) if isinstance(t, ConditionalTransformModule) else t for t in flow
    ]
    return dist.TransformedDistribution(q, transforms)


def posterior_code(q: dist.TorchDistribution) -> Tensor:
    """A point code of ``q``: its mean, or for a flow the mean of its base distribution pushed
    through the transforms."""
    if not isinstance(q, dist.TransformedDistribution):
        return q.mean
    z = q.base_dist.mean
    for transform in q.transforms:
        z = transform(z)
    return z
