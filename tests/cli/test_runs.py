"""Run folders: the data split, model kinds, and loading a run that is missing or corrupt."""

import json
import math
import shutil

import torch

from pyro_frmdn.cli.config import resolve_config
from pyro_frmdn.cli.runs import split_data


def test_split_is_deterministic_and_disjoint():
    data = {"task": "banana", "n": 50, "steps": 4, "seed": 1, "val_fraction": 0.2}
    data["test_fraction"] = 0.1
    a, b = (split_data(resolve_config({"data": data})["data"]) for _ in range(2))
    assert all(torch.equal(a.parts[k].y, b.parts[k].y) for k in a.parts)
    assert [len(a.parts[k]) for k in ("train", "val", "test")] == [35, 10, 5]
    rows = torch.cat([a.parts[k].y for k in ("train", "val", "test")]).flatten(1)
    assert len(torch.unique(rows, dim=0)) == 50
    assert a.transform is None and a.parts["train"].z is a.parts["train"].y  # "none"


def test_rmdn_round_trip(config, tmp_path, cli, last_json):
    run = tmp_path / "rmdn"
    args = ("--config", config, "--set", "model.kind=rmdn", "--set", "model.flow_layers=0")
    assert cli("train", "--run-dir", run, *args, "--epochs", 1, "--no-progress") == 0
    assert json.loads((run / "config.json").read_text())["model"]["name"] == "rmdn"
    assert cli("evaluate", "--run-dir", run) == 0
    assert math.isfinite(last_json()["nll_per_step"])


def test_corrupt_checkpoint(runs, tmp_path, cli, capsys):
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


def test_run_folder_errors(runs, tmp_path, cli, capsys):
    assert cli("evaluate", "--run-dir", tmp_path / "nowhere") == 2
    assert "no run folder" in capsys.readouterr().err
    assert cli("train", "--run-dir", runs / "straight") == 2  # would overwrite a run
    assert "already holds a run" in capsys.readouterr().err
    assert cli("train", "--run-dir", runs / "straight", "--resume", "--epochs", 1) == 2
    assert "fewer than the 2 already trained" in capsys.readouterr().err


def test_saved_model_section_rebuilds_the_width_of_runs_from_before_widths_were_stored():
    # runs saved flow_hidden_dims = null, which meant max(32, 2 D) uncapped; new models cap it
    from pyro_frmdn.cli.runs import saved_model_section
    from pyro_frmdn.flows import default_hidden_dims

    old = {"kind": "frmdn", "flow_layers": 2, "flow_hidden_dims": None}
    assert saved_model_section(old, obs_dim=80)["flow_hidden_dims"] == [160]
    assert default_hidden_dims(80) != [160]
    assert "obs_dim" not in saved_model_section(old, obs_dim=80)
    rmdn = {"kind": "rmdn", "flow_hidden_dims": None}
    assert saved_model_section(rmdn, obs_dim=80)["flow_hidden_dims"] is None
    stored = {"kind": "frmdn", "flow_hidden_dims": [64]}
    assert saved_model_section(stored, obs_dim=80)["flow_hidden_dims"] == [64]
