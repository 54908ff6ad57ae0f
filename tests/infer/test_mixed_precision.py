"""Mixed precision (``fit(precision="bf16-mixed")``, ``torch.autocast``): the networks' products
in bfloat16, every density of the package in float32.

References: the density at the same (bfloat16-rounded, then exactly promoted) parameters scored
in float64 by a dense ``MultivariateNormal``; the same model scored without autocast; gradients
of a float32 run of the same step.
"""

from __future__ import annotations

import copy
import math

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO
from support.worlds import episode, world

import pyro_frmdn as pf
from pyro_frmdn.distributions import flow_mixture, low_rank_mixture
from pyro_frmdn.distributions._lowrank import use_kernel
from pyro_frmdn.distributions.float32 import float32_math, promote
from pyro_frmdn.flows import coupling_flow
from pyro_frmdn.infer import TRAINING_PRECISIONS, mixed_precision
from pyro_frmdn.models.sketch_inputs import random_stroke5
from pyro_frmdn.nn import encode_texts

F64, BF16 = torch.float64, torch.bfloat16


def autocast():
    return torch.autocast("cpu", dtype=BF16)


def dense_log_prob(logits, loc, factor, diag, form, value):
    """log Σ_k π_k N(value; μ_k, Σ_k) with dense float64 matrices."""
    logits, loc, diag, value = (t.to(F64) for t in (logits, loc, diag, value))
    matrix = torch.diag_embed(diag)
    if factor is not None:
        factor = factor.to(F64)
        matrix = matrix + factor @ factor.mT
    if form == "covariance":
        comps = torch.distributions.MultivariateNormal(loc, covariance_matrix=matrix)
    else:
        comps = torch.distributions.MultivariateNormal(loc, precision_matrix=matrix)
    lp = comps.log_prob(value.unsqueeze(-2))
    return torch.logsumexp(lp + torch.log_softmax(logits, -1), -1)


def bf16_params(batch, k, d, rank, seed=0):
    """Mixture parameters as a bfloat16 head would give them under autocast."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch + (k,), generator=g)
    loc = torch.randn(batch + (k, d), generator=g)
    factor = None if rank == 0 else 0.4 * torch.randn(batch + (k, d, rank), generator=g)
    diag = torch.rand(batch + (k, d), generator=g) + 0.5
    return tuple(None if t is None else t.to(BF16) for t in (logits, loc, factor, diag))


def test_promote_is_exact_and_leaves_full_precision_alone():
    x = torch.randn(5).to(BF16)
    assert promote(x).dtype == torch.float32 and torch.equal(promote(x).to(BF16), x)
    y = torch.randn(5, dtype=F64)
    assert promote(y) is y and promote(None) is None


@pytest.mark.parametrize("kernel", ["auto", "torch"])
@pytest.mark.parametrize("form", ["covariance", "precision"])
@pytest.mark.parametrize("rank", [0, 2, 9])
def test_the_mixture_scores_bfloat16_parameters_in_float32_under_autocast(kernel, form, rank):
    params = bf16_params((6,), 3, 5, rank)
    value = torch.randn(6, 5)
    want = dense_log_prob(*params, form, value)
    with use_kernel(kernel), autocast():
        got = low_rank_mixture(*params, parameterization=form).log_prob(value)
    assert got.dtype == torch.float32
    # float32 arithmetic on the promoted parameters; in bfloat16 the error is about 1e-2
    assert torch.allclose(got.to(F64), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel", ["auto", "torch"])
def test_the_mixture_gradient_is_the_float32_one_under_autocast(kernel):
    params = [t.float().requires_grad_() for t in bf16_params((4,), 2, 6, 2)]
    value = torch.randn(4, 6)
    grads = []
    for cast in (False, True):
        with use_kernel(kernel), torch.autocast("cpu", dtype=BF16, enabled=cast):
            lp = low_rank_mixture(*params).log_prob(value).sum()
            grads.append(torch.autograd.grad(lp, params))  # backward under autocast too
    for plain, cast in zip(*grads, strict=True):
        assert torch.allclose(plain, cast, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("precision", [None, "bfloat16"])
def test_the_flow_is_float32_and_exactly_invertible_under_autocast(precision):
    torch.manual_seed(0)
    flow = coupling_flow(6, 3, flow="affine", hidden_dims=[16], precision=precision)
    base = low_rank_mixture(*(t.float() for t in bf16_params((), 2, 6, 1)))
    d = flow_mixture(base, flow)
    y = torch.randn(10, 6)
    plain = d.log_prob(y)
    with autocast():
        cast = d.log_prob(y)
        x = torch.randn(10, 6)
        there = flow[-1](x)
        back = flow[-1].inv(there.clone())  # not the cached x
    assert cast.dtype == torch.float32 and torch.equal(cast, plain)
    assert torch.allclose(back, x, rtol=1e-6, atol=1e-6)


def test_float32_math_turns_autocast_off_and_back_on():
    a = torch.ones(2, 3)
    with autocast():
        assert (a @ a.T).dtype == BF16
        with float32_math():
            assert (a @ a.T).dtype == torch.float32
        assert (a @ a.T).dtype == BF16
    with float32_math():  # nothing to turn off
        assert (a @ a.T).dtype == torch.float32


def frmdn_and_data(seed=0):
    torch.manual_seed(seed)
    m = pf.FRMDN(7, hidden_dim=32, num_components=3, rank=2, flow_layers=2, binary_dims=1)
    y = torch.randn(16, 12, 7)
    y[..., -1] = (y[..., -1] > 0).float()
    return m, y


def test_an_frmdn_under_autocast_scores_near_float32_with_float32_gradients_in_direction():
    m, y = frmdn_and_data()
    lp32 = m.log_prob(y)
    g32 = torch.autograd.grad(lp32.sum(), list(m.parameters()))
    with autocast():
        lp16 = m.log_prob(y)
    g16 = torch.autograd.grad(lp16.sum(), list(m.parameters()))
    assert lp16.dtype == torch.float32
    # the network's outputs rounded to 8 bits of mantissa: a few parts in ten thousand of the
    # sequence's NLL, not the 1e-2 a bfloat16 density would give
    assert torch.allclose(lp16, lp32, rtol=2e-3)
    assert not torch.equal(lp16, lp32)  # autocast did act on the network
    for a, b in zip(g16, g32, strict=True):
        assert a.dtype == torch.float32
        cosine = torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0)
        assert float(cosine) > 0.99


def test_fit_in_bf16_mixed_learns_and_reports_float32_nlls():
    m, y = frmdn_and_data(1)
    start = pf.evaluate(m, y[12:])
    plain = copy.deepcopy(m)
    full = pf.fit(plain, y[:12], y[12:], epochs=1, lr=1e-2, progress=False)
    history = pf.fit(m, y[:12], y[12:], epochs=4, lr=1e-2, precision="bf16-mixed", progress=False)
    # the same first epoch, in bfloat16 products: close to float32's, not equal
    assert history.records[0]["train_nll"] == pytest.approx(full.records[0]["train_nll"], rel=1e-2)
    assert history.records[0]["train_nll"] != full.records[0]["train_nll"]
    best = min(r["val_nll"] for r in history.records)  # whose weights fit restores
    assert best < start - 0.1
    # the reported validation NLL is a float32 evaluation, outside autocast
    assert best == pytest.approx(pf.evaluate(m, y[12:]), rel=1e-6)


def test_resume_refuses_another_precision(tmp_path):
    m, y = frmdn_and_data(2)
    pf.fit(m, y, epochs=1, checkpoint=tmp_path, precision="bf16-mixed", progress=False)
    pyro.clear_param_store()
    with pytest.raises(ValueError, match="precision"):
        pf.fit(m, y, epochs=2, checkpoint=tmp_path, resume=True, progress=False)


@pytest.mark.parametrize("bad", ["bf16", "16-mixed", None, 32])
def test_an_unknown_precision_is_refused_by_name(bad):
    m, y = frmdn_and_data()
    with pytest.raises(ValueError, match="precision must be one of"):
        pf.fit(m, y, epochs=1, precision=bad, progress=False)
    with pytest.raises(ValueError, match="precision must be one of"):
        mixed_precision(bad, "cpu")
    assert "bf16-mixed" in TRAINING_PRECISIONS


def _models():
    """(name, model, batch) for every kind of model the package fits, small."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    strokes = random_stroke5(6, 10)
    codes, text_mask = encode_texts(["abc", "d a", "bb"], "abcd ")
    pen = torch.randn(3, 6, 3, generator=g)
    pen[..., 2] = (torch.rand(3, 6, generator=g) < 0.3).float()
    frames, actions, mask, rewards, dones = episode(dtype=torch.float32)
    worlds = {"frames": frames, "actions": actions, "mask": mask, "rewards": rewards}
    worlds["dones"] = dones
    return [
        ("MDN", pf.MDN(3, 2, num_components=2, hidden_dims=[8], rank=1),
         {"x": torch.randn(8, 3), "y": torch.randn(8, 2)}),
        ("FRMDN", frmdn_and_data()[0], {"y": frmdn_and_data()[1]}),
        ("SketchVAE", pf.SketchVAE(latent_dim=4, encoder_dim=8, hidden_dim=16, num_components=2,
                                   flow_layers=2, position_input=True), {"y": strokes}),
        ("HandwritingSynthesis", pf.HandwritingSynthesis("abcd ", hidden_dim=8, num_components=2),
         {"y": pen, "text": codes, "text_mask": text_mask}),
        ("WorldModel", world(torch.float32, reward=True, done=True), worlds),
        ("WorldModel, boosted guide", world(torch.float32, guide_flow="boosted"),
         {k: worlds[k] for k in ("frames", "actions", "mask")}),
        ("WorldModel, gaussian pixels", world(torch.float32, likelihood="gaussian",
                                              guide_flow="iaf"),
         {k: worlds[k] for k in ("frames", "actions", "mask")}),
    ]  # fmt: skip


@pytest.mark.parametrize("index", range(7), ids=[name for name, _, _ in _models()])
def test_every_site_of_every_model_is_scored_in_float32_under_autocast(index):
    _, m, batch = _models()[index]
    pyro.set_rng_seed(0)
    with autocast():
        guide = poutine.trace(m.guide).get_trace(**batch)
        model = poutine.trace(poutine.replay(m.model, trace=guide)).get_trace(**batch)
        scored = {
            f"{where}:{name}": site["fn"].log_prob(site["value"])
            for where, trace in (("guide", guide), ("model", model))
            for name, site in trace.nodes.items()
            if site["type"] == "sample" and type(site["fn"]).__name__ != "_Subsample"
        }
    assert scored and all(lp.dtype == torch.float32 for lp in scored.values()), {
        k: lp.dtype for k, lp in scored.items()
    }
    loss = Trace_ELBO().differentiable_loss(m.model, m.guide, **batch)
    assert loss.dtype == torch.float32


@pytest.mark.parametrize("index", range(7), ids=[name for name, _, _ in _models()])
def test_every_model_fits_in_bf16_mixed(index):
    _, m, batch = _models()[index]
    history = pf.fit(m, batch, epochs=2, batch_size=3, clip_value=None, precision="bf16-mixed",
                     progress=False)  # fmt: skip
    assert all(math.isfinite(v) for v in history["train_nll"])


def test_bf16_mixed_refuses_a_float64_model_which_autocast_would_leave_alone():
    m, y = frmdn_and_data()
    m = m.double()
    with pytest.raises(ValueError, match=r"torch\.float64.*model\.float\(\)"):
        pf.fit(m, y.double(), epochs=1, precision="bf16-mixed", progress=False)


@pytest.mark.parametrize("index", range(7), ids=[name for name, _, _ in _models()])
def test_every_model_gradient_under_autocast_is_float32s_rounded(index):
    # the loss under autocast, its backward outside it (as Lightning runs them): the gradient of
    # every parameter points where float32's does; its size differs by the rounding of the
    # networks' products to 8 bits of mantissa (measured 0.07-0.6% here)
    _, m, batch = _models()[index]
    params = [p for p in m.parameters() if p.requires_grad]
    grads = []
    for cast in (False, True):
        pyro.set_rng_seed(0)
        with torch.autocast("cpu", dtype=BF16, enabled=cast):
            loss = Trace_ELBO().differentiable_loss(m.model, m.guide, **batch)
        got = torch.autograd.grad(loss, params, allow_unused=True)
        grads.append(torch.cat([(g if g is not None else torch.zeros_like(p)).flatten()
                                for g, p in zip(got, params, strict=True)]))  # fmt: skip
    full, mixed = grads
    assert mixed.dtype == torch.float32
    assert float(torch.nn.functional.cosine_similarity(full, mixed, dim=0)) > 0.999
    assert float((mixed - full).norm() / full.norm()) < 0.02
