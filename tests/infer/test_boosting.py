"""fit_boosted on data with inputs and masks (dicts and tuples), and ρ fitted on validation data."""

import itertools
import math

import pytest
import torch

import pyro_frmdn as pf
from pyro_frmdn.infer.boosting import (
    boosting_sample_weights,
    fit_boosted,
    line_search_rho,
    load_boosted,
)
from pyro_frmdn.models.boosted import RHO_MAX, BoostedFlow, BoostedFRMDN

FIT = dict(epochs_per_component=2, batch_size=16, lr=1e-2, progress=False)


def sequences(n=12, steps=5, seed=0, pad=math.nan):
    """``{"y", "x", "mask"}``: ragged sequences (D = 2, X = 1), padding filled with ``pad``."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, steps + 1, (n,), generator=g)
    mask = torch.arange(steps) < lengths[:, None]
    x = torch.randn(n, steps, 1, generator=g, dtype=torch.float64)
    y = x.cumsum(1) * torch.tensor([1.0, -0.5], dtype=torch.float64) + 0.3 * torch.randn(
        n, steps, 2, generator=g, dtype=torch.float64
    )
    return {"y": y.masked_fill(~mask[..., None], pad), "x": x, "mask": mask}


def mixture():
    torch.manual_seed(0)
    m = BoostedFRMDN(2, steps=5, input_dim=1, hidden_dim=4, num_components=1, flow_layers=1)
    return m.double()


def test_fit_boosted_scores_masked_sequences_with_inputs(tmp_path):
    train, val = sequences(), sequences(6, seed=1)
    m = mixture()
    h = fit_boosted(m, train, val, num_components=2, checkpoint=tmp_path, **FIT)
    w = m.weights()
    assert float(w[0]) > 0 and math.isclose(float(w.sum()), 1.0, rel_tol=1e-12)
    assert 0.0 <= float(m.rho[1]) <= RHO_MAX
    with torch.no_grad():
        lp = m.log_prob(**train)
    assert h["train_nll"][-1] == pytest.approx(-float(lp.sum()) / int(train["mask"].sum()))
    assert h["val_nll"][-1] == pytest.approx(pf.evaluate(m, val), rel=1e-12)
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(h["train_nll"]))
    loaded = load_boosted(tmp_path / "last.pt")
    assert loaded.input_dim == 1 and torch.equal(loaded.log_prob(**train), lp)


def test_a_tuple_is_the_dict_in_the_order_y_x_mask_and_padding_is_never_seen():
    train = sequences()
    a, b, c = mixture(), mixture(), mixture()
    fit_boosted(a, train, num_components=2, **FIT)
    fit_boosted(b, (train["y"], train["x"], train["mask"]), num_components=2, **FIT)
    garbage = sequences(pad=1e6)  # the same sequences, other padding
    fit_boosted(c, garbage, num_components=2, **FIT)
    with torch.no_grad():
        ref = a.log_prob(**train)
        assert torch.equal(b.log_prob(**train), ref)
        assert torch.equal(c.log_prob(**train), ref)


@pytest.mark.parametrize("weighting", ["weighted", "uniform"])
def test_the_loss_of_masked_sequences_matches_a_manual_computation(weighting):
    train = sequences()
    n, count = len(train["y"]), int(train["mask"].sum())
    m = mixture()
    fit_boosted(m, train, num_components=1, **FIT)
    # lr ~ 0: the new component does not move; one batch holds all the sequences
    options = {**FIT, "lr": 1e-300, "batch_size": n, "sample_weighting": weighting}
    h = fit_boosted(m, train, num_components=2, **options)
    with torch.no_grad():
        log_g0 = m.components[0].log_prob(**train)
        log_g1 = m.components[1].log_prob(**train)
    if weighting == "weighted":  # the weighted NLL per step
        w = boosting_sample_weights(-log_g0, (0.01, 0.1))
        expected = -float((w * log_g1).sum()) / (count / n)
    else:  # the plain NLL per step
        expected = -float(log_g1.sum()) / count
    assert h["loss"][-1] == [pytest.approx(expected, rel=1e-10)] * 2


def test_rho_fitted_on_validation_data():
    g = torch.Generator().manual_seed(0)
    train = torch.randn(96, 2, generator=g, dtype=torch.float64)
    val = 1.5 * torch.randn(48, 2, generator=g, dtype=torch.float64)
    torch.manual_seed(0)
    m = BoostedFlow(2, num_layers=1, hidden_dims=[8]).double()
    h = fit_boosted(m, train, val, num_components=3, rho_data="val", **FIT)
    with torch.no_grad():
        lp = m.component_log_probs(val).double()
    w = m.weights().double()
    for c in (1, 2):  # ρ_c is the line search's on the validation log-densities
        log_prev = torch.logsumexp(lp[:, :c] + (w[:c] / w[:c].sum()).log(), -1)
        assert float(m.rho[c]) == pytest.approx(line_search_rho(log_prev, lp[:, c]), abs=1e-9)
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(h["val_nll"]))


def test_data_errors():
    m = mixture()
    train = sequences()
    cases = [
        ({**train, "lengths": train["mask"].sum(1)}, ValueError, r"unknown keys \['lengths'\]"),
        ({"x": train["x"]}, ValueError, "must hold the examples under 'y'"),
        ((train["y"], train["x"], train["mask"], train["x"]), ValueError, "tuple of 4"),
        ({**train, "mask": train["mask"].tolist()}, TypeError, r"train\['mask'\] must be a"),
        ({"y": train["y"], "x": train["x"]}, ValueError, "has NaN"),
        ({**train, "x": train["x"][:3]}, ValueError, r"x must have shape \(12, 5, 1\)"),
    ]
    for data, error, message in cases:
        with pytest.raises(error, match=message):
            fit_boosted(m, data, num_components=1, progress=False)
    with pytest.raises(ValueError, match=r"a BoostedFlow takes \('y',\)"):
        fit_boosted(BoostedFlow(2), (torch.zeros(4, 2), torch.zeros(4)), progress=False)
    with pytest.raises(ValueError, match=r"unknown keys \['mask'\]; a BoostedFlow takes"):
        fit_boosted(BoostedFlow(2), {"y": torch.zeros(4, 2), "mask": None}, progress=False)
