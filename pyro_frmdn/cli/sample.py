"""``pyro-frmdn sample``: generate sequences from a trained run, with a plot."""

from __future__ import annotations

import argparse
from pathlib import Path

import pyro
import torch
from torch import Tensor

from ..files import atomic_write
from ..plots import plot_drawings, plot_paths, plot_series
from .checks import ConfigError, check_integer, check_number, check_seed
from .handwriting import HANDWRITING
from .runs import CHECKPOINTS, CONFIG, MODEL_FILE, add_load_options, load_run, nonempty, read_config
from .samples import write_samples
from .sketch import SKETCH
from .splits import SPLITS_FILE
from .transforms import TRANSFORM_FILE, Part, to_user_units

__all__ = ["HELP", "add_arguments", "main"]

HELP = "Generate sequences from a trained run, in the data's units (.pt, .npy, .csv), with a plot."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``pyro-frmdn sample`` (besides ``--run-dir``)."""
    add_load_options(p)
    p.add_argument("--num", type=int, default=8, help="number of sequences N")
    p.add_argument("--steps", type=int, help="steps T to generate; default: the data's steps")
    p.add_argument("--pi-temperature", type=float, default=1.0, help="mixture weights' temperature")
    p.add_argument("--scale-temperature", type=float, default=1.0, help="covariances' temperature")
    p.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        help="sketch runs: sketch-rnn's temperature, of mixture weights, variances and pen at once",
    )
    p.add_argument("--greedy", action="store_true", help="most likely component's mean per step")
    p.add_argument(
        "--prime-steps", type=int, default=0, help="condition on this many steps of real sequences"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the samples")
    p.add_argument(
        "--out", help="samples file; .npy, .csv, .png beside it; default: RUN/samples.pt"
    )


# The run's own files, which --out (or the files beside it) must never replace.
RUN_FILES = (
    CONFIG, SPLITS_FILE, TRANSFORM_FILE, MODEL_FILE, "history.json", "history.csv",
    "learning_curve.png",
)  # fmt: skip
BESIDE = (".npy", ".csv", ".png")


def _out_path(run: Path, out: str | None) -> Path:
    """The samples file: ``--out``, or ``RUN/samples.pt``; refused where it, or a file beside it
    (``.npy``, ``.csv``, ``.png``), would replace one of the run's files, or is a folder."""
    if out is None:
        return run / "samples.pt"
    if not out:
        raise ConfigError(f"--out must name a file, got {out!r}")
    path = Path(out)
    if path.is_dir():
        raise ConfigError(f"--out {path} is a folder; give a file such as {path / 'samples.pt'}")
    if path.suffix in BESIDE:
        raise ConfigError(
            f"--out must not end in {path.suffix}: {', '.join(BESIDE)} files are written beside it"
        )
    own = {(run / name).resolve(): name for name in RUN_FILES}
    for file in (path, *(path.with_suffix(s) for s in BESIDE)):
        file = file.resolve()
        if file in own or file.parent == (run / CHECKPOINTS).resolve():
            name = own.get(file, f"{CHECKPOINTS}/{file.name}")
            raise ConfigError(f"--out {path} would replace the run's own {name}: pick another file")
    return path


def _prime(
    part: Part, num: int, steps: int, lengths: Tensor | None = None, longest: str = "sequence"
) -> tuple[Tensor | None, Tensor | None]:
    """The first ``steps`` of real sequences at least that long (``lengths``, default: their
    observed steps), sequence ``i`` of ``num`` from the ``i``-th of them (cyclically): in the
    model's space and in the user's units. ``longest`` names what the lengths count."""
    if not steps:
        return None, None
    if lengths is None:
        full = torch.full((len(part),), part.y.shape[1])
        lengths = part.mask.sum(1) if part.mask is not None else full
    long_enough = torch.nonzero(lengths >= steps).flatten()
    if len(long_enough) == 0:
        raise ConfigError(
            f"--prime-steps must be at most {int(lengths.max())} (the longest {longest} of the "
            f"split), got {steps}"
        )
    chosen = long_enough[torch.arange(num) % len(long_enough)]
    return part.z[chosen, :steps], part.y[chosen, :steps]


def main(args: argparse.Namespace) -> None:
    """Sample from the run's checkpoint; save the samples in the data's units and a plot of them
    beside real ones."""
    run = Path(args.run_dir)
    check_integer("--num", args.num, 1)
    if args.steps is not None:
        check_integer("--steps", args.steps, 1)
    check_integer("--prime-steps", args.prime_steps, 0)
    check_number("--pi-temperature", args.pi_temperature)
    check_number("--scale-temperature", args.scale_temperature)
    check_seed("--seed", args.seed)
    out = _out_path(run, args.out)
    kind = read_config(run)["model"].get("kind")
    if kind == HANDWRITING:
        raise ConfigError(
            f"{run} is a handwriting run: its model writes texts, not free sequences; use "
            f'pyro-frmdn write "some text" --run-dir {run} (see docs/handwriting.md)'
        )
    check_number("--temperature", args.temperature)
    if kind == SKETCH:
        _sample_drawings(args, run, out)
        return
    if args.temperature != 1.0:
        raise ConfigError(
            "--temperature is a sketch run's (sketch-rnn's single temperature); use "
            "--pi-temperature and --scale-temperature"
        )
    config, data, model, _ = load_run(run, args.checkpoint, args.device, args.threads)
    real = nonempty(data, args.split)
    steps = data.sequences.y.shape[1] if args.steps is None else args.steps
    prime_z, prime = _prime(real, args.num, args.prime_steps)
    pyro.set_rng_seed(args.seed)
    samples = model.sample(
        args.num,
        steps,
        prime=prime_z,
        pi_temperature=args.pi_temperature,
        scale_temperature=args.scale_temperature,
        greedy_decoding=args.greedy,
    ).cpu()
    samples = to_user_units(data.transform, samples)
    settings = {k: v for k, v in vars(args).items() if k not in ("func", "out", "run_dir")}
    settings["steps"] = steps
    features = data.sequences.features
    write_samples(out, samples, prime, settings, features)
    shown = samples if prime is None else torch.cat([prime, samples], dim=1)
    task = config["data"]["task"]
    if task is None:
        figure = plot_series(
            shown,
            real.y[:8],
            None if real.mask is None else real.mask[:8],
            features,
            args.prime_steps,
        )
    else:
        figure = plot_paths(
            shown, real.y[:8], args.prime_steps, offsets=task == "branching", name=task
        )
    plot = out.with_suffix(".png")
    with atomic_write(plot) as f:
        figure.savefig(f, format="png", dpi=100)
    files = ", ".join(str(out.with_suffix(s)) for s in (".npy", ".csv", ".png"))
    print(f"wrote {args.num} samples of {steps} steps to {out} and {files}")


def _sample_drawings(args: argparse.Namespace, run: Path, out: Path) -> None:
    """A sketch run's drawings: from the prior, or completions of the first ``--prime-steps``
    rows of real drawings (each with its own code drawn from the guide given those rows), in
    stroke-5 with the offsets in the data's units (KanjiVG's canvas); a grid of them as a plot."""
    if (args.pi_temperature, args.scale_temperature) != (1.0, 1.0):
        raise ConfigError(
            f"{run} is a sketch run: one temperature tempers its mixture weights, variances and "
            "pen state together (sketch-rnn's); give --temperature, not --pi-temperature or "
            "--scale-temperature"
        )
    _, data, model, _ = load_run(run, args.checkpoint, args.device, args.threads)
    real = nonempty(data, args.split)
    steps = data.sequences.y.shape[1] if args.steps is None else args.steps
    drawn = (real.z[..., 4] != 1).sum(1)  # rows before the end row
    prime_z, prime = _prime(real, args.num, args.prime_steps, drawn, "drawing")
    pyro.set_rng_seed(args.seed)
    if prime_z is None:
        drawings = model.sample(args.num, steps, args.temperature, args.greedy)
    else:
        prime_z = prime_z.to(model.device)
        no_code = prime_z.new_zeros(args.num, 0)
        z = model.encode(prime_z, sample=True) if model.latent_dim else no_code
        drawings = model.decode(z, steps, args.temperature, args.greedy, prime=prime_z)
    drawings = to_user_units(data.transform, drawings.cpu())
    settings = {k: v for k, v in vars(args).items() if k not in ("func", "out", "run_dir")}
    settings["steps"] = steps
    write_samples(out, drawings, prime, settings, data.sequences.features)
    reals = list(real.y[: min(len(real), args.num)])
    plot = plot_drawings([list(drawings), reals], out.with_suffix(".png"))
    files = ", ".join(str(out.with_suffix(s)) for s in (".npy", ".csv"))
    print(f"wrote {args.num} drawings to {out}, {files} and {plot} (real ones below)")
