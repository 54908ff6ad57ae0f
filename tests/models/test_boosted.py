"""Gradient-boosted flows: exact mixture density, valid weights, sampling, ρ search, fitting,
checkpoints, FRMDN components, the boosted guide, toy data, and errors."""

import itertools
import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.distributions.testing.gof import multinomial_goodness_of_fit
from pyro.infer import Trace_ELBO

import pyro_frmdn as pf
from pyro_frmdn.data.toy2d import TOY2D, toy2d
from pyro_frmdn.infer.boosting import (
    boosting_sample_weights,
    fit_boosted,
    gradient_search_rho,
    line_search_rho,
    load_boosted,
    mixture_nll,
    rho_gradient,
    save_boosted,
)
from pyro_frmdn.models.boosted import (
    RHO_MAX,
    BoostedFlow,
    BoostedFRMDN,
    BoostedGuideFlow,
    BoostedMixture,
    log_weights_from_rho,
    rho_from_log_weights,
)

FIT = dict(epochs_per_component=2, batch_size=32, lr=1e-2, progress=False)


def flow(dim=2, components=0, rho=(), kind="affine", seed=0, **kwargs):
    torch.manual_seed(seed)
    m = BoostedFlow(dim, num_layers=2, kind=kind, hidden_dims=[8], **kwargs).double()
    for _ in range(components):
        m.add_component()
    if rho:
        m.set_rho(torch.tensor(rho, dtype=torch.float64))
    return m


def blobs(n=128, seed=0, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    centre = torch.tensor([[2.0, 0.0]]) * (2 * torch.randint(0, 2, (n, 1), generator=g) - 1)
    return (centre + 0.4 * torch.randn(n, 2, generator=g) + shift).double()


def assert_valid(m: BoostedMixture):
    w = m.weights()
    assert float(m.rho[0]) == 1.0
    assert bool(((m.rho[1:] >= 0) & (m.rho[1:] <= RHO_MAX)).all())
    assert bool(((w >= 0) & (w <= 1)).all()) and float(w[0]) > 0
    assert math.isclose(float(w.sum()), 1.0, rel_tol=1e-12)


# -- weights and exact density ------------------------------------------------------------------


def test_log_weights_follow_the_boosting_recursion():
    rho = torch.tensor([1.0, 0.3, 0.0, 0.6, 0.25], dtype=torch.float64)
    w = torch.ones(1, dtype=torch.float64)
    for r in rho[1:]:  # G_c = (1 - ρ_c) G_{c-1} + ρ_c g_c, on the weights
        w = torch.cat([(1 - r) * w, r.reshape(1)])
    assert torch.allclose(log_weights_from_rho(rho).exp(), w, rtol=1e-14)
    positive = rho.clone()
    positive[2] = 0.4
    assert torch.allclose(rho_from_log_weights(log_weights_from_rho(positive)), positive)


@pytest.mark.parametrize("kind", ["affine", "spline"])
def test_log_prob_equals_a_manual_logsumexp_and_the_recursion(kind):
    m = flow(components=3, rho=(1.0, 0.35, 0.6), kind=kind)
    y = 1.5 * torch.randn(50, 2, dtype=torch.float64)
    lp = torch.stack([c.distribution().log_prob(y) for c in m.components], -1)
    w = [0.65 * 0.4, 0.35 * 0.4, 0.6]
    manual = torch.logsumexp(lp + torch.tensor(w, dtype=torch.float64).log(), -1)
    assert torch.allclose(m.log_prob(y), manual, rtol=1e-12, atol=1e-12)
    log_g = lp[:, 0]  # log G_c = logaddexp(log(1 - ρ_c) + log G_{c-1}, log ρ_c + log g_c)
    for c, r in ((1, 0.35), (2, 0.6)):
        log_g = torch.logaddexp(math.log1p(-r) + log_g, math.log(r) + lp[:, c])
    assert torch.allclose(m.log_prob(y), log_g, rtol=1e-12, atol=1e-12)
    assert m.component_log_probs(y).shape == (50, 3)


def test_a_new_component_starts_with_no_weight_and_leaves_the_density_unchanged():
    m = flow(components=2, rho=(1.0, 0.4))
    y = torch.randn(20, 2, dtype=torch.float64)
    before = m.log_prob(y)
    m.add_component()
    assert float(m.rho[-1]) == 0.0 and float(m.weights()[-1]) == 0.0
    assert torch.allclose(m.log_prob(y), before, rtol=1e-14)
    assert_valid(m)


def test_only_the_newest_component_is_trainable():
    m = flow(components=3)
    grads = [[p.requires_grad for p in c.parameters()] for c in m.components]
    assert not any(grads[0]) and not any(grads[1]) and all(grads[2])
    m.train()
    assert [c.training for c in m.components] == [False, False, True]
    m.set_trainable(None)
    assert not any(p.requires_grad for p in m.parameters())


# -- sampling -----------------------------------------------------------------------------------


def test_component_frequencies_match_the_weights():
    m = flow(components=4, rho=(1.0, 0.5, 0.3, 0.2))
    n = 20000
    pyro.set_rng_seed(1)
    y, k = m.sample(n, return_components=True)
    assert y.shape == (n, 2) and k.shape == (n,)
    w = m.weights()
    counts = torch.bincount(k, minlength=4).double()
    assert multinomial_goodness_of_fit(w, counts, total_count=n) > 1e-3
    # Pyro's chi2 survival function is wrong for large chi2: check standard errors too
    se = (n * w * (1 - w)).sqrt()
    assert bool(((counts - n * w).abs() < 4 * se).all())


def test_samples_follow_the_mixture_density(binned_goodness_of_fit):
    m = flow(components=3, rho=(1.0, 0.4, 0.3), seed=3)
    with torch.no_grad():  # move the components apart so the test sees the mixture
        for c, shift in zip(m.components, (-2.0, 0.0, 2.0), strict=True):
            c.flow[0].nn.layers[-1].bias.zero_()
            c.loc.fill_(shift)
    pyro.set_rng_seed(2)
    y = m.sample(4000)

    def log_prob(grid):
        return m.log_prob(grid.reshape(-1, 2)).reshape(grid.shape[:-1])

    with torch.no_grad():
        p = binned_goodness_of_fit(y, log_prob, y.min(0).values, y.max(0).values)
    assert p > 1e-3


def test_samples_of_each_component_come_from_that_component():
    m = flow(components=2, rho=(1.0, 0.5))
    with torch.no_grad():
        m.components[0].loc.fill_(-20.0)
        m.components[1].loc.fill_(20.0)
    y, k = m.sample(200, return_components=True)
    lp = m.component_log_probs(y)
    assert torch.equal(lp.argmax(-1), k)


# -- the search for ρ ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_line_and_gradient_searches_find_the_minimum(seed):
    g = torch.Generator().manual_seed(seed)
    log_prev = torch.randn(300, generator=g, dtype=torch.float64) * 2
    log_new = log_prev + torch.randn(300, generator=g, dtype=torch.float64) * 3 + seed - 2
    grid = torch.linspace(0, RHO_MAX, 20001, dtype=torch.float64).tolist()
    best = min(mixture_nll(r, log_prev, log_new) for r in grid)
    for search in (line_search_rho, gradient_search_rho):
        rho = search(log_prev, log_new)
        assert 0.0 <= rho <= RHO_MAX
        assert mixture_nll(rho, log_prev, log_new) <= best + 1e-7
        assert mixture_nll(rho, log_prev, log_new) <= mixture_nll(0.0, log_prev, log_new)


def test_a_useless_new_component_gets_rho_zero():
    log_prev = torch.zeros(100, dtype=torch.float64)
    log_new = torch.full((100,), -5.0, dtype=torch.float64)
    assert line_search_rho(log_prev, log_new) == 0.0
    assert gradient_search_rho(log_prev, log_new) == 0.0


def test_rho_gradient_is_the_derivative_of_the_mixture_nll():
    g = torch.Generator().manual_seed(0)
    log_prev, log_new = torch.randn(2, 50, generator=g, dtype=torch.float64)
    for value in (0.1, 0.5, 0.9):
        rho = torch.tensor(value, dtype=torch.float64, requires_grad=True)
        nll = -torch.logaddexp(log_prev + torch.log1p(-rho), log_new + rho.log()).mean()
        (autograd,) = torch.autograd.grad(nll, rho)
        assert math.isclose(rho_gradient(value, log_prev, log_new), float(autograd), rel_tol=1e-10)
        assert math.isclose(
            mixture_nll(value, log_prev, log_new), float(nll.detach()), rel_tol=1e-12
        )


def test_sample_weights_are_normalised_and_clipped():
    neg_log_g = torch.tensor([0.0, 0.0, 0.0, 10.0] + [0.0] * 60, dtype=torch.float64)
    w = boosting_sample_weights(neg_log_g, clip=None)
    assert torch.allclose(w, torch.softmax(neg_log_g, 0))
    clipped = boosting_sample_weights(neg_log_g, clip=(0.01, 0.1))
    assert math.isclose(float(clipped.sum()), 1.0)
    assert float(clipped.max() / clipped.min()) <= 10 + 1e-9
    flat = boosting_sample_weights(torch.zeros(64, dtype=torch.float64))
    assert torch.allclose(flat, torch.full((64,), 1 / 64, dtype=torch.float64))


# -- fitting ----------------------------------------------------------------------------------


@pytest.mark.parametrize("rho_search", ["line", "gradient", "fixed"])
@pytest.mark.parametrize("weighting", ["weighted", "resample"])
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
    h = fit_boosted(m, y, num_components=2, **{**FIT, "lr": 1e-12})
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


def test_second_pass_keeps_weights_valid_and_never_worsens_the_fit():
    m = flow()
    h = fit_boosted(m, blobs(), num_components=3, second_pass=True, **FIT)
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


def test_the_pyro_program_scores_the_mixture():
    m = flow(components=2, rho=(1.0, 0.3))
    y = blobs(16)
    loss = Trace_ELBO().differentiable_loss(m.model, m.guide, y)
    assert torch.allclose(loss, -m.log_prob(y).sum(), rtol=1e-12)
    d = m.distribution()
    assert d.batch_shape == () and d.event_shape == (2,)
    assert d.sample((3, 4)).shape == (3, 4, 2)
    with pyro.plate("n", 5):
        assert pyro.sample("x", d).shape == (5, 2)


def test_pf_fit_trains_a_one_component_model_by_svi():
    m = flow(components=1)
    y = blobs()
    before = pf.evaluate(m, y)
    pf.fit(m, y, epochs=3, batch_size=32, lr=1e-2, progress=False)
    assert pf.evaluate(m, y) < before


# -- checkpoints -------------------------------------------------------------------------------


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
        BoostedFlow.from_payload(torch.load(tmp_path / "m.pt")).log_prob(y), m.log_prob(y)
    )

    # resuming to 3 components gives what an uninterrupted run to 3 gives
    fit_boosted(flow(), y, num_components=3, checkpoint=tmp_path, resume=True, **FIT)
    whole = flow()
    fit_boosted(whole, y, num_components=3, **FIT)
    resumed = load_boosted(tmp_path / "last.pt")
    assert torch.allclose(resumed.log_prob(y), whole.log_prob(y), rtol=1e-10)


def test_loading_checks_the_class(tmp_path):
    save_boosted(flow(components=1), tmp_path / "f.pt")
    payload = torch.load(tmp_path / "f.pt")
    with pytest.raises(ValueError, match="holds a BoostedFlow, not a BoostedFRMDN"):
        BoostedFRMDN.from_payload(payload)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt"):
        load_boosted(tmp_path / "junk.pt")


# -- FRMDN components ----------------------------------------------------------------------------


def frmdn_mixture(components=0):
    torch.manual_seed(0)
    m = BoostedFRMDN(2, steps=4, hidden_dim=4, num_components=2, rank=1, flow_layers=1).double()
    for _ in range(components):
        m.add_component()
    return m


def test_frmdn_components_give_an_exact_mixture_over_sequences():
    m = frmdn_mixture(components=2)
    m.set_rho(torch.tensor([1.0, 0.3], dtype=torch.float64))
    y = torch.randn(5, 4, 2, dtype=torch.float64)
    lp = torch.stack([c.log_prob(y) for c in m.components], -1)
    manual = torch.logsumexp(lp + torch.tensor([0.7, 0.3], dtype=torch.float64).log(), -1)
    assert torch.allclose(m.log_prob(y), manual, rtol=1e-12)
    assert m.sample(3).shape == (3, 4, 2) and m.sample(2, steps=6).shape == (2, 6, 2)
    loss = Trace_ELBO().differentiable_loss(m.model, m.guide, y)
    assert torch.allclose(loss, -m.log_prob(y).sum(), rtol=1e-12)


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


def conditional_frmdn_mixture(rho=(1.0, 0.3)):
    """Two FRMDN components with inputs x (X = 2), weights from ``rho``."""
    torch.manual_seed(1)
    m = BoostedFRMDN(2, steps=5, input_dim=2, hidden_dim=4, num_components=2, flow_layers=1)
    m = m.double()
    for _ in rho:
        m.add_component()
    m.set_rho(torch.tensor(rho, dtype=torch.float64))
    return m


def ragged(n=5, steps=6, seed=0):
    """y (n, steps, 2) and x (n, steps, 2) with NaN padding after each sequence's length."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, steps + 1, (n,), generator=g)
    lengths[0] = steps
    mask = torch.arange(steps) < lengths[:, None]
    y = torch.randn(n, steps, 2, generator=g, dtype=torch.float64)
    x = torch.randn(n, steps, 2, generator=g, dtype=torch.float64)
    return y.masked_fill(~mask[..., None], math.nan), x, mask, lengths.tolist()


def test_masked_sequences_with_inputs_equal_a_manual_logsumexp_of_truncated_sequences():
    m = conditional_frmdn_mixture()
    y, x, mask, lengths = ragged()
    # each sequence on its own, cut to its length, no mask: the components are causal
    manual = torch.stack(
        [
            torch.logsumexp(
                torch.stack(
                    [c.log_prob(y[i : i + 1, :n], x[i : i + 1, :n])[0] for c in m.components]
                )
                + torch.tensor([0.7, 0.3], dtype=torch.float64).log(),
                0,
            )
            for i, n in enumerate(lengths)
        ]
    )
    assert torch.allclose(m.log_prob(y, x, mask), manual, rtol=1e-12, atol=1e-12)
    assert m.component_log_probs(y, x=x, mask=mask).shape == (5, 2)
    loss = Trace_ELBO().differentiable_loss(m.model, m.guide, y, x, mask)
    assert torch.allclose(loss, -manual.sum(), rtol=1e-12)
    assert pf.evaluate(m, {"y": y, "x": x, "mask": mask}) == pytest.approx(
        -float(manual.detach().sum()) / sum(lengths), rel=1e-12
    )


def test_sampling_with_inputs_gives_each_sequence_its_own_inputs():
    m = conditional_frmdn_mixture(rho=(1.0, 0.5))
    x = torch.randn(7, 5, 2, dtype=torch.float64)
    pyro.set_rng_seed(3)
    y, k = m.sample(7, x=x, return_components=True)
    assert y.shape == (7, 5, 2)
    pyro.set_rng_seed(3)  # the same draws by hand: components, then each component's rows
    k_manual = torch.multinomial(m.weights(), 7, replacement=True)
    assert torch.equal(k, k_manual)
    expected = torch.empty_like(y)
    for c, component in enumerate(m.components):
        rows = (k == c).nonzero().flatten()
        if len(rows):
            expected[rows] = component.sample(len(rows), steps=5, x=x[rows])
    assert torch.equal(y, expected)
    _, _, mask, _ = ragged(n=7, steps=5)
    drawn = m.distribution(x=x, mask=mask).sample()
    assert drawn.shape == (7, 5, 2) and bool((drawn[~mask] == 0).all())


def test_frmdn_mixture_input_errors():
    m = conditional_frmdn_mixture()
    y, x, mask, _ = ragged()
    with pytest.raises(ValueError, match="pass x"):
        m.log_prob(y, mask=mask)
    with pytest.raises(ValueError, match=r"mask must have shape \(5, 6\)"):
        m.log_prob(y, x, mask[:, :3])
    with pytest.raises(ValueError, match=r"x must have shape \(5, 6, 2\)"):
        m.log_prob(y, x[:, :3], mask)
    with pytest.raises(ValueError, match=r"x must have shape \(3, 5, 2\)"):
        m.sample(3)
    with pytest.raises(ValueError, match="has NaN"):
        m.log_prob(y, x)  # the padding is NaN: without the mask it is scored
    with pytest.raises(ValueError, match="x was given but"):
        frmdn_mixture(1).sample(2, x=torch.zeros(2, 4, 2))
    with pytest.raises(ValueError, match="alone; got also"):
        flow(components=1).log_prob(blobs(4), mask=torch.ones(4, dtype=torch.bool))
    d = m.distribution((6, 2), x=x, mask=mask)
    with pytest.raises(ValueError, match="not broadcastable"):
        d.log_prob(y[:4])
    with pyro.validation_enabled(False):
        with pytest.raises(ValueError, match=r"batch shape \(4,\), the inputs are for \(5,\)"):
            m.distribution((6, 2), x=x, mask=mask).log_prob(y[:4])
    with pytest.raises(ValueError, match="cannot be expanded"):
        d.expand((2, 5))


# -- the boosted guide ---------------------------------------------------------------------------


def guide_flow(kind="affine"):
    torch.manual_seed(0)
    rho = torch.tensor([1.0, 0.4, 0.3])
    return BoostedGuideFlow(2, 3, num_components=3, kind=kind, hidden_dims=[8], rho=rho).double()


@pytest.mark.parametrize("kind", ["affine", "spline"])
def test_guide_log_prob_is_an_exact_mixture(kind):
    q = guide_flow(kind)
    h = torch.randn(4, 3, dtype=torch.float64)
    d = q(h)
    z = torch.randn(4, 2, dtype=torch.float64)
    lp = torch.stack([c(h).log_prob(z) for c in q.components], -1)
    manual = torch.logsumexp(lp + q.log_weights(), -1)
    assert torch.allclose(d.log_prob(z), manual, rtol=1e-12)


def test_guide_density_integrates_to_one():
    q = guide_flow()
    h = torch.randn(1, 3, dtype=torch.float64)
    axis = torch.linspace(-10, 10, 401, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        density = q(h.expand(len(grid), 3)).log_prob(grid).exp()
    assert float(density.sum() * (axis[1] - axis[0]) ** 2) == pytest.approx(1.0, abs=2e-3)


def test_guide_rsample_carries_gradients_to_every_component():
    q = guide_flow()
    h = torch.randn(64, 3, dtype=torch.float64)
    d = q(h)
    assert d.has_rsample and d.batch_shape == (64,) and d.event_shape == (2,)
    z = d.rsample((2,))
    assert z.shape == (2, 64, 2)
    z.square().sum().backward()
    for c in q.components:  # 128 draws from weights (0.42, 0.28, 0.3): every component is used
        assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in c.parameters())
    only = q(h).rsample(component=1)
    assert only.shape == (64, 2)


def test_guide_works_as_a_pyro_guide():
    q = guide_flow()
    x = torch.randn(8, 3, dtype=torch.float64)

    def model(x):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
            pyro.sample("x", dist.Normal(z.sum(-1, keepdim=True), 1.0).to_event(1), obs=x[:, :1])

    def guide(x):
        pyro.module("q", q)
        with pyro.plate("data", len(x)):
            pyro.sample("z", q(x))

    loss = Trace_ELBO().differentiable_loss(model, guide, x)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in q.parameters())


# -- toy data ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TOY2D))
def test_toy_densities_are_seeded(name):
    x = toy2d(name, 500, seed=1)
    assert x.shape == (500, 2) and bool(torch.isfinite(x).all())
    assert torch.equal(x, toy2d(name, 500, seed=1))
    assert not torch.equal(x, toy2d(name, 500, seed=2))
    assert float(x.abs().max()) < 6


# -- errors ------------------------------------------------------------------------------------


def test_bad_arguments_raise_clear_errors():
    y = blobs(16)
    with pytest.raises(ValueError, match="need dim >= 1"):
        BoostedFlow(0)
    with pytest.raises(ValueError, match="kind must be one of"):
        BoostedFlow(2, kind="planar")
    with pytest.raises(ValueError, match="affine coupling needs dim >= 2"):
        BoostedFlow(1)
    m = flow(components=2)
    with pytest.raises(ValueError, match=r"rho\[c\] for c >= 1 must lie in"):
        m.set_rho(torch.tensor([1.0, 1.0]))
    with pytest.raises(ValueError, match=r"rho\[0\] must be 1"):
        m.set_rho(torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        m.log_prob(torch.randn(3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="NaN at position"):
        m.log_prob(torch.tensor([[0.0, math.nan]], dtype=torch.float64))
    with pytest.raises(ValueError, match="n must be >= 1"):
        m.sample(0)
    with pytest.raises(ValueError, match="no component yet"):
        flow().log_prob(y)
    with pytest.raises(ValueError, match="sequence length"):
        frmdn_mixture(1).__class__(2, hidden_dim=4).distribution()
    bad = [
        (dict(num_components=0), "need num_components >= 1"),
        (dict(num_components=1), "already has 2 components"),
        (dict(weight_clip=(0.2, 0.1)), "weight_clip must be"),
        (dict(rho_search="newton"), "rho_search must be one of"),
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
    with pytest.raises(ValueError, match="lo < hi"):
        line_search_rho(y[:, 0], y[:, 1], lo=0.5, hi=0.5)
    with pytest.raises(ValueError, match="unknown toy density"):
        toy2d("spiral")
    with pytest.raises(ValueError, match="context has 2 features"):
        guide_flow()(torch.randn(4, 2, dtype=torch.float64))
