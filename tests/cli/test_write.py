"""pyro-frmdn train on handwriting, then pyro-frmdn write: files, refusals, the run's checks."""

import json
from pathlib import Path

import pytest
import torch

import pyro_frmdn as pf
from pyro_frmdn.cli import load_config

TINY = """
[data]
task = "handwriting"
num_writers = 10
num_texts = 20
texts_per_writer = 2
seed = 1

[model]
kind = "handwriting"
hidden_dim = 8
num_layers = 2
num_components = 2
window_components = 2
text_blind = {blind}

[train]
epochs = 1
batch_size = 8
"""


@pytest.fixture(scope="module")
def hw_runs(cli, tmp_path_factory):
    """A handwriting run and a text-blind one, each trained for an epoch."""
    root = tmp_path_factory.mktemp("hw")
    for name, blind in (("run", "false"), ("blind", "true")):
        config = root / f"{name}.toml"
        config.write_text(TINY.format(blind=blind))
        assert cli("train", "--config", config, "--run-dir", root / name, "--no-progress") == 0
    return root


def test_train_saves_a_handwriting_model_with_the_data_alphabet_and_scale(hw_runs):
    model = pf.load(hw_runs / "run" / "model.pt")
    assert isinstance(model, pf.HandwritingSynthesis)
    data = pf.data.handwriting("train", num_writers=10, num_texts=20, texts_per_writer=2, seed=1)
    assert model.alphabet == data.alphabet
    offsets = torch.cat(data.strokes)[:, :2]
    assert model.offset_scale == pytest.approx(float(offsets.std()), rel=1e-5)
    config = json.loads((hw_runs / "run" / "config.json").read_text())
    assert config["model"]["kind"] == "handwriting" and config["model"]["alphabet"] == data.alphabet


def test_write_saves_the_figure_the_attention_and_the_strokes(cli, hw_runs, tmp_path, capsys):
    out = tmp_path / "hello.png"
    args = ("write", "hi there", "ok", "--run-dir", hw_runs / "run", "--max-steps", 40)
    assert cli(*args, "--bias", 1.5, "--out", out) == 0
    record = torch.load(out.with_suffix(".pt"), weights_only=True)
    assert record["texts"] == ["hi there", "ok"]
    for text, s, a in zip(record["texts"], record["strokes"], record["attention"], strict=True):
        assert s.shape[1] == 3 and 1 <= len(s) <= 40 and s[-1, 2] == 1
        assert a.shape == (len(s), len(text))
    for i in (1, 2):
        assert (tmp_path / f"hello_attention{i}.png").read_bytes()[:4] == b"\x89PNG"
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert "hi there" in capsys.readouterr().out
    again = tmp_path / "again.png"
    assert cli(*args, "--bias", 1.5, "--out", again) == 0  # the same seed writes the same
    for a, b in zip(
        record["strokes"],
        torch.load(again.with_suffix(".pt"), weights_only=True)["strokes"],
        strict=True,
    ):
        assert torch.equal(a, b)


def test_write_an_svg(cli, hw_runs, tmp_path):
    out = tmp_path / "w.svg"
    assert cli("write", "abc", "--run-dir", hw_runs / "run", "--out", out, "--max-steps", 20) == 0
    assert out.read_text().startswith("<svg") and "<path" in out.read_text()


def test_a_text_blind_run_writes_up_to_the_cap_without_attention(cli, hw_runs, tmp_path):
    out = tmp_path / "b.png"
    assert cli("write", "ab", "--run-dir", hw_runs / "blind", "--out", out, "--max-steps", 9) == 0
    assert len(torch.load(out.with_suffix(".pt"), weights_only=True)["strokes"][0]) == 9
    assert not (tmp_path / "b_attention1.png").exists()


def test_evaluate_scores_a_handwriting_run(cli, hw_runs, last_json):
    assert cli("evaluate", "--run-dir", hw_runs / "run", "--checkpoint", "last") == 0
    record = last_json()
    model = pf.load(hw_runs / "run" / "checkpoints" / "last.pt")
    data = pf.data.handwriting("test", num_writers=10, num_texts=20, texts_per_writer=2, seed=1)
    y, mask = pf.data.pad_strokes(data.strokes)
    nll = -float(model.log_prob(y, data.texts, mask).sum().detach()) / int(mask.sum())
    assert record["nll_per_step"] == pytest.approx(nll, rel=1e-4)


@pytest.mark.parametrize(
    "args, message",
    [
        (("é",), "the texts have 'é', which the model cannot write"),
        (("ab", "--bias", "-1"), "--bias must be a finite number >= 0"),
        (("ab", "--max-steps", "0"), "--max-steps must be an integer >= 1"),
        (("ab", "--out", "w.jpg"), "--out must end in .png or .svg"),
        (("ab", "--pi-temperature", "0"), "--pi-temperature must be a finite number > 0"),
    ],
)
def test_bad_options_are_refused(refused, hw_runs, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    refused(hw_runs / "run", message, "write", *args, "--run-dir", hw_runs / "run")


def test_the_run_own_files_are_never_replaced(refused, hw_runs):
    run = hw_runs / "run"
    refused(
        run,
        "would replace the run's own model.pt",
        "write",
        "a",
        "--run-dir",
        run,
        "--out",
        run / "model.png",
    )


def test_sample_on_a_handwriting_run_points_to_write(refused, hw_runs):
    run = hw_runs / "run"
    message = f'is a handwriting run: its model writes texts, not free sequences; use pyro-frmdn write "some text" --run-dir {run}'  # noqa: E501
    refused(run, message, "sample", "--run-dir", run)


def test_a_run_that_does_not_write_texts_is_refused(refused, runs):
    run = runs / "straight"
    refused(run, "holds a FRMDN, which does not write texts", "write", "a", "--run-dir", run)


@pytest.mark.parametrize(
    "sets, message",
    [
        (
            ("model.kind=frmdn",),
            'model.kind = "handwriting" and data.task = "handwriting" go together',
        ),
        (("data.task=branching",), 'model.kind = "handwriting" and data.task = "handwriting" go'),
        (("data.transform=standardize",), 'data.transform must be "none" for handwriting'),
        (("model.window_components=0",), "model.window_components must be an integer >= 1"),
        (("model.alphabet=5",), "model.alphabet must be a non-empty string"),
    ],
)
def test_train_refuses_a_handwriting_config_that_cannot_work(
    refused, hw_runs, tmp_path, sets, message
):
    args = ["train", "--config", hw_runs / "run.toml", "--run-dir", tmp_path / "new"]
    for s in sets:
        args += ["--set", s]
    refused(tmp_path, message, *args)


def test_the_example_config_is_a_handwriting_run():
    config = load_config(Path(__file__).parents[2] / "examples" / "configs" / "handwriting.toml")
    assert config["data"]["task"] == "handwriting" and config["model"]["kind"] == "handwriting"
    assert config["data"]["transform"] == "none"
