"""Renamed public arguments keep working for one release, with a warning that names the new one."""

from __future__ import annotations

import warnings
from typing import Any

__all__ = ["refuse_unknown", "renamed"]

_MISSING = object()


def renamed(where: str, kwargs: dict, old: str, new: str, value: Any = _MISSING) -> Any:
    """Pop the deprecated keyword ``old`` from ``kwargs`` and return the value to use for ``new``.

    ``value`` is what the caller got for ``new`` (left out: ``new`` is not an argument of its
    own). Passing both is an error; passing ``old`` alone warns (``FutureWarning``) and gives
    its value. Keywords left in ``kwargs`` afterwards are unknown: the caller raises on them.

    Example:
        >>> kw = {"num_layers": 3}
        >>> import warnings
        >>> with warnings.catch_warnings(record=True):
        ...     warnings.simplefilter("always")
        ...     renamed("coupling_flow", kw, "num_layers", "flow_layers", None)
        3
    """
    if old not in kwargs:
        return None if value is _MISSING else value
    given = kwargs.pop(old)
    if value is not _MISSING and value is not None:
        raise TypeError(f"{where} got both {old}= and {new}=; {old} is the old name of {new}")
    warnings.warn(
        f"{where}: {old}= is deprecated and will be removed in the next release; use {new}=",
        FutureWarning,
        stacklevel=3,
    )
    return given


def refuse_unknown(where: str, kwargs: dict) -> None:
    """Raise the TypeError Python gives for unexpected keywords, naming ``where``."""
    if kwargs:
        raise TypeError(f"{where} got unexpected keyword arguments {sorted(kwargs)}")
