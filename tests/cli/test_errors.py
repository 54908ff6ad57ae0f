"""Every bad value of the command: one line on stderr, exit status 2, and nothing written."""

import json
import shutil

import pytest
import torch

from pyro_frmdn import experiments
from pyro_frmdn.cli.checks import ConfigError, resolve_device_value

NO_MPS = pytest.mark.skipif(torch.backends.mps.is_available(), reason="MPS is available here")


DEVICE = "--device must be a device name such as 'cpu', 'cuda' or 'cuda:1', got"
TRAIN = [
    (["--device", "gpu"], f"{DEVICE} 'gpu'"),
    pytest.param(["--device", "mps"], "--device 'mps': MPS is not available here", marks=NO_MPS),
    (["--device", "cuda:99"], "--device 'cuda:99'"),
    (["--device", ""], f"{DEVICE} ''"),
    (["--device", "meta"], f"{DEVICE} 'meta'"),
    (["--epochs", "-1"], "--epochs must be an integer >= 0, got -1"),
    (["--set", "model.flow_hidden_dims=abc"], "model.flow_hidden_dims must be null or a non-empty"),
    (["--set", "model.flow_hidden_dims=8"], "model.flow_hidden_dims must be null or a non-empty"),
    (["--set", "model.flow_hidden_dims=[0]"], "list of integers >= 1 (e.g. [32, 32]), got [0]"),
    (["--set", "model.flow_hidden_dims=[]"], "model.flow_hidden_dims must be null or a non-empty"),
    (["--set", "model.flow_hidden_dims=[8.5]"], "model.flow_hidden_dims must be null or a non-"),
    (["--set", 'model.flow_precision="half"'], "flow_precision must be one of (None, 'bfloat16')"),
    (["--set", "model.min_diag=NaN"], "model.min_diag must be a finite number >= 0, got nan"),
    (["--set", "model.min_diag=Infinity"], "model.min_diag must be a finite number >= 0, got inf"),
    (["--set", "model.name="], "model.name must be a non-empty string, got ''"),
    (["--set", "model.num_components=0"], "model.num_components must be an integer >= 1, got 0"),
    (["--set", "data.steps=0"], "data.steps must be an integer >= 2, got 0"),
    (["--set", "data.steps=1"], "data.steps must be an integer >= 2, got 1"),
    (["--set", "data.n=-5"], "data.n must be an integer >= 1, got -5"),
    (["--set", "data.seed=-1"], "data.seed must be an integer in [0, 2**32 - 1], got -1"),
    (["--set", "data.seed=99999999999999999999"], "data.seed must be an integer in [0, 2**32"),
    (["--set", "train.patience=five"], "train.patience must be None or an integer >= 1"),
    (["--set", "train.patience=0"], "train.patience must be None or an integer >= 1"),
    (["--set", "train.lr=-1"], "train.lr must be a finite number > 0, got -1"),
    (["--set", 'train.precision="bf16"'], "train.precision must be one of 32-true, bf16-mixed"),
    (["--set", "train.lr=NaN"], "train.lr must be a finite number > 0, got nan"),
    (["--set", "train.lr=Infinity"], "train.lr must be a finite number > 0, got inf"),
    (["--set", "train.batch_size=0"], "train.batch_size must be an integer >= 1, got 0"),
    (["--set", "train.lr_decay=0"], "train.lr_decay must be a finite number > 0"),
    (["--set", "train.clip_value=0"], "train.clip_value must be None or a finite number > 0"),
    (
        ["--set", "train.clip_value=10", "--set", "train.clip_norm=-1"],
        "train.clip_norm must be None or a finite number > 0",
    ),
    (["--set", "train.checkpoint_every=0"], "train.checkpoint_every must be an integer >= 1"),
    (["--set", "train.epochs=-1"], "train.epochs must be an integer >= 0, got -1"),
    (["--set", "train.seed=-1"], "train.seed must be an integer in [0, 2**32 - 1], got -1"),
    (["--set", "train.device=gpu"], "train.device must be a device name such as 'cpu'"),
    (["--set", "train.device=5"], "train.device must be a device name such as 'cpu'"),
]


@pytest.mark.parametrize("args, message", TRAIN)
def test_train_refuses_a_bad_value_before_writing_anything(
    args, message, config, tmp_path, refused
):
    refused(tmp_path, message, "train", "--run-dir", tmp_path / "run", "--config", config, *args)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("nan.toml", b"[train]\nlr = nan\n", "train.lr must be a finite number > 0, got nan"),
        ("latin1.toml", b"\xff\xfe[data]\n", "is not valid TOML"),
        ("folder", None, "is a folder, not a TOML file"),
    ],
)
def test_train_refuses_a_bad_config_file(name, content, message, tmp_path, refused):
    path = tmp_path / name
    path.mkdir() if content is None else path.write_bytes(content)
    refused(tmp_path, message, "train", "--run-dir", tmp_path / "run", "--config", path)


def test_a_run_folder_that_is_a_file_or_empty_is_refused(config, tmp_path, refused):
    (tmp_path / "file").write_text("not a folder")
    for command in (["train", "--config", config], ["evaluate"], ["sample"]):
        refused(tmp_path, "is a file, not a folder", *command, "--run-dir", tmp_path / "file")
    refused(tmp_path, "--run-dir must name a folder, got ''", "train", "--run-dir", "")


def test_a_checkpoints_file_in_the_run_folder_is_refused(config, tmp_path, refused):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoints").write_text("not a folder")
    message = "checkpoints is a file: a run keeps its checkpoints in a folder of that name"
    refused(tmp_path, message, "train", "--run-dir", tmp_path / "run", "--config", config)


def test_null_clip_value_turns_the_clamp_off(config, tmp_path, cli):
    """``fit(clip_value=None)`` is valid (losses summed over many values); so is the key."""
    run = tmp_path / "run"
    args = ("--config", config, "--set", "train.clip_value=null", "--epochs", 1, "--no-progress")
    assert cli("train", "--run-dir", run, *args) == 0
    assert json.loads((run / "config.json").read_text())["train"]["clip_value"] is None
    assert cli("evaluate", "--run-dir", run) == 0


@pytest.fixture
def run(runs, tmp_path):
    """A copy of a trained run, to damage."""
    shutil.copytree(runs / "straight", tmp_path / "run")
    return tmp_path / "run"


def edit_config(run, section: str, key: str, value) -> None:
    config = json.loads((run / "config.json").read_text())
    config[section][key] = value
    (run / "config.json").write_text(json.dumps(config))


LOADS = [
    ["train", "--resume", "--epochs", "3", "--no-progress"],
    ["evaluate"],
    ["sample", "--num", "2"],
]


@pytest.mark.parametrize("command", LOADS, ids=lambda c: c[0])
@pytest.mark.parametrize(
    "section, key, value, message",
    [
        ("data", "steps", 0, "data.steps must be an integer >= 2, got 0"),
        ("model", "flow_hidden_dims", "abc", "model.flow_hidden_dims must be null or a non-empty"),
        ("train", "device", "gpu", "train.device must be a device name such as 'cpu'"),
        ("train", "lr", -1, "train.lr must be a finite number > 0, got -1"),
    ],
)
def test_a_corrupt_saved_config_is_refused(command, section, key, value, message, run, refused):
    edit_config(run, section, key, value)
    refused(run, f"config.json: {message}", command[0], "--run-dir", run, *command[1:])


@pytest.mark.parametrize("command", LOADS, ids=lambda c: c[0])
def test_a_bad_device_is_refused_when_loading_a_run(command, run, refused):
    refused(run, f"{DEVICE} 'gpu'", command[0], "--run-dir", run, *command[1:], "--device", "gpu")


def test_resume_refuses_negative_epochs(run, refused):
    message = "--epochs must be an integer >= 0, got -1"
    refused(run, message, "train", "--run-dir", run, "--resume", "--epochs", "-1")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--pi-temperature", "inf"], "--pi-temperature must be a finite number > 0, got inf"),
        (["--scale-temperature", "nan"], "--scale-temperature must be a finite number > 0"),
        (["--temperature", "0"], "--temperature must be a finite number > 0, got 0"),
        (["--temperature", "0.5"], "--temperature is a sketch run's"),
        (["--seed", "-1"], "--seed must be an integer in [0, 2**32 - 1], got -1"),
        (["--seed", "99999999999999999999"], "--seed must be an integer in [0, 2**32 - 1]"),
        (["--out", "{tmp}/samples.png"], "--out must not end in .png"),
        (["--out", "{run}/config.json"], "would replace the run's own config.json"),
        (["--out", "{run}/checkpoints/best.pt"], "would replace the run's own checkpoints/best.pt"),
        (["--out", "{run}/learning_curve.pt"], "would replace the run's own learning_curve.png"),
        (["--out", "{tmp}"], "is a folder; give a file such as"),
        (["--out", ""], "--out must name a file, got ''"),
    ],
)
def test_sample_refuses_bad_options(args, message, run, refused):
    args = [a.format(tmp=run.parent, run=run) for a in args]
    refused(run.parent, message, "sample", "--run-dir", run, "--num", "2", *args)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--hold", "0"], "hold must be an integer >= 1, got 0"),
        (["--seed", "-1"], "seed must be an integer >= 0, got -1"),
        (["--size", "0"], "size must be an integer >= 1, got 0"),
        (["--steps", "0"], "steps must be an integer >= 1, got 0"),
        (["--episodes", "-1"], "episodes must be an integer >= 0, got -1"),
        (["--skip-frames", "-1"], "skip_frames must be an integer >= 0, got -1"),
        (["--out", ""], "--out must name a folder, got ''"),
    ],
)
def test_collect_refuses_bad_options_before_writing(args, message, tmp_path, refused):
    out = ["--out", tmp_path / "rollouts", "--episodes", "1", "--no-progress"]
    refused(tmp_path, message, "collect", *out, *args)


def test_collect_refuses_a_file_for_its_folder(tmp_path, refused):
    (tmp_path / "file").write_text("x")
    refused(tmp_path, "is a file, not a folder", "collect", "--out", tmp_path / "file")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--device", "gpu"], f"{DEVICE} 'gpu'"),
        (["--workers", "0"], "--workers must be an integer >= 1, got 0"),
        (["--scale", "nan"], "--scale must be a finite number > 0, got nan"),
        (["--scale", "inf"], "--scale must be a finite number > 0, got inf"),
        (["--seeds", "0"], "--seeds must be an integer >= 1, got 0"),
        (["--epochs", "0"], "--epochs must be an integer >= 1, got 0"),
        (["--train-size", "-1"], "--train-size must be an integer >= 1, got -1"),
        (["--out", "{tmp}/file"], "is a file, not a folder"),
    ],
)
def test_bench_refuses_bad_options_before_running(args, message, tmp_path, refused, monkeypatch):
    def ran(args):
        raise AssertionError("the bench ran")

    monkeypatch.setattr(experiments, "main", ran)
    (tmp_path / "file").write_text("x")
    args = [a.format(tmp=tmp_path) for a in args]
    refused(tmp_path, message, "bench", "--out", tmp_path / "bench", "--quick", *args)


@pytest.mark.parametrize("option", ["--datasets", "--models"])
def test_bench_refuses_unknown_names(option, tmp_path, refused):
    refused(tmp_path, "unknown", "bench", "--out", tmp_path / "bench", option, "nothing")


def test_a_cuda_device_beyond_those_of_the_machine_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device_value("--device", "cuda:1") == torch.device("cuda:1")
    with pytest.raises(ConfigError, match=r"'cuda:2': this machine has 2 CUDA device\(s\)"):
        resolve_device_value("--device", "cuda:2")
