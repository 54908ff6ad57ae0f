"""to_inference_data: groups, dims and values against the model; PIT values and plots."""

import math

import numpy as np
import pytest
import torch

import pyro_frmdn as pf
from pyro_frmdn.infer.arviz import pit, plot_pit, to_inference_data


def model(cls=pf.RMDN, seed=0, **kw):
    torch.manual_seed(seed)
    kw = {"hidden_dim": 8, "num_components": 3, "rank": 1, **kw}
    return cls(2, **kw)


def data(b=3, t=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(b, t, 2, generator=g)
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[0, 3:] = False
    mask[-1, 4:] = False
    return y, mask


def values(idata, group):
    return np.asarray(idata[group]["y"])


def test_groups_have_named_dims_and_shapes():
    y, mask = data()
    idata = to_inference_data(model(), y, mask=mask, num_samples=7, seed=0)
    assert idata.observed_data["y"].dims == ("sequence", "step", "dim")
    assert idata.posterior_predictive["y"].dims == ("chain", "draw", "sequence", "step", "dim")
    assert idata.log_likelihood["y"].dims == ("chain", "draw", "sequence", "step")
    assert values(idata, "posterior_predictive").shape == (1, 7, 3, 5, 2)
    assert values(idata, "log_likelihood").shape == (1, 1, 3, 5)
    assert list(idata.observed_data["sequence"].values) == [0, 1, 2]


@pytest.mark.parametrize("cls", [pf.RMDN, pf.FRMDN])
def test_log_likelihood_is_step_log_prob_and_masked_steps_are_nan(cls):
    kw = {"flow_layers": 2} if cls is pf.FRMDN else {}
    m = model(cls, **kw)
    y, mask = data()
    idata = to_inference_data(m, y, mask=mask, num_samples=4, seed=0)
    ll = values(idata, "log_likelihood")[0, 0]
    with torch.no_grad():
        expected = m.step_log_prob(y, mask=mask)
    assert np.allclose(ll[mask.numpy()], expected[mask].numpy(), rtol=1e-6)
    assert np.isclose(np.nansum(ll, axis=-1), m.log_prob(y, mask=mask).detach().numpy()).all()
    for group in ("observed_data", "posterior_predictive", "log_likelihood"):
        v = values(idata, group)
        nan = np.isnan(v) if v.ndim == 4 else np.isnan(v).all(-1)
        assert (nan.reshape(-1, 3, 5) == ~mask.numpy()).all(), group
    assert np.array_equal(values(idata, "observed_data")[mask.numpy()], y[mask].numpy())


def test_predictive_draws_are_one_step_ahead_given_the_true_history():
    """Their mean matches the step distribution's mean within 4 standard errors."""
    m = model(rank=0)
    y, _ = data(b=2, t=3)
    s = 4000
    idata = to_inference_data(m, y, num_samples=s, seed=0)
    draws = values(idata, "posterior_predictive")[0]  # (S, B, T, D)
    with torch.no_grad():
        d = m.step_distribution(m.features(y))
    err = np.abs(draws.mean(0) - d.mean.numpy())
    assert (err < 4 * np.sqrt(d.variance.numpy() / s)).all()


def test_inputs_seed_and_global_random_state():
    m = model(input_dim=1)
    y, mask = data()
    x = torch.randn(3, 5, 1)
    state = torch.get_rng_state()
    a = to_inference_data(m, y, x, mask, num_samples=3, seed=5)
    b = to_inference_data(m, y, x, mask, num_samples=3, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    assert np.array_equal(
        values(a, "posterior_predictive"), values(b, "posterior_predictive"), equal_nan=True
    )
    with pytest.raises(ValueError, match="pass x"):
        to_inference_data(m, y)
    with pytest.raises(ValueError, match="num_samples"):
        to_inference_data(m, y, x, num_samples=0)


def test_pit_of_data_drawn_from_the_model_is_uniform():
    torch.manual_seed(0)
    m = model()
    y = m.sample(300, steps=8)
    u = pit(to_inference_data(m, y, num_samples=99, seed=1))
    assert u.shape == (2400, 2) and ((u > 0) & (u < 1)).all()
    for column in u.T:  # Kolmogorov-Smirnov distance to U(0, 1), 0.1% critical value
        s = np.sort(column)
        n = len(s)
        ks = max((np.arange(1, n + 1) / n - s).max(), (s - np.arange(n) / n).max())
        assert ks < 1.95 / math.sqrt(n)


def test_pit_counts_only_unmasked_steps_and_a_biased_model_fails():
    y, mask = data()
    idata = to_inference_data(model(), y + 100.0, mask=mask, num_samples=9, seed=0)
    u = pit(idata)
    assert u.shape == (int(mask.sum()), 2)
    assert (u > 0.9).all()  # every observation above every draw


def test_plot_pit_writes_an_image(tmp_path):
    y, mask = data()
    idata = to_inference_data(model(), y, mask=mask, num_samples=9, seed=0)
    path = plot_pit(idata, tmp_path / "pit.png", bins=5)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="dims"):
        plot_pit(idata, tmp_path / "bad.png", dims=[2])


def test_from_dict_of_arviz_1_takes_the_groups_as_one_dict(monkeypatch):
    """arviz >= 1.0 (Python >= 3.12, not installable here) has ``from_dict(data, *, ...)``."""
    import arviz

    seen = {}

    def from_dict(data, *, coords=None, dims=None):
        seen.update(data=data, coords=coords, dims=dims)
        return "tree"

    monkeypatch.setattr(arviz, "from_dict", from_dict)
    y, mask = data()
    assert to_inference_data(model(), y, mask=mask, num_samples=2, seed=0) == "tree"
    assert set(seen["data"]) == {"observed_data", "posterior_predictive", "log_likelihood"}
    assert seen["dims"] == {"y": ["sequence", "step", "dim"]}


def test_loo_and_compare_rank_two_fitted_models_by_their_held_out_likelihood():
    import warnings

    import arviz

    import pyro_frmdn as pf
    from pyro_frmdn.data import make_task

    train = make_task("branching", n=96, steps=8, seed=0)
    test = make_task("branching", n=32, steps=8, seed=1)
    mask = torch.ones(32, 8, dtype=torch.bool)
    mask[::3, 5:] = False  # sequences of different lengths
    models = {
        "one gaussian": pf.RMDN(2, hidden_dim=16, num_components=1),
        "mixture": pf.RMDN(2, hidden_dim=16, num_components=3, rank=1),
    }
    idatas = {}
    for name, m in models.items():
        pf.fit(m, train, epochs=8, batch_size=32, lr=1e-2, progress=False)
        idatas[name] = to_inference_data(m, test, mask=mask, num_samples=2, seed=0,
                                         pointwise="sequence")  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the Pareto k of one distinct draw
        for name, m in models.items():
            loo = arviz.loo(idatas[name])
            held_out = float(m.log_prob(test, mask=mask).double().sum())
            assert loo.elpd_loo == pytest.approx(held_out, rel=1e-6)
        ranking = arviz.compare(idatas)
    best = max(models, key=lambda k: float(models[k].log_prob(test, mask=mask).sum()))
    assert ranking.index[0] == best
    with pytest.raises(ValueError, match="pointwise must be 'step' or 'sequence'"):
        to_inference_data(models["mixture"], test, pointwise="steps")
