"""The whole suite: jobs for every data set, model and seed on a process pool, then the results."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, replace
from multiprocessing import get_context
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..infer import resolve_device
from .datasets import cached_dataset
from .job import run_job
from .machine import machine
from .plots import plot_curves, plot_pit_comparison, plot_samples
from .report import write_report
from .sizes import matched_sizes
from .specs import DATASETS, VARIANTS, DatasetSpec, quick_spec, scaled_spec
from .stats import summarise

__all__ = ["run_bench"]


def run_bench(
    datasets: Sequence[str | DatasetSpec] = tuple(DATASETS),
    variants: Sequence[str] = tuple(VARIANTS),
    seeds: int = 3,
    out: str | Path = "benchmarks/results/quality",
    quick: bool = False,
    scale: float = 1.0,
    epochs: int | None = None,
    train_size: int | None = None,
    device: str | torch.device | None = None,
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
    if not datasets or not variants or seeds < 1 or not 0 < scale < math.inf:
        raise ValueError(
            f"need at least one data set and model, seeds >= 1 and a finite scale > 0; got "
            f"seeds={seeds}, scale={scale}"
        )
    if workers is not None and not (isinstance(workers, int) and workers >= 1):
        raise ValueError(f"workers must be None or an integer >= 1, got {workers!r}")
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
        spec = quick_spec(spec) if quick else spec
        spec = scaled_spec(spec, scale) if scale != 1 else spec
        spec = replace(spec, epochs=epochs or spec.epochs, train=train_size or spec.train,
                       flow=flow or spec.flow)  # fmt: skip
        if frame_size and spec.kind == "frames":
            spec = replace(spec, frame_size=frame_size)
        try:
            data = cached_dataset(spec)
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
            **summarise(spec, mine),
            "runs": [{k: v for k, v in r.items() if k not in ("samples", "pit")} for r in mine],
        }
        plot_curves(name, mine, out / f"curves_{name}.png")
        firsts = {r["variant"]: r for r in mine if "samples" in r}
        plot_pit_comparison(name, firsts, out / f"pit_{name}.png")
        plot_samples(spec, data, firsts, out / f"samples_{name}.png")
    (out / "results.json").write_text(json.dumps(results))
    write_report(results, out / "results.md")
    return results
