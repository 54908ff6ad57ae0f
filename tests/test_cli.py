"""The pyro-frmdn command, run in-process on tiny models: train, resume, evaluate, sample."""

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pyro_frmdn.cli import load_config, main, split_data

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


def cli(*args) -> int:
    """The exit status of ``pyro-frmdn ARGS``, run in this process."""
    try:
        return main([str(a) for a in args])
    except SystemExit as e:
        return e.code


def last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "tiny.toml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def runs(config, tmp_path_factory):
    """One run trained for 1 epoch then resumed to 2, and one trained for 2 at once."""
    root = tmp_path_factory.mktemp("runs")
    common = ("--config", config, "--no-progress")
    assert cli("train", *common, "--run-dir", root / "resumed", "--epochs", 1) == 0
    assert cli("train", "--run-dir", root / "resumed", "--resume", "--epochs", 2) == 0
    assert cli("train", *common, "--run-dir", root / "straight") == 0
    return root


def test_train_writes_the_run_folder(runs):
    run = runs / "resumed"
    for name in ("config.json", "history.json", "history.csv", "learning_curve.png"):
        assert (run / name).is_file(), name
    assert {p.name for p in (run / "checkpoints").iterdir()} == {"best.pt", "last.pt"}
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["epochs"] == 2  # raised by --resume --epochs 2
    assert config["model"]["hidden_dim"] == 8 and config["model"]["mixing"] == "permute"
    assert (run / "history.csv").read_text().startswith("epoch,train_nll,val_nll,time")


def test_resume_equals_an_uninterrupted_run(runs):
    resumed, straight = (
        json.loads((runs / r / "history.json").read_text()) for r in ("resumed", "straight")
    )
    assert len(resumed) == len(straight) == 2
    for a, b in zip(resumed, straight, strict=True):
        assert (a["epoch"], a["train_nll"], a["val_nll"]) == (
            b["epoch"],
            b["train_nll"],
            b["val_nll"],
        )


def test_evaluate(runs, capsys):
    assert cli("evaluate", "--run-dir", runs / "resumed", "--bits-per-dim") == 0
    record = last_json(capsys)
    assert record["split"] == "test" and record["checkpoint"] == "best"
    assert math.isfinite(record["nll_per_step"])
    assert record["bits_per_dim"] == pytest.approx(record["nll_per_step"] / (2 * math.log(2)))
    assert (
        cli("evaluate", "--run-dir", runs / "resumed", "--checkpoint", "last", "--split", "val")
        == 0
    )
    assert last_json(capsys)["epoch"] == 2


def test_sample(runs, tmp_path):
    run = runs / "straight"
    assert cli("sample", "--run-dir", run, "--num", 3, "--steps", 5) == 0
    saved = torch.load(run / "samples.pt", weights_only=True)
    assert saved["samples"].shape == (3, 5, 2) and saved["prime"] is None
    assert (run / "samples.png").is_file()
    out = tmp_path / "greedy.pt"
    args = ("--num", 2, "--steps", 4, "--prime-steps", 3, "--greedy", "--out", out)
    assert cli("sample", "--run-dir", run, *args) == 0
    saved = torch.load(out, weights_only=True)
    assert saved["samples"].shape == (2, 4, 2) and saved["prime"].shape == (2, 3, 2)
    assert torch.isfinite(saved["samples"]).all() and out.with_suffix(".png").is_file()


def test_rmdn_round_trip(config, tmp_path, capsys):
    run = tmp_path / "rmdn"
    args = ("--config", config, "--set", "model.kind=rmdn", "--set", "model.flow_layers=0")
    assert cli("train", "--run-dir", run, *args, "--epochs", 1, "--no-progress") == 0
    assert json.loads((run / "config.json").read_text())["model"]["name"] == "rmdn"
    assert cli("evaluate", "--run-dir", run) == 0
    assert math.isfinite(last_json(capsys)["nll_per_step"])


@pytest.mark.parametrize(
    "command, options",
    [
        ("train", ["--config", "--set", "--epochs", "--resume", "[data]", "hidden_dim=128"]),
        ("evaluate", ["--checkpoint", "--split", "--bits-per-dim", "default: test"]),
        ("sample", ["--num", "--steps", "--pi-temperature", "--greedy", "--prime-steps", "--out"]),
    ],
)
def test_help(command, options, capsys):
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
def test_bad_config(toml, overrides, message, tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    sets = [a for o in overrides for a in ("--set", o)]
    assert cli("train", "--config", path, *sets, "--run-dir", tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_corrupt_checkpoint(runs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(runs / "resumed", run)
    for name in ("best.pt", "last.pt"):
        path = run / "checkpoints" / name
        path.write_bytes(path.read_bytes()[:200])  # truncated
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert cli("evaluate", "--run-dir", run) == 2
    assert "best.pt is corrupt" in capsys.readouterr().err
    assert cli("train", "--run-dir", run, "--resume", "--epochs", 3) == 2
    assert "last.pt is corrupt" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_run_folder_errors(runs, tmp_path, capsys):
    assert cli("evaluate", "--run-dir", tmp_path / "nowhere") == 2
    assert "no run folder" in capsys.readouterr().err
    assert cli("train", "--run-dir", runs / "straight") == 2  # would overwrite a run
    assert "already holds a run" in capsys.readouterr().err
    assert cli("train", "--run-dir", runs / "straight", "--resume", "--epochs", 1) == 2
    assert "fewer than the 2 already trained" in capsys.readouterr().err


def test_split_is_deterministic_and_disjoint():
    data = {"task": "banana", "n": 50, "steps": 4, "seed": 1, "val_fraction": 0.2}
    data["test_fraction"] = 0.1
    a, b = split_data(data), split_data(data)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [len(a[k]) for k in ("train", "val", "test")] == [35, 10, 5]
    rows = torch.cat([a["train"], a["val"], a["test"]]).flatten(1)
    assert len(torch.unique(rows, dim=0)) == 50


def test_example_config_is_valid():
    config = load_config(Path(__file__).parents[1] / "examples" / "configs" / "default.toml")
    assert config["data"]["task"] == "branching" and config["model"]["flow_layers"] == 4


def test_collect_is_a_command_of_the_cli(tmp_path, capsys):
    pytest.importorskip("gymnasium", reason="the CarRacing collector needs gymnasium[box2d]")
    pytest.importorskip("Box2D", reason="CarRacing needs Box2D (gymnasium[box2d])")
    out = tmp_path / "rollouts"
    argv = ["collect", "--out", str(out), "--episodes", "1", "--steps", "4", "--skip-frames", "1"]
    assert main([*argv, "--no-progress"]) == 0
    assert sorted(p.name for p in out.glob("*.npz")) == ["episode_00000.npz"]
    assert main([*argv[:3], "--steps", "0", "--no-progress"]) == 2
    assert "collect: error: need episodes >= 0, steps >= 1" in capsys.readouterr().err
