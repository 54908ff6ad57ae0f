"""``pyro-frmdn write``: write texts in handwriting with a trained handwriting run."""

from __future__ import annotations

import argparse
from pathlib import Path

import pyro
import torch

from ..files import atomic_write
from ..models import HandwritingSynthesis, load
from ..plots import plot_attention, plot_strokes, save_svg
from .checks import ConfigError, check_integer, check_number, check_seed
from .runs import CHECKPOINTS, MODEL_FILE, add_threads_option, read_config, run_device, use_threads
from .sample import RUN_FILES

__all__ = ["HELP", "add_arguments", "main"]

HELP = "Write texts in handwriting with a trained handwriting run: a figure (.png, .svg), strokes."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``pyro-frmdn write`` (besides ``--run-dir``)."""
    p.add_argument("texts", nargs="+", metavar="TEXT", help="the texts to write, a line each")
    p.add_argument(
        "--checkpoint",
        choices=("best", "last"),
        help="weights of a checkpoint; default: the trained model, RUN/model.pt",
    )
    p.add_argument("--bias", type=float, default=0.0, help="Graves' bias b >= 0: neater when up")
    p.add_argument("--pi-temperature", type=float, default=1.0, help="mixture weights' temperature")
    p.add_argument("--scale-temperature", type=float, default=1.0, help="covariances' temperature")
    p.add_argument("--max-steps", type=int, default=1000, help="the most points per text")
    p.add_argument("--seed", type=int, default=0, help="random seed of the writing")
    p.add_argument(
        "--out",
        help="the figure, .svg or .png; beside it the attention maps (NAME_attention1.png, "
        "...) and the strokes (NAME.pt); default: RUN/written.png",
    )
    p.add_argument("--device", help="cpu, cuda...; default: train.device of the run")
    add_threads_option(p)


def _out_path(run: Path, out: str | None) -> Path:
    """The figure file: ``--out`` or ``RUN/written.png``; refused where it or the files beside
    it would replace one of the run's own files."""
    path = run / "written.png" if out is None else Path(out)
    if path.suffix.lower() not in (".png", ".svg"):
        raise ConfigError(f"--out must end in .png or .svg, got {out!r}")
    if path.is_dir():
        raise ConfigError(f"--out {path} is a folder; give a file such as {path / 'written.png'}")
    own = {(run / name).resolve() for name in (*RUN_FILES, MODEL_FILE)}
    for file in (path, path.with_suffix(".pt"), _attention_path(path, 0)):
        if file.resolve() in own or file.resolve().parent == (run / CHECKPOINTS).resolve():
            raise ConfigError(f"--out {path} would replace the run's own {file.name}")
    return path


def _attention_path(path: Path, i: int) -> Path:
    """The attention map of the ``i``-th text beside the figure ``path``."""
    return path.with_name(f"{path.stem}_attention{i + 1}.png")


def _model(run: Path, checkpoint: str | None, device: torch.device) -> HandwritingSynthesis:
    """The run's trained model (or a checkpoint's weights), which must write texts."""
    file = run / MODEL_FILE if checkpoint is None else run / CHECKPOINTS / f"{checkpoint}.pt"
    if not file.is_file():
        raise FileNotFoundError(f"no {file.name} in {file.parent}: train the run first")
    model = load(file, map_location=device)
    if not isinstance(model, HandwritingSynthesis):
        raise ConfigError(
            f"{run} holds a {type(model).__name__}, which does not write texts: train one with "
            'data.task = "handwriting" and model.kind = "handwriting"'
        )
    return model


def main(args: argparse.Namespace) -> None:
    """Write ``args.texts`` with the run's model; save the figure, the attention maps and the
    strokes (a ``.pt`` of texts, strokes (T_i, 3) in the data's units, attention (T_i, U_i))."""
    run = Path(args.run_dir)
    check_number("--bias", args.bias, 0.0, strict=False)
    check_number("--pi-temperature", args.pi_temperature)
    check_number("--scale-temperature", args.scale_temperature)
    check_integer("--max-steps", args.max_steps, 1)
    check_seed("--seed", args.seed)
    out = _out_path(run, args.out)
    config = read_config(run)
    device = run_device(args.device, config)
    use_threads(args.threads, config)
    model = _model(run, args.checkpoint, device)
    missing = sorted({c for t in args.texts for c in t if c not in model.alphabet})
    if missing:
        raise ConfigError(
            f"the texts have {', '.join(map(repr, missing))}, which the model cannot write "
            f"(its alphabet: {model.alphabet!r})"
        )
    pyro.set_rng_seed(args.seed)
    written = model.write(
        list(args.texts),
        bias=args.bias,
        pi_temperature=args.pi_temperature,
        scale_temperature=args.scale_temperature,
        max_steps=args.max_steps,
    )
    strokes = [s.cpu() for s in written.strokes]
    if out.suffix.lower() == ".svg":
        save_svg(strokes, out)
    else:
        plot_strokes(strokes, out, texts=list(args.texts))
    maps = []
    if not model.text_blind:  # a text-blind model has no window
        for i, (text, phi) in enumerate(zip(args.texts, written.attention, strict=True)):
            maps.append(plot_attention(phi.cpu(), text, _attention_path(out, i)))
    settings = {k: v for k, v in vars(args).items() if k not in ("func", "texts", "out")}
    record = {"texts": list(args.texts), "strokes": strokes, "settings": settings}
    record["attention"] = [a.cpu() for a in written.attention]
    with atomic_write(out.with_suffix(".pt")) as f:
        torch.save(record, f)
    for text, s in zip(args.texts, strokes, strict=True):
        ended = "" if len(s) < args.max_steps else " (stopped at --max-steps)"
        print(f"{text!r}: {len(s)} points{ended}")
    shown = ", ".join(str(p) for p in (out, out.with_suffix(".pt"), *maps))
    print(f"wrote {shown}")
