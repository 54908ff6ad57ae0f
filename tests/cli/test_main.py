"""The command line itself: every command's help, and ``python -m pyro_frmdn.cli``."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "command, options",
    [
        ("train", ["--config", "--set", "--epochs", "--resume", "[data]", "hidden_dim=128"]),
        ("evaluate", ["--checkpoint", "--split", "--bits-per-dim", "default: test"]),
        ("sample", ["--num", "--steps", "--pi-temperature", "--greedy", "--prime-steps", "--out"]),
    ],
)
def test_help(command, options, cli, capsys):
    assert cli(command, "--help") == 0
    text = capsys.readouterr().out
    for option in ["--run-dir", *options]:
        assert option in text


def test_module_entry_point():
    done = subprocess.run(
        [sys.executable, "-m", "pyro_frmdn.cli", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert all(c in done.stdout for c in ("train", "evaluate", "sample"))
