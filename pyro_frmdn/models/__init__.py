"""Pyro programs: MDN, RMDN and FRMDN."""

from .frmdn import CELLS, FRMDN, RMDN, greedy, pad_sequences
from .mdn import MDN
from .validation import check_finite, check_sequences

__all__ = [
    "CELLS",
    "FRMDN",
    "MDN",
    "RMDN",
    "check_finite",
    "check_sequences",
    "greedy",
    "pad_sequences",
]
