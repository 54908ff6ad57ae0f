"""One job of the suite: train one model on one data set with one seed, score it, draw samples."""

from __future__ import annotations

import functools
import tempfile
import time
from pathlib import Path

import numpy as np
import pyro
import torch
from torch import Tensor

from ..data import bits_per_dim
from ..infer import History, fit, load_checkpoint, pit, plot_pit, resolve_device, to_inference_data
from ..models import FRMDN
from .datasets import Prepared, cached_dataset
from .sizes import build_variant, count_parameters
from .specs import PIT_PER_DIM, VARIANTS, DatasetSpec

__all__ = ["run_job", "train_and_test"]


@torch.no_grad()
def _step_nll(model: FRMDN, data: dict, batch_size: int, device: torch.device) -> Tensor:
    """The test NLL of every step in nats (B, T), in the model's space; 0 at masked steps."""
    model.eval()
    out = []
    for i in range(0, len(data["y"]), batch_size):
        y = data["y"][i : i + batch_size].to(device)
        mask = None if data["mask"] is None else data["mask"][i : i + batch_size].to(device)
        out.append(-model.step_log_prob(y, mask=mask).cpu().double())
    return torch.cat(out)


def _samples(model: FRMDN, spec: DatasetSpec, data: Prepared, seed: int) -> Tensor:
    """Generated sequences for the plots, on the CPU in the data's space."""
    pyro.set_rng_seed(seed)
    sample = functools.partial(
        model.sample,
        pi_temperature=spec.sample_temperature,
        scale_temperature=spec.sample_temperature,
    )
    if spec.kind == "frames":  # continue real test videos after half their frames
        prime = data.test["y"][:4, : spec.num_frames // 2].to(model.device)
        return sample(len(prime), spec.num_frames - spec.num_frames // 2, prime=prime).cpu()
    if spec.kind == "rows":
        return sample(8, data.test["y"].shape[1]).cpu()
    if spec.kind == "strokes":
        return sample(6, int(data.test["mask"].sum(1).float().mean())).cpu()
    return sample(6, data.test["y"].shape[1]).cpu()


def train_and_test(
    model: FRMDN,
    spec: DatasetSpec,
    data: Prepared,
    seed: int,
    device: str | torch.device | None = None,
) -> tuple[History, str | None, float, Tensor]:
    """Train ``model`` on a data set with the suite's budget and score its test split.

    Returns ``(history, diverged, train_time, nll)``: ``diverged`` is the error message of a
    run whose loss became NaN (it keeps its best validation epoch before it), else ``None``;
    ``nll`` is the per-step test NLL (B, T) in nats, 0 at masked steps.
    """
    device = resolve_device(device)
    start, diverged = time.perf_counter(), None
    with tempfile.TemporaryDirectory() as folder, pyro.validation_enabled(False):
        try:
            history = fit(
                model,
                {k: v for k, v in data.train.items() if v is not None},
                {k: v for k, v in data.val.items() if v is not None},
                epochs=spec.epochs,
                batch_size=spec.batch_size,
                lr=spec.lr,
                lr_decay=0.3 ** (1 / spec.epochs),  # to 0.3 of its start over the run
                device=device,
                checkpoint=folder,
                seed=seed,
                progress=False,
            )
        except FloatingPointError as err:  # keep the best validation epoch before the NaN
            diverged = str(err).split(":")[0]  # "the loss became nan at epoch E, step S"
            if not (Path(folder) / "best.pt").exists():
                raise
            history = History(load_checkpoint(Path(folder) / "last.pt")["history"])
            model.load_state_dict(load_checkpoint(Path(folder) / "best.pt")["model"])
        train_time = time.perf_counter() - start
        nll = _step_nll(model, data.test, max(spec.batch_size, 64), device)
    return history, diverged, train_time, nll


def run_job(job: dict) -> dict:
    """Train one model on one data set with one seed; returns its numbers (and plot data)."""
    torch.set_num_threads(job["threads"])
    spec, variant, seed = DatasetSpec(**job["spec"]), job["variant"], job["seed"]
    device = resolve_device(job["device"])
    data = cached_dataset(spec)
    torch.manual_seed(seed)
    pyro.set_rng_seed(seed)
    model = build_variant(variant, spec, data.obs_dim, job["hidden_dim"], data.binary_dims)
    start = time.perf_counter()
    history, diverged, train_time, nll = train_and_test(model, spec, data, seed, device)
    mask = data.test["mask"]
    scored = nll if mask is None else nll[mask]
    result = {
        "dataset": spec.name,
        "variant": variant,
        "seed": seed,
        "params": count_parameters(model),
        "hidden_dim": job["hidden_dim"],
        "test_nll": float(scored.mean()),
        "val_nll": min(history["val_nll"]),  # the kept epoch's; for choosing between settings
        "train_time": train_time,
        "time_per_epoch": float(np.median(history["time"])),  # the first epoch warms up
        "history": history.records,
        "diverged": diverged,
    }
    if spec.kind in ("frames", "rows"):
        result["test_bpd"] = bits_per_dim(nll, data.test["y"], logit_lambda=spec.logit_lambda,
                                          levels=spec.levels)  # fmt: skip
    if job["extras"]:  # samples and calibration, from the first seed only
        with pyro.validation_enabled(False):
            result["samples"] = _samples(model, spec, data, seed).tolist()
            n = 8 if spec.kind == "frames" else 64
            test = {k: None if v is None else v[:n].to(device) for k, v in data.test.items()}
            idata = to_inference_data(model, test["y"], mask=test["mask"], num_samples=99, seed=0)
        u = pit(idata)
        result["pit"] = u[np.random.default_rng(0).permutation(len(u))[:2000]].tolist()
        if variant in PIT_PER_DIM:
            title = f"PIT, {VARIANTS[variant][0]} on {spec.name}"
            path = Path(job["out"]) / f"pit_{spec.name}_{variant}.png"
            plot_pit(idata, path, max_panels=8, title=title)
    result["wall_time"] = time.perf_counter() - start
    return result
