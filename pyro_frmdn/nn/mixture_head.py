"""A linear head from features to the per-step low-rank Gaussian mixture."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..deprecation import refuse_unknown, renamed
from ..distributions import PARAMETERIZATIONS, low_rank_mixture, positive

__all__ = ["FACTOR_MODES", "MixtureHead"]

FACTOR_MODES = ("per_step", "shared")
"""Where the low-rank factors come from: the network at every step, or one free parameter per
component shared by all steps."""


class MixtureHead(nn.Module):
    r"""Maps features h, ``(..., H)``, to a :func:`~pyro_frmdn.distributions.low_rank_mixture`.

    One linear layer gives the logits, means, diagonals (through
    :func:`~pyro_frmdn.distributions.positive`, so they stay above ``min_diag``) and, with
    ``factor_mode="per_step"``, the low-rank factors. With ``factor_mode="shared"`` each
    component's factor is a free parameter shared by every step: the head's output shrinks from
    :math:`K(2D + Dr + 1)` to :math:`K(2D + 1)` numbers per step, which is what makes large D
    affordable.

    Arguments:
        in_features: H.
        obs_dim: D.
        num_components: K.
        rank: r; 0 gives diagonal components (the classic MDN).
        parameterization: ``"covariance"`` or ``"precision"`` (see ``low_rank_mixture``).
        factor_mode: ``"per_step"`` or ``"shared"`` (``factor`` before version 0.2).
        min_diag: the floor added to the diagonal.

    Example:
        >>> head = MixtureHead(16, obs_dim=3, num_components=4, rank=2)
        >>> head(torch.randn(8, 5, 16)).batch_shape
        torch.Size([8, 5])
    """

    def __init__(
        self,
        in_features: int,
        obs_dim: int,
        num_components: int,
        rank: int = 0,
        parameterization: str = "covariance",
        factor_mode: str = "per_step",
        min_diag: float = 1e-4,
        **deprecated,
    ):
        super().__init__()
        if parameterization not in PARAMETERIZATIONS:
            raise ValueError(
                f"parameterization must be one of {PARAMETERIZATIONS}, got {parameterization!r}"
            )
        if "factor" in deprecated:
            factor_mode = renamed("MixtureHead", deprecated, "factor", "factor_mode")
        refuse_unknown("MixtureHead", deprecated)
        if factor_mode not in FACTOR_MODES:
            raise ValueError(f"factor_mode must be one of {FACTOR_MODES}, got {factor_mode!r}")
        if min(in_features, obs_dim, num_components) < 1 or rank < 0 or min_diag < 0:
            raise ValueError(
                "need in_features, obs_dim, num_components >= 1, rank >= 0 and min_diag >= 0"
            )
        self.obs_dim, self.num_components, self.rank = obs_dim, num_components, rank
        self.parameterization, self.factor_mode = parameterization, factor_mode
        self.min_diag = min_diag
        k, d = num_components, obs_dim
        per_step_rank = rank if factor_mode == "per_step" else 0
        self.sizes = [k, k * d, k * d, k * d * per_step_rank]
        self.linear = nn.Linear(in_features, sum(self.sizes))
        if rank and factor_mode == "shared":
            self.shared_factor = nn.Parameter(torch.randn(k, d, rank) / d**0.5)
        else:
            self.register_parameter("shared_factor", None)

    def raw_parts(self, h: Tensor) -> tuple[Tensor | None, ...]:
        """The linear layer's four parts at ``h``: logits, means, raw diagonals, raw factors
        (``None`` where a part is empty), flat over the components."""
        # one product per part, with the matching rows of the one weight: the same numbers as
        # splitting one output, but each part's gradient flows into its own rows, where the
        # backward of a split output would first copy the four gradients into one tensor of
        # K(2D + Dr + 1) numbers per step (5-6% of a training step at D = 64, K = 5, r = 2)
        weights, biases = self.linear.weight.split(self.sizes), self.linear.bias.split(self.sizes)
        return tuple(
            F.linear(h, w, b) if len(w) else None for w, b in zip(weights, biases, strict=True)
        )

    def forward(self, h: Tensor):
        k, d, r = self.num_components, self.obs_dim, self.rank
        logits, loc, raw_diag, raw_factor = self.raw_parts(h)
        batch = h.shape[:-1]
        loc = loc.reshape(batch + (k, d))
        diag = positive(raw_diag.reshape(batch + (k, d)), self.min_diag)
        if r == 0:
            factor = None
        elif self.shared_factor is not None:
            factor = self.shared_factor
        else:
            factor = raw_factor.reshape(batch + (k, d, r))
        return low_rank_mixture(logits, loc, factor, diag, self.parameterization)
