"""Pyro programs: MDN, RMDN, FRMDN, boosted flows and world models."""

from .boosted import (
    RHO_MAX,
    BoostedFlow,
    BoostedFRMDN,
    BoostedGuideDistribution,
    BoostedGuideFlow,
    BoostedMixture,
    BoostedMixtureDistribution,
    BoostingComponent,
    FlowComponent,
    log_weights_from_rho,
    rho_from_log_weights,
)
from .frmdn import CELLS, FRMDN, RMDN, greedy, pad_sequences
from .mdn import MDN
from .sequence import SequenceDistribution, shift_actions
from .validation import check_finite, check_mask, check_sequences
from .world import (
    DECODERS,
    GUIDE_FLOWS,
    PRIORS,
    Dream,
    WorldModel,
    dream,
    evaluate_bounds,
    save_dream,
)

__all__ = [
    "CELLS",
    "DECODERS",
    "FRMDN",
    "GUIDE_FLOWS",
    "MDN",
    "PRIORS",
    "RHO_MAX",
    "RMDN",
    "BoostedFRMDN",
    "BoostedFlow",
    "BoostedGuideDistribution",
    "BoostedGuideFlow",
    "BoostedMixture",
    "BoostedMixtureDistribution",
    "BoostingComponent",
    "Dream",
    "FlowComponent",
    "SequenceDistribution",
    "WorldModel",
    "check_finite",
    "check_mask",
    "check_sequences",
    "dream",
    "evaluate_bounds",
    "greedy",
    "log_weights_from_rho",
    "pad_sequences",
    "rho_from_log_weights",
    "save_dream",
    "shift_actions",
]
