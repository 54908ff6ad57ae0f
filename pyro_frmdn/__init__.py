"""pyro-frmdn: flow-based recurrent mixture density networks in Pyro."""

from . import distributions, flows
from .distributions import low_rank_mixture

__version__ = "0.1.0"

__all__ = ["__version__", "distributions", "flows", "low_rank_mixture"]
