"""``pyro-frmdn sample``: generate sequences from a trained run, with a plot."""

from __future__ import annotations

import argparse
from pathlib import Path

import pyro
import torch

from ..files import atomic_write
from ..plots import plot_paths
from .checks import ConfigError, check_integer, check_number, check_seed
from .runs import CHECKPOINTS, CONFIG, add_load_options, load_run, nonempty

__all__ = ["HELP", "add_arguments", "main"]

HELP = "Generate sequences from a trained run, with a plot."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``pyro-frmdn sample`` (besides ``--run-dir``)."""
    add_load_options(p)
    p.add_argument("--num", type=int, default=8, help="number of sequences N")
    p.add_argument("--steps", type=int, help="steps T to generate; default: data.steps")
    p.add_argument("--pi-temperature", type=float, default=1.0, help="mixture weights' temperature")
    p.add_argument("--scale-temperature", type=float, default=1.0, help="covariances' temperature")
    p.add_argument("--greedy", action="store_true", help="most likely component's mean per step")
    p.add_argument(
        "--prime-steps", type=int, default=0, help="condition on this many steps of real sequences"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the samples")
    p.add_argument("--out", help="samples file, a .png beside it; default: RUN/samples.pt")


# The run's own files, which --out (or its plot) must never replace.
RUN_FILES = (CONFIG, "history.json", "history.csv", "learning_curve.png")


def _out_path(run: Path, out: str | None) -> Path:
    """The samples file: ``--out``, or ``RUN/samples.pt``; refused where it, or the plot beside
    it, would replace one of the run's files, or is a folder."""
    if out is None:
        return run / "samples.pt"
    if not out:
        raise ConfigError(f"--out must name a file, got {out!r}")
    path = Path(out)
    if path.is_dir():
        raise ConfigError(f"--out {path} is a folder; give a file such as {path / 'samples.pt'}")
    if path.suffix == ".png":
        raise ConfigError(f"--out must not end in .png: the plot is written beside it as {path}")
    own = {(run / name).resolve(): name for name in RUN_FILES}
    for file in (path, path.with_suffix(".png")):
        file = file.resolve()
        if file in own or file.parent == (run / CHECKPOINTS).resolve():
            name = own.get(file, f"{CHECKPOINTS}/{file.name}")
            raise ConfigError(f"--out {path} would replace the run's own {name}: pick another file")
    return path


def main(args: argparse.Namespace) -> None:
    """Sample from the run's checkpoint; save the samples and a plot of them beside real ones."""
    run = Path(args.run_dir)
    check_integer("--num", args.num, 1)
    if args.steps is not None:
        check_integer("--steps", args.steps, 1)
    check_integer("--prime-steps", args.prime_steps, 0)
    check_number("--pi-temperature", args.pi_temperature)
    check_number("--scale-temperature", args.scale_temperature)
    check_seed("--seed", args.seed)
    out = _out_path(run, args.out)
    config, splits, model, _ = load_run(run, args.checkpoint, args.device)
    real = nonempty(splits, args.split)
    steps = config["data"]["steps"] if args.steps is None else args.steps
    if args.prime_steps > real.shape[1]:
        raise ConfigError(
            f"--prime-steps must be at most {real.shape[1]} (the data's steps), "
            f"got {args.prime_steps}"
        )
    prime = (
        real[torch.arange(args.num) % len(real), : args.prime_steps] if args.prime_steps else None
    )
    pyro.set_rng_seed(args.seed)
    samples = model.sample(
        args.num,
        steps,
        prime=prime,
        pi_temperature=args.pi_temperature,
        scale_temperature=args.scale_temperature,
        greedy_decoding=args.greedy,
    ).cpu()
    settings = {k: v for k, v in vars(args).items() if k not in ("func", "out", "run_dir")}
    settings["steps"] = steps
    with atomic_write(out) as f:
        torch.save({"samples": samples, "prime": prime, "settings": settings}, f)
    shown = samples if prime is None else torch.cat([prime, samples], dim=1)
    plot = out.with_suffix(".png")
    task = config["data"]["task"]
    figure = plot_paths(shown, real[:8], args.prime_steps, offsets=task == "branching", name=task)
    with atomic_write(plot) as f:
        figure.savefig(f, format="png", dpi=100)
    print(f"wrote {args.num} samples of {steps} steps to {out} and {plot}")
