"""The base of boosted mixtures (through BoostedFlow): valid weights, a new component's zero
step, which components train, sampling by the weights, the Pyro program, and errors."""

import pyro
import pytest
import torch
from pyro.distributions.testing.gof import multinomial_goodness_of_fit
from pyro.infer import Trace_ELBO
from support.boosting import assert_valid, blobs, flow

import pyro_frmdn as pf

# -- weights and structure ----------------------------------------------------------------------


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
    m.freeze()
    assert not any(p.requires_grad for p in m.parameters())


def test_set_trainable_none_unfreezes_all_and_freeze_freezes_all():
    m = flow(components=3)
    m.set_trainable(None)
    assert all(p.requires_grad for p in m.parameters())
    assert [c.training for c in m.components] == [True, True, True]
    m.freeze()
    assert not any(p.requires_grad for p in m.parameters())
    assert [c.training for c in m.components] == [False, False, False]
    m.train()
    assert [c.training for c in m.components] == [False, False, False]
    with pytest.raises(ValueError, match="no component 3: the mixture has 3"):
        m.set_trainable(3)


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


# -- the Pyro program ---------------------------------------------------------------------------


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


# -- errors ------------------------------------------------------------------------------------


def test_bad_arguments_raise_clear_errors():
    y = blobs(16)
    m = flow(components=2)
    with pytest.raises(ValueError, match=r"rho\[c\] for c >= 1 must lie in"):
        m.set_rho(torch.tensor([1.0, 1.0]))
    with pytest.raises(ValueError, match=r"rho\[0\] must be 1"):
        m.set_rho(torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="num must be >= 1"):
        m.sample(0)
    with pytest.raises(ValueError, match="no component yet"):
        flow().log_prob(y)
