"""``pyro-frmdn bench``: the real-data experiments of :mod:`pyro_frmdn.experiments`, checked."""

from __future__ import annotations

import argparse

from .. import experiments
from .checks import check_folder, check_integer, check_number, resolve_device_value

__all__ = ["HELP", "add_arguments", "main"]

HELP = "Real-data experiments: five models at matched size and budget (docs/bench.md)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``pyro-frmdn bench``, those of ``benchmarks/quality.py`` too."""
    experiments.add_arguments(p)


def main(args: argparse.Namespace) -> dict:
    """Refuse a bad option before anything runs or is written, then run the suite."""
    check_folder("--out", args.out)
    check_integer("--seeds", args.seeds, 1)
    check_number("--scale", args.scale)
    for name in ("epochs", "train_size", "workers"):
        if getattr(args, name) is not None:
            check_integer(f"--{name.replace('_', '-')}", getattr(args, name), 1)
    resolve_device_value("--device", args.device)
    return experiments.main(args)
