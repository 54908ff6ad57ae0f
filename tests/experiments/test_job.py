"""One job: samples at the spec's temperature, and a diverging run that keeps its best epoch."""

import math
from dataclasses import asdict, replace

import pyro
import pytest
import torch

from pyro_frmdn.data import _cache
from pyro_frmdn.experiments import job as jobs
from pyro_frmdn.experiments.datasets import Prepared
from pyro_frmdn.experiments.sizes import build_variant
from pyro_frmdn.experiments.specs import DATASETS, quick_spec
from pyro_frmdn.experiments.stats import summarise

INSTALL = _cache.INSTALL_HINT


def test_samples_for_the_plots_are_drawn_at_the_specs_temperature():
    spec = replace(DATASETS["digits8"], sample_temperature=0.4)
    model = build_variant("frmdn_cov", spec, 8, 6)
    data = Prepared({}, {}, {"y": torch.zeros(3, 8, 8), "mask": None}, 8, 0, "")
    got = jobs._samples(model, spec, data, seed=5)
    pyro.set_rng_seed(5)
    want = model.sample(8, 8, pi_temperature=0.4, scale_temperature=0.4)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    pyro.set_rng_seed(5)
    assert not torch.allclose(model.sample(8, 8), want)  # the temperature does change them


def test_a_run_that_diverges_keeps_its_best_epoch_and_says_so(monkeypatch, tmp_path):
    pytest.importorskip("sktime", reason=f"sktime is not installed ({INSTALL})")
    import pyro_frmdn.infer.training as training

    monkeypatch.setenv(_cache.CACHE_ENV, str(tmp_path))
    spec = replace(quick_spec(DATASETS["vowels"]), train=16, epochs=3, batch_size=8)
    step, calls = training.svi_step, []  # fit's one SVI step

    def nan_from_the_third_step(*args, **kwargs):  # 2 steps an epoch: NaN in epoch 2
        calls.append(1)
        loss = step(*args, **kwargs)
        if len(calls) <= 2:
            return loss
        for p in pyro.get_param_store().values():  # the model's own parameters, ruined
            p.data.fill_(math.nan)
        return math.nan

    monkeypatch.setattr(training, "svi_step", nan_from_the_third_step)
    job = {
        "spec": asdict(spec),
        "variant": "rmdn_diag",
        "seed": 0,
        "hidden_dim": 8,
        "device": "cpu",
        "threads": 1,
        "extras": False,
        "out": str(tmp_path),
    }
    r = jobs.run_job(job)
    assert r["diverged"] == "the loss became nan at epoch 2, step 1"
    assert [h["epoch"] for h in r["history"]] == [1] and math.isfinite(r["test_nll"])
    models = summarise(spec, [r])["models"]
    assert models["rmdn_diag"]["diverged"] == [0]
