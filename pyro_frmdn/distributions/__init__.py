"""Per-step observation distributions of FRMDN: pure math on tensors, no networks."""

from .binary import WithBernoulli
from .boosted import (
    RHO_MAX,
    BoostedGuideDistribution,
    BoostedMixtureDistribution,
    check_rho,
    log_weights_from_rho,
    rho_from_log_weights,
)
from .categorical import WithCategorical
from .float32 import float32_math, promote
from .logistic import DiscretizedLogistic
from .lowrank import LowRankCovarianceMultivariateNormal, LowRankPrecisionMultivariateNormal
from .mixture import PARAMETERIZATIONS, LowRankMixture, components, low_rank_mixture, positive
from .temperature import SCALE_MODES, graves_bias, temper
from .transformed import FlowTransformedDistribution, clear_transform_cache, flow_mixture

__all__ = [
    "PARAMETERIZATIONS",
    "RHO_MAX",
    "SCALE_MODES",
    "BoostedGuideDistribution",
    "BoostedMixtureDistribution",
    "DiscretizedLogistic",
    "FlowTransformedDistribution",
    "LowRankCovarianceMultivariateNormal",
    "LowRankMixture",
    "LowRankPrecisionMultivariateNormal",
    "WithBernoulli",
    "WithCategorical",
    "check_rho",
    "clear_transform_cache",
    "components",
    "float32_math",
    "flow_mixture",
    "graves_bias",
    "log_weights_from_rho",
    "low_rank_mixture",
    "positive",
    "promote",
    "rho_from_log_weights",
    "temper",
]
