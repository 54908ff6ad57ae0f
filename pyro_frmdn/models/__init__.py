"""Pyro programs: MDN, RMDN and FRMDN."""

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
from .validation import check_finite, check_sequences

__all__ = [
    "CELLS",
    "FRMDN",
    "MDN",
    "RHO_MAX",
    "RMDN",
    "BoostedFRMDN",
    "BoostedFlow",
    "BoostedGuideDistribution",
    "BoostedGuideFlow",
    "BoostedMixture",
    "BoostedMixtureDistribution",
    "BoostingComponent",
    "FlowComponent",
    "check_finite",
    "check_sequences",
    "greedy",
    "log_weights_from_rho",
    "pad_sequences",
    "rho_from_log_weights",
]
