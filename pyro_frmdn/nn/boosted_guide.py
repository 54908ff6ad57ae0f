"""A boosted variational posterior for VAE encoders: a weighted mixture of conditional flows."""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import Tensor, nn

from ..deprecation import refuse_unknown, renamed
from ..distributions import (
    BoostedGuideDistribution,
    FlowTransformedDistribution,
    check_rho,
    flow_mixture,
    log_weights_from_rho,
    promote,
)
from ..flows import coupling_flow

__all__ = ["BoostedGuideFlow"]


class _ConditionalFlowComponent(nn.Module):
    """q_c(z | h): a diagonal Gaussian amortised from ``h``, then a conditional coupling flow."""

    def __init__(self, latent_dim, context_dim, flow_layers, flow, hidden_dims, seed, min_scale):
        super().__init__()
        self.min_scale = min_scale
        self.base_net = nn.Linear(context_dim, 2 * latent_dim)
        self.flow = coupling_flow(
            latent_dim,
            flow_layers,
            flow=flow,
            hidden_dims=hidden_dims,
            context_dim=context_dim,
            seed=seed,
        )

    def forward(self, context: Tensor) -> FlowTransformedDistribution:
        loc, raw = promote(self.base_net(context)).chunk(2, dim=-1)  # float32 under autocast
        scale = nn.functional.softplus(raw) + self.min_scale
        return flow_mixture(dist.Normal(loc, scale).to_event(1), self.flow, context)


class BoostedGuideFlow(nn.Module):
    r"""A boosted variational posterior for a VAE encoder (Giaquinto & Banerjee 2020, §4):

    .. math::
        q(z \mid x) = \sum_{c} w_c\, q_c(z \mid h(x)), \qquad
        q_c(z \mid h) = f_c\big(\mathcal N(\mu_c(h), \operatorname{diag} \sigma_c^2(h)); h\big)

    with analytically invertible components (conditional affine or spline couplings from
    :func:`~pyro_frmdn.flows.coupling_flow`), so that :math:`\log q(z \mid x)` is exact: every
    component is inverted at :math:`z` and the terms are log-sum-exp'ed. ``rsample`` draws one
    component per sample and reparameterises within it, as the paper approximates the mixture's
    expectation :math:`E_q[\cdot] = \sum_c w_c E_{q_c}[\cdot]` with one sampled component; the
    weights come from ``rho`` (a buffer, the boosting recursion of
    :class:`~pyro_frmdn.models.BoostedMixture`; default equal weights) and carry no gradient, so
    that estimator is unbiased for the flows' parameters. To boost, train one component at a
    time (:meth:`set_trainable`, and ``dist.rsample(component=c)`` to draw from it);
    :meth:`freeze` freezes them all.

    Arguments:
        latent_dim: size of z (>= 2 for affine couplings).
        context_dim: size of the encoder features h(x).
        num_components, flow_layers, flow, hidden_dims: the mixture and each flow
            (``flow_layers`` and ``flow`` were ``num_layers`` and ``kind`` before 0.2).
        rho: the boosting steps (C,), ``rho[0] = 1``; default ``1 / (c + 1)`` (equal weights).
        min_scale: floor of the base scales.

    Example:
        >>> q = BoostedGuideFlow(latent_dim=2, context_dim=3, num_components=2, hidden_dims=[8])
        >>> d = q(torch.randn(5, 3))            # batch (5,), event (2,)
        >>> z = d.rsample()
        >>> z.shape, d.log_prob(z).shape
        (torch.Size([5, 2]), torch.Size([5]))
    """

    def __init__(
        self,
        latent_dim: int,
        context_dim: int,
        num_components: int = 2,
        flow_layers: int = 2,
        flow: str = "affine",
        hidden_dims: list[int] | None = None,
        rho: Tensor | None = None,
        min_scale: float = 1e-3,
        **deprecated,
    ):
        super().__init__()
        flow_layers = renamed(
            "BoostedGuideFlow", deprecated, "num_layers", "flow_layers", flow_layers
        )
        if "kind" in deprecated:
            flow = renamed("BoostedGuideFlow", deprecated, "kind", "flow")
        refuse_unknown("BoostedGuideFlow", deprecated)
        if latent_dim < 1 or context_dim < 1 or num_components < 1 or flow_layers < 1:
            raise ValueError(
                "need latent_dim, context_dim, num_components, flow_layers >= 1; got "
                f"{latent_dim}, {context_dim}, {num_components}, {flow_layers}"
            )
        self.latent_dim, self.context_dim = latent_dim, context_dim
        self.components = nn.ModuleList(
            _ConditionalFlowComponent(
                latent_dim, context_dim, flow_layers, flow, hidden_dims, c, min_scale
            )
            for c in range(num_components)
        )
        if rho is None:
            rho = 1.0 / torch.arange(1, num_components + 1, dtype=torch.get_default_dtype())
        rho = torch.as_tensor(rho, dtype=torch.get_default_dtype())
        if rho.shape != (num_components,):
            raise ValueError(f"rho must have shape ({num_components},), got {tuple(rho.shape)}")
        check_rho(rho)
        self.register_buffer("rho", rho.clone())

    def log_weights(self) -> Tensor:
        return log_weights_from_rho(self.rho)

    def set_trainable(self, index: int | None) -> None:
        """Unfreeze component ``index`` and freeze the others; ``None`` unfreezes all of them
        (joint training). As :meth:`~pyro_frmdn.models.BoostedMixture.set_trainable`."""
        if index is not None and not 0 <= index < len(self.components):
            raise ValueError(f"no component {index}: the guide has {len(self.components)}")
        for c, component in enumerate(self.components):
            component.requires_grad_(index is None or c == index)

    def freeze(self) -> None:
        """Freeze every component (``requires_grad=False``)."""
        self.components.requires_grad_(False)

    def forward(self, context: Tensor) -> BoostedGuideDistribution:
        """q(z | h) for encoder features ``context`` (..., context_dim): batch (...), event (D,)."""
        if context.shape[-1] != self.context_dim:
            raise ValueError(
                f"context has {context.shape[-1]} features, the guide was built for "
                f"{self.context_dim}"
            )
        return BoostedGuideDistribution([c(context) for c in self.components], self.log_weights())
