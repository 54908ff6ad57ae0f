"""``pyro-frmdn collect``: random-policy CarRacing-v3 rollouts for world models (resumable)."""

from __future__ import annotations

import argparse
import sys

from ..data import collect_rollouts
from .checks import check_folder, error_line

__all__ = ["HELP", "add_arguments", "main"]

HELP = "Collect random-policy CarRacing-v3 rollouts (resumable) for world models."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``pyro-frmdn collect``: the arguments of
    :func:`~pyro_frmdn.data.carracing.collect_rollouts`."""
    p.add_argument("--out", required=True, help="the rollout folder")
    p.add_argument("--episodes", type=int, default=10, help="episodes the folder should hold")
    p.add_argument("--steps", type=int, default=1000, help="most actions per episode")
    p.add_argument("--seed", type=int, default=0, help="seed of the collection")
    p.add_argument("--size", type=int, default=64, help="frame side after resizing")
    p.add_argument("--skip-frames", type=int, default=50, help="idle opening steps not recorded")
    p.add_argument("--hold", type=int, default=5, help="steps each random action is held")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def main(args: argparse.Namespace) -> int:
    """Run ``collect`` from parsed arguments; returns the exit status (2 on a clear error).

    ``collect_rollouts`` checks every number before the folder is made or its settings saved.
    """
    try:
        check_folder("--out", args.out)  # "" would collect into the current folder
        paths = collect_rollouts(
            args.out, args.episodes, args.steps, args.seed, args.size, args.skip_frames,
            args.hold, progress=not args.no_progress,
        )  # fmt: skip
    except (ImportError, ValueError, TypeError, OSError) as e:
        print(error_line("collect", e), file=sys.stderr)
        return 2
    print(f"{len(paths)} episodes in {args.out}")
    return 0
