"""HandwritingSynthesis: exact likelihood, step-by-step reference, writing, bias, persistence,
errors."""

import math

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO

import pyro_frmdn as pf
from pyro_frmdn.nn import encode_texts

ALPHABET = "abcd "
CONFIGS = [
    dict(num_components=3, rank=1, flow_layers=0),
    dict(num_components=2, rank=1, flow_layers=2, offset_scale=2.5),
    dict(num_components=2, rank=0, flow_layers=1, flow="spline", parameterization="precision"),
    dict(num_components=2, rank=1, flow_layers=0, text_blind=True, num_layers=2),
]


def make(config=None, seed=0, **kwargs):
    torch.manual_seed(seed)
    config = {**(config or CONFIGS[0]), **kwargs}
    config.setdefault("num_layers", 3)
    return pf.HandwritingSynthesis(ALPHABET, hidden_dim=8, window_components=2, **config).double()


def data(b=3, t=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(b, t, 3, generator=g, dtype=torch.float64)
    y[..., 2] = (torch.rand(b, t, generator=g) < 0.3).double()
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[min(b - 1, 1), 4:] = False
    codes, text_mask = encode_texts(["abc", "d a", "bb"][:b], ALPHABET)
    return y, mask, codes, text_mask


@pytest.mark.parametrize("config", CONFIGS)
def test_elbo_is_exactly_the_negative_log_likelihood(config):
    m = make(config)
    y, mask, codes, text_mask = data()
    loss = Trace_ELBO().differentiable_loss(m.model, m.guide, y, codes, mask, text_mask)
    assert torch.allclose(loss, -m.log_prob(y, codes, mask, text_mask).sum(), rtol=1e-12)


@pytest.mark.parametrize("config", CONFIGS)
def test_log_prob_equals_the_network_run_one_step_at_a_time(config):
    m = make(config)
    y, mask, codes, text_mask = data()
    one_hot = None if m.text_blind else pf.nn.one_hot_text(codes, text_mask, 5, torch.float64)
    state, prev, total = m.initial_state(3), m._scaled(m.start).expand(3, 3), 0
    for t in range(y.shape[1]):
        out, _, _, state = m.run(prev.unsqueeze(1), one_hot, text_mask, state)
        total = total + m.step_distribution(out[:, 0]).log_prob(y[:, t]) * mask[:, t]
        prev = m._scaled(y[:, t])
    assert torch.allclose(m.log_prob(y, codes, mask, text_mask), total, rtol=1e-10)


def test_the_network_against_torch_lstms_run_step_by_step():
    """The features of the text-reading network, rebuilt from torch's own LSTM modules."""
    m = make(CONFIGS[1])
    y, _, codes, text_mask = data()
    one_hot = pf.nn.one_hot_text(codes, text_mask, 5, torch.float64)
    states = [None] * len(m.layers)
    w, kappa = torch.zeros(3, 5, dtype=torch.float64), torch.zeros(3, 2, dtype=torch.float64)
    prev, outs = m._scaled(m.start).expand(3, 3), []
    for t in range(y.shape[1]):
        h, states[0] = m.layers[0](torch.cat([prev, w], -1).unsqueeze(1), states[0])
        window = m.window(h[:, 0], kappa, one_hot, text_mask)
        w, kappa, below = window.w, window.kappa, [h]
        for n in range(1, len(m.layers)):
            inputs = torch.cat([prev, below[-1][:, 0], w], -1).unsqueeze(1)
            h, states[n] = m.layers[n](inputs, states[n])
            below.append(h)
        outs.append(torch.cat(below, -1))
        prev = m._scaled(y[:, t])
    features, _ = m._features(y, codes, text_mask)
    assert torch.allclose(features, torch.cat(outs, 1), rtol=1e-10, atol=1e-12)


def dense_log_prob(m, features, y):
    """The RMDN head's law of a point, by hand: dense covariances in float64, the Bernoulli."""
    d = m.head(features)
    logits = torch.log_softmax(d.mixture_distribution.logits, -1)
    comp = d.component_distribution
    cov = comp.cov_factor @ comp.cov_factor.transpose(-1, -2) + torch.diag_embed(comp.cov_diag)
    s = m.offset_scale
    z = (y[..., :2] / s).unsqueeze(-2)
    gauss = torch.distributions.MultivariateNormal(comp.loc, covariance_matrix=cov).log_prob(z)
    pen = torch.distributions.Bernoulli(logits=m.bits(features)[..., 0]).log_prob(y[..., 2])
    return torch.logsumexp(logits + gauss, -1) - 2 * math.log(s) + pen


@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_step_law_against_a_dense_reference(scale):
    m = make(offset_scale=scale)
    y, _, codes, text_mask = data()
    features, _ = m._features(y, codes, text_mask)
    expected = dense_log_prob(m, features, y)
    assert torch.allclose(m.step_log_prob(y, codes, None, text_mask), expected, rtol=1e-10)


def test_the_text_matters_and_text_blind_ignores_it():
    y, _, codes, text_mask = data()
    other = codes.clone()
    other[0, 0] = 3
    m = make()
    assert not torch.allclose(
        m.log_prob(y, codes, None, text_mask), m.log_prob(y, other, None, text_mask)
    )
    blind = make(CONFIGS[3])
    assert torch.equal(
        blind.log_prob(y, codes, None, text_mask), blind.log_prob(y, other, None, text_mask)
    )
    assert torch.equal(blind.log_prob(y), blind.log_prob(y, codes, None, text_mask))


def test_padding_changes_neither_loss_nor_gradient():
    m = make(CONFIGS[1])
    y, mask, codes, text_mask = data()
    padded_y, padded_codes = y.clone(), codes.clone()
    padded_y[~mask] = 7.0
    padded_codes[~text_mask] = 4
    losses = []
    for yy, cc in ((y, codes), (padded_y, padded_codes)):
        m.zero_grad()
        loss = -m.log_prob(yy, cc, mask, text_mask).sum()
        loss.backward()
        losses.append((loss.detach(), [p.grad.clone() for p in m.parameters()]))
    assert torch.equal(losses[0][0], losses[1][0])
    assert all(torch.equal(a, b) for a, b in zip(losses[0][1], losses[1][1], strict=True))


def test_steps_no_sequence_scores_are_cut_and_given_back_as_zeros():
    m = make(CONFIGS[1])
    y, mask, codes, text_mask = data()
    mask[:, 4:] = False
    lp = m.step_log_prob(y, codes, mask, text_mask)
    assert lp.shape == mask.shape and bool((lp[:, 4:] == 0).all())
    short = m.step_log_prob(y[:, :4], codes, mask[:, :4], text_mask)
    assert torch.allclose(lp[:, :4], short, rtol=1e-12)


def test_every_parameter_gets_a_gradient():
    m = make(CONFIGS[1])
    y, mask, codes, text_mask = data()
    m.log_prob(y, codes, mask, text_mask).sum().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def steady_window(m, step=0.5, beta=4.0):
    """A window that moves exactly ``step`` characters a step, whatever the network says."""
    k = m.window.num_components
    with torch.no_grad():
        m.window.linear.weight.zero_()
        m.window.linear.bias.copy_(
            m.window.linear.bias.new_tensor([0.0] * k + [math.log(beta)] * k + [math.log(step)] * k)
        )
    return m


def test_write_stops_when_the_window_passes_the_last_character():
    m = steady_window(make())
    pyro.set_rng_seed(0)
    out = m.write(["abc", "abcd ", "a"], max_steps=100)
    # kappa_t = t / 2 passes the end of U characters (phi(U + 1) > phi(U)) when t / 2 > U + 1/2
    assert [len(s) for s in out.strokes] == [8, 12, 4]
    for s, a, text in zip(out.strokes, out.attention, ["abc", "abcd ", "a"], strict=True):
        assert s.shape[1] == 3 and a.shape == (len(s), len(text))
        assert s[-1, 2] == 1
        t = torch.arange(1, len(s) + 1, dtype=torch.float64).unsqueeze(-1) / 2
        u = torch.arange(1, len(text) + 1, dtype=torch.float64)
        assert torch.allclose(a, 2 * torch.exp(-4 * (t - u) ** 2), rtol=1e-12)
        assert bool(torch.isfinite(s).all())


def test_write_respects_the_step_cap():
    m = steady_window(make())
    out = m.write(["abc", "a"], max_steps=5)
    assert [len(s) for s in out.strokes] == [5, 4]
    blind = make(CONFIGS[3])
    assert [len(s) for s in blind.write(["abc", "a"], max_steps=7).strokes] == [7, 7]
    assert len(m.sample(3, "ab", max_steps=2)) == 3


def covariance(c):
    if isinstance(c, torch.distributions.Independent):  # diagonal components (rank 0)
        return torch.diag_embed(c.base_dist.scale**2)
    return c.covariance_matrix


@pytest.mark.parametrize("config", CONFIGS[:3])
def test_bias_sharpens_weights_and_shrinks_the_spread_as_graves(config):
    m = make(config)
    y, _, codes, text_mask = data()
    d = m.step_distribution(m._features(y, codes, text_mask)[0])
    b = 0.7
    biased = m._biased(d, b, pi_temperature=1.0, scale_temperature=1.0)
    base, new = d.continuous, biased.continuous
    if m.flow or m.offset_scale != 1:
        base, new = base.base_dist, new.base_dist
    logits = base.mixture_distribution.logits
    assert torch.allclose(
        torch.log_softmax(new.mixture_distribution.logits, -1),
        torch.log_softmax(logits * (1 + b), -1),
    )
    cov, new_cov = (covariance(c.component_distribution) for c in (base, new))
    assert torch.allclose(new_cov, cov * math.exp(-2 * b), rtol=1e-10)
    assert torch.equal(biased.logits, d.logits)  # the pen bit is not biased


def test_a_large_bias_writes_the_most_likely_path():
    m = make(CONFIGS[0])
    options = dict(bias=30.0, pi_temperature=1e-6, max_steps=6)  # the pen bit made sure, too
    pyro.set_rng_seed(1)
    a = m.write(["ab"], **options).strokes[0]
    pyro.set_rng_seed(2)
    b = m.write(["ab"], **options).strokes[0]
    assert torch.allclose(a, b, atol=1e-9)


def test_priming_runs_the_network_through_the_prime_first():
    m = make()
    y, _, _, _ = data(b=1, t=5)
    pyro.set_rng_seed(3)
    out = m.write(["c"], prime=(y[0], "ab"), max_steps=1)
    assert out.attention[0].shape == (1, 1)
    # the law of the first new point is the one the teacher-forced network gives after the prime
    codes, text_mask = encode_texts(["ab c"], ALPHABET)
    features, phi = m._features(torch.cat([y, y[:, :1]], 1), codes, text_mask)
    pyro.set_rng_seed(3)
    expected = m._biased(m.step_distribution(features[:, -1]), 0.0, 1.0, 1.0).sample()
    assert torch.allclose(out.strokes[0][0, :2], expected[0, :2], rtol=1e-12)
    assert torch.allclose(out.attention[0][0], phi[0, -1, 3:], rtol=1e-12)


def test_save_load_round_trip(tmp_path):
    m = make(CONFIGS[1]).float()  # a model is loaded in torch's default dtype
    y, mask, codes, text_mask = data()
    loaded = pf.load(m.save(tmp_path / "m.pt"))
    assert isinstance(loaded, pf.HandwritingSynthesis) and loaded.config == m.config
    assert torch.equal(
        loaded.log_prob(y, codes, mask, text_mask), m.log_prob(y, codes, mask, text_mask)
    )


def test_pace_window_starts_the_centres_at_the_given_pace():
    m = make()
    m.pace_window(0.3)
    with torch.no_grad():
        m.window.linear.weight.zero_()
    y, mask, codes, text_mask = data()
    phi = m.attention(y, codes, mask, text_mask)  # kappa_t = 0.3 t for every component
    k = m.window.num_components
    alpha, beta = m.window.linear.bias[:k].exp(), m.window.linear.bias[k : 2 * k].exp()
    t = torch.arange(1, y.shape[1] + 1, dtype=torch.float64)[:, None, None]
    u = torch.arange(1, codes.shape[1] + 1, dtype=torch.float64)[None, :, None]
    expected = (alpha * torch.exp(-beta * (0.3 * t - u) ** 2)).sum(-1) * text_mask[:, None, :]
    assert torch.allclose(phi, expected, rtol=1e-10)
    with pytest.raises(ValueError, match="characters_per_point must be a finite number > 0"):
        m.pace_window(0.0)
    with pytest.raises(ValueError, match="text_blind model has no window"):
        make(CONFIGS[3]).pace_window(0.3)


def test_fit_trains_it_from_a_dict_of_codes():
    m = pf.HandwritingSynthesis(ALPHABET, hidden_dim=8, num_layers=2, num_components=2)
    y, mask, codes, text_mask = data(b=3, t=6)
    train = {"y": y.float().repeat(4, 1, 1), "text": codes.repeat(4, 1), "mask": mask.repeat(4, 1)}
    train["text_mask"] = text_mask.repeat(4, 1)
    history = pf.fit(m, train, epochs=8, batch_size=6, lr=0.02, progress=False)
    assert history["train_nll"][-1] < history["train_nll"][0]
    nll = pf.evaluate(m, train)
    assert nll == pytest.approx(
        -float(m.log_prob(**train).sum().detach()) / int(mask.repeat(4, 1).sum()), rel=1e-5
    )


def test_strings_and_codes_give_the_same_likelihood():
    m = make()
    y, mask, codes, text_mask = data()
    assert torch.equal(
        m.log_prob(y, ["abc", "d a", "bb"], mask), m.log_prob(y, codes, mask, text_mask)
    )


@pytest.mark.parametrize(
    "change, error, message",
    [
        (dict(text=["abx", "a", "b"]), ValueError, "'x', which is not in the alphabet"),
        (dict(text=torch.full((3, 2), 9)), ValueError, "text[0, 0] = 9 is not a character code"),
        (dict(text=torch.zeros(3, 2)), TypeError, "integer character codes"),
        (dict(text=torch.zeros(2, 2, dtype=torch.long)), ValueError, "text has 2 rows but y has 3"),
        (dict(text=torch.zeros(3, dtype=torch.long)), ValueError, "text must have shape"),
        (dict(text_mask=torch.tensor([[False, True, True]] * 3)), ValueError, "prefix"),
        (dict(text_mask=torch.ones(3, 3)), ValueError, "mask must be boolean"),
        (dict(text=None), ValueError, "pass text"),
        (dict(y=torch.zeros(3, 6, 2, dtype=torch.float64)), ValueError, "obs_dim=3"),
        (dict(y="pen"), TypeError, "y must be a torch.Tensor"),
        (dict(y=torch.zeros(3, 6, dtype=torch.float64)), ValueError, "y must have shape"),
        (dict(text="abc"), TypeError, "text must be a list of strings, one per sequence"),
        (dict(mask=torch.ones(3, 5, dtype=torch.bool)), ValueError, "mask must have shape"),
    ],
)
def test_bad_data_are_refused_with_their_name(change, error, message):
    m = make()
    y, mask, codes, text_mask = data()
    args = {"y": y, "text": codes, "mask": mask, "text_mask": text_mask}
    if "text" in change and "text_mask" not in change:
        args["text_mask"] = None
    args.update(change)
    with pytest.raises(error) as e:
        m.log_prob(**args)
    assert message in str(e.value)


@pytest.mark.parametrize("value, name", [(math.nan, "NaN"), (math.inf, "Inf")])
def test_strokes_with_nan_or_inf_are_refused_where_they_are(value, name):
    m = make()
    y, mask, codes, text_mask = data()
    y[1, 3, 0] = value
    with pytest.raises(ValueError, match=rf"y has {name} at position \(1, 3, 0\)"):
        m.log_prob(y, codes, mask, text_mask)
    with pytest.raises(ValueError, match=rf"y has {name} at position"):  # a shuffled batch
        pf.fit(m, {"y": y, "text": codes, "mask": mask, "text_mask": text_mask}, epochs=1)


def test_a_pen_bit_that_is_not_0_or_1_is_refused():
    m = make()
    y, mask, codes, text_mask = data()
    y[0, 2, 2] = 0.5
    with pytest.raises(ValueError, match=r"y\[0, 2, 2\] = 0.5: the pen bit is 0 or 1"):
        m.log_prob(y, codes, mask, text_mask)


@pytest.mark.parametrize(
    "options, error, message",
    [
        (dict(texts=["az"]), ValueError, "'z', which is not in the alphabet"),
        (dict(bias=-1.0), ValueError, "bias must be a finite number >= 0"),
        (dict(bias=math.nan), ValueError, "bias must be a finite number >= 0"),
        (dict(pi_temperature=0.0), ValueError, "pi_temperature"),
        (dict(max_steps=0), ValueError, "max_steps must be >= 1"),
        (dict(prime=torch.zeros(3, 3)), TypeError, "prime must be a pair"),
        (dict(prime=(torch.zeros(3, 2), "ab")), ValueError, "prime strokes must have shape (P, 3)"),
        (dict(prime=(torch.zeros(3, 3), "zz")), ValueError, "'z', which is not in the alphabet"),
        (
            dict(prime=(torch.tensor([[0.0, 0, 0], [math.nan, 0, 1]]), "ab")),
            ValueError,
            "prime strokes have NaN or Inf at row 1",
        ),
        (dict(bias="high"), ValueError, "bias must be a finite number >= 0, got 'high'"),
        (dict(texts=[]), ValueError, "texts is empty"),
        (dict(style="neat"), TypeError, "unexpected keyword argument 'style'"),
    ],
)
def test_bad_write_options_are_refused(options, error, message):
    m = make()
    options = {"texts": ["ab"], **options}
    with pytest.raises(error) as e:
        m.write(**options)
    assert message in str(e.value)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(alphabet="abca"), "'a' twice"),
        (dict(alphabet=""), "alphabet must be a non-empty string"),
        (dict(alphabet="ab", offset_scale=0.0), "offset_scale must be a finite number > 0"),
        (dict(alphabet="ab", num_layers=0), "num_layers must be >= 1"),
        (dict(alphabet="ab", num_components=0), "num_components must be >= 1"),
        (dict(alphabet="ab", window_components=0), "window_components must be >= 1"),
        (dict(alphabet="ab", parameterization="cholesky"), "parameterization must be one of"),
        (dict(alphabet="ab", flow_layers=1, flow="glow"), "flow must be one of"),
    ],
)
def test_bad_constructor_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError) as e:
        pf.HandwritingSynthesis(**kwargs)
    assert message in str(e.value)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(text_blind="yes"), "text_blind must be True or False"),
        (dict(hidden_dim=2.5), "hidden_dim must be an integer"),
        (dict(window_size=3), "unexpected keyword argument 'window_size'"),
    ],
)
def test_constructor_arguments_of_a_wrong_type_or_unknown_are_refused(kwargs, message):
    with pytest.raises(TypeError) as e:
        pf.HandwritingSynthesis("ab", **kwargs)
    assert message in str(e.value)


def test_sample_needs_a_text():
    m = make()
    with pytest.raises(TypeError, match="text must be a string or a list of num strings"):
        m.sample(2, 5)
    with pytest.raises(ValueError, match="text is a list of 1 strings but num=2"):
        m.sample(2, ["ab"])
