"""``pyro-frmdn evaluate``: the held-out NLL of a trained run, and the report of an NLL."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..infer import evaluate
from ..models import FRMDN, SketchVAE
from .checks import check_integer
from .runs import add_load_options, load_run, nonempty
from .sketch import sketch_bounds
from .transforms import Part

__all__ = ["HELP", "add_arguments", "main", "report", "score"]

HELP = "Held-out NLL per step (nats) of a trained run, in the model's space and the data's units."


def score(model: FRMDN, part: Part) -> tuple[float, float]:
    r"""The NLL per step of a split in the model's space and in the user's units.

    By the change of variables :math:`z = f(y)`,
    :math:`-\log p_y(y) = -\log p_z(f(y)) - \log|\det \partial f / \partial y|`, so the NLL per
    step in the user's units is the model's minus the mean log-Jacobian over the scored steps.
    """
    nll = evaluate(model, part.fit_data())
    return nll, nll - part.mean_log_det()


def report(
    split: str, nll: float, user: float, transform: object, bits: float | None = None, **extra
) -> None:
    """Print a held-out NLL for people, then as a JSON line for programs.

    ``nll`` is in the model's space, ``user`` in the data's units (the same number without a
    ``transform``), ``bits`` the model-space bits per dimension.
    """
    line = f"{split} NLL: {nll:.4f} nats per step"
    if transform != "none":
        line += f" in the model's space ({json.dumps(transform)}), {user:.4f} in the data's units"
    print(line if bits is None else f"{line}, {bits:.4f} bits per dim")
    record = {"split": split, "nll_per_step": nll, "nll_per_step_user": user, **extra}
    if bits is not None:
        record["bits_per_dim"] = bits
    print(json.dumps(record))


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``pyro-frmdn evaluate`` (besides ``--run-dir``)."""
    add_load_options(p)
    p.add_argument("--bits-per-dim", action="store_true", help="also report bits per dimension")
    p.add_argument(
        "--particles",
        type=int,
        default=64,
        help="a sketch run's draws of its guide for the ELBO and IWAE bounds (default 64)",
    )


def main(args: argparse.Namespace) -> None:
    """Evaluate the run's checkpoint on a split and report its NLL."""
    check_integer("--particles", args.particles, 1)
    config, data, model, state = load_run(
        Path(args.run_dir), args.checkpoint, args.device, args.threads
    )
    part = nonempty(data, args.split)
    nll, user = score(model, part)
    bits = evaluate(model, part.fit_data(), bits_per_dim=True) if args.bits_per_dim else None
    transform = config["data"]["transform"]
    report(args.split, nll, user, transform, bits, checkpoint=args.checkpoint, epoch=state["epoch"])
    if isinstance(model, SketchVAE):  # its NLL above is a one-draw ELBO: the bounds too
        bounds = sketch_bounds(model, part, args.particles)
        print(
            f"{args.split} bounds per drawing (nats, higher is better): "
            f"ELBO {bounds['elbo_per_drawing']:.3f}, IWAE {bounds['iwae_per_drawing']:.3f} "
            f"({args.particles} particles), KL {bounds['kl_per_drawing']:.3f}"
        )
        print(json.dumps({"split": args.split, **bounds}))
