"""pyro-frmdn on the user's files: each format, the recorded split, the transform, the units."""

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

import pyro_frmdn as pf
from pyro_frmdn.cli import train

MODEL = """
[model]
hidden_dim = 8
num_components = 2
rank = 1
flow_layers = 1
flow_hidden_dims = [8]

[train]
epochs = 2
batch_size = 8
lr = 0.01
"""
CSV_OPTIONS = ("--set", "data.id_column=walk", "--set", "data.time_column=t")


def walks(n=24, seed=0, loc=0.0, scale=1.0):
    """``n`` random walks (T_i, 2) of 5 to 8 steps, as ``loc + scale * walk``."""
    rng = np.random.default_rng(seed)
    return [
        loc + scale * np.cumsum(rng.normal(size=(rng.integers(5, 9), 2)), axis=0) for _ in range(n)
    ]


def write_csv(path, sequences, split=None, order=None):
    """A long CSV: ``walk``, ``t``, ``east``, ``north`` (and ``part``), the rows of each walk
    in reverse time order; the walks in ``order`` of first appearance (default: 0, 1, ...)."""
    frame = pd.DataFrame(
        [
            {"walk": f"w{i}", "t": t, "east": v[0], "north": v[1]}
            | ({} if split is None else {"part": split[i]})
            for i in (range(len(sequences)) if order is None else order)
            for t, v in reversed(list(enumerate(sequences[i])))
        ]
    )
    frame.to_csv(path, index=False)
    return path


def write_npz(path, sequences):
    """An .npz with ``y`` (N, T, D) zero-padded and ``mask`` (N, T)."""
    y, mask = pf.pad_sequences([torch.tensor(s, dtype=torch.float64) for s in sequences])
    np.savez(path, y=y.numpy(), mask=mask.numpy())
    return path


def read(run, name):
    return json.loads((run / name).read_text())


@pytest.fixture(scope="module")
def model_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "model.toml"
    path.write_text(MODEL)
    return path


@pytest.fixture(scope="module")
def csv_run(model_config, cli, tmp_path_factory):
    """A run on a CSV of 24 walks in metres around 1000 (scale 50) of 5 to 8 steps."""
    root = tmp_path_factory.mktemp("csv")
    data = write_csv(root / "walks.csv", walks(loc=1000.0, scale=50.0))
    run = root / "run"
    args = ("--config", model_config, "--data", data, *CSV_OPTIONS, "--no-progress")
    assert cli("train", *args, "--run-dir", run) == 0
    return run


def test_a_csv_run_records_its_data_split_and_transform(csv_run):
    config = read(csv_run, "config.json")["data"]
    assert config["task"] is None and config["n"] is None and config["steps"] is None
    assert config["transform"] == "standardize" and config["path"].endswith("walks.csv")
    split = read(csv_run, "splits.json")
    assert split["sequences"] == 24 and [len(split[k]) for k in ("train", "val", "test")] == [
        19,
        3,
        2,
    ]
    assert split["ids"]["test"] == [f"w{i}" for i in split["test"]]
    data = pf.data.read_sequences(config["path"], id_column="walk", time_column="t")
    train = data["y"][split["train"]][data["mask"][split["train"]]].double()  # observed steps
    state = read(csv_run, "transform.json")
    assert state["loc"] == pytest.approx(train.mean(0).tolist(), rel=1e-6)  # the train split's
    model, saved = pf.load(csv_run / "model.pt", with_transform=True)
    assert saved["kind"] == "standardize" and saved["loc"].tolist() == state["loc"]
    assert isinstance(model, pf.FRMDN)


def test_samples_come_back_in_the_users_units(csv_run, cli):
    assert cli("sample", "--run-dir", csv_run, "--num", 64, "--steps", 6) == 0
    saved = torch.load(csv_run / "samples.pt", weights_only=True)["samples"]
    values = np.load(csv_run / "samples.npy")
    assert values.shape == (64, 6, 2) and np.array_equal(values, saved.numpy())
    data = pd.read_csv(read(csv_run, "config.json")["data"]["path"])[["east", "north"]]
    mean, std = data.to_numpy().mean(0), data.to_numpy().std(0)  # about 1000 and 50-100 m
    assert np.all(np.abs(values.mean((0, 1)) - mean) < std) and np.all(values.std((0, 1)) > 5)
    table = pd.read_csv(csv_run / "samples.csv")
    assert list(table.columns) == ["sequence", "step", "east", "north"] and len(table) == 64 * 6
    assert np.allclose(table[["east", "north"]].to_numpy(), values.reshape(-1, 2), rtol=1e-6)
    assert (csv_run / "samples.png").is_file()
    primed = ("--num", 3, "--steps", 2, "--prime-steps", 5, "--out", csv_run.parent / "p.pt")
    assert cli("sample", "--run-dir", csv_run, *primed, "--split", "train") == 0
    prime = torch.load(csv_run.parent / "p.pt", weights_only=True)["prime"]
    assert prime.shape == (3, 5, 2) and abs(float(prime.mean()) - 1000) < 500  # user units


def test_evaluate_reports_the_nll_in_both_spaces(csv_run, cli, last_json):
    assert cli("evaluate", "--run-dir", csv_run, "--bits-per-dim") == 0
    record = last_json()
    scale = read(csv_run, "transform.json")["scale"]
    # z = (y - m) / s: log|det J| = -Σ log s_d at every step, so NLL_user = NLL_model + Σ log s_d
    expected = record["nll_per_step"] + sum(math.log(s) for s in scale)
    assert record["nll_per_step_user"] == pytest.approx(expected, abs=1e-9)
    assert record["bits_per_dim"] == pytest.approx(record["nll_per_step"] / (2 * math.log(2)))


def test_a_change_of_units_moves_the_nll_by_its_log_jacobian(
    model_config, cli, last_json, tmp_path
):
    """The known answer: the same walks in other units (y = 1000 + 50 x) standardise to the same
    model-space data, so the model's NLL is the same and the NLL in the data's units is larger by
    log 50 per dimension (npz files with a mask)."""
    x = walks(seed=1)
    records = []
    for name, loc, scale in (("x", 0.0, 1.0), ("y", 1000.0, 50.0)):
        data = write_npz(tmp_path / f"{name}.npz", [loc + scale * s for s in x])
        run = tmp_path / name
        assert (
            cli(
                "train", "--config", model_config, "--data", data, "--run-dir", run, "--no-progress"
            )
            == 0
        )
        assert cli("evaluate", "--run-dir", run) == 0
        records.append(last_json())
    (nx, ux), (ny, uy) = ((r["nll_per_step"], r["nll_per_step_user"]) for r in records)
    assert ny == pytest.approx(nx, abs=1e-3)
    assert uy - ux == pytest.approx(2 * math.log(50.0), abs=2e-3)


def test_a_folder_of_sequences_without_a_transform(model_config, cli, last_json, tmp_path):
    folder = tmp_path / "walks"
    folder.mkdir()
    for i, s in enumerate(walks(n=12, seed=2)):
        np.save(folder / f"walk{i:02d}.npy", s)
    run = tmp_path / "run"
    args = ("--set", "data.transform=none", "--set", "data.val_fraction=0.25")
    assert (
        cli(
            "train",
            "--config",
            model_config,
            "--data",
            folder,
            *args,
            "--run-dir",
            run,
            "--no-progress",
        )
        == 0
    )
    assert not (run / "transform.json").exists()
    assert read(run, "splits.json")["ids"]["val"][0].endswith(".npy")
    assert cli("evaluate", "--run-dir", run) == 0
    record = last_json()
    assert record["nll_per_step_user"] == record["nll_per_step"]
    assert cli("sample", "--run-dir", run, "--num", 2) == 0
    table = pd.read_csv(run / "samples.csv")
    assert list(table.columns) == ["sequence", "step", "y0", "y1"] and table.step.max() == 7


def test_a_split_column_is_used_and_recorded(model_config, cli, tmp_path):
    labels = ["train"] * 14 + ["val"] * 3 + ["test"] * 3
    order = list(range(20))[::-1]  # the file names the walks w19, w18, ... in that order
    data = write_csv(tmp_path / "walks.csv", walks(n=20), split=labels, order=order)
    run = tmp_path / "run"
    args = (*CSV_OPTIONS, "--set", "data.split_column=part", "--epochs", 1, "--no-progress")
    assert cli("train", "--config", model_config, "--data", data, *args, "--run-dir", run) == 0
    split = read(run, "splits.json")
    assert split["ids"]["test"] == ["w19", "w18", "w17"] and split["test"] == [0, 1, 2]
    assert sorted(split["ids"]["train"]) == sorted(f"w{i}" for i in range(14))


def test_the_recorded_split_is_reused(csv_run, cli, last_json, tmp_path):
    """evaluate reads splits.json: neither another seed in the config nor the file's sequences
    read in another order change which sequences are the test split."""
    assert cli("evaluate", "--run-dir", csv_run) == 0
    expected = last_json()["nll_per_step"]
    run = tmp_path / "run"
    shutil.copytree(csv_run, run)
    config = read(run, "config.json")
    config["data"] |= {"seed": 7, "test_fraction": 0.5}
    config["data"]["path"] = str(
        write_csv(tmp_path / "walks.csv", walks(loc=1000.0, scale=50.0), order=range(23, -1, -1))
    )
    (run / "config.json").write_text(json.dumps(config))
    assert cli("evaluate", "--run-dir", run) == 0
    assert last_json()["nll_per_step"] == expected


def test_logit_and_dequantize_transforms(model_config, cli, last_json, tmp_path):
    rng = np.random.default_rng(3)
    unit = tmp_path / "unit.npy"
    np.save(unit, 1 / (1 + np.exp(-rng.normal(size=(16, 6, 2)))))  # in (0, 1)
    counts = tmp_path / "counts.npy"
    np.save(counts, rng.poisson(20.0, size=(16, 6, 2)))  # integers
    for data, transform in ((unit, "logit"), (counts, '["dequantize", "standardize"]')):
        run = tmp_path / data.stem
        args = ("--data", data, "--set", f"data.transform={transform}", "--epochs", 1)
        assert cli("train", "--config", model_config, *args, "--run-dir", run, "--no-progress") == 0
        assert cli("evaluate", "--run-dir", run) == 0
        assert math.isfinite(last_json()["nll_per_step_user"])
        assert cli("sample", "--run-dir", run, "--num", 8) == 0
        values = np.load(run / "samples.npy")
        if transform == "logit":
            assert ((values >= 0) & (values <= 1)).all()
        else:
            assert np.array_equal(values, np.floor(values)) and values.mean() > 5  # counts


def test_threads_are_set_for_the_command_and_restored(config, cli, tmp_path, monkeypatch):
    seen, fit = [], train.fit

    def counting_fit(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return fit(*args, **kwargs)

    monkeypatch.setattr(train, "fit", counting_fit)
    before = torch.get_num_threads()
    common = ("--config", config, "--epochs", 1, "--no-progress")
    assert cli("train", *common, "--run-dir", tmp_path / "a", "--threads", 1) == 0
    assert cli("train", *common, "--run-dir", tmp_path / "b", "--set", "train.threads=2") == 0
    assert cli("train", *common, "--run-dir", tmp_path / "c") == 0
    assert seen == [1, 2, 1] and torch.get_num_threads() == before  # the default: 1
    assert read(tmp_path / "b", "config.json")["train"]["threads"] == 2


BAD = [
    ("{tmp}/nowhere.csv", [], "no data file or folder at"),
    ("{tmp}/walks.txt", [], "unknown suffix '.txt'"),
    ("{tmp}/walks.csv", ["--set", "data.id_column=nope"], "has no column 'nope' (id_column)"),
    ("{tmp}/walks.csv", ["--set", "data.columns=east"], "data.columns must be a non-empty list"),
    ("{tmp}/walks.csv", ["--set", "data.transform=zscore"], "data.transform must be one of"),
    (
        "{tmp}/walks.csv",
        ["--set", 'data.transform={{"kind": "dequantize", "levels": 1}}'],
        "levels must be None or an integer >= 2",
    ),
    ("{tmp}/walks.csv", ["--set", "data.transform=logit"], "LogitTransform needs data in [0, 1]"),
    ("{tmp}/walks.csv", ["--set", "data.transform=dequantize"], "data.transform 'dequantize'"),
    ("{tmp}/walks.csv", ["--threads", "0"], "--threads must be an integer >= 1, got 0"),
    ("{tmp}/walks.csv", ["--set", "train.threads=0"], "train.threads must be an integer >= 1"),
    (None, ["--set", "data.id_column=walk"], "data.id_column reads a file: it needs data.path"),
    (None, ["--set", "data.path=x.csv", "--set", "data.task=banana"], "give one"),
]


@pytest.mark.parametrize("data, args, message", BAD)
def test_bad_data_is_refused_before_writing_anything(data, args, message, tmp_path, refused):
    write_csv(tmp_path / "walks.csv", walks(n=6))
    (tmp_path / "walks.txt").write_text("walk,t,east\n")
    data = [] if data is None else ["--data", data.format(tmp=tmp_path)]
    args = [a.format(tmp=tmp_path) for a in args]
    refused(tmp_path, message, "train", "--run-dir", tmp_path / "run", *data, *CSV_OPTIONS, *args)


def test_a_run_whose_data_changed_is_refused(model_config, cli, tmp_path, refused):
    data = write_npz(tmp_path / "walks.npz", walks(n=10))
    run = tmp_path / "run"
    assert (
        cli(
            "train",
            "--config",
            model_config,
            "--data",
            data,
            "--epochs",
            1,
            "--run-dir",
            run,
            "--no-progress",
        )
        == 0
    )
    refused(
        tmp_path,
        "--resume uses the run folder's saved config",
        "train",
        "--run-dir",
        run,
        "--resume",
        "--data",
        data,
    )
    write_npz(data, walks(n=9))
    refused(run, "splits 10 sequences, but the data now hold 9", "evaluate", "--run-dir", run)
    data.unlink()
    refused(run, "no data file or folder at", "sample", "--run-dir", run)


def test_a_parquet_file(model_config, cli, tmp_path):
    pytest.importorskip("pyarrow")
    frame = pd.read_csv(write_csv(tmp_path / "walks.csv", walks(n=10)))
    frame.to_parquet(tmp_path / "walks.parquet")
    run = tmp_path / "run"
    args = ("--data", tmp_path / "walks.parquet", *CSV_OPTIONS, "--epochs", 1, "--no-progress")
    assert cli("train", "--config", model_config, *args, "--run-dir", run) == 0
    assert read(run, "splits.json")["ids"]["train"][0].startswith("w")
    assert cli("sample", "--run-dir", run, "--num", 2) == 0
    assert (run / "samples.csv").read_text().startswith("sequence,step,east,north\n")


def test_resuming_a_run_on_a_file_equals_an_uninterrupted_run(model_config, cli, tmp_path):
    """--resume reads the recorded split and transform (with the same dequantisation noise)."""
    counts = tmp_path / "counts.npz"
    rng = np.random.default_rng(4)
    np.savez(counts, y=rng.poisson(9.0, size=(20, 6, 2)), lengths=rng.integers(3, 7, size=20))
    args = ("--config", model_config, "--data", counts, "--no-progress")
    transform = ("--set", 'data.transform=["dequantize", "standardize"]')
    assert cli("train", *args, *transform, "--run-dir", tmp_path / "a", "--epochs", 1) == 0
    assert cli("train", "--run-dir", tmp_path / "a", "--resume", "--epochs", 2) == 0
    assert cli("train", *args, *transform, "--run-dir", tmp_path / "b", "--epochs", 2) == 0
    resumed, straight = (read(tmp_path / r, "history.json") for r in ("a", "b"))
    assert [(h["train_nll"], h["val_nll"]) for h in resumed] == [
        (h["train_nll"], h["val_nll"]) for h in straight
    ]
