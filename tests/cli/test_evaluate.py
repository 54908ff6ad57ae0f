"""pyro-frmdn evaluate: the held-out NLL of a run's checkpoint, as a sentence and a JSON line."""

import math

import pytest


def test_evaluate(runs, cli, last_json):
    assert cli("evaluate", "--run-dir", runs / "resumed", "--bits-per-dim") == 0
    record = last_json()
    assert record["split"] == "test" and record["checkpoint"] == "best"
    assert math.isfinite(record["nll_per_step"])
    assert record["bits_per_dim"] == pytest.approx(record["nll_per_step"] / (2 * math.log(2)))
    assert (
        cli("evaluate", "--run-dir", runs / "resumed", "--checkpoint", "last", "--split", "val")
        == 0
    )
    assert last_json()["epoch"] == 2


def test_a_run_folder_written_before_the_renames_still_evaluates(runs, cli, last_json, tmp_path):
    import json
    import shutil

    import torch

    from pyro_frmdn.files import read_torch_file

    old = tmp_path / "old"
    shutil.copytree(runs / "straight", old)
    assert cli("evaluate", "--run-dir", old) == 0
    expected = last_json()["nll_per_step"]
    (old / "splits.json").unlink()  # version 0.1 made the split again from data.seed
    config = json.loads((old / "config.json").read_text())  # as version 0.1 wrote it
    for key in ("path", "id_column", "time_column", "columns", "split_column", "transform"):
        del config["data"][key]
    del config["train"]["threads"]
    config["model"]["factor"] = config["model"].pop("factor_mode")
    config["train"]["clip_norm"] = config["train"].pop("clip_value")
    (old / "config.json").write_text(json.dumps(config))
    for file in (old / "checkpoints").glob("*.pt"):
        state = read_torch_file(file, "checkpoint")
        state["config"]["factor"] = state["config"].pop("factor_mode")
        torch.save(state, file)  # a plain torch file, as version 0.1 wrote (no checksum)
    with pytest.warns(FutureWarning, match="factor: renamed to factor_mode"):
        assert cli("evaluate", "--run-dir", old) == 0
    assert last_json()["nll_per_step"] == expected
