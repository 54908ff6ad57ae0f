"""``pyro-frmdn train``: train a model into a run folder, or resume one."""

from __future__ import annotations

import argparse
from pathlib import Path

import pyro

from ..files import atomic_write
from ..infer import History, evaluate, fit, load_checkpoint
from ..plots import plot_history
from .checks import ConfigError
from .config import check_value, config_help, load_config
from .evaluate import report
from .runs import (
    CHECKPOINTS,
    build_model,
    holds_run,
    model_section,
    read_config,
    run_device,
    split_data,
    write_config,
)

__all__ = ["HELP", "add_arguments", "main"]

HELP = "Train a model into a run folder (or resume one)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``pyro-frmdn train`` (besides ``--run-dir``); the config keys as epilog."""
    p.epilog = config_help()
    p.add_argument("--config", help="a TOML config file; default: the defaults below")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a config key (repeatable); VALUE is JSON or a bare string",
    )
    p.add_argument("--epochs", type=int, help="train.epochs; with --resume it may raise them")
    p.add_argument("--resume", action="store_true", help="continue from the run's last.pt")
    p.add_argument("--device", help="cpu, cuda...; overrides train.device for this run")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _write_history(history: History, run: Path) -> None:
    """``history.json``, ``history.csv`` and ``learning_curve.png``, each written atomically."""
    history.to_json(run / "history.json")
    history.to_csv(run / "history.csv")
    with atomic_write(run / "learning_curve.png") as f:
        plot_history(history).savefig(f, format="png", dpi=100)


def _fit_options(train: dict) -> dict:
    """The ``[train]`` keys as ``fit``'s arguments: an unset ``clip_norm`` is left out."""
    return {k: v for k, v in train.items() if not (k == "clip_norm" and v is None)}


def main(args: argparse.Namespace) -> None:
    """Train (or resume) the run in ``args.run_dir`` and report its test NLL.

    Every value (options, config, device, model) is checked before anything is written.
    """
    run = Path(args.run_dir)
    if args.epochs is not None:
        check_value("train.epochs", args.epochs, "--epochs")
    if args.resume:
        if args.config or args.set:
            raise ConfigError("--resume uses the run folder's saved config: drop --config/--set")
        config = read_config(run)
        device = run_device(args.device, config)
        done = load_checkpoint(run / CHECKPOINTS / "last.pt", map_location="cpu")["epoch"]
        if args.epochs is not None and args.epochs < done:
            raise ConfigError(f"--epochs {args.epochs} is fewer than the {done} already trained")
    else:
        if holds_run(run):
            raise ConfigError(f"{run} already holds a run: add --resume, or pick another folder")
        if (run / CHECKPOINTS).is_file():
            raise ConfigError(
                f"{run / CHECKPOINTS} is a file: a run keeps its checkpoints in a folder "
                "of that name"
            )
        config = load_config(args.config, args.set)
        device = run_device(args.device, config)
    if args.epochs is not None:
        config["train"]["epochs"] = args.epochs
    splits = split_data(config["data"])
    pyro.set_rng_seed(config["train"]["seed"])  # the model's initial weights
    model = build_model(config["model"], obs_dim=splits["train"].shape[-1])
    config["model"] = model_section(config["model"]["kind"], model)
    if not args.resume:  # saved first, so that a run stopped part way can be resumed
        write_config(run, config)
    history = fit(
        model,
        splits["train"],
        splits["val"] if len(splits["val"]) else None,
        **{**_fit_options(config["train"]), "device": device},
        checkpoint=run / CHECKPOINTS,
        resume=args.resume,
        progress=not args.no_progress,
    )
    write_config(run, config)
    _write_history(history, run)
    print(f"trained to epoch {len(history)} of {config['train']['epochs']}; the run is in {run}")
    if len(splits["test"]):
        weights = "best" if len(splits["val"]) else "last"
        report("test", evaluate(model, splits["test"]), weights=weights, epochs=len(history))
