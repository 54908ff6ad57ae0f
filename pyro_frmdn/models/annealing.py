"""KL annealing of latent-variable models: the weight β of their latent sites, step by step."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pyro import poutine

__all__ = ["kl_weight", "weighted_sites"]


def kl_weight(steps: int, warmup: int, start: float, end: float) -> float:
    """β after ``steps`` training steps: rising linearly from ``start`` to ``end`` over the first
    ``warmup`` steps (Bowman et al. 2016), then ``end``; ``end`` throughout when ``warmup`` is 0.
    """
    if not warmup:
        return end
    done = min(1.0, steps / warmup)
    return start + (end - start) * done


@contextmanager
def weighted_sites(beta: float, active: bool = True) -> Iterator[None]:
    """Weigh the sample sites inside by ``beta``, or leave them out of the loss when ``beta`` is 0
    or ``active`` is false (a mask: Pyro refuses a scale of 0)."""
    on = bool(active) and beta > 0
    with poutine.scale(scale=beta if on else 1.0), poutine.mask(mask=on):
        yield
