"""The handwriting run's model.window_step: the attention window's initial pace from the config."""

import json
import math

import pytest
import torch

import pyro_frmdn as pf
from pyro_frmdn.cli import ConfigError, build_model, load_config, split_data

CONFIG = """
[data]
task = "handwriting"
num_writers = 10
num_texts = 20
texts_per_writer = 2
seed = 1

[model]
kind = "handwriting"
hidden_dim = 6
num_layers = 1
num_components = 2
window_components = 3
{extra}

[train]
epochs = 1
batch_size = 8
"""


SMALL = {"num_writers": 10, "num_texts": 20, "texts_per_writer": 2, "seed": 1}
DATA = ["data.task=handwriting", *(f"data.{k}={v}" for k, v in SMALL.items())]


@pytest.fixture(scope="module")
def data():
    return split_data(load_config(None, DATA)["data"])


def model_from(data, *sets):
    config = load_config(None, [*DATA, "model.kind=handwriting", "model.hidden_dim=4", *sets])
    return build_model(config["model"], data.obs_dim, data.model_defaults, task="handwriting")


def pace_of(model) -> torch.Tensor:
    """The window's initial step, characters a point: e to the bias of kappa-hat."""
    window = model.window
    return window.linear.bias[2 * window.num_components :].exp()


def test_window_step_starts_the_window_at_the_given_pace(data):
    pace = pace_of(model_from(data, "model.window_step=0.05"))
    assert torch.allclose(pace, torch.full_like(pace, 0.05), rtol=1e-6)


@pytest.mark.parametrize("sets", [(), ("model.window_step=null",)])
def test_unset_window_step_is_the_training_data_pace(data, sets):
    train = pf.data.handwriting("train", **SMALL, progress=False)
    characters = sum(len(t) for t in train.texts)
    points = sum(len(s) for s in train.strokes)
    pace = pace_of(model_from(data, *sets))
    assert torch.allclose(pace, torch.full_like(pace, characters / points), rtol=1e-5)
    assert not math.isclose(characters / points, math.exp(-2), rel_tol=0.1)  # not the default


@pytest.mark.parametrize("value", ["0", "-0.1", "NaN", "Infinity", '"fast"', "true"])
def test_a_window_step_that_is_not_positive_is_refused(value):
    with pytest.raises(ConfigError, match=r"model\.window_step must be a finite number > 0, got"):
        load_config(None, [f"model.window_step={value}"])


def test_a_text_blind_model_has_no_window_to_pace(data):
    with pytest.raises(ConfigError, match=r"model\.window_step paces the attention window, but"):
        model_from(data, "model.text_blind=true", "model.window_step=0.1")
    assert model_from(data, "model.text_blind=true").window is None  # unset: nothing to pace


def test_train_records_window_step_and_refuses_a_bad_one(cli, refused, tmp_path):
    path = tmp_path / "hw.toml"
    path.write_text(CONFIG.format(extra="window_step = 0.2"))
    args = ("train", "--config", path, "--no-progress")
    assert cli(*args, "--run-dir", tmp_path / "run") == 0
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["model"]
    assert saved["window_step"] == 0.2
    assert "window_step" not in pf.load(tmp_path / "run" / "model.pt").config  # not the model's
    assert cli("evaluate", "--run-dir", tmp_path / "run") == 0  # the run rebuilt with the key
    message = "model.window_step must be a finite number > 0, got -1"
    refused(
        tmp_path, message, *args, "--run-dir", tmp_path / "bad", "--set", "model.window_step=-1"
    )
