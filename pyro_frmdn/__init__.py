"""pyro-frmdn: flow-based recurrent mixture density networks in Pyro."""

from . import data, distributions, flows, infer, models
from .distributions import low_rank_mixture
from .infer import evaluate, fit
from .models import FRMDN, MDN, RMDN, pad_sequences

__version__ = "0.1.0"

__all__ = [
    "FRMDN",
    "MDN",
    "RMDN",
    "__version__",
    "data",
    "distributions",
    "evaluate",
    "fit",
    "flows",
    "infer",
    "low_rank_mixture",
    "models",
    "pad_sequences",
]
