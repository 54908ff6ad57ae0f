"""pyro-frmdn train and evaluate on a sketch run: KanjiVG in stroke-5, SketchVAE, its bounds."""

import json
import math
from pathlib import Path

import pyro
import pytest
import torch
from support.real_data import needs

import pyro_frmdn as pf
from pyro_frmdn.cli import load_config
from pyro_frmdn.data import SPLITS, kanji_stroke5
from pyro_frmdn.data.kanji import kanji_split

TINY = """
[data]
task = "kanji"
n = 3
spacing = 10.0
grid = 1.0
svg_dir = "{svg_dir}"
seed = 2

[model]
kind = "sketch"
latent_dim = 2
encoder_dim = 4
hidden_dim = 8
num_components = 2
rank = 1
flow_layers = {flow_layers}
kl_warmup = 5

[train]
epochs = 2
batch_size = 2
"""

STROKES = ["M10,20 L60,20", "M20,10 L20,80", "M10,60 C30,70 50,70 90,60", "M50,50 L80,90"]


def _svg(paths: list[str]) -> str:
    body = "".join(f'<path id="s{i}" d="{d}"/>' for i, d in enumerate(paths))
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="109" height="109" '
        f'viewBox="0 0 109 109"><g>{body}</g></svg>'
    )


def kanji_folder(folder: Path) -> Path:
    """Three kanji of each of KanjiVG's splits, each drawn with 1 to 4 of :data:`STROKES`."""
    found = {"train": [], "val": [], "test": []}
    code = 0x4E00
    while min(len(v) for v in found.values()) < 3:
        character = chr(code)
        if len(found[kanji_split(character)]) < 3:
            found[kanji_split(character)].append(code)
        code += 1
    for i, code in enumerate(sorted(c for codes in found.values() for c in codes)):
        (folder / f"{code:05x}.svg").write_text(_svg(STROKES[: 1 + i % 4]))
    return folder


@pytest.fixture(scope="module")
def sketch_runs(cli, tmp_path_factory):
    """A sketch run with an RMDN decoder and one with an FRMDN decoder, trained 2 epochs."""
    needs("svgpathtools")
    root = tmp_path_factory.mktemp("sketch")
    (root / "svg").mkdir()
    svg_dir = kanji_folder(root / "svg")
    for name, flow_layers in (("rmdn", 0), ("frmdn", 1)):
        config = root / f"{name}.toml"
        config.write_text(TINY.format(svg_dir=svg_dir.as_posix(), flow_layers=flow_layers))
        args = ("train", "--config", config, "--run-dir", root / name, "--no-progress")
        assert cli(*args) == 0
    return root


@pytest.mark.parametrize("name", ["rmdn", "frmdn"])
def test_train_saves_a_sketch_vae_of_the_config(sketch_runs, name):
    model = pf.load(sketch_runs / name / "model.pt")
    assert isinstance(model, pf.SketchVAE)
    assert (model.latent_dim, model.decoder.hidden_size, len(model.flow) > 0) == (
        2,
        8,
        name == "frmdn",
    )
    config = json.loads((sketch_runs / name / "config.json").read_text())
    assert config["model"]["kind"] == "sketch" and config["data"]["task"] == "kanji"
    history = json.loads((sketch_runs / name / "history.json").read_text())
    best = min(history, key=lambda r: r["val_nll"])["epoch"]  # the weights saved
    assert int(model.kl_steps) == 2 * best  # 2 batches of the 3 training kanji an epoch


def test_evaluate_reports_the_bounds_of_the_test_kanji(cli, sketch_runs, last_json):
    run = sketch_runs / "rmdn"
    args = ("evaluate", "--run-dir", run, "--particles", 32)
    assert cli(*args) == 0
    record = last_json()
    model = pf.load(run / "model.pt").eval()
    config = json.loads((run / "config.json").read_text())["data"]
    options = dict(spacing=10.0, grid=1.0, svg_dir=config["svg_dir"], seed=2)
    _, scale = kanji_stroke5("train", limit=3, **options)
    splits = [kanji_stroke5(s, limit=3, scale=scale, **options)[0]["y"] for s in SPLITS]
    length = max(y.shape[1] for y in splits)  # every split padded with end rows to one length
    end = torch.tensor([0.0, 0, 0, 0, 1]).expand(3, length - splits[2].shape[1], 5)
    test = torch.cat([splits[2], end], 1)
    # the reference: 4000 draws of the model's own log-weights, 125 groups of the 32 evaluate
    # takes: the mean of the groups' bounds, within 4 standard errors
    torch.manual_seed(0)
    with torch.no_grad():
        lw = model.log_weights(test, num_particles=4000).reshape(125, 32, -1)
    groups = {
        "elbo_per_drawing": lw.mean(1).mean(-1),
        "iwae_per_drawing": (torch.logsumexp(lw, 1) - math.log(32)).mean(-1),
    }
    for key, values in groups.items():
        error = 4 * float(values.std()) + 1e-4
        assert record[key] == pytest.approx(float(values.mean()), abs=error), key
    assert record["split"] == "test" and record["particles"] == 32
    assert record["kl_per_drawing"] == pytest.approx(float(model.kl(test).mean()), rel=1e-4)
    assert float(groups["elbo_per_drawing"].mean()) < float(groups["iwae_per_drawing"].mean())


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("model.kind=frmdn",), 'model.kind = "sketch" and data.task = "kanji" go together'),
        (("data.task=branching",), 'model.kind = "sketch" and data.task = "kanji" go together'),
        (("data.transform=standardize",), 'data.transform must be "none" for kanji'),
        (("data.spacing=0",), "data.spacing must be a finite number > 0, got 0"),
        (("model.latent_dim=-1",), "model.latent_dim must be"),
        (("model.kl_end=0",), "model.kl_end must be a finite number > 0, got 0"),
        (("model.guide_flow=maf",), "guide_flow must be None or 'iaf', got 'maf'"),
    ],
)
def test_train_refuses_a_sketch_config_that_cannot_work(
    refused, sketch_runs, tmp_path, sets, message
):
    config = tmp_path / "sketch.toml"
    svg_dir = sketch_runs / "svg"
    config.write_text(TINY.format(svg_dir=svg_dir.as_posix(), flow_layers=0))
    args = ("train", "--config", config, "--run-dir", tmp_path / "run", "--no-progress")
    refused(tmp_path, message, *args, *(a for s in sets for a in ("--set", s)))


def test_evaluate_refuses_particles_below_one(refused, sketch_runs):
    run = sketch_runs / "rmdn"
    refused(run, "--particles must be", "evaluate", "--run-dir", run, "--particles", 0)


def test_the_example_config_is_a_sketch_run():
    config = load_config(Path(__file__).parents[2] / "examples" / "configs" / "sketch.toml")
    assert config["data"]["task"] == "kanji" and config["model"]["kind"] == "sketch"
    assert config["data"]["transform"] == "none"


def _kanji(run, split):
    """A split of the run's kanji in stroke-5 as the test rebuilds it, and the offsets' scale."""
    config = json.loads((run / "config.json").read_text())["data"]
    options = dict(spacing=10.0, grid=1.0, svg_dir=config["svg_dir"], seed=2)
    _, scale = kanji_stroke5("train", limit=3, **options)
    return kanji_stroke5(split, limit=3, scale=scale, **options)[0]["y"], scale


@pytest.mark.parametrize("name", ["rmdn", "frmdn"])
def test_sample_draws_from_the_prior_in_canvas_units(cli, sketch_runs, tmp_path, name):
    run = sketch_runs / name
    out = tmp_path / "drawings.pt"
    args = ("sample", "--run-dir", run, "--num", 3, "--steps", 6, "--seed", 5)
    assert cli(*args, "--temperature", 0.5, "--out", out) == 0
    saved = torch.load(out)
    drawings = saved["samples"]
    assert drawings.shape == (3, 6, 5) and saved["prime"] is None
    # the same draws from the model itself, offsets times the training scale
    model = pf.load(run / "model.pt").eval()
    _, scale = _kanji(run, "train")
    pyro.set_rng_seed(5)
    expected = model.sample(3, 6, temperature=0.5)
    assert torch.allclose(drawings[..., :2], expected[..., :2] * scale, rtol=1e-5, atol=1e-6)
    assert torch.equal(drawings[..., 2:], expected[..., 2:])
    assert torch.equal(drawings[..., 2:].sum(-1), torch.ones(3, 6))  # one-hot pen
    assert (out.with_suffix(".npy")).exists() and (out.with_suffix(".png")).stat().st_size > 0
    header = out.with_suffix(".csv").read_text().splitlines()[0]
    assert header == "sequence,step,dx,dy,p_down,p_up,p_end"


def test_sample_completes_the_first_rows_of_real_kanji(cli, sketch_runs, tmp_path):
    run = sketch_runs / "rmdn"
    out = tmp_path / "completions.pt"
    args = ("sample", "--run-dir", run, "--num", 2, "--steps", 4, "--prime-steps", 2)
    assert cli(*args, "--split", "val", "--greedy", "--out", out) == 0
    saved = torch.load(out)
    val, scale = _kanji(run, "val")
    real = val[:, :, :2] * scale
    # the first two rows are those of the first two validation kanji, in canvas units
    assert saved["samples"].shape == (2, 6, 5)
    assert torch.allclose(saved["samples"][:, :2, :2], real[:2, :2], rtol=1e-5, atol=1e-5)
    assert torch.allclose(saved["prime"][..., :2], real[:2, :2], rtol=1e-5, atol=1e-5)


def test_sample_on_a_sketch_run_refuses_the_two_temperatures(refused, sketch_runs):
    run = sketch_runs / "rmdn"
    message = "one temperature tempers its mixture weights, variances and pen state together"
    refused(run, message, "sample", "--run-dir", run, "--pi-temperature", 0.5)
    refused(run, "--prime-steps must be at most", "sample", "--run-dir", run, "--prime-steps", 99)
