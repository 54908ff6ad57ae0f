"""The real-data experiments: five sequence models at matched size and budget, several seeds.

Per data set it trains (1) one diagonal Gaussian per step, (2) a diagonal RMDN, (3) a low-rank RMDN,
(4) an FRMDN with low-rank covariances and (5) an FRMDN with low-rank precisions (the form of
Razavi, Hosseini & Behzad 2020, arXiv 2008.02144), each with the RNN's hidden size chosen so that
every model has about the same number of parameters, for the same epochs, batch size and learning
rate schedule. It writes ``results.json``, ``results.md`` and plots (learning curves, samples,
calibration) into one folder. ``pyro-frmdn bench`` and ``benchmarks/quality.py`` call :func:`main`.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import math
import os
import platform
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pyro
import torch
from torch import Tensor
from tqdm.auto import tqdm

from .data import (
    bits_per_dim,
    dequantize,
    dequantize_grid,
    frames_to_sequences,
    inverse_logit_transform,
    japanese_vowels,
    kanji_strokes,
    logit_transform,
    mnist_digits,
    moving_mnist,
    sklearn_digits,
)
from .data.kanji import SCALE as KANJI_SCALE
from .infer import (
    History,
    fit,
    load_checkpoint,
    pit,
    plot_pit,
    resolve_device,
    to_inference_data,
)
from .models import FRMDN, RMDN

__all__ = [
    "DATASETS",
    "VARIANTS",
    "DatasetSpec",
    "build_variant",
    "count_parameters",
    "cpu_name",
    "load_dataset",
    "match_hidden",
    "run_bench",
    "train_and_test",
    "write_report",
]

VARIANTS = {  # name -> (label, model class, keywords beside the spec's K, r and flow)
    "gaussian": ("Gaussian (K=1, diagonal)", RMDN, {"num_components": 1, "rank": 0}),
    "rmdn_diag": ("RMDN diagonal", RMDN, {"rank": 0}),
    "rmdn_lowrank": ("RMDN low-rank", RMDN, {}),
    "frmdn_cov": ("FRMDN covariance", FRMDN, {"parameterization": "covariance"}),
    "frmdn_prec": ("FRMDN precision", FRMDN, {"parameterization": "precision"}),
}
RMDNS, FRMDNS = ("rmdn_diag", "rmdn_lowrank"), ("frmdn_cov", "frmdn_prec")
PIT_PER_DIM = ("rmdn_lowrank", "frmdn_prec")  # also get a calibration plot per dimension
TOLERANCE = 0.03  # every variant's parameter count is within 3% of the data set's target
SPLITS = {"train": "train", "val": "validation", "test": "test"}  # our key -> the loaders' name


@dataclass(frozen=True)
class DatasetSpec:
    """One data set of the suite and its budget.

    ``kind`` is ``"frames"`` (video frames flattened per step), ``"rows"`` (an image as a sequence
    of rows), ``"speech"`` or ``"strokes"``. Images are dequantised with ``levels`` and, if
    ``logit_lambda`` is set, logit-transformed. ``hidden_dim`` is the FRMDN's: its parameter count
    is the target every variant is matched to. Sizes are numbers of sequences. The FRMDNs' flow
    is ``flow_layers`` couplings of kind ``flow`` (``"affine"`` or ``"spline"``), conditioned on
    the RNN's state if ``conditional_flow``. The sample plots draw at ``sample_temperature``
    (both the mixture weights' and the spread's, :func:`~pyro_frmdn.distributions.temper`).
    Strokes with a ``grid`` have their points rounded to that many canvas units and their
    offsets dequantised (:func:`~pyro_frmdn.data.dequantize_grid`); see
    :func:`~pyro_frmdn.data.kanji_strokes` for why.
    """

    name: str
    kind: str
    description: str
    train: int
    val: int
    test: int
    epochs: int
    batch_size: int
    lr: float
    hidden_dim: int
    num_components: int
    rank: int
    flow_layers: int
    flow_hidden: int
    levels: int = 256
    logit_lambda: float | None = None
    frame_size: int = 16
    num_frames: int = 20
    flow: str = "affine"
    conditional_flow: bool = False
    sample_temperature: float = 1.0
    grid: float | None = None


DATASETS = {
    s.name: s
    for s in (
        DatasetSpec(
            "moving_mnist", "frames", "Moving MNIST, two digits bouncing in square frames",
            train=1200, val=50, test=200, epochs=20, batch_size=25, lr=2e-3, hidden_dim=96,
            num_components=5, rank=2, flow_layers=4, flow_hidden=128, logit_lambda=0.05,
            sample_temperature=0.5,
        ),
        DatasetSpec(
            "mnist_rows", "rows", "MNIST digits as 28 rows of 28 pixels",
            train=3000, val=250, test=500, epochs=20, batch_size=32, lr=1.5e-3, hidden_dim=96,
            num_components=5, rank=2, flow_layers=4, flow_hidden=16, logit_lambda=0.05,
            flow="spline", sample_temperature=0.7,
        ),
        DatasetSpec(
            "digits8", "rows", "scikit-learn 8x8 digits as 8 rows of 8 pixels (17 levels)",
            train=1438, val=180, test=179, epochs=100, batch_size=32, lr=3e-3, hidden_dim=64,
            num_components=5, rank=2, flow_layers=4, flow_hidden=32, levels=17,
            logit_lambda=0.05,
        ),
        DatasetSpec(
            "vowels", "speech", "JapaneseVowels, 12 LPC cepstra per frame, standardised",
            train=240, val=30, test=370, epochs=200, batch_size=16, lr=3e-3, hidden_dim=48,
            num_components=5, rank=2, flow_layers=4, flow_hidden=32, conditional_flow=True,
        ),
        DatasetSpec(
            "kanji", "strokes", "KanjiVG strokes (dx, dy, pen_up), first characters by code point",
            train=1500, val=60, test=150, epochs=25, batch_size=16, lr=2e-3, hidden_dim=96,
            num_components=5, rank=1, flow_layers=4, flow_hidden=32, conditional_flow=True,
            sample_temperature=0.5, grid=0.5,
        ),
    )
}  # fmt: skip


def _quick(spec: DatasetSpec) -> DatasetSpec:
    """The ``--quick`` budget: a few minutes for the whole suite."""
    return replace(
        spec,
        train=min(spec.train, 64),
        val=min(spec.val, 16),
        test=min(spec.test, 32),
        epochs=2,
        hidden_dim=max(16, spec.hidden_dim // 2),
        num_frames=min(spec.num_frames, 10),
    )


def _scaled(spec: DatasetSpec, scale: float) -> DatasetSpec:
    """``scale`` times the training sequences and about ``scale`` times the parameters."""
    return replace(
        spec,
        train=max(1, round(spec.train * scale)),
        hidden_dim=max(1, round(spec.hidden_dim * math.sqrt(scale))),
    )


# -- data -----------------------------------------------------------------------------------------


@dataclass
class Prepared:
    """A data set ready for the models: ``{"y", "mask"}`` dicts per split, ``mask`` may be None."""

    train: dict
    val: dict
    test: dict
    obs_dim: int
    binary_dims: int
    note: str


def _image_steps(pixels: Tensor, spec: DatasetSpec, seed: int) -> Tensor:
    """Integer pixels (N, T, D) -> dequantised (and logit-transformed) float steps."""
    v = dequantize(pixels, spec.levels, torch.Generator().manual_seed(seed))
    return v if spec.logit_lambda is None else logit_transform(v, spec.logit_lambda)


def _take(data: dict, n: int) -> dict:
    return {k: v[:n] for k, v in data.items()}


def load_dataset(spec: DatasetSpec) -> Prepared:
    """Load, subsample and preprocess a data set (the first sequences of each split; fixed)."""
    binary = 0
    if spec.kind == "frames":
        splits = {}
        for i, (key, split) in enumerate(SPLITS.items()):
            n = getattr(spec, key)
            video = moving_mnist(split, n, spec.num_frames, spec.frame_size, seed=0)
            splits[key] = {"y": _image_steps(frames_to_sequences(video), spec, seed=i)}
        note = (
            f"{spec.num_frames} frames of {spec.frame_size}x{spec.frame_size}; videos made from "
            "the disjoint MNIST digit splits; dequantised, logit"
            f"(λ={spec.logit_lambda}) transformed"
        )
    elif spec.kind == "rows":
        loaders = {17: sklearn_digits, 256: mnist_digits}  # the pixel levels name the source
        if spec.levels not in loaders:
            raise ValueError(f"image rows come with 17 (8x8 digits) or 256 (MNIST) levels, "
                             f"got levels={spec.levels}")  # fmt: skip
        load = loaders[spec.levels]
        splits = {}
        for i, (key, split) in enumerate(SPLITS.items()):
            images = load(split)  # a split is ordered by class: subsample at random
            order = torch.randperm(len(images), generator=torch.Generator().manual_seed(i))
            images = images[order[: getattr(spec, key)]]
            splits[key] = {"y": _image_steps(images, spec, seed=i)}
        note = (
            "random subsets (fixed seeds) of the stratified 80/10/10 splits; dequantised "
            f"({spec.levels} levels), logit(λ={spec.logit_lambda}) transformed"
        )
    elif spec.kind == "speech":
        train = japanese_vowels("train")
        order = torch.randperm(len(train["y"]), generator=torch.Generator().manual_seed(0))
        splits = {
            "train": {k: v[order[spec.val :]][: spec.train] for k, v in train.items()},
            "val": {k: v[order[: spec.val]] for k, v in train.items()},
            "test": _take(japanese_vowels("test"), spec.test),
        }
        note = (
            f"official split; {spec.val} random training utterances held out for validation; "
            "standardised by the training frames' mean and std"
        )
    elif spec.kind == "strokes":
        splits = {k: kanji_strokes(s, limit=getattr(spec, k), grid=spec.grid)
                  for k, s in SPLITS.items()}  # fmt: skip
        binary = 1
        note = (
            "the first characters (code point order) of the hash splits; pen_up modelled by a "
            "Bernoulli head (binary_dims=1)"
        )
        if spec.grid is not None:
            for i, data in enumerate(splits.values()):
                noise = torch.Generator().manual_seed(i)
                offsets = dequantize_grid(data["y"][..., :2], spec.grid / KANJI_SCALE, noise)
                data["y"][..., :2] = offsets * data["mask"][..., None]  # padding stays zero
            note += (
                f"; points rounded to {spec.grid:g} canvas units, offsets dequantised uniformly "
                "over their cells"
            )
    else:
        raise ValueError(f"unknown data kind {spec.kind!r}")
    for data in splits.values():
        data.setdefault("mask", None)
    obs_dim = splits["train"]["y"].shape[-1]
    return Prepared(splits["train"], splits["val"], splits["test"], obs_dim, binary, note)


# -- models ---------------------------------------------------------------------------------------


def count_parameters(model: torch.nn.Module) -> int:
    """The number of trainable numbers in a model."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_variant(
    variant: str, spec: DatasetSpec, obs_dim: int, hidden_dim: int, binary_dims: int = 0
):
    """The model ``variant`` for a data set, with an RNN of ``hidden_dim`` units."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown model {variant!r}; expected one of {', '.join(VARIANTS)}")
    _, cls, extra = VARIANTS[variant]
    kwargs = {"num_components": spec.num_components, "rank": spec.rank, **extra}
    if cls is FRMDN:
        kwargs.update(
            flow_layers=spec.flow_layers,
            flow=spec.flow,
            conditional_flow=spec.conditional_flow,
            flow_hidden_dims=[spec.flow_hidden],
        )
    if binary_dims:
        kwargs["binary_dims"] = binary_dims
    return cls(obs_dim, hidden_dim=hidden_dim, **kwargs)


def match_hidden(
    variant: str, spec: DatasetSpec, obs_dim: int, target: int, binary_dims: int = 0
) -> tuple[int, int]:
    """The hidden size whose model's parameter count is nearest ``target``: ``(hidden, count)``.

    The count grows with the hidden size, so a bisection finds the first size at or above the
    target; that one or the one below it is the nearest.
    """

    def count(h: int) -> int:
        return count_parameters(build_variant(variant, spec, obs_dim, h, binary_dims))

    lo, hi = 1, 2
    while count(hi) < target:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if count(mid) < target else (lo, mid)
    best = min((lo, hi), key=lambda h: abs(count(h) - target))
    return best, count(best)


def matched_sizes(
    spec: DatasetSpec, obs_dim: int, variants, binary_dims: int = 0
) -> dict[str, dict]:
    """Per variant ``{"hidden_dim", "params"}``, matched to the FRMDN at ``spec.hidden_dim``."""
    reference = build_variant("frmdn_cov", spec, obs_dim, spec.hidden_dim, binary_dims)
    target = count_parameters(reference)
    sizes = {}
    for v in variants:
        hidden, params = match_hidden(v, spec, obs_dim, target, binary_dims)
        if abs(params - target) > TOLERANCE * target:
            raise ValueError(
                f"{v} on {spec.name}: no hidden size gives {target} parameters within "
                f"{TOLERANCE:.0%} (nearest {params} at {hidden}); change the spec's sizes"
            )
        sizes[v] = {"hidden_dim": hidden, "params": params, "target": target}
    return sizes


# -- one job: (data set, model, seed) ----------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _cached_dataset(spec: DatasetSpec) -> Prepared:
    return load_dataset(spec)


@torch.no_grad()
def _step_nll(model, data: dict, batch_size: int, device) -> Tensor:
    """The test NLL of every step in nats (B, T), in the model's space; 0 at masked steps."""
    model.eval()
    out = []
    for i in range(0, len(data["y"]), batch_size):
        y = data["y"][i : i + batch_size].to(device)
        mask = None if data["mask"] is None else data["mask"][i : i + batch_size].to(device)
        out.append(-model.step_log_prob(y, mask=mask).cpu().double())
    return torch.cat(out)


def _samples(model, spec: DatasetSpec, data: Prepared, seed: int) -> Tensor:
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


def train_and_test(model, spec: DatasetSpec, data: Prepared, seed: int, device=None):
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
            diverged = str(err)
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
    data = _cached_dataset(spec)
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


# -- the suite ------------------------------------------------------------------------------------


def cpu_name() -> str:
    """The processor's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def machine(device) -> dict:
    """The machine the numbers were measured on."""
    info = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "device": str(device),
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _stats(values: list[float]) -> dict:
    a = np.asarray(values, dtype=float)
    std = float(a.std(ddof=1)) if len(a) > 1 else 0.0
    return {"mean": float(a.mean()), "std": std, "values": a.tolist()}


def _summarise(spec: DatasetSpec, runs: list[dict]) -> dict:
    models = {}
    for v in VARIANTS:
        mine = [r for r in runs if r["variant"] == v]
        if not mine:
            continue
        models[v] = {
            "label": VARIANTS[v][0],
            "params": mine[0]["params"],
            "hidden_dim": mine[0]["hidden_dim"],
            "test_nll": _stats([r["test_nll"] for r in mine]),
            "val_nll": _stats([r["val_nll"] for r in mine]),
            "train_time": _stats([r["train_time"] for r in mine]),
            "time_per_epoch": _stats([r["time_per_epoch"] for r in mine]),
            "diverged": [r["seed"] for r in mine if r.get("diverged")],
        }
        if "test_bpd" in mine[0]:
            models[v]["test_bpd"] = _stats([r["test_bpd"] for r in mine])
    return {"models": models, "verdict": _verdict(models)}


def _verdict(models: dict) -> dict | None:
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


def run_bench(
    datasets=tuple(DATASETS),
    variants=tuple(VARIANTS),
    seeds: int = 3,
    out="benchmarks/results/quality",
    quick: bool = False,
    scale: float = 1.0,
    epochs: int | None = None,
    train_size: int | None = None,
    device=None,
    workers: int | None = None,
    progress: bool = True,
    flow: str | None = None,
    frame_size: int | None = None,
) -> dict:
    """Run the suite and write ``results.json``, ``results.md`` and the plots into ``out``.

    Arguments:
        datasets, variants: names from :data:`DATASETS` and :data:`VARIANTS`; a data set may
            also be a :class:`DatasetSpec` (e.g. ``replace(DATASETS["kanji"], name=...,
            conditional_flow=True)``), for ablations.
        seeds: how many seeds (0, 1, ...) per model and data set.
        out: the results folder.
        quick: the few-minute budget (small slices, 2 epochs, smaller models).
        scale: multiplies the training sequences and (about) the parameters, for bigger machines.
        epochs, train_size: override every data set's epochs and number of training sequences.
        device: ``"cpu"`` or ``"cuda"``; default CUDA when available.
        workers: processes running jobs side by side, each with one thread; default 2 on the
            CPU (1 with CUDA); 1 runs in this process.
        progress: a progress bar over the jobs.
        flow: ``"affine"`` or ``"spline"`` couplings for every data set's FRMDNs instead of the
            spec's.
        frame_size: the side of the Moving MNIST frames (16, 32 or 64) instead of the spec's 16.

    Returns:
        The contents of ``results.json``.
    """
    unknown = [d for d in datasets if not isinstance(d, DatasetSpec) and d not in DATASETS]
    if unknown:
        raise ValueError(f"unknown data set {unknown[0]!r}; expected some of {', '.join(DATASETS)}")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown model {unknown[0]!r}; expected some of {', '.join(VARIANTS)}")
    if not datasets or not variants or seeds < 1 or scale <= 0:
        raise ValueError("need at least one data set and model, seeds >= 1 and scale > 0")
    if (epochs is not None and epochs < 1) or (train_size is not None and train_size < 1):
        raise ValueError(f"--epochs and --train-size must be >= 1, got {epochs}, {train_size}")
    if flow not in (None, "affine", "spline"):
        raise ValueError(f"flow must be 'affine' or 'spline', got {flow!r}")
    if frame_size not in (None, 16, 32, 64):
        raise ValueError(f"frame_size must be 16, 32 or 64, got {frame_size!r}")
    device = resolve_device(device)
    if workers is None:
        workers = 1 if device.type == "cuda" else min(2, os.cpu_count() or 1)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    specs, sizes, notes, jobs = {}, {}, {}, []
    for spec in datasets:
        spec = spec if isinstance(spec, DatasetSpec) else DATASETS[spec]
        name = spec.name
        if name in specs:
            raise ValueError(f"data set {name!r} given twice; give spec variants distinct names")
        spec = _quick(spec) if quick else spec
        spec = _scaled(spec, scale) if scale != 1 else spec
        spec = replace(spec, epochs=epochs or spec.epochs, train=train_size or spec.train,
                       flow=flow or spec.flow)  # fmt: skip
        if frame_size and spec.kind == "frames":
            spec = replace(spec, frame_size=frame_size)
        try:
            data = _cached_dataset(spec)
        except ImportError as err:  # a missing optional package: one clear line in the CLI
            raise ValueError(f"data set {name!r}: {err}") from err
        specs[name], notes[name] = spec, data
        sizes[name] = matched_sizes(spec, data.obs_dim, variants, data.binary_dims)
        for v in variants:
            for seed in range(seeds):
                jobs.append(
                    {
                        "spec": asdict(spec),
                        "variant": v,
                        "seed": seed,
                        "hidden_dim": sizes[name][v]["hidden_dim"],
                        "device": str(device),
                        "threads": 1 if workers > 1 else torch.get_num_threads(),
                        "extras": seed == 0,
                        "out": str(out),
                    }
                )
    jobs.sort(key=lambda j: -j["spec"]["train"] * j["spec"]["epochs"])  # long ones first
    runs = []
    bar = tqdm(total=len(jobs), disable=not progress, desc="bench")
    start = time.perf_counter()
    with ExitStack() as stack:
        if workers > 1:
            pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"))
            done = stack.enter_context(pool).map(run_job, jobs)
        else:
            done = map(run_job, jobs)
        for r in done:
            runs.append(r)
            bar.update()
            bar.set_postfix(last=f"{r['dataset']}/{r['variant']}", nll=f"{r['test_nll']:.3f}")
    bar.close()
    results = {
        "machine": machine(device),
        "settings": {
            "quick": quick,
            "scale": scale,
            "seeds": seeds,
            "workers": workers,
            "total_time": time.perf_counter() - start,
        },
        "datasets": {},
    }
    for name, spec in specs.items():
        mine = [r for r in runs if r["dataset"] == name]
        data = notes[name]
        results["datasets"][name] = {
            "spec": asdict(spec),
            "obs_dim": data.obs_dim,
            "sizes": {k: len(getattr(data, k)["y"]) for k in ("train", "val", "test")},
            "steps": data.train["y"].shape[1],
            "note": data.note,
            "target_params": next(iter(sizes[name].values()))["target"],
            **_summarise(spec, mine),
            "runs": [{k: v for k, v in r.items() if k not in ("samples", "pit")} for r in mine],
        }
        _plot_curves(name, mine, out / f"curves_{name}.png")
        firsts = {r["variant"]: r for r in mine if "samples" in r}
        _plot_pit_comparison(name, firsts, out / f"pit_{name}.png")
        _plot_samples(spec, data, firsts, out / f"samples_{name}.png")
    (out / "results.json").write_text(json.dumps(results))
    write_report(results, out / "results.md")
    return results


# -- plots ----------------------------------------------------------------------------------------


def _plot_curves(name: str, runs: list[dict], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for i, v in enumerate(VARIANTS):
        for r in (r for r in runs if r["variant"] == v):
            epochs = [h["epoch"] for h in r["history"]]
            for ax, key in zip(axes, ("train_nll", "val_nll"), strict=True):
                label = VARIANTS[v][0] if r["seed"] == 0 else None
                ax.plot(epochs, [h[key] for h in r["history"]], color=f"C{i}", lw=1, label=label)
    values = np.array([h[k] for r in runs for h in r["history"] for k in ("train_nll", "val_nll")])
    low, high = values.min(), np.percentile(values, 90)  # a diverging run would flatten the rest
    axes[0].set_ylim(low - 0.05 * (high - low), high + 0.3 * (high - low))
    for ax, title in zip(axes, ("training", "validation"), strict=True):
        ax.set(xlabel="epoch", title=f"{name}: {title} NLL (one line per seed)")
    axes[0].set_ylabel("NLL per step (nats, model space)")
    axes[1].legend(fontsize=8)
    fig.savefig(path, dpi=80)


def _plot_pit_comparison(name: str, firsts: dict, path: Path) -> None:
    """PIT histograms of every model (all output dimensions pooled), against uniform."""
    from matplotlib.figure import Figure

    if not firsts:
        return
    fig = Figure(figsize=(2.6 * len(firsts), 2.6), layout="constrained")
    axes = fig.subplots(1, len(firsts), squeeze=False, sharey=True)[0]
    for ax, (v, r) in zip(axes, firsts.items(), strict=True):
        u = np.asarray(r["pit"]).reshape(-1)
        band = 2 * math.sqrt((1 - 1 / 20) * 20 / len(u))
        ax.hist(u, bins=20, range=(0, 1), density=True, color="C0", alpha=0.7)
        ax.axhspan(max(1 - band, 0), 1 + band, color="0.4", alpha=0.25, lw=0)
        ax.axhline(1, color="k", lw=1)
        ax.set(title=VARIANTS[v][0], xlabel="PIT", xlim=(0, 1))
    fig.suptitle(f"{name}: calibration of one-step-ahead predictions (dims pooled)")
    fig.savefig(path, dpi=80)


def _to_pixels(y: Tensor, spec: DatasetSpec) -> np.ndarray:
    v = y if spec.logit_lambda is None else inverse_logit_transform(y, spec.logit_lambda)
    return v.clamp(0, 1).numpy()


def _mosaic(images: np.ndarray, rows: int = 1) -> np.ndarray:
    """``(N, H, W)`` images side by side in ``rows`` rows, one grey pixel between them."""
    n, h, w = images.shape
    cols = math.ceil(n / rows)
    out = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), 0.5)
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        out[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = image
    return out


def _plot_samples(spec: DatasetSpec, data: Prepared, firsts: dict, path: Path) -> None:
    """Generated frames, digits, strokes or coefficients beside real ones: one panel a model."""
    from matplotlib.figure import Figure

    if not firsts:
        return
    real = data.test["y"]
    if spec.kind == "frames":  # the real continuation of the videos the samples were primed on
        real = real[:, spec.num_frames // 2 :]
    rows = [("real", real)] + [(VARIANTS[v][0], torch.tensor(r["samples"])) for v, r in
                                 firsts.items()]  # fmt: skip
    tall = spec.kind in ("frames", "rows", "strokes")
    fig = Figure(figsize=(8, 1.3 * len(rows)) if tall else (3 * len(rows), 2.8))
    axes = fig.subplots(*((len(rows), 1) if tall else (1, len(rows))), squeeze=False).flat
    for ax, (label, y) in zip(axes, rows, strict=True):
        ax.set_title(label, fontsize=8, loc="left")
        if spec.kind == "frames":  # two videos, one a row, frames after the prime
            frames = _to_pixels(y[:2], spec).reshape(-1, spec.frame_size, spec.frame_size)
            ax.imshow(_mosaic(frames, 2), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        elif spec.kind == "rows":
            image = _mosaic(_to_pixels(y[:8], spec))
            ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        elif spec.kind == "strokes":
            for j in range(6):
                steps = y[j] if label != "real" else y[j][data.test["mask"][j]]
                _draw_strokes(ax, steps.numpy(), offset=1.2 * j)
        else:
            for j in range(6):
                steps = y[j] if label != "real" else y[j][data.test["mask"][j]]
                ax.plot(steps[:, 0].numpy(), steps[:, 1].numpy(), lw=1, color=f"C{j}")
            ax.set_xlabel("coefficient 1")
        if tall:
            ax.set_axis_off()
    titles = {
        "frames": f"Moving MNIST: frames {spec.num_frames // 2 + 1}-{spec.num_frames} generated "
        f"after {spec.num_frames // 2} real ones (two videos per model)",
        "rows": f"{spec.name}: digits generated row by row",
        "strokes": "kanji: generated pen trajectories (each scaled to its box)",
    }
    title = titles.get(spec.kind, f"{spec.name}: first two coefficients of sequences")
    fig.suptitle(f"{title}; temperature {spec.sample_temperature:g}")
    fig.savefig(path, dpi=72)


def _draw_strokes(ax, steps: np.ndarray, offset: float = 0.0) -> None:
    """Draw ``(dx, dy, pen_up)`` steps, scaled into a unit box at ``offset`` along x.

    The pen lifts after a step with ``pen_up = 1``: the move to the next point is not drawn.
    SVG's y axis points down, so y is drawn negated.
    """
    points = np.cumsum(steps[:, :2], axis=0) * [1, -1]
    points = (points - points.min(0)) / max(np.ptp(points, axis=0).max(), 1e-9)
    start = 0
    for i, up in enumerate(steps[:, 2] >= 1):
        if up or i == len(steps) - 1:
            stroke = points[start : i + 1]
            ax.plot(stroke[:, 0] + offset, stroke[:, 1], color="k", lw=1)
            start = i + 1
    ax.set_aspect("equal")


# -- the report ---------------------------------------------------------------------------------


def _pm(s: dict, digits: int = 3) -> str:
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


COMMENTARY = "## Commentary"


def write_report(results: dict, path) -> Path:
    """``results.md`` from the contents of ``results.json``; a ``## Commentary`` section already
    in the file (edited by hand) is kept."""
    path = Path(path)
    kept = ""
    if path.exists() and COMMENTARY in path.read_text():
        kept = path.read_text().split(COMMENTARY, 1)[1].strip()
    m, s = results["machine"], results["settings"]
    lines = [
        "# Real-data quality benchmark",
        "",
        "Written by `pyro-frmdn bench` (`benchmarks/quality.py`); see `docs/bench.md`.",
        "",
        f"- Machine: {m['cpu']}, {m['cores']} cores"
        + (f", GPU {m['gpu']}" if "gpu" in m else "")
        + f"; device {m['device']}; Python {m['python']}, torch {m['torch']}, pyro {m['pyro']}",
        f"- Date: {m['date']}; total wall time {s['total_time'] / 60:.1f} min with "
        f"{s['workers']} worker process(es){' (--quick)' if s['quick'] else ''}"
        + (f", scale {s['scale']}" if s["scale"] != 1 else ""),
        f"- Seeds: {s['seeds']} per model (model initialisation and minibatch order); the data "
        "and its dequantisation noise are fixed.",
        "- Test NLL: mean ± std over seeds, nats per step in the model's space (for images: the "
        "dequantised, logit-transformed pixels); bits/dim in the 0-255 (0-16) pixel space with "
        "the dequantisation and the logit's Jacobian counted (`pyro_frmdn.data.bits_per_dim`). "
        "Lower is better. Each run keeps the parameters of its best validation epoch.",
        "- Parameters: the RNN's hidden size of each model is chosen so that its count is "
        "within 3% of the FRMDN's (the target). Time per epoch: the median over a run's "
        "epochs (the first one warms up), the validation pass included; jobs run side by side "
        "in single-threaded worker processes.",
        "",
    ]
    for name, d in results["datasets"].items():
        spec = d["spec"]
        image = any("test_bpd" in v for v in d["models"].values())
        lines += [
            f"## {name}",
            "",
            f"{spec['description']}. Train / validation / test: {d['sizes']['train']} / "
            f"{d['sizes']['val']} / {d['sizes']['test']} sequences of up to {d['steps']} steps "
            f"of D={d['obs_dim']} ({d['note']}). Budget: {spec['epochs']} epochs, batch "
            f"{spec['batch_size']}, ClippedAdam lr {spec['lr']} decayed to 0.3x over the run; "
            f"K={spec['num_components']}, rank {spec['rank']}, flow: {spec['flow_layers']} "
            f"{spec.get('flow', 'affine')} couplings of hidden size {spec['flow_hidden']}"
            f"{', conditioned on the RNN state' if spec.get('conditional_flow') else ''}; "
            f"samples drawn at temperature {spec.get('sample_temperature', 1.0)}; target "
            f"{d['target_params']:,} parameters.",
            "",
            "| model | hidden | params | test NLL (nats/step) |"
            + (" bits/dim |" if image else "")
            + " best epoch per seed | train time (s) | time/epoch (s) |",
            "|---|---:|---:|---:|" + ("---:|" if image else "") + "---:|---:|---:|",
        ]
        for key, v in d["models"].items():
            best = [_best_epoch(r) for r in d["runs"] if r["variant"] == key]
            lines.append(
                f"| {v['label']} | {v['hidden_dim']} | {v['params']:,} | {_pm(v['test_nll'])} |"
                + (f" {_pm(v['test_bpd'])} |" if image else "")
                + f" {', '.join(map(str, best))} of {spec['epochs']} |"
                + f" {v['train_time']['mean']:.1f} | {v['time_per_epoch']['mean']:.2f} |"
            )
        lines += ["", _verdict_line(d)]
        diverged = [
            f"{v['label']} (seeds {v['diverged']})" for v in d["models"].values() if v["diverged"]
        ]
        if diverged:
            lines += [
                "",
                f"Diverged (the loss became NaN; the run keeps its best validation epoch before "
                f"it): {', '.join(diverged)}.",
            ]
        lines += ["", f"![learning curves](curves_{name}.png)", ""]
    lines += [
        COMMENTARY,
        "",
        kept
        or "(Free text, kept when the runner rewrites this file: why FRMDN wins or not, "
        "and what would change it.)",
        "",
    ]
    path.write_text("\n".join(lines))
    return path


def _best_epoch(run: dict) -> int:
    """The epoch whose parameters a run kept: the best validation NLL."""
    return min(run["history"], key=lambda h: h["val_nll"])["epoch"]


def _verdict_line(d: dict) -> str:
    v = d["verdict"]
    if v is None:
        return "**Verdict:** needs an FRMDN and an RMDN variant in the run."
    unit = "bits/dim" if v["metric"] == "test_bpd" else "nats/step"
    f, r = VARIANTS[v["frmdn"]][0], VARIANTS[v["rmdn"]][0]
    cost = f"The flow costs {v['time_ratio']:.2f}x the time per epoch ({f} / {r}, same run)."
    diff = (
        f"difference of means {v['improvement']:+.3f} {unit} ({v['relative']:+.1%}), "
        f"combined seed std {v['spread']:.3f}"
    )
    if v["wins"]:
        return f"**Verdict:** the best FRMDN ({f}) beats the best RMDN ({r}): {diff}. {cost}"
    if v["improvement"] > 0:
        why = "better on average, but not by more than the seed spread"
    else:
        why = "worse on average"
    return f"**Verdict:** FRMDN does **not** beat RMDN here ({f} vs {r}: {why}; {diff}). {cost}"


# -- command line -------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``pyro-frmdn bench`` and ``benchmarks/quality.py``."""
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), help="data sets to run")
    p.add_argument("--models", nargs="+", default=list(VARIANTS), help="models to run")
    p.add_argument("--seeds", type=int, default=3, help="seeds per model and data set")
    p.add_argument("--out", default="benchmarks/results/quality", help="the results folder")
    p.add_argument("--quick", action="store_true", help="a few minutes: small slices, 2 epochs")
    p.add_argument("--scale", type=float, default=1.0, help="x training data, ~x parameters")
    p.add_argument("--epochs", type=int, help="override every data set's epochs")
    p.add_argument("--train-size", type=int, help="override every data set's training sequences")
    p.add_argument("--device", help="cpu or cuda; default CUDA when available")
    p.add_argument("--workers", type=int, help="parallel processes; default 2 on CPU, 1 on CUDA")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--flow", choices=("affine", "spline"), help="the FRMDNs' couplings for every "
                   "data set (default: each data set's own)")  # fmt: skip
    p.add_argument("--frame-size", type=int, choices=(16, 32, 64),
                   help="Moving MNIST's frame side (default 16; 32 or 64 for a GPU)")  # fmt: skip


def main(args: argparse.Namespace) -> dict:
    """Run the suite from parsed :func:`add_arguments` options and print where it went."""
    results = run_bench(
        args.datasets,
        args.models,
        args.seeds,
        args.out,
        args.quick,
        args.scale,
        args.epochs,
        args.train_size,
        args.device,
        args.workers,
        not args.no_progress,
        args.flow,
        args.frame_size,
    )
    for name, d in results["datasets"].items():
        print(f"{name}: {_verdict_line(d)}")
    print(f"wrote {Path(args.out) / 'results.md'} and results.json")
    return results
