"""``pyro-frmdn train``: train a model into a run folder, or resume one."""

from __future__ import annotations

import argparse
from pathlib import Path

import pyro

from ..files import atomic_write
from ..infer import History, fit, load_checkpoint
from ..plots import plot_history
from .checks import ConfigError
from .config import check_value, config_help, load_config
from .evaluate import report, score
from .runs import (
    CHECKPOINTS,
    add_threads_option,
    build_model,
    holds_run,
    load_data,
    model_section,
    read_config,
    run_device,
    split_data,
    use_threads,
    write_config,
    write_data,
    write_model,
)

__all__ = ["HELP", "add_arguments", "main"]

HELP = "Train a model into a run folder (or resume one)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``pyro-frmdn train`` (besides ``--run-dir``); the config keys as epilog."""
    p.epilog = config_help()
    p.add_argument("--config", help="a TOML config file; default: the defaults below")
    p.add_argument(
        "--data",
        metavar="PATH",
        help="your sequences (.npy, .npz, .csv, .parquet or a folder): data.path, replacing "
        "the config's synthetic task",
    )
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
    add_threads_option(p)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _write_history(history: History, run: Path) -> None:
    """``history.json``, ``history.csv`` and ``learning_curve.png``, each written atomically."""
    history.to_json(run / "history.json")
    history.to_csv(run / "history.csv")
    with atomic_write(run / "learning_curve.png") as f:
        plot_history(history).savefig(f, format="png", dpi=100)


def _fit_options(train: dict) -> dict:
    """The ``[train]`` keys as ``fit``'s arguments: an unset ``clip_norm`` is left out, and
    ``threads`` is the command's."""
    return {
        k: v for k, v in train.items() if k != "threads" and not (k == "clip_norm" and v is None)
    }


def main(args: argparse.Namespace) -> None:
    """Train (or resume) the run in ``args.run_dir`` and report its test NLL.

    Every value (options, config, device, data, transform, model) is checked before anything is
    written.
    """
    run = Path(args.run_dir)
    if args.epochs is not None:
        check_value("train.epochs", args.epochs, "--epochs")
    if args.resume:
        if args.config or args.set or args.data:
            raise ConfigError(
                "--resume uses the run folder's saved config: drop --config/--set/--data"
            )
        config = read_config(run)
        device = run_device(args.device, config)
        use_threads(args.threads, config)
        done = load_checkpoint(run / CHECKPOINTS / "last.pt", map_location="cpu")["epoch"]
        if args.epochs is not None and args.epochs < done:
            raise ConfigError(f"--epochs {args.epochs} is fewer than the {done} already trained")
        data = load_data(run, config["data"])
    else:
        if holds_run(run):
            raise ConfigError(f"{run} already holds a run: add --resume, or pick another folder")
        if (run / CHECKPOINTS).is_file():
            raise ConfigError(
                f"{run / CHECKPOINTS} is a file: a run keeps its checkpoints in a folder "
                "of that name"
            )
        config = load_config(args.config, args.set, data=args.data)
        device = run_device(args.device, config)
        use_threads(args.threads, config)
        if config["data"]["path"] is not None:  # later commands may run from elsewhere
            config["data"]["path"] = str(Path(config["data"]["path"]).resolve())
        data = split_data(config["data"])
    if args.epochs is not None:
        config["train"]["epochs"] = args.epochs
    pyro.set_rng_seed(config["train"]["seed"])  # the model's initial weights
    model = build_model(
        config["model"], data.obs_dim, data.model_defaults, task=config["data"]["task"]
    )
    config["model"] = model_section(config["model"], model)
    if not args.resume:  # saved first, so that a run stopped part way can be resumed
        write_config(run, config)
        write_data(run, data)
    train, val, test = (data.parts[name] for name in ("train", "val", "test"))
    history = fit(
        model,
        train.fit_data(),
        val.fit_data() if len(val) else None,
        **{**_fit_options(config["train"]), "device": device},
        checkpoint=run / CHECKPOINTS,
        resume=args.resume,
        progress=not args.no_progress,
    )
    write_config(run, config)
    _write_history(history, run)
    write_model(run, model, data)
    print(f"trained to epoch {len(history)} of {config['train']['epochs']}; the run is in {run}")
    if len(test):
        weights = "best" if len(val) else "last"
        nll, user = score(model, test)
        report("test", nll, user, config["data"]["transform"], weights=weights, epochs=len(history))
