"""Held-out ELBO and importance-weighted bounds of a world model, per frame and in bits/dim."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..models import WorldModel

__all__ = ["evaluate_bounds"]

_ARGS = ("frames", "actions", "mask", "rewards", "dones")


def evaluate_bounds(
    world_model: WorldModel,
    data,
    num_samples: int = 64,
    batch_size: int = 16,
    chunk_size: int = 16,
    progress: bool = False,
) -> dict:
    r"""Held-out ELBO and importance-weighted bound per frame, in nats (higher is better).

    Each sequence gets ``k = num_samples`` draws of the guide; the ELBO is the mean of the
    log-weights, the IWAE bound :math:`\log \frac1k \sum_i w_i`; both are summed over sequences
    and divided by the number of unmasked frames. For discrete pixel likelihoods
    (``"logistic"``, ``"bernoulli"``) the bounds are also given in bits per dimension
    (:math:`-\text{bound} / (C H W \ln 2)`, an upper bound on the code length).

    Arguments:
        data: frames ``(N, T, C, H, W)``, a tuple in the order of :meth:`WorldModel.model`'s
            arguments, or a dict of them by name.
        num_samples, batch_size, chunk_size: k, sequences per batch, draws decoded at a time.

    Returns:
        ``{"elbo", "iwae", "frames", "num_samples"}`` and, for discrete pixels,
        ``"elbo_bits_per_dim"`` and ``"iwae_bits_per_dim"``.
    """
    if isinstance(data, Tensor):
        data = (data,)
    if isinstance(data, (tuple, list)):
        data = dict(zip(_ARGS, data, strict=False))
    data = {k: v for k, v in data.items() if v is not None}
    unknown = set(data) - set(_ARGS)
    if unknown or "frames" not in data:
        raise ValueError(f"data must hold 'frames' and only keys of {_ARGS}; got {sorted(data)}")
    n = len(data["frames"])
    wm = world_model
    was_training = wm.training
    wm.eval()
    elbo = iwae = 0.0
    count = 0
    try:
        with torch.no_grad():
            for start in tqdm(range(0, n, batch_size), disable=not progress, desc="bounds"):
                batch = {k: v[start : start + batch_size].to(wm.device) for k, v in data.items()}
                lw = wm.log_weights(**batch, num_samples=num_samples, chunk_size=chunk_size)
                elbo += float(lw.mean(0).sum())
                iwae += float((torch.logsumexp(lw, 0) - math.log(num_samples)).sum())
                mask = batch.get("mask")
                count += (
                    int(mask.sum()) if mask is not None else math.prod(batch["frames"].shape[:2])
                )
    finally:
        wm.train(was_training)
    out = {"elbo": elbo / count, "iwae": iwae / count, "frames": count, "num_samples": num_samples}
    if wm.pixels.discrete:
        bits = wm.obs_dim * math.log(2)
        out["elbo_bits_per_dim"] = -out["elbo"] / bits
        out["iwae_bits_per_dim"] = -out["iwae"] / bits
    return out
