"""The run config: TOML, --set overrides, and errors that name the bad key."""

from pathlib import Path

import pytest

from pyro_frmdn.cli.config import load_config


@pytest.mark.parametrize(
    "toml, overrides, message",
    [
        (
            "[model]\nhidden_dims = 8\n",
            [],
            "unknown key 'hidden_dims' in [model]; valid keys: kind",
        ),
        ("[optim]\nlr = 0.1\n", [], "unknown section 'optim'"),
        ("[train]\nepochs = 'ten'\n", [], "train.epochs must be of type int"),
        ("[data\n", [], "not valid TOML"),
        ("", ["train.lrate=0.1"], "unknown key 'lrate' in [train]"),
        ("", ["lr=0.1"], "--set expects SECTION.KEY=VALUE"),
        ("", ["data.task=spiral"], "unknown task 'spiral'"),
    ],
)
def test_bad_config(toml, overrides, message, tmp_path, cli, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    sets = [a for o in overrides for a in ("--set", o)]
    assert cli("train", "--config", path, *sets, "--run-dir", tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_example_config_is_valid():
    config = load_config(Path(__file__).parents[2] / "examples" / "configs" / "default.toml")
    assert config["data"]["task"] == "branching" and config["model"]["flow_layers"] == 4
