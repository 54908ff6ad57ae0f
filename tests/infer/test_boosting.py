"""fit_boosted: valid weights, a training NLL that never rises, frozen earlier components, the
second pass, early stopping, checkpoints and resuming, data with inputs and masks (dicts and
tuples), ρ fitted on validation data, and errors."""

import itertools
import math

import pytest
import torch
from support.boosting import assert_valid, blobs, count_steps, flow

import pyro_frmdn as pf
from pyro_frmdn.distributions import RHO_MAX
from pyro_frmdn.files import read_torch_file
from pyro_frmdn.infer import (
    boosting_sample_weights,
    fit_boosted,
    line_search_rho,
    load_boosted,
    save_boosted,
)
from pyro_frmdn.infer.boosting_options import BEST_OF
from pyro_frmdn.models import BoostedFlow, BoostedFRMDN

FIT = dict(epochs_per_component=2, batch_size=32, lr=1e-2, progress=False)
FIT_SEQ = {**FIT, "batch_size": 16}  # for the ragged sequences


def frmdn_mixture():
    torch.manual_seed(0)
    return BoostedFRMDN(2, steps=4, hidden_dim=4, num_components=2, rank=1, flow_layers=1).double()


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


# -- fitting ----------------------------------------------------------------------------------


@pytest.mark.parametrize("rho_search", ["line", "gradient", "fixed"])
@pytest.mark.parametrize("weighting", ["weighted", "resample", "mixture"])
def test_fit_boosted_keeps_weights_valid(rho_search, weighting):
    m = flow()
    h = fit_boosted(
        m, blobs(), num_components=3, rho_search=rho_search, sample_weighting=weighting, **FIT
    )
    assert m.num_components == 3 and len(h) == 3
    assert_valid(m)
    assert h["component"] == [0, 1, 2] and h["pass"] == [1, 1, 1]
    if rho_search == "fixed":
        assert torch.allclose(m.weights(), torch.full((3,), 1 / 3, dtype=torch.float64))
    else:
        nll = h["train_nll"]
        assert all(b <= a + 1e-12 for a, b in itertools.pairwise(nll))
    assert not any(p.requires_grad for p in m.parameters())


def test_adding_a_bad_component_never_makes_the_training_nll_worse():
    y = blobs(shift=6.0)  # far from the base of an untrained component
    m = flow()
    fit_boosted(m, y, num_components=1, **{**FIT, "epochs_per_component": 10})
    # the next component barely trains (tiny learning rate): it is a bad density for y
    fresh = dict(sample_weighting="weighted", component_start="fresh")  # not from a copy
    h = fit_boosted(m, y, num_components=2, **{**FIT, "lr": 1e-12}, **fresh)
    first = -float(m.components[0].log_prob(y).mean())
    assert h["component_nll"][-1] > first + 5
    assert h["train_nll"][-1] <= first + 1e-12
    assert float(m.rho[1]) < 1e-3
    assert_valid(m)


def test_earlier_components_do_not_change():
    y = blobs()
    m = flow()
    fit_boosted(m, y, num_components=1, **FIT)
    before = {k: v.clone() for k, v in m.components[0].state_dict().items()}
    fit_boosted(m, y, num_components=3, **FIT)
    after = m.components[0].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("weighting", ["weighted", "mixture"])
def test_second_pass_keeps_weights_valid_and_never_worsens_the_fit(weighting):
    m = flow()
    h = fit_boosted(
        m, blobs(), num_components=3, second_pass=True, sample_weighting=weighting, **FIT
    )
    assert h["pass"] == [1, 1, 1, 2, 2, 2]
    nll = h["train_nll"]
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(nll[2:]))
    assert_valid(m)


def test_early_stopping_on_validation_nll():
    y = (0.1 * torch.randn(256, 2)).double()
    val = (3.0 + torch.randn(64, 2)).double()  # training makes the validation NLL worse
    m = flow()
    h = fit_boosted(m, y, val, num_components=1, patience=2, **{**FIT, "epochs_per_component": 30})
    assert h["epochs"][0] < 30 and h["best_epoch"][0] <= h["epochs"][0] - 2
    assert h["val_nll"][0] == pytest.approx(pf.evaluate(m, val), rel=1e-9)


def two_modes(n, seed):
    """Two far modes N(∓2, 0.3² I) along the first axis, in equal numbers."""
    g = torch.Generator().manual_seed(seed)
    y = 0.3 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    y[:, 0] += torch.where(torch.arange(n) % 2 == 0, -2.0, 2.0).double()
    return y


def test_a_second_component_takes_the_mode_the_first_misses():
    """A known answer: on two far modes A, B (N(∓2, 0.3² I), equal weights) a first component
    fitted to A alone, then boosted on both, the second component goes to B, ρ ≈ 1/2 and the
    mixture reaches the entropy H_A + log 2: on A's points it pays log 2 for B's share."""

    y, test = two_modes(800, 0), two_modes(2000, 1)
    entropy_a = 1 + math.log(2 * math.pi * 0.09)  # of one mode, a Gaussian
    torch.manual_seed(0)
    m = BoostedFlow(2, hidden_dims=[16, 16]).double()  # the default component, narrower
    fit_boosted(m, y[y[:, 0] < 0], num_components=1, **{**FIT, "epochs_per_component": 40})
    a, b = test[test[:, 0] < 0], test[test[:, 0] > 0]
    assert -float(m.log_prob(a).mean()) < entropy_a + 0.1  # the first covers A alone
    capped = dict(weight_cap=10.0, weight_clip=None)  # the reference clip would flatten them
    fit_boosted(m, y, num_components=2, **{**FIT, "epochs_per_component": 40, **capped})
    assert 0.4 < float(m.rho[1]) < 0.6
    assert -float(m.components[1].log_prob(b).mean()) < entropy_a + 0.15
    assert float((m.components[1].sample(2000)[:, 0] < 0).double().mean()) < 0.05
    assert -float(m.log_prob(test).mean()) < entropy_a + math.log(2) + 0.1


def test_the_mixture_objective_is_the_nll_of_the_mixture_the_component_makes():
    """``sample_weighting="mixture"``: a minibatch's loss is -mean log((1 - ρ) G + ρ g) (ρ the
    trainer's; 1 / (c + 1) in fit_boosted), computed here from the densities themselves
    (float64), and its gradient the responsibility-weighted score of g."""
    from pyro_frmdn.infer.components import ComponentTrainer

    y = blobs(64)
    m = flow(components=1)
    m.add_component()
    g = m.components[1]
    log_rest = m.components[0].log_prob(y).detach() - 0.7  # any fixed log G
    trainer = ComponentTrainer(m, {"y": y}, None, bar=None, sample_weighting="mixture")
    trainer.rho = 0.3
    loss = trainer.loss(g, {"y": y}, log_rest)
    dense = (0.7 * log_rest.exp() + 0.3 * g.log_prob(y).exp()).log()
    assert float(loss.detach()) == pytest.approx(-float(dense.detach().mean()), rel=1e-12)
    grads = torch.autograd.grad(loss, list(g.parameters()))
    r = (0.3 * g.log_prob(y).exp() / dense.exp()).detach()  # responsibilities of g
    expected = torch.autograd.grad(-(r * g.log_prob(y)).mean(), list(g.parameters()))
    pairs = zip(grads, expected, strict=True)
    assert all(torch.allclose(a, b, rtol=1e-10, atol=1e-12) for a, b in pairs)
    trainer.rho = 0.0
    with pytest.raises(ValueError, match="0 < rho < 1"):
        trainer.loss(g, {"y": y}, log_rest)


def test_the_mixture_objective_takes_the_mode_the_first_misses():
    """The known answer of the test above with ``sample_weighting="mixture"`` and no weight
    clip or cap to choose: the second component goes to B and the mixture reaches H_A + log 2."""

    y, test = two_modes(800, 0), two_modes(2000, 1)
    entropy_a = 1 + math.log(2 * math.pi * 0.09)
    torch.manual_seed(0)
    m = BoostedFlow(2, hidden_dims=[16, 16]).double()
    fit_boosted(m, y[y[:, 0] < 0], num_components=1, **{**FIT, "epochs_per_component": 40})
    b = test[test[:, 0] > 0]
    fit_boosted(
        m, y, num_components=2, sample_weighting="mixture", **{**FIT, "epochs_per_component": 40}
    )
    assert 0.4 < float(m.rho[1]) < 0.6
    assert -float(m.components[1].log_prob(b).mean()) < entropy_a + 0.15
    assert float((m.components[1].sample(2000)[:, 0] < 0).double().mean()) < 0.05
    assert -float(m.log_prob(test).mean()) < entropy_a + math.log(2) + 0.1


def test_the_learning_rate_is_annealed_per_component():
    m, y = flow(), blobs()
    options = {**FIT, "epochs_per_component": 3, "batch_size": 128}
    optimizers = count_steps(lambda: fit_boosted(m, y, num_components=2, **options))
    lr = FIT["lr"]
    assert len(optimizers) == 1 + len(BEST_OF)  # one for C = 1, one per fit "best" tries
    for steps in optimizers:  # one step per epoch: lr, the midpoint, lr / 100
        assert steps == pytest.approx([lr, (lr + lr / 100) / 2, lr / 100])


# -- checkpoints -------------------------------------------------------------------------------


def test_configs_saved_without_a_width_rebuild_the_component_of_earlier_releases():
    torch.manual_seed(0)
    old = BoostedFlow(2, flow="affine", flow_layers=2, hidden_dims=[32], bound=3.0).double()
    old.add_component(), old.add_component(rho=0.4)
    payload = old.payload()
    payload["config"]["hidden_dims"] = None  # as releases up to 0.2 saved the default width
    loaded = BoostedFlow.from_payload(payload)
    y = blobs()
    assert loaded.config["hidden_dims"] == [32]
    assert torch.equal(loaded.log_prob(y), old.log_prob(y))


def test_checkpoints_round_trip_and_resume(tmp_path):
    y = blobs()
    m = flow()
    fit_boosted(m, y, num_components=2, checkpoint=tmp_path, **FIT)
    names = sorted(p.name for p in tmp_path.glob("*.pt"))
    assert names == ["component_0.pt", "component_1.pt", "last.pt"]
    loaded = load_boosted(tmp_path / "last.pt")
    assert isinstance(loaded, BoostedFlow) and loaded.config == m.config
    assert torch.equal(loaded.log_prob(y), m.log_prob(y))
    assert load_boosted(tmp_path / "component_0.pt").num_components == 1
    save_boosted(m, tmp_path / "m.pt")
    assert torch.equal(
        BoostedFlow.from_payload(read_torch_file(tmp_path / "m.pt", "model")).log_prob(y),
        m.log_prob(y),
    )

    # resuming to 3 components gives what an uninterrupted run to 3 gives
    fit_boosted(flow(), y, num_components=3, checkpoint=tmp_path, resume=True, **FIT)
    whole = flow()
    fit_boosted(whole, y, num_components=3, **FIT)
    resumed = load_boosted(tmp_path / "last.pt")
    assert torch.allclose(resumed.log_prob(y), whole.log_prob(y), rtol=1e-10)


def test_loading_checks_the_class(tmp_path):
    save_boosted(flow(components=1), tmp_path / "f.pt")
    payload = read_torch_file(tmp_path / "f.pt", "model")
    with pytest.raises(ValueError, match="holds a BoostedFlow, not a BoostedFRMDN"):
        BoostedFRMDN.from_payload(payload)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt"):
        load_boosted(tmp_path / "junk.pt")


def test_fit_boosted_grows_a_mixture_of_frmdns(tmp_path):
    y = pf.data.make_task("banana", n=24, steps=4).double()
    m = frmdn_mixture()
    h = fit_boosted(m, y, y[:8], num_components=2, checkpoint=tmp_path, **FIT)
    assert_valid(m)
    assert h["train_nll"][1] <= h["train_nll"][0] + 1e-12
    assert h["val_nll"][1] == pytest.approx(pf.evaluate(m, y[:8]), rel=1e-9)  # nats per step
    loaded = load_boosted(tmp_path / "last.pt")
    assert isinstance(loaded, BoostedFRMDN)
    assert torch.equal(loaded.log_prob(y), m.log_prob(y))


# -- sequences with inputs and masks; ρ on validation data -------------------------------------


def test_fit_boosted_scores_masked_sequences_with_inputs(tmp_path):
    train, val = sequences(), sequences(6, seed=1)
    m = mixture()
    h = fit_boosted(m, train, val, num_components=2, checkpoint=tmp_path, **FIT_SEQ)
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
    fit_boosted(a, train, num_components=2, **FIT_SEQ)
    fit_boosted(b, (train["y"], train["x"], train["mask"]), num_components=2, **FIT_SEQ)
    garbage = sequences(pad=1e6)  # the same sequences, other padding
    fit_boosted(c, garbage, num_components=2, **FIT_SEQ)
    with torch.no_grad():
        ref = a.log_prob(**train)
        assert torch.equal(b.log_prob(**train), ref)
        assert torch.equal(c.log_prob(**train), ref)


@pytest.mark.parametrize("weighting", ["weighted", "uniform"])
def test_the_loss_of_masked_sequences_matches_a_manual_computation(weighting):
    train = sequences()
    n, count = len(train["y"]), int(train["mask"].sum())
    m = mixture()
    fit_boosted(m, train, num_components=1, **FIT_SEQ)
    # lr ~ 0: the new component does not move; one batch holds all the sequences
    options = {**FIT_SEQ, "lr": 1e-300, "batch_size": n, "sample_weighting": weighting}
    h = fit_boosted(m, train, num_components=2, **options)
    with torch.no_grad():
        log_g0 = m.components[0].log_prob(**train)
        log_g1 = m.components[1].log_prob(**train)
    if weighting == "weighted":  # the weighted NLL per step
        w = boosting_sample_weights(-log_g0)  # fit_boosted's defaults
        expected = -float((w * log_g1).sum()) / (count / n)
    else:  # the plain NLL per step
        expected = -float(log_g1.sum()) / count
    assert h["loss"][-1] == [pytest.approx(expected, rel=1e-10)] * 2


def searched_rho(m, y, c: int) -> float:
    """The line search's ρ_c on the log-densities of ``y`` under the mixture's components."""
    with torch.no_grad():
        lp = m.component_log_probs(y).double()
    w = m.weights().double()
    log_prev = torch.logsumexp(lp[:, :c] + (w[:c] / w[:c].sum()).log(), -1)
    return line_search_rho(log_prev, lp[:, c])


@pytest.mark.parametrize("rho_data", ["val", None])  # None: the default, "val" with val given
def test_rho_fitted_on_validation_data(rho_data):
    g = torch.Generator().manual_seed(0)
    train = torch.randn(96, 2, generator=g, dtype=torch.float64)
    val = 1.5 * torch.randn(48, 2, generator=g, dtype=torch.float64)
    torch.manual_seed(0)
    m = BoostedFlow(2, flow_layers=1, hidden_dims=[8]).double()
    h = fit_boosted(m, train, val, num_components=3, rho_data=rho_data, **FIT_SEQ)
    for c in (1, 2):  # ρ_c is the line search's on the validation log-densities
        assert float(m.rho[c]) == pytest.approx(searched_rho(m, val, c), abs=1e-9)
        assert abs(searched_rho(m, train, c) - searched_rho(m, val, c)) > 1e-3  # they differ
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(h["val_nll"]))


@pytest.mark.parametrize("with_val", [False, True])
def test_rho_fitted_on_training_data(with_val):
    """``rho_data="train"`` (the paper's objective), and the default without ``val``."""
    g = torch.Generator().manual_seed(0)
    train = torch.randn(96, 2, generator=g, dtype=torch.float64)
    val = 1.5 * torch.randn(48, 2, generator=g, dtype=torch.float64) if with_val else None
    torch.manual_seed(0)
    m = BoostedFlow(2, flow_layers=1, hidden_dims=[8]).double()
    options = {"rho_data": "train"} if with_val else {}
    h = fit_boosted(m, train, val, num_components=3, **options, **FIT_SEQ)
    for c in (1, 2):
        assert float(m.rho[c]) == pytest.approx(searched_rho(m, train, c), abs=1e-9)
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(h["train_nll"]))


# -- errors ------------------------------------------------------------------------------------


def test_bad_arguments_raise_clear_errors():
    y = blobs(16)
    m = flow(components=2)
    bad = [
        (dict(num_components=0), "num_components must be an integer >= 1"),
        (dict(num_components=1), "already has 2 components"),
        (dict(weight_clip=(0.2, 0.1)), "weight_clip must be"),
        (dict(rho_search="newton"), "rho_search must be one of"),
        (dict(lr_schedule="step"), "lr_schedule must be one of"),
        (dict(sample_weighting="bagging"), "sample_weighting must be one of"),
        (dict(fixed_rho=1.5), "fixed_rho must be"),
        (dict(rho_data="test"), "rho_data must be one of"),
        (dict(rho_data="val"), "rho_data='val' fits rho on validation data"),
        (dict(patience=2), "needs validation data"),
        (dict(resume=True), "needs the checkpoint folder"),
    ]
    for kwargs, message in bad:
        with pytest.raises(ValueError, match=message):
            fit_boosted(m, y, **{"num_components": 3, "progress": False, **kwargs})
    with pytest.raises(TypeError, match="takes train as a tensor, a tuple or a dict"):
        fit_boosted(flow(), torch.utils.data.DataLoader(y), progress=False)


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
