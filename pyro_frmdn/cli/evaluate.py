"""``pyro-frmdn evaluate``: the held-out NLL of a trained run, and the report of an NLL."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..infer import evaluate
from .runs import add_load_options, load_run, nonempty

__all__ = ["HELP", "add_arguments", "main", "report"]

HELP = "Held-out NLL per step (nats) of a trained run."


def report(split: str, nll: float, bits: float | None = None, **extra: object) -> None:
    """Print a held-out NLL for people, then as a JSON line for programs."""
    line = f"{split} NLL: {nll:.4f} nats per step"
    print(line if bits is None else f"{line}, {bits:.4f} bits per dim")
    record = {"split": split, "nll_per_step": nll, **extra}
    if bits is not None:
        record["bits_per_dim"] = bits
    print(json.dumps(record))


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``pyro-frmdn evaluate`` (besides ``--run-dir``)."""
    add_load_options(p)
    p.add_argument("--bits-per-dim", action="store_true", help="also report bits per dimension")


def main(args: argparse.Namespace) -> None:
    """Evaluate the run's checkpoint on a split and report its NLL."""
    _, splits, model, state = load_run(Path(args.run_dir), args.checkpoint, args.device)
    data = nonempty(splits, args.split)
    nll = evaluate(model, data)
    bits = evaluate(model, data, bits_per_dim=True) if args.bits_per_dim else None
    report(args.split, nll, bits, checkpoint=args.checkpoint, epoch=state["epoch"])
