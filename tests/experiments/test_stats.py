"""The statistics over seeds and the verdict."""

import math

import pytest

from pyro_frmdn.experiments.report import verdict_line
from pyro_frmdn.experiments.stats import mean_std, verdict


def _model(values, tpe):
    return {"test_nll": mean_std(values), "time_per_epoch": mean_std([tpe])}


def test_stats_use_the_sample_standard_deviation():
    s = mean_std([1.0, 2.0, 4.0])
    assert s["mean"] == pytest.approx(7 / 3)
    assert s["std"] == pytest.approx(
        math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2)
    )
    assert mean_std([3.0])["std"] == 0.0


def test_the_verdict_compares_the_best_frmdn_and_rmdn_against_the_seed_spread():
    models = {
        "rmdn_diag": _model([2.0, 2.2, 2.4], 1.0),
        "rmdn_lowrank": _model([1.9, 2.0, 2.1], 2.0),  # the better RMDN: mean 2.0, std 0.1
        "frmdn_cov": _model([1.5, 1.6, 1.7], 3.0),  # the better FRMDN: mean 1.6, std 0.1
        "frmdn_prec": _model([1.7, 1.8, 1.9], 5.0),
    }
    v = verdict(models)
    assert (v["frmdn"], v["rmdn"], v["metric"]) == ("frmdn_cov", "rmdn_lowrank", "test_nll")
    assert v["improvement"] == pytest.approx(0.4)
    assert v["spread"] == pytest.approx(math.sqrt(0.1**2 + 0.1**2))
    assert v["relative"] == pytest.approx(0.2)
    assert v["time_ratio"] == pytest.approx(1.5) and v["wins"]
    models["frmdn_cov"] = _model([1.1, 1.6, 2.1], 3.0)  # same mean, std 0.5: no longer a win
    v = verdict(models)
    assert v["improvement"] == pytest.approx(0.4) and not v["wins"]
    assert "does **not** beat" in verdict_line({"verdict": v})
    assert verdict({"gaussian": _model([1.0], 1.0)}) is None
