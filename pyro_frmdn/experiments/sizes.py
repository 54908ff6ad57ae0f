"""Models of matched size: each variant's RNN hidden size chosen to match the FRMDN's parameters."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from ..models import FRMDN
from .specs import VARIANTS, DatasetSpec

__all__ = ["TOLERANCE", "build_variant", "count_parameters", "match_hidden", "matched_sizes"]

TOLERANCE = 0.03  # every variant's parameter count is within 3% of the data set's target


def count_parameters(model: torch.nn.Module) -> int:
    """The number of trainable numbers in a model."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_variant(
    variant: str, spec: DatasetSpec, obs_dim: int, hidden_dim: int, binary_dims: int = 0
) -> FRMDN:
    """The model ``variant`` for a data set, with an RNN of ``hidden_dim`` units."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown model {variant!r}; expected one of {', '.join(VARIANTS)}")
    _, cls, extra = VARIANTS[variant]
    kwargs = {"num_components": spec.num_components, "rank": spec.rank, **extra}
    if cls is FRMDN:
        kwargs.update(
            flow_layers=spec.flow_layers,
            flow=spec.flow,
            conditional_flow=spec.conditional_flow,
            flow_hidden_dims=[spec.flow_hidden],
        )
    if binary_dims:
        kwargs["binary_dims"] = binary_dims
    return cls(obs_dim, hidden_dim=hidden_dim, **kwargs)


def match_hidden(
    variant: str, spec: DatasetSpec, obs_dim: int, target: int, binary_dims: int = 0
) -> tuple[int, int]:
    """The hidden size whose model's parameter count is nearest ``target``: ``(hidden, count)``.

    The count grows with the hidden size, so a bisection finds the first size at or above the
    target; that one or the one below it is the nearest.
    """

    def count(h: int) -> int:
        return count_parameters(build_variant(variant, spec, obs_dim, h, binary_dims))

    lo, hi = 1, 2
    while count(hi) < target:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if count(mid) < target else (lo, mid)
    best = min((lo, hi), key=lambda h: abs(count(h) - target))
    return best, count(best)


def matched_sizes(
    spec: DatasetSpec, obs_dim: int, variants: Iterable[str], binary_dims: int = 0
) -> dict[str, dict]:
    """Per variant ``{"hidden_dim", "params"}``, matched to the FRMDN at ``spec.hidden_dim``."""
    reference = build_variant("frmdn_cov", spec, obs_dim, spec.hidden_dim, binary_dims)
    target = count_parameters(reference)
    sizes = {}
    for v in variants:
        hidden, params = match_hidden(v, spec, obs_dim, target, binary_dims)
        if abs(params - target) > TOLERANCE * target:
            raise ValueError(
                f"{v} on {spec.name}: no hidden size gives {target} parameters within "
                f"{TOLERANCE:.0%} (nearest {params} at {hidden}); change the spec's sizes"
            )
        sizes[v] = {"hidden_dim": hidden, "params": params, "target": target}
    return sizes
