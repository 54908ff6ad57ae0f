"""pyro-frmdn: flow-based recurrent mixture density networks in Pyro."""

from . import data, distributions, flows, infer, models
from .distributions import low_rank_mixture
from .infer import evaluate, fit, fit_boosted, load_boosted
from .models import (
    FRMDN,
    MDN,
    RMDN,
    BoostedFlow,
    BoostedFRMDN,
    Controller,
    HandwritingSynthesis,
    MixtureOfFlows,
    PyroModel,
    SequenceDistribution,
    SketchVAE,
    WorldModel,
    dream,
    load,
    pad_sequences,
)
from .nn import BoostedGuideFlow

__version__ = "0.1.0"

__all__ = [
    "FRMDN",
    "MDN",
    "RMDN",
    "BoostedFRMDN",
    "BoostedFlow",
    "BoostedGuideFlow",
    "Controller",
    "HandwritingSynthesis",
    "MixtureOfFlows",
    "PyroModel",
    "SequenceDistribution",
    "SketchVAE",
    "WorldModel",
    "__version__",
    "data",
    "distributions",
    "dream",
    "evaluate",
    "fit",
    "fit_boosted",
    "flows",
    "infer",
    "load",
    "load_boosted",
    "low_rank_mixture",
    "models",
    "pad_sequences",
]
