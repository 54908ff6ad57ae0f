"""The suite's statistics: mean and spread over seeds, and whether an FRMDN beats the RMDNs."""

from __future__ import annotations

import math

import numpy as np

from .specs import FRMDNS, RMDNS, VARIANTS, DatasetSpec

__all__ = ["mean_std", "summarise", "verdict"]


def mean_std(values: list[float]) -> dict:
    """``{"mean", "std", "values"}`` of numbers over seeds; the sample std (0 for one value).

    Example:
        >>> mean_std([1.0, 2.0, 3.0])
        {'mean': 2.0, 'std': 1.0, 'values': [1.0, 2.0, 3.0]}
    """
    a = np.asarray(values, dtype=float)
    std = float(a.std(ddof=1)) if len(a) > 1 else 0.0
    return {"mean": float(a.mean()), "std": std, "values": a.tolist()}


def summarise(spec: DatasetSpec, runs: list[dict]) -> dict:
    """Per variant the statistics of one data set's runs over seeds, and the :func:`verdict`."""
    models = {}
    for v in VARIANTS:
        mine = [r for r in runs if r["variant"] == v]
        if not mine:
            continue
        models[v] = {
            "label": VARIANTS[v][0],
            "params": mine[0]["params"],
            "hidden_dim": mine[0]["hidden_dim"],
            "test_nll": mean_std([r["test_nll"] for r in mine]),
            "val_nll": mean_std([r["val_nll"] for r in mine]),
            "train_time": mean_std([r["train_time"] for r in mine]),
            "time_per_epoch": mean_std([r["time_per_epoch"] for r in mine]),
            "diverged": [r["seed"] for r in mine if r.get("diverged")],
        }
        if "test_bpd" in mine[0]:
            models[v]["test_bpd"] = mean_std([r["test_bpd"] for r in mine])
    return {"models": models, "verdict": verdict(models)}


def verdict(models: dict) -> dict | None:
    """Does the better FRMDN beat the better RMDN by more than the seed spread?"""
    metric = "test_bpd" if any("test_bpd" in m for m in models.values()) else "test_nll"
    flows = [v for v in FRMDNS if v in models]
    plain = [v for v in RMDNS if v in models]
    if not flows or not plain:
        return None
    f = min(flows, key=lambda v: models[v][metric]["mean"])
    r = min(plain, key=lambda v: models[v][metric]["mean"])
    fm, rm = models[f][metric], models[r][metric]
    improvement = rm["mean"] - fm["mean"]  # lower is better
    spread = math.sqrt(fm["std"] ** 2 + rm["std"] ** 2)
    seeds = min(len(fm["values"]), len(rm["values"]))
    ratio = models[f]["time_per_epoch"]["mean"] / models[r]["time_per_epoch"]["mean"]
    return {
        "metric": metric,
        "frmdn": f,
        "rmdn": r,
        "improvement": improvement,
        "relative": improvement / abs(rm["mean"]) if rm["mean"] else math.nan,
        "spread": spread,
        "wins": bool(improvement > spread and seeds > 1),
        "time_ratio": ratio,
    }
