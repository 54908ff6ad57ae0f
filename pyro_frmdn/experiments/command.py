"""The suite's command line: the options of ``pyro-frmdn bench`` and running them."""

from __future__ import annotations

import argparse
from pathlib import Path

from .report import verdict_line
from .runner import run_bench
from .specs import DATASETS, VARIANTS

__all__ = ["add_arguments", "main"]


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
        print(f"{name}: {verdict_line(d)}")
    print(f"wrote {Path(args.out) / 'results.md'} and results.json")
    return results
