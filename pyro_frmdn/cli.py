"""The pyro-frmdn command: train, evaluate and sample sequence models from a TOML config.

A run lives in one folder::

    pyro-frmdn train --config examples/configs/default.toml --run-dir runs/a
    pyro-frmdn train --run-dir runs/a --resume --epochs 20
    pyro-frmdn evaluate --run-dir runs/a --bits-per-dim
    pyro-frmdn sample --run-dir runs/a --num 16 --steps 24
    pyro-frmdn bench --quick --out runs/bench      # the real-data experiments (docs/bench.md)
    pyro-frmdn collect --out runs/rollouts --episodes 48 --steps 300   # CarRacing, world extra
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import sys
import tempfile
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyro
import torch
from torch import Tensor

from . import __version__, bench
from .data import make_task
from .data.carracing import add_collect_parser
from .infer import History, evaluate, fit, load_checkpoint, resolve_device
from .models import FRMDN, RMDN

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    try:
        import tomli as tomllib
    except ModuleNotFoundError:
        tomllib = None

__all__ = [
    "DEFAULTS",
    "ConfigError",
    "build_model",
    "load_config",
    "main",
    "resolve_config",
    "split_data",
]

MODELS = {"frmdn": FRMDN, "rmdn": RMDN}
CONFIG, CHECKPOINTS = "config.json", "checkpoints"
SPLITS = ("test", "val", "train")
FROM_DATA = ("obs_dim", "input_dim")  # model arguments that the data set fixes
TRAIN_KEYS = (
    "epochs",
    "batch_size",
    "lr",
    "clip_norm",
    "lr_decay",
    "patience",
    "seed",
    "device",
    "checkpoint_every",
)


def _defaults(fn, skip: Sequence[str] = (), only: Sequence[str] | None = None) -> dict:
    params = inspect.signature(fn).parameters.items()
    return {
        k: p.default
        for k, p in params
        if p.default is not p.empty and k not in skip and (only is None or k in only)
    }


# Every valid key with its default, taken from the functions the keys are passed to.
DEFAULTS = {
    "data": {
        "task": "branching",
        **_defaults(make_task),
        "val_fraction": 0.1,
        "test_fraction": 0.1,
    },
    "model": {"kind": "frmdn", **_defaults(FRMDN.__init__, skip=FROM_DATA)},
    "train": _defaults(fit, only=TRAIN_KEYS),
}


class ConfigError(ValueError):
    """A config (file, ``--set`` or saved run) with an unknown key or a value of the wrong type."""


# -- config -------------------------------------------------------------------------------------


def _check_keys(what: str, given: dict, valid: dict, where: str) -> None:
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise ConfigError(
            f"unknown {what} {unknown[0]!r} in {where}; valid {what}s: {', '.join(valid)}"
        )


def _check_type(name: str, value, default) -> None:
    if default is None:  # patience, device, flow_hidden_dims: checked where they are used
        return
    kind = type(default)
    ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok:
        raise ConfigError(f"{name} must be of type {kind.__name__}, got {value!r}")


def resolve_config(config: dict) -> dict:
    """Check sections, keys and value types, and fill in the defaults of ``[data]``, ``[train]``.

    ``[model]`` keeps only the keys given (and ``kind``): the model fills in its own defaults, and
    the run folder saves the model's complete ``config``.
    """
    _check_keys("section", config, DEFAULTS, "the config")
    resolved = {}
    for section, defaults in DEFAULTS.items():
        values = config.get(section, {})
        if not isinstance(values, dict):
            raise ConfigError(f"[{section}] must be a table of keys, got {values!r}")
        _check_keys("key", values, defaults, f"[{section}]")
        for key, value in values.items():
            _check_type(f"{section}.{key}", value, defaults[key])
        base = {"kind": defaults["kind"]} if section == "model" else defaults
        resolved[section] = {**base, **values}
    return resolved


def _parse_set(item: str) -> tuple[str, str, object]:
    name, sep, text = item.partition("=")
    section, dot, key = name.strip().partition(".")
    if not (sep and dot and section and key):
        raise ConfigError(f"--set expects SECTION.KEY=VALUE (e.g. model.cell=gru), got {item!r}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text  # a bare string: --set model.cell=gru
    return section, key, value


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> dict:
    """A TOML config file (or none: the defaults) with ``SECTION.KEY=VALUE`` overrides, resolved."""
    config: dict = {}
    if path is not None:
        if tomllib is None:
            raise ConfigError("reading a TOML config on Python 3.10 needs tomli: pip install tomli")
        try:
            with open(path, "rb") as f:
                config = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"no config file at {path}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config {path} is not valid TOML: {e}") from None
    for item in overrides:
        section, key, value = _parse_set(item)
        section_values = config.setdefault(section, {})
        if isinstance(section_values, dict):
            section_values[key] = value
    return resolve_config(config)


# -- data and model -----------------------------------------------------------------------------


def split_data(data: dict) -> dict[str, Tensor]:
    """The ``[data]`` task's sequences, split into ``train``, ``val``, ``test`` by ``data.seed``."""
    y = make_task(data["task"], n=data["n"], steps=data["steps"], seed=data["seed"])
    n = len(y)
    n_val, n_test = round(data["val_fraction"] * n), round(data["test_fraction"] * n)
    if min(data["val_fraction"], data["test_fraction"]) < 0 or n - n_val - n_test < 1:
        raise ConfigError(
            f"data.val_fraction and data.test_fraction must be >= 0 and leave training data; "
            f"got {data['val_fraction']} and {data['test_fraction']} of n={n}"
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(data["seed"]))
    return {
        "test": y[order[:n_test]],
        "val": y[order[n_test : n_test + n_val]],
        "train": y[order[n_test + n_val :]],
    }


def build_model(model: dict, obs_dim: int) -> FRMDN:
    """The model of a ``[model]`` section: ``kind`` picks FRMDN or RMDN, the rest are keywords."""
    kwargs = dict(model)
    kind = kwargs.pop("kind", "frmdn")
    if kind not in MODELS:
        raise ConfigError(f"model.kind must be one of {', '.join(MODELS)}, got {kind!r}")
    if kind == "rmdn" and kwargs.get("flow_layers") == 0:
        del kwargs["flow_layers"]  # RMDN sets it, and RMDN(flow_layers=0) passes it twice
    return MODELS[kind](obs_dim=obs_dim, **kwargs)


def _model_section(kind: str, model: FRMDN) -> dict:
    return {"kind": kind, **{k: v for k, v in model.config.items() if k not in FROM_DATA}}


# -- run folders --------------------------------------------------------------------------------


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces ``path`` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _write_config(run: Path, config: dict) -> None:
    with _atomic(run / CONFIG) as tmp:
        tmp.write_text(json.dumps(config, indent=2))


def _read_run_config(run: Path) -> dict:
    if not run.is_dir():
        raise FileNotFoundError(f"no run folder at {run}")
    path = run / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{run} holds no {CONFIG}: not a run folder made by train")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is corrupt: {e}") from None
    return resolve_config(config)


def _load_run(run: Path, which: str, device) -> tuple[dict, dict, FRMDN, dict]:
    """The run's config, data splits, model with the ``which`` checkpoint's weights, checkpoint."""
    config = _read_run_config(run)
    splits = split_data(config["data"])
    model = build_model(config["model"], obs_dim=splits["train"].shape[-1])
    state = load_checkpoint(run / CHECKPOINTS / f"{which}.pt", map_location="cpu")
    saved = state.get("config") or {}
    differ = sorted(k for k in {*saved, *model.config} if saved.get(k) != model.config.get(k))
    if differ:
        raise ValueError(
            f"checkpoint {which}.pt was written by a model whose config differs from "
            f"{run / CONFIG} in {', '.join(differ)}"
        )
    model.load_state_dict(state["model"])
    device = resolve_device(device or config["train"]["device"])
    return config, splits, model.to(device).eval(), state


def _nonempty(splits: dict, name: str) -> Tensor:
    if len(splits[name]) == 0:
        raise ConfigError(f"the {name} split is empty (data.{name}_fraction is 0)")
    return splits[name]


def _report(split: str, nll: float, bits: float | None = None, **extra) -> None:
    """Print a held-out NLL for people, then as a JSON line for programs."""
    line = f"{split} NLL: {nll:.4f} nats per step"
    print(line if bits is None else f"{line}, {bits:.4f} bits per dim")
    record = {"split": split, "nll_per_step": nll, **extra}
    if bits is not None:
        record["bits_per_dim"] = bits
    print(json.dumps(record))


# -- plots (matplotlib's Agg canvas through Figure: no display, no global backend) ----------------


def _plot_history(history: History, path: Path) -> None:
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(5, 3.5), layout="constrained")
    ax = fig.add_subplot()
    for key, label in (("train_nll", "train"), ("val_nll", "validation")):
        if any(v is not None for v in history[key]):
            ax.plot(history["epoch"], history[key], marker="o", label=label)
    ax.set(xlabel="epoch", ylabel="NLL per step (nats)", title="learning curve")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
    with _atomic(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def _paths(task: str, y: Tensor) -> Tensor:
    """Points to draw: positions (cumulative offsets) for "branching", the values otherwise."""
    return y.cumsum(-2) if task == "branching" else y


def _plot_samples(task: str, generated: Tensor, real: Tensor, prime_steps: int, path: Path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.5), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    for ax, y, title in ((axes[0], generated, "generated"), (axes[1], real, "real")):
        for i, p in enumerate(_paths(task, y).numpy()):
            color = f"C{i % 10}"
            ax.plot(p[:, 0], p[:, 1], marker=".", ms=3, lw=1, color=color, alpha=0.8)
            if title == "generated" and prime_steps:
                ax.plot(p[:prime_steps, 0], p[:prime_steps, 1], lw=2.5, color="0.5")
        labels = ("x = Σ dx", "y = Σ dy") if task == "branching" else ("y[0]", "y[1]")
        ax.set(title=f"{title} ({task})", xlabel=labels[0], ylabel=labels[1])
    with _atomic(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


# -- commands -----------------------------------------------------------------------------------


def _holds_run(run: Path) -> bool:
    return any((run / CHECKPOINTS).glob("*.pt"))


def train(args: argparse.Namespace) -> None:
    run = Path(args.run_dir)
    if args.resume:
        if args.config or args.set:
            raise ConfigError("--resume uses the run folder's saved config: drop --config/--set")
        config = _read_run_config(run)
        done = load_checkpoint(run / CHECKPOINTS / "last.pt", map_location="cpu")["epoch"]
        if args.epochs is not None and args.epochs < done:
            raise ConfigError(f"--epochs {args.epochs} is fewer than the {done} already trained")
    else:
        if _holds_run(run):
            raise ConfigError(f"{run} already holds a run: add --resume, or pick another folder")
        config = load_config(args.config, args.set)
    if args.epochs is not None:
        config["train"]["epochs"] = args.epochs
    device = resolve_device(args.device or config["train"]["device"])
    splits = split_data(config["data"])
    pyro.set_rng_seed(config["train"]["seed"])  # the model's initial weights
    model = build_model(config["model"], obs_dim=splits["train"].shape[-1])
    config["model"] = _model_section(config["model"]["kind"], model)
    if not args.resume:  # saved first, so that a run stopped part way can be resumed
        _write_config(run, config)
    history = fit(
        model,
        splits["train"],
        splits["val"] if len(splits["val"]) else None,
        **{**config["train"], "device": device},
        checkpoint=run / CHECKPOINTS,
        resume=args.resume,
        progress=not args.no_progress,
    )
    _write_config(run, config)
    with _atomic(run / "history.json") as tmp:
        history.to_json(tmp)
    with _atomic(run / "history.csv") as tmp:
        history.to_csv(tmp)
    _plot_history(history, run / "learning_curve.png")
    print(f"trained to epoch {len(history)} of {config['train']['epochs']}; the run is in {run}")
    if len(splits["test"]):
        weights = "best" if len(splits["val"]) else "last"
        _report("test", evaluate(model, splits["test"]), weights=weights, epochs=len(history))


def evaluate_run(args: argparse.Namespace) -> None:
    _, splits, model, state = _load_run(Path(args.run_dir), args.checkpoint, args.device)
    data = _nonempty(splits, args.split)
    nll = evaluate(model, data)
    bits = evaluate(model, data, bits_per_dim=True) if args.bits_per_dim else None
    _report(args.split, nll, bits, checkpoint=args.checkpoint, epoch=state["epoch"])


def sample(args: argparse.Namespace) -> None:
    run = Path(args.run_dir)
    config, splits, model, _ = _load_run(run, args.checkpoint, args.device)
    real = _nonempty(splits, args.split)
    steps = config["data"]["steps"] if args.steps is None else args.steps
    if args.num < 1 or steps < 1 or not 0 <= args.prime_steps <= real.shape[1]:
        raise ConfigError(
            f"need --num >= 1, --steps >= 1 and 0 <= --prime-steps <= {real.shape[1]} "
            f"(the data's steps); got {args.num}, {steps}, {args.prime_steps}"
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
    out = Path(args.out) if args.out else run / "samples.pt"
    settings = {k: v for k, v in vars(args).items() if k not in ("func", "out", "run_dir")}
    settings["steps"] = steps
    with _atomic(out) as tmp:
        torch.save({"samples": samples, "prime": prime, "settings": settings}, tmp)
    shown = samples if prime is None else torch.cat([prime, samples], dim=1)
    plot = out.with_suffix(".png")
    _plot_samples(config["data"]["task"], shown, real[:8], args.prime_steps, plot)
    print(f"wrote {args.num} samples of {steps} steps to {out} and {plot}")


# -- command line -------------------------------------------------------------------------------


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown (not the unset ones: None, False, []), descriptions kept as written."""

    def _get_help_string(self, action):
        unset = action.default is None or action.default is False or action.default == []
        return action.help if unset else super()._get_help_string(action)


def _config_keys() -> str:
    lines = ["config keys, by TOML section, with their defaults (- : unset):"]
    for section, defaults in DEFAULTS.items():
        items = ", ".join(f"{k}={'-' if v is None else json.dumps(v)}" for k, v in defaults.items())
        lines += textwrap.wrap(
            items, 78, initial_indent=f"  [{section}] ", subsequent_indent=" " * 4
        )
    lines.append('  kind="rmdn" is the model without a flow (flow keys unused)')
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyro-frmdn", description=__doc__, formatter_class=_Formatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, func, help):
        p = commands.add_parser(name, help=help, description=help, formatter_class=_Formatter)
        p.add_argument("--run-dir", required=True, help="the run folder")
        p.set_defaults(func=func)
        return p

    p = command("train", train, "Train a model into a run folder (or resume one).")
    p.epilog = _config_keys()
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

    def load_options(p):
        p.add_argument("--checkpoint", choices=("best", "last"), default="best", help="weights")
        p.add_argument("--split", choices=SPLITS, default="test", help="the data split to use")
        p.add_argument("--device", help="cpu, cuda...; default: train.device of the run")

    p = command("evaluate", evaluate_run, "Held-out NLL per step (nats) of a trained run.")
    load_options(p)
    p.add_argument("--bits-per-dim", action="store_true", help="also report bits per dimension")

    p = command("sample", sample, "Generate sequences from a trained run, with a plot.")
    load_options(p)
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

    help = "Real-data experiments: five models at matched size and budget (docs/bench.md)."
    p = commands.add_parser("bench", help=help, description=help, formatter_class=_Formatter)
    bench.add_arguments(p)
    p.set_defaults(func=bench.main)
    add_collect_parser(commands, formatter_class=_Formatter)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``pyro-frmdn`` command; errors print one line on stderr and exit with status 2."""
    args = _parser().parse_args(argv)
    try:
        status = args.func(args)
    except (ValueError, OSError, FloatingPointError) as e:
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"pyro-frmdn {args.command}: error: {message}", file=sys.stderr)
        raise SystemExit(2) from None
    return status if isinstance(status, int) else 0


if __name__ == "__main__":
    raise SystemExit(main())
