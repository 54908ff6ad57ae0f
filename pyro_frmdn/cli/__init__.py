"""The ``pyro-frmdn`` command: train, evaluate and sample sequence models; bench; collect."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import torch

from .. import __version__
from . import agent, bench, collect, evaluate, sample, train, write
from .checks import ConfigError, check_folder, error_line
from .config import DEFAULTS, load_config, resolve_config
from .runs import build_model, split_data

__all__ = [
    "DEFAULTS",
    "ConfigError",
    "build_model",
    "load_config",
    "main",
    "resolve_config",
    "split_data",
]

DESCRIPTION = """\
The pyro-frmdn command: train, evaluate and sample sequence models from a TOML config.

A run lives in one folder::

    pyro-frmdn train --config examples/configs/default.toml --run-dir runs/a
    pyro-frmdn train --config examples/configs/csv.toml --run-dir runs/b   # your file: [data] path
    pyro-frmdn train --run-dir runs/a --resume --epochs 20
    pyro-frmdn evaluate --run-dir runs/a --bits-per-dim
    pyro-frmdn sample --run-dir runs/a --num 16 --steps 24
    pyro-frmdn bench --quick --out runs/bench      # the real-data experiments (docs/bench.md)
    pyro-frmdn collect --out runs/rollouts --episodes 48 --steps 300   # CarRacing, world extra
    pyro-frmdn agent --config examples/configs/agent_cartpole.toml --out runs/agent  # docs/agent.md
    pyro-frmdn train --config examples/configs/handwriting.toml --run-dir runs/hw
    pyro-frmdn write "some text" --run-dir runs/hw --bias 1 --out hw.svg   # docs/handwriting.md
"""


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown (not the unset ones: None, False, []), descriptions kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        unset = action.default is None or action.default is False or action.default == []
        return action.help if unset else super()._get_help_string(action)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyro-frmdn", description=DESCRIPTION, formatter_class=_Formatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command, help, run_dir in (
        ("train", train, train.HELP, True),
        ("evaluate", evaluate, evaluate.HELP, True),
        ("sample", sample, sample.HELP, True),
        ("bench", bench, bench.HELP, False),
        ("collect", collect, collect.HELP, False),
        ("agent", agent, agent.HELP, False),
        ("write", write, write.HELP, True),
    ):
        p = commands.add_parser(name, help=help, description=help, formatter_class=_Formatter)
        if run_dir:
            p.add_argument("--run-dir", required=True, help="the run folder")
        command.add_arguments(p)
        p.set_defaults(func=command.main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``pyro-frmdn`` command; errors print one line on stderr and exit with status 2.

    A bad value (option, config key, device, folder, data file, transform) is refused before
    anything is written. torch's thread count (``--threads``) is restored on return.
    """
    args = _parser().parse_args(argv)
    threads = torch.get_num_threads()
    try:
        if hasattr(args, "run_dir"):
            check_folder("--run-dir", args.run_dir)
        status = args.func(args)
    except (ValueError, TypeError, OSError, ImportError, FloatingPointError) as e:
        print(error_line(args.command, e), file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        torch.set_num_threads(threads)
    return status if isinstance(status, int) else 0
