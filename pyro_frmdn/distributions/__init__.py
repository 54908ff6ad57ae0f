"""Per-step observation distributions of FRMDN: pure math on tensors, no networks."""

from .binary import WithBernoulli
from .flow_mixture import FlowTransformedDistribution, clear_transform_cache, flow_mixture
from .lowrank import LowRankCovarianceMultivariateNormal, LowRankPrecisionMultivariateNormal
from .mixture import PARAMETERIZATIONS, components, low_rank_mixture, positive
from .temperature import SCALE_MODES, graves_bias, temper

__all__ = [
    "PARAMETERIZATIONS",
    "SCALE_MODES",
    "FlowTransformedDistribution",
    "LowRankCovarianceMultivariateNormal",
    "LowRankPrecisionMultivariateNormal",
    "WithBernoulli",
    "clear_transform_cache",
    "components",
    "flow_mixture",
    "graves_bias",
    "low_rank_mixture",
    "positive",
    "temper",
]
