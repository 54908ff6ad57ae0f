"""Pyro programs: MDN, RMDN, FRMDN, boosted flows and world models."""

from ..distributions import (  # re-exported here as before; their home is distributions
    RHO_MAX,
    BoostedGuideDistribution,
    BoostedMixtureDistribution,
    log_weights_from_rho,
    rho_from_log_weights,
)
from ..nn import BoostedGuideFlow  # re-exported here as before; its home is nn
from .base import MODEL_FORMAT, PyroModel, check_contract, load, model_classes
from .boosted import BoostedMixture, BoostingComponent
from .boosted_flow import BoostedFlow, FlowComponent
from .boosted_frmdn import BoostedFRMDN
from .controller import Controller
from .decoding import greedy
from .dream import Dream, dream
from .frmdn import CELLS, FRMDN, RMDN, pad_sequences
from .handwriting import HandwritingSynthesis
from .mdn import MDN
from .mixture_of_flows import MixtureOfFlows
from .sequence import SequenceDistribution, shift_actions
from .sketch import SketchVAE
from .sketch_inputs import STROKE5_START
from .validation import check_finite, check_mask, check_sequences
from .world import DECODERS, GUIDE_FLOWS, PRIORS, WorldModel

__all__ = [
    "CELLS",
    "DECODERS",
    "FRMDN",
    "GUIDE_FLOWS",
    "MDN",
    "MODEL_FORMAT",
    "PRIORS",
    "RHO_MAX",
    "RMDN",
    "STROKE5_START",
    "BoostedFRMDN",
    "BoostedFlow",
    "BoostedGuideDistribution",
    "BoostedGuideFlow",
    "BoostedMixture",
    "BoostedMixtureDistribution",
    "BoostingComponent",
    "Controller",
    "Dream",
    "FlowComponent",
    "HandwritingSynthesis",
    "MixtureOfFlows",
    "PyroModel",
    "SequenceDistribution",
    "SketchVAE",
    "WorldModel",
    "check_contract",
    "check_finite",
    "check_mask",
    "check_sequences",
    "dream",
    "greedy",
    "load",
    "log_weights_from_rho",
    "model_classes",
    "pad_sequences",
    "rho_from_log_weights",
    "shift_actions",
]
