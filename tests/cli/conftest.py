"""Shared set-up of the command's tests: a tiny config, runs trained once, in-process calls."""

import json

import pytest

from pyro_frmdn.cli import main

TINY = """
[data]
task = "branching"
n = 64
steps = 8
seed = 3

[model]
kind = "frmdn"
hidden_dim = 8
num_components = 2
rank = 1
flow_layers = 1
flow_hidden_dims = [8]

[train]
epochs = 2
batch_size = 16
lr = 0.01
"""


def _cli(*args) -> int:
    """The exit status of ``pyro-frmdn ARGS``, run in this process."""
    try:
        return main([str(a) for a in args])
    except SystemExit as e:
        return e.code


@pytest.fixture(scope="session")
def cli():
    return _cli


@pytest.fixture
def last_json(capsys):
    """The last line printed, read as JSON."""
    return lambda: json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def files(folder) -> dict:
    """Every file under ``folder`` with its bytes (folders as None): what must not change."""
    return {p: p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


@pytest.fixture
def refused(cli, capsys):
    """``refused(folder, message, *args)``: the command exits 2 with one line naming the problem,
    and leaves ``folder`` exactly as it was."""

    def check(folder, message, *args):
        before = files(folder)
        assert cli(*args) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"pyro-frmdn {args[0]}: error: "), lines[0]
        assert message in lines[0], lines[0]
        assert files(folder) == before

    return check


@pytest.fixture(scope="session")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "tiny.toml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="session")
def runs(config, tmp_path_factory):
    """One run trained for 1 epoch then resumed to 2, and one trained for 2 at once."""
    root = tmp_path_factory.mktemp("runs")
    common = ("--config", config, "--no-progress")
    assert _cli("train", *common, "--run-dir", root / "resumed", "--epochs", 1) == 0
    assert _cli("train", "--run-dir", root / "resumed", "--resume", "--epochs", 2) == 0
    assert _cli("train", *common, "--run-dir", root / "straight") == 0
    return root
