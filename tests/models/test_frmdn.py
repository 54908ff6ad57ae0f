"""FRMDN / RMDN as Pyro programs: exact likelihood, step API, masks, sampling, errors."""

import math

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO
from support.tensors import with_value

import pyro_frmdn as pf
from pyro_frmdn.models import greedy

D, X = 3, 2
CONFIGS = [
    dict(num_components=3, rank=0, flow_layers=0),
    dict(num_components=2, rank=2, parameterization="precision", flow_layers=2, cell="gru"),
    dict(num_components=2, rank=1, factor_mode="shared", flow_layers=2, flow="spline"),
    dict(num_components=2, rank=1, flow_layers=1, conditional_flow=True, num_layers=2),
]


def make(config, input_dim=0, seed=0):
    torch.manual_seed(seed)
    return pf.FRMDN(D, input_dim=input_dim, hidden_dim=8, **config).double()


def data(b=4, t=7, input_dim=0, seed=1):
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(b, t, D, generator=g, dtype=torch.float64)
    x = torch.randn(b, t, input_dim, generator=g, dtype=torch.float64) if input_dim else None
    return y, x


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("input_dim", [0, X])
def test_log_prob_equals_the_step_api_run_by_hand(config, input_dim):
    m = make(config, input_dim)
    y, x = data(input_dim=input_dim)
    state, prev, total = m.initial_state(y.shape[0]), None, 0
    for t in range(y.shape[1]):
        d, state = m.step(state, prev, None if x is None else x[:, t])
        total = total + d.log_prob(y[:, t])
        prev = y[:, t]
    assert torch.allclose(m.log_prob(y, x), total, rtol=1e-10)


@pytest.mark.parametrize("config", CONFIGS)
def test_elbo_is_exactly_the_negative_log_likelihood(config):
    m = make(config)
    y, _ = data()
    mask = torch.ones(y.shape[:2], dtype=torch.bool)
    mask[1, 4:] = False
    loss = Trace_ELBO().differentiable_loss(m.model, m.guide, y, None, mask)
    assert torch.allclose(loss, -m.log_prob(y, mask=mask).sum(), rtol=1e-10)


@pytest.mark.parametrize("config", CONFIGS)
def test_padding_changes_neither_loss_nor_gradient(config):
    m = make(config)
    lengths = [7, 3, 5]
    g = torch.Generator().manual_seed(0)
    seqs = [torch.randn(n, D, generator=g, dtype=torch.float64) for n in lengths]
    y, mask = pf.pad_sequences(seqs)
    assert mask.sum(1).tolist() == lengths
    # each sequence alone, unpadded
    alone = torch.cat([m.log_prob(s.unsqueeze(0)) for s in seqs])
    assert torch.allclose(m.log_prob(y, mask=mask), alone, rtol=1e-10)
    grads = []
    for fill in (0.0, 1e3, math.nan):
        y_fill = torch.where(mask.unsqueeze(-1), y, torch.full_like(y, fill))
        m.zero_grad()
        Trace_ELBO().differentiable_loss(m.model, m.guide, y_fill, None, mask).backward()
        grads.append([p.grad.clone() for p in m.parameters()])
    for other in grads[1:]:
        for g0, g1 in zip(grads[0], other, strict=True):
            assert torch.equal(g0, g1)


def test_holes_in_the_mask_are_skipped_and_do_not_feed_the_rnn():
    m = make(CONFIGS[1])
    y, _ = data()
    mask = torch.ones(y.shape[:2], dtype=torch.bool)
    mask[:, 2] = False
    y2 = y.clone()
    y2[:, 2] = 5.0
    lp = m.step_log_prob(y, mask=mask)
    assert torch.equal(lp[:, 2], torch.zeros(4, dtype=torch.float64))
    assert torch.allclose(lp, m.step_log_prob(y2, mask=mask))


@pytest.mark.parametrize("config", CONFIGS)
def test_sample_shapes_prime_inputs_and_greedy(config):
    m = make(config, input_dim=X)
    x = torch.randn(5, 3 + 4, X, dtype=torch.float64)
    prime = torch.randn(3, D, dtype=torch.float64)
    s = m.sample(5, 4, x=x, prime=prime)
    assert s.shape == (5, 4, D) and torch.isfinite(s).all()
    g1 = m.sample(5, 4, x=x, prime=prime, greedy_decoding=True)
    g2 = m.sample(5, 4, x=x, prime=prime, greedy_decoding=True)
    assert torch.equal(g1, g2)
    cold = m.sample(5, 4, x=x, prime=prime, pi_temperature=1e-3, scale_temperature=1e-6)
    if not config.get("flow_layers"):
        assert torch.allclose(cold, g1, atol=1e-2)
    with pytest.raises(ValueError, match="x must have shape"):
        m.sample(5, 4, prime=prime)


def test_greedy_is_the_mean_of_the_most_likely_component():
    logits = torch.tensor([[0.0, 2.0, 1.0]])
    loc = torch.arange(6.0).reshape(1, 3, 2)
    d = pf.low_rank_mixture(logits, loc, None, torch.ones(1, 3, 2))
    assert torch.equal(greedy(d), loc[:, 1])


def test_sampled_sequences_follow_the_model():
    """Draws of y_1 match the first-step distribution (moments), a check of sample()."""
    m = make(CONFIGS[0])
    s = m.sample(4000, 1)[:, 0]
    d, _ = m.step(m.initial_state(1), None)
    mean = d.mean[0]
    std = d.variance[0].sqrt()
    assert ((s.mean(0) - mean).abs() < 5 * std / math.sqrt(4000)).all()


def test_step_distribution_reuses_the_likelihood():
    m = make(CONFIGS[2])
    h = torch.randn(6, 5, 8, dtype=torch.float64)
    d = m.step_distribution(h)
    assert d.batch_shape == (6, 5) and d.event_shape == (D,)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (lambda y: (y[0],), "shape \\(batch, time, 3\\)"),
        (lambda y: (y[..., :2],), "2 dims per step"),
        (lambda y: (y, None, torch.ones(4, 6, dtype=torch.bool)), "mask must have shape"),
        (lambda y: (with_value(y, (1, 2, 0), math.nan),), r"y has NaN at position \(1, 2, 0\)"),
        (lambda y: (with_value(y, (0, 1, 0), math.inf),), r"y has Inf at position \(0, 1, 0\)"),
        (lambda y: (y, torch.randn(4, 7, 2, dtype=torch.float64)), "input_dim=0"),
        (lambda y: (y[:, :0],), "empty"),
        (lambda y: (y, None, torch.zeros(4, 7, dtype=torch.bool)), "nothing to score"),
    ],
)
def test_bad_input_gives_clear_errors(args, match):
    m = make(CONFIGS[0])
    y, _ = data()
    with pytest.raises(ValueError, match=match):
        m.log_prob(*args(y))
    with pytest.raises(ValueError, match=match):
        m.model(*args(y))


def test_the_old_factor_name_works_with_a_warning_and_old_configs_load():
    with pytest.warns(FutureWarning, match="factor= is deprecated.*use factor_mode="):
        old = pf.FRMDN(2, rank=1, factor="shared", hidden_dim=4, flow_layers=0)
    assert old.config["factor_mode"] == "shared" and "factor" not in old.config
    saved = {**{k: v for k, v in old.config.items() if k != "factor_mode"}, "factor": "shared"}
    assert pf.FRMDN.from_config(saved).config == old.config  # a config written before 0.2


def test_the_default_flow_width_is_capped_and_stored_in_the_config():
    m = pf.FRMDN(100, hidden_dim=4, num_components=1, flow_layers=1, binary_dims=4)
    assert m.config["flow_hidden_dims"] == [128]  # 2 * 96 capped at 128
    assert m.flow[0].nn.layers[0].out_features == 128
    assert pf.FRMDN(10, flow_layers=1).config["flow_hidden_dims"] == [32]
    assert pf.RMDN(100).config["flow_hidden_dims"] is None  # no flow, no width


@pytest.mark.parametrize("obs_dim", [3, 80])
def test_models_saved_before_the_width_cap_load_with_their_flow(obs_dim, tmp_path):
    """A file of an earlier release: the config holds flow_hidden_dims=None, which meant
    [max(32, 2 * D)], wider than today's default for D > 64."""
    from pyro_frmdn.models.base import MODEL_FORMAT

    torch.manual_seed(0)
    width = max(32, 2 * obs_dim)
    old = pf.FRMDN(obs_dim, hidden_dim=4, num_components=2, flow_layers=2, flow_hidden_dims=[width])
    payload = old.payload()
    payload["config"]["flow_hidden_dims"] = None
    torch.save({"format": MODEL_FORMAT, "version": None, **payload}, tmp_path / "old.pt")
    new = pf.load(tmp_path / "old.pt")
    assert new.flow[0].nn.layers[0].out_features == width
    y = torch.randn(2, 3, obs_dim)
    assert torch.equal(new.log_prob(y), old.log_prob(y))
    rmdn = {**pf.RMDN(obs_dim).config, "flow_hidden_dims": None}
    assert pf.RMDN.from_config(rmdn).config == pf.RMDN(obs_dim).config


def test_bad_options_give_clear_errors():
    with pytest.raises(ValueError, match="cell"):
        pf.FRMDN(2, cell="rnn")
    with pytest.raises(ValueError, match="parameterization"):
        pf.FRMDN(2, parameterization="cholesky")
    with pytest.raises(ValueError, match="factor_mode must be one of"):
        pf.FRMDN(2, rank=1, factor_mode="global")
    with pytest.raises(ValueError, match="flow must be one of"):
        pf.FRMDN(2, flow="planar")
    with pytest.raises(TypeError, match="FRMDN got unexpected keyword arguments \\['layers'\\]"):
        pf.FRMDN(2, layers=2)
    with pytest.raises(ValueError, match="no flow"):
        pf.RMDN(2, flow_layers=2)
    m = make(CONFIGS[0], input_dim=X)
    y, _ = data()
    with pytest.raises(ValueError, match="pass x"):
        m.log_prob(y)


def test_pyro_module_names_keep_two_models_apart():
    a, b = (
        pf.FRMDN(2, hidden_dim=4, flow_layers=0),
        pf.FRMDN(2, hidden_dim=4, flow_layers=0, name="b"),
    )
    y = torch.randn(2, 3, 2)
    pyro.clear_param_store()
    a.model(y)
    b.model(y)
    names = list(pyro.get_param_store().keys())
    assert any(n.startswith("frmdn$$$") for n in names) and any(n.startswith("b$$$") for n in names)


# -- a Bernoulli head for trailing bits (pen-up flags) --------------------------------------


def strokes(b=6, t=12, seed=3):
    """(dx, dy, pen_up) with the pen lifted every fourth step: the bits follow from the past."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(b, t, 3, generator=g, dtype=torch.float64)
    y[..., 2] = (torch.arange(t) % 4 == 3).double()
    return y


@pytest.mark.parametrize("config", CONFIGS)
def test_bits_are_scored_by_a_bernoulli_beside_the_continuous_model(config):
    torch.manual_seed(0)
    m = pf.FRMDN(3, hidden_dim=8, binary_dims=1, **config).double()
    y = strokes()
    h = m.features(y)
    cont = m.head(h)
    if len(m.flow):
        cont = pf.distributions.flow_mixture(cont, m.flow, h if m.conditional_flow else None)
    p = torch.sigmoid(m.bits(h)).squeeze(-1)
    bits = torch.where(y[..., 2] == 1, p, 1 - p).log()
    assert torch.allclose(m.step_log_prob(y), cont.log_prob(y[..., :2]) + bits, rtol=1e-10)
    loss = Trace_ELBO().differentiable_loss(m.model, m.guide, y)
    assert torch.allclose(loss, -m.log_prob(y).sum(), rtol=1e-10)
    assert cont.event_shape == (2,) and m.step_distribution(h).event_shape == (3,)


def test_bits_sample_as_zeros_and_ones_and_greedy_takes_the_likelier_value():
    torch.manual_seed(0)
    m = pf.FRMDN(3, hidden_dim=8, num_components=2, rank=1, flow_layers=1, binary_dims=1)
    s = m.sample(50, steps=6)
    assert s.shape == (50, 6, 3) and set(s[..., 2].unique().tolist()) <= {0.0, 1.0}
    d, _ = m.step(m.initial_state(2))
    g = greedy(d)
    assert torch.equal(g[:, 2], (d.logits[:, 0] > 0).float())
    assert torch.allclose(g[:, :2], greedy(d.continuous))


def test_a_fitted_bernoulli_head_learns_when_the_pen_lifts():
    torch.manual_seed(0)
    m = pf.RMDN(3, hidden_dim=16, num_components=1, binary_dims=1)
    y = strokes(b=64, t=16).float()
    mask = torch.ones(y.shape[:2], dtype=torch.bool)
    mask[::2, 12:] = False  # ragged lengths; padding may hold any value
    y[::2, 12:, 2] = 0.5
    before = -m.step_log_prob(y, mask=mask)
    pf.fit(m, {"y": y, "mask": mask}, epochs=60, batch_size=64, lr=2e-2, progress=False)
    with torch.no_grad():
        p = torch.sigmoid(m.bits(m.features(y))).squeeze(-1)
    truth = y[..., 2] == 1
    # the lift is certain from the past: the head's probability moves to the right side of 1/2
    assert ((p > 0.5) == truth)[mask].float().mean() > 0.99
    with torch.no_grad():
        after = -m.step_log_prob(y, mask=mask)
    assert after[mask].mean() < before[mask].mean() - 0.5


def test_bits_are_checked_where_the_mask_is_on():
    m = pf.FRMDN(3, hidden_dim=4, flow_layers=0, binary_dims=1)
    y = strokes().float()
    y[1, 5, 2] = 0.5
    with pytest.raises(ValueError, match=r"y\[1, 5, 2\] = 0.5.*must be 0 or 1"):
        m.log_prob(y)
    mask = torch.ones(y.shape[:2], dtype=torch.bool)
    mask[1, 5:] = False
    assert torch.isfinite(m.log_prob(y, mask=mask)).all()
    with pytest.raises(ValueError, match="binary_dims must be in"):
        pf.FRMDN(2, binary_dims=2)
    with pytest.raises(ValueError, match="0 or 1"):
        m.sample(1, 2, prime=torch.tensor([[0.0, 0.0, 2.0]]))
