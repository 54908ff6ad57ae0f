"""Float32 likelihoods under mixed precision.

``torch.autocast`` (``fit(precision="bf16-mixed")``, Lightning's ``precision="bf16-mixed"``)
runs matrix products in bfloat16: what makes an RNN and its output layer fast, and what a
likelihood must not do. A log-density sums D terms and log-determinants; in bfloat16 (8 bits of
mantissa) its value and gradient would carry errors of a few parts in a thousand of their size.
So the package's densities take their parameters in float32 (a bfloat16 or float16 head output
is promoted, exactly) and compute with autocast off: mixed precision makes the networks that
produce the parameters fast, and leaves the density exact for those parameters.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import torch
from torch import Tensor

__all__ = ["REDUCED_DTYPES", "float32_math", "promote", "without_autocast"]

REDUCED_DTYPES = (torch.bfloat16, torch.float16)
"""The floating dtypes a density promotes to float32."""

_DEVICE_TYPES = ("cpu", "cuda")


def promote(t: Tensor | None) -> Tensor | None:
    """``t`` in float32 if it is bfloat16 or float16 (an exact conversion), else ``t`` itself."""
    if t is not None and t.dtype in REDUCED_DTYPES:
        return t.float()
    return t


@contextmanager
def float32_math() -> Iterator[None]:
    """Turn autocast off, on every device type where it is on, for the block (nothing to do,
    and nothing done, where it is off)."""
    on = [d for d in _DEVICE_TYPES if torch.is_autocast_enabled(d)]
    if not on:
        yield
        return
    with ExitStack() as stack:
        for device_type in on:
            stack.enter_context(torch.autocast(device_type, enabled=False))
        yield


def without_autocast(fn: Callable) -> Callable:
    """Run ``fn`` under :func:`float32_math`: for the ``forward`` and ``backward`` of autograd
    functions, whose backward pass runs under whatever autocast state the caller of
    ``backward`` has."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        with float32_math():
            return fn(*args, **kwargs)

    return run
