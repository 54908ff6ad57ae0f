"""SketchVAE: the Pyro program, the decoder against a dense reference, KL schedule, user methods."""

import math
import re
from pathlib import Path

import pyro
import pytest
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from torch.distributions import MultivariateNormal

import pyro_frmdn as pf
from pyro_frmdn.data import from_stroke5, to_stroke5
from pyro_frmdn.models import SketchVAE
from pyro_frmdn.models.sketch_inputs import random_stroke5

Z, B, L = 3, 4, 7


def vae(**kwargs) -> SketchVAE:
    torch.manual_seed(0)
    options = dict(latent_dim=Z, encoder_dim=6, hidden_dim=8, num_components=2, rank=1)
    return SketchVAE(**{**options, **kwargs}).double()


def drawings(seed=0) -> torch.Tensor:
    return random_stroke5(B, L, seed).double()


def blind(m: SketchVAE) -> SketchVAE:
    """Cut z out of the decoder: its initial state, its input and its output layers (with
    ``z_to_output``) no longer read z."""
    hidden = m.decoder.hidden_size
    with torch.no_grad():
        m.init.weight.zero_()
        m.decoder.weight_ih_l0[:, 5 : 5 + m.latent_dim].zero_()
        m.head.linear.weight[:, hidden:].zero_()
        m.pen.weight[:, hidden:].zero_()
    return m


@torch.no_grad()
def reference_log_likelihood(m: SketchVAE, y: torch.Tensor) -> torch.Tensor:
    """log p(y) of a blind decoder, by hand in float64: the LSTM's equations, dense Gaussian
    components, the pen's log-softmax; offsets of end rows not scored; with ``position_input``
    the LSTM also reads the offsets summed so far."""
    hidden = m.decoder.hidden_size
    bias = torch.zeros(2 * hidden, dtype=y.dtype) if m.init is None else m.init.bias
    h, c = torch.tanh(bias).split(hidden)  # no code: the state starts at zero
    h, c = h.expand(len(y), -1), c.expand(len(y), -1)
    w_ih, w_hh = m.decoder.weight_ih_l0[:, :5], m.decoder.weight_hh_l0
    w_position = m.decoder.weight_ih_l0[:, 5 + m.latent_dim :]  # (4H, 2) or (4H, 0)
    position = torch.zeros(len(y), w_position.shape[1], dtype=y.dtype)
    bias = m.decoder.bias_ih_l0 + m.decoder.bias_hh_l0
    prev = torch.tensor([0.0, 0, 1, 0, 0], dtype=y.dtype).expand(len(y), 5)
    k, total = m.head.num_components, torch.zeros(len(y), dtype=y.dtype)
    for t in range(y.shape[1]):
        if m.position_input:
            position = position + prev[:, :2]
        i, f, g, o = (prev @ w_ih.T + position @ w_position.T + h @ w_hh.T + bias).chunk(4, -1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        w_head, w_pen = m.head.linear.weight[:, :hidden], m.pen.weight[:, :hidden]
        logits, loc, raw_diag, factor = (h @ w_head.T + m.head.linear.bias).split(
            [k, 2 * k, 2 * k, 2 * k], -1
        )
        cov = factor.reshape(-1, k, 2, 1) @ factor.reshape(-1, k, 2, 1).mT
        cov = cov + torch.diag_embed(F.softplus(raw_diag.reshape(-1, k, 2)) + m.head.min_diag)
        comps = MultivariateNormal(loc.reshape(-1, k, 2), covariance_matrix=cov)
        offsets = torch.logsumexp(F.log_softmax(logits, -1) + comps.log_prob(y[:, t, None, :2]), -1)
        pen = (F.log_softmax(h @ w_pen.T + m.pen.bias, -1) * y[:, t, 2:]).sum(-1)
        total += pen + torch.where(y[:, t, 4] == 1, 0.0, offsets)
        prev = y[:, t]
    return total


def traces(m, *args):
    guide = poutine.trace(m.guide).get_trace(*args)
    model = poutine.trace(poutine.replay(m.model, trace=guide)).get_trace(*args)
    return model, guide


# -- the Pyro program -------------------------------------------------------------------------


@pytest.mark.parametrize("options", [{}, {"guide_flow": "iaf", "flow_layers": 2}])
def test_the_z_sites_of_model_and_guide_match_in_shape_and_plates(options):
    m = vae(**options)
    y = drawings()
    mask = torch.arange(L) < torch.tensor([7, 5, 3, 7])[:, None]
    model, guide = traces(m, y, mask)
    zm, zg = model.nodes["z"], guide.nodes["z"]
    assert zg["value"].shape == (B, Z) and zm["value"] is zg["value"]
    assert zm["fn"].batch_shape == zg["fn"].batch_shape == (B,)
    assert zm["fn"].event_shape == zg["fn"].event_shape == (Z,)
    plates = lambda site: [(f.name, f.size, f.dim) for f in site["cond_indep_stack"]]  # noqa: E731
    assert plates(zm) == plates(zg) == [("drawings", B, -1)]
    assert model.nodes["y"]["is_observed"] and model.nodes["y"]["fn"].event_shape == (L, 5)
    assert plates(model.nodes["y"]) == plates(zm)


@pytest.mark.parametrize(
    "z_to_output, position_input", [(False, False), (True, False), (False, True)]
)
def test_the_decoder_matches_a_dense_float64_reference(z_to_output, position_input):
    m = blind(vae(z_to_output=z_to_output, position_input=position_input))
    y = drawings()
    z = torch.randn(2, B, Z, dtype=torch.float64)  # blind: every code gives the same law
    lp = m.likelihood(y, z).log_prob(y)
    assert lp.shape == (2, B)
    assert torch.allclose(lp, reference_log_likelihood(m, y).expand(2, B), rtol=1e-10)


@pytest.mark.parametrize("z_to_output", [False, True])
def test_with_the_decoder_blind_to_z_the_elbo_is_the_nll_minus_the_kl(z_to_output):
    m = blind(vae(kl_tolerance=0.0, z_to_output=z_to_output))
    y = drawings()
    log_p = reference_log_likelihood(m, y)
    q = m.posterior(*m._checked(y))
    kl = torch.distributions.kl_divergence(q, m.prior(B)).detach()
    assert bool((kl > 0).all())
    loss = TraceMeanField_ELBO().loss(m.model, m.guide, y)  # analytic KL
    assert loss == pytest.approx(float(-(log_p - kl).sum()), rel=1e-10)
    model, guide = traces(m, y)  # one-sample Trace_ELBO: the KL estimated at the drawn z
    z = guide.nodes["z"]["value"]
    one_sample = log_p + m.prior(B).log_prob(z) - q.log_prob(z)
    model.compute_log_prob(), guide.compute_log_prob()
    elbo = model.log_prob_sum() - guide.log_prob_sum()
    assert float(elbo.detach()) == pytest.approx(float(one_sample.detach().sum()), rel=1e-10)


def test_with_the_guide_equal_to_the_prior_every_bound_is_the_likelihood():
    m = blind(vae(min_scale=1e-3))
    with torch.no_grad():
        m.guide_head.weight.zero_()
        m.guide_head.bias[:Z] = 0.0
        m.guide_head.bias[Z:] = math.log(math.expm1(1 - 1e-3))  # softplus + floor = 1
    y = drawings()
    log_p = reference_log_likelihood(m, y)
    assert torch.allclose(m.elbo(y, num_particles=3), log_p, rtol=1e-10)
    assert torch.allclose(m.iwae(y, num_particles=5, chunk_size=2), log_p, rtol=1e-10)


def test_without_a_code_it_is_the_unconditional_decoder_scored_exactly():
    m = vae(latent_dim=0)
    assert m.encoder is None and m.init is None
    y = drawings()
    log_p = reference_log_likelihood(m, y)
    model, guide = traces(m, y)
    assert "z" not in model.nodes and not guide.stochastic_nodes
    loss = Trace_ELBO().loss(m.model, m.guide, y)
    assert loss == pytest.approx(float(-log_p.sum()), rel=1e-10)
    assert torch.allclose(m.iwae(y, num_particles=3), log_p, rtol=1e-10)
    assert torch.allclose(m.log_prob(y), log_p, rtol=1e-10)
    assert m.sample(2, steps=4).shape == (2, 4, 5)
    assert m.complete(y[0, :2], num=2, steps=3).shape == (2, 5, 5)
    with pytest.raises(ValueError, match="no code"):
        m.encode(y)
    with pytest.raises(ValueError, match="no code"):
        m.interpolate(y[0], y[1])


def test_input_dropout_zeroes_previous_rows_in_training_only():
    m, y = vae(input_dropout=0.5), drawings()
    z = torch.randn(B, Z, dtype=y.dtype)
    plain = vae()  # the same weights (same seed), no dropout
    m.eval()
    assert torch.equal(m.features(y, z), plain.features(y, z))  # scoring reads every row
    m.train()
    with torch.no_grad():
        assert torch.equal(m.features(y, z), plain.features(y, z))  # no gradients: no dropout
    torch.manual_seed(1)
    dropped = m.features(y, z)
    torch.manual_seed(1)
    keep = torch.rand(B, L, 1) >= 0.5
    assert 0 < keep.sum() < keep.numel()
    # the reference: the rows the decoder reads (start row, then y shifted), zeroed where dropped
    prev = torch.cat([plain.start.expand(B, 1, 5), y[:, :-1]], 1) * keep
    codes = z.unsqueeze(1).expand(B, L, Z)
    expected = plain.decoder(torch.cat([prev, codes], -1), plain.initial_state(z))[0]
    torch.testing.assert_close(dropped, expected, rtol=0, atol=0)
    assert not torch.equal(dropped, plain.features(y, z))


def test_iwae_is_at_least_the_elbo_and_rises_with_particles():
    m = vae()
    y = drawings()
    pyro.set_rng_seed(0)
    lw = m.log_weights(y, num_particles=64)
    elbo, iwae = lw.mean(0), torch.logsumexp(lw, 0) - math.log(64)
    assert bool((iwae >= elbo).all()) and bool((iwae > elbo).any())


# -- KL annealing and tolerance ---------------------------------------------------------------


def _encoder_grad(m, y) -> float:
    m.zero_grad()
    Trace_ELBO().loss_and_grads(m.model, m.guide, y)
    grads = [p.grad for p in [*m.encoder.parameters(), *m.guide_head.parameters()]]
    return sum(float(g.abs().sum()) for g in grads if g is not None)


def test_below_the_kl_tolerance_the_kl_gives_no_gradient():
    m = blind(vae(kl_tolerance=0.0))
    y = drawings()
    assert _encoder_grad(m, y) > 0  # the KL pulls q toward the prior
    kl = m.kl_mean(m.posterior(*m._checked(y)))
    m.kl_tolerance = 2 * kl / Z  # the floor above the KL: max(KL, floor) is flat
    assert _encoder_grad(m, y) == 0.0


def test_kl_annealing_weighs_the_kl_and_counts_training_steps():
    m = blind(vae(kl_warmup=4, kl_start=0.25, kl_end=0.5, kl_tolerance=0.0))
    y = drawings()
    log_p = reference_log_likelihood(m, y)
    kl = torch.distributions.kl_divergence(m.posterior(*m._checked(y)), m.prior(B)).detach()
    for step, beta in enumerate([0.25, 0.3125, 0.375, 0.4375, 0.5, 0.5]):
        assert m.kl_scale == beta and int(m.kl_steps) == step
        with torch.no_grad():  # an evaluation: no step counted
            loss = TraceMeanField_ELBO().loss(m.model, m.guide, y)
        assert loss == pytest.approx(float(-(log_p - beta * kl).sum()), rel=1e-10)
        m.model(y)  # a training call
    m.eval()
    m.model(y)
    assert int(m.kl_steps) == 6


def test_fit_trains_it_and_runs_the_schedule():
    m = vae(kl_warmup=3)
    y = random_stroke5(8, L).double()
    history = pf.fit(m, y, val=y[:4], epochs=2, batch_size=4, progress=False)
    assert len(history) == 2 and all(math.isfinite(v) for v in history["val_nll"])
    assert int(m.kl_steps) == 4 and m.kl_scale == m.kl_end


# -- what users do with it --------------------------------------------------------------------


def test_samples_and_decodings_are_valid_stroke5_that_stay_ended():
    m = vae(flow_layers=2, guide_flow="iaf")
    for s in (m.sample(5, steps=12), m.sample(3, steps=6, temperature=0.2, greedy_decoding=True)):
        back = from_stroke5(s)  # one-hot pens, the end row
        ended = (s[..., 4] == 1).cumsum(1) > 0
        assert bool((s[ended] == s.new_tensor([0, 0, 0, 0, 1])).all())
        assert torch.equal(to_stroke5(back["y"], back["mask"], s.shape[1])[~ended], s[~ended])


def test_greedy_decoding_is_deterministic_and_follows_the_code():
    m = vae()
    z = torch.randn(2, Z, dtype=torch.float64)
    a = m.decode(z, steps=8, greedy_decoding=True)
    assert torch.equal(a, m.decode(z, steps=8, greedy_decoding=True))
    alone = m.decode(z[1:], steps=8, greedy_decoding=True)  # batched or not: rounding only
    assert torch.allclose(a[1:], alone, rtol=1e-12, atol=1e-14)
    assert not torch.allclose(a[0], a[1])  # another code, another drawing


@pytest.mark.parametrize("options", [{}, {"z_to_output": True}, {"position_input": True}])
def test_decoding_after_a_prime_follows_the_teacher_forced_law(options):
    from pyro_frmdn.models.decoding import greedy

    m = vae(**options)
    y, z = drawings(), torch.randn(B, Z, dtype=torch.float64)
    p = 3  # the first p rows fed, then one greedy row
    row = m.decode(z, steps=1, greedy_decoding=True, prime=y[:, :p])[:, p]
    d = m.step_distribution(m.features(y, z)[:, p])  # the law of row p given rows < p
    expected = d.compose(greedy(d.continuous), d.logits.argmax(-1))
    ended = (y[:, :p, 4] == 1).any(1)  # after an end, an end row
    expected[ended] = torch.tensor([0.0, 0, 0, 0, 1], dtype=y.dtype)
    assert torch.allclose(row, expected.detach(), rtol=1e-10, atol=1e-12)


def test_interpolation_is_spherical_with_the_codes_at_its_ends():
    m = vae()
    a, b = torch.tensor([1.0, 0, 0], dtype=torch.float64), torch.tensor([0, 2.0, 0]).double()
    path = m.interpolate(a, b, steps=5)
    assert torch.equal(path[0], a) and torch.equal(path[-1], b)
    angle = torch.atan2(path[:, 1] / 2, path[:, 0])  # evenly spaced angles on the ellipse...
    assert torch.allclose(angle, torch.linspace(0, math.pi / 2, 5, dtype=torch.float64))
    y = drawings()
    ends = m.interpolate(y[0], y[1], steps=3)
    codes = torch.cat([m.encode(y[:1]), m.encode(y[1:2])])  # each drawing encoded alone
    assert torch.equal(ends[[0, -1]], codes)
    same = m.decode(ends[[0, -1]], steps=6, greedy_decoding=True)
    assert torch.equal(same, m.decode(codes, steps=6, greedy_decoding=True))


def test_reconstruct_keeps_the_candidate_whose_code_comes_back_likeliest(monkeypatch):
    # the decodings replaced by known candidates: the choice must be, drawing by drawing, the
    # candidate under which the guide gives the drawing's code the highest density, each scored
    # alone here (the method scores all C * B candidates at once, candidate c of drawing i in
    # row c * B + i)
    m, y, c = vae(guide_flow="iaf"), drawings(), 5
    pool = random_stroke5(c * B, L, 9).double()
    seen = {}

    def fake_decode(codes, steps, temperature):
        seen.update(codes=codes, steps=steps, temperature=temperature)
        return pool

    monkeypatch.setattr(m, "decode", fake_decode)
    out = m.reconstruct(y, candidates=c, temperature=0.3)
    z = m.encode(y)
    assert seen["steps"] == L and seen["temperature"] == 0.3
    assert torch.equal(seen["codes"], z.repeat(c, 1))
    for i in range(B):
        options = pool[i::B]  # drawing i's candidates, in order
        scores = [float(m.posterior(o[None]).log_prob(z[i][None])) for o in options]
        assert torch.equal(out[i], options[max(range(c), key=scores.__getitem__)])


def test_reconstruct_with_one_candidate_is_a_decoding_of_the_code():
    m, y = vae(), drawings()
    pyro.set_rng_seed(4)
    out = m.reconstruct(y, candidates=1, temperature=0.5, steps=6)
    pyro.set_rng_seed(4)
    assert torch.equal(out, m.decode(m.encode(y), steps=6, temperature=0.5))
    with pytest.raises(ValueError, match="candidates"):
        m.reconstruct(y, candidates=0)


def test_completion_keeps_the_partial_drawing_as_it_is():
    m = vae()
    partial = drawings()[0, :3]
    out = m.complete(partial, num=3, steps=4)
    assert out.shape == (3, 7, 5) and torch.equal(out[:, :3], partial.expand(3, 3, 5))


def test_save_and_load_round_trip(tmp_path):
    m = vae(flow_layers=1, guide_flow="iaf", kl_warmup=10).float()  # load rebuilds in float32
    m.kl_steps += 3
    path = m.save(tmp_path / "sketch.pt")
    back = pf.load(path)
    y = drawings().float()
    assert back.config == m.config and int(back.kl_steps) == 3
    assert torch.equal(back.encode(y), m.encode(y))
    pyro.set_rng_seed(1)
    expected = m.iwae(y, num_particles=4)
    pyro.set_rng_seed(1)
    assert torch.equal(back.iwae(y, num_particles=4), expected)


def _with(v, value):
    v = torch.as_tensor(v).clone()
    v.view(-1)[0] = value
    return v


BAD_DATA = {  # each class of bad tensor input, made from a good one
    "nan": lambda v: _with(v, math.nan),
    "inf": lambda v: _with(v, math.inf),
    "extra dim": lambda v: v.unsqueeze(-1),
    "last dim short": lambda v: v[..., :-1],
    "string": lambda v: "abc",
    "dict": lambda v: {"values": v},
    "complex": lambda v: v.to(torch.complex64),
    "meta device": lambda v: torch.empty(v.shape, device="meta"),
}
ENTRIES = {  # entry point: (the argument named, its good value, the call)
    **{
        f: ("y", drawings, lambda m, y, f=f: getattr(m, f)(y))
        for f in ("model", "guide", "log_prob", "elbo", "encode", "kl")
    },
    "iwae": ("y", drawings, lambda m, y: m.iwae(y, num_particles=2)),
    "complete": ("partial", lambda: drawings()[0], lambda m, p: m.complete(p, steps=2)),
    "decode": ("z", lambda: torch.zeros(2, Z), lambda m, z: m.decode(z, steps=2)),
    "decode prime": (
        "prime",
        lambda: drawings()[:2, :3],
        lambda m, p: m.decode(torch.zeros(2, Z), steps=2, prime=p),
    ),
    "interpolate a": ("a", lambda: drawings()[0], lambda m, a: m.interpolate(a, torch.zeros(Z))),
    "interpolate b": ("b", lambda: torch.ones(Z), lambda m, b: m.interpolate(torch.ones(Z), b)),
}


@pytest.mark.parametrize("bad", list(BAD_DATA))
@pytest.mark.parametrize("entry", list(ENTRIES))
def test_every_bad_tensor_is_refused_naming_the_argument(entry, bad):
    m, (name, good, call) = vae(), ENTRIES[entry]
    call(m, good())  # the good value passes
    with pytest.raises((ValueError, TypeError)) as excinfo:
        call(m, BAD_DATA[bad](good().double()))
    raised_in = Path(str(excinfo.traceback[-1].path)).resolve()
    assert Path(pf.__file__).resolve().parent in raised_in.parents, repr(excinfo.value)
    assert re.search(rf"\b{name}\b", str(excinfo.value)), str(excinfo.value)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m, y: m.elbo(y, torch.ones(B, L)), "mask must be boolean"),
        (lambda m, y: m.elbo(_with(y, 0.0)[:, :, :]), None),  # a valid edit: accepted
        (lambda m, y: m.elbo(torch.cat([y[..., :2], y[..., 2:] * 2], -1)), r"y\[0, 0, 2:\]"),
        (lambda m, y: m.complete(torch.cat([y[0, :, :2], y[0, :, 2:] * 0], -1)), r"partial\[0"),
        (lambda m, y: m.sample(2, steps=3, temperature=0.0), "temperature must be"),
        (lambda m, y: m.sample(2, steps=3, temperature=math.nan), "temperature must be"),
        (lambda m, y: m.sample(2, steps=0), "steps must be >= 1"),
        (lambda m, y: m.sample(0), "num must be >= 1"),
        (lambda m, y: m.sample(2.5), "num must be an integer"),
        (lambda m, y: m.iwae(y, num_particles=0), "num_particles must be >= 1"),
        (lambda m, y: m.iwae(y, chunk_size=True), "chunk_size must be an integer"),
        (lambda m, y: m.interpolate(y[0], y[1], steps=0), "steps must be >= 1"),
        (lambda m, y: m.decode(torch.zeros(2, Z), prime=y[:3]), "prime must have 2 drawings"),
    ],
)
def test_bad_arguments_are_refused_naming_them(call, message):
    m, y = vae(), drawings()
    if message is None:
        call(m, y)
        return
    with pytest.raises((ValueError, TypeError), match=message):
        call(m, y)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"guide_flow": "boosted"}, "guide_flow must be None or 'iaf', got 'boosted'"),
        ({"parameterization": "cholesky"}, "parameterization"),
        ({"flow": "maf", "flow_layers": 1}, "flow"),
        ({"mixing": "shuffle", "flow_layers": 1}, "mixing"),
        ({"latent_dim": -1}, "latent_dim"),
        ({"latent_dim": 2.5}, "latent_dim"),
        ({"hidden_dim": 0}, "hidden_dim must be >= 1"),
        ({"num_components": 0}, "num_components"),
        ({"kl_tolerance": -1.0}, "kl_tolerance"),
        ({"kl_end": math.nan}, "kl_end"),
        ({"kl_start": 2.0}, "kl_start"),
        ({"kl_warmup": 2.5}, "kl_warmup must be an integer >= 0"),
        ({"kl_warmup": -1}, "kl_warmup must be an integer >= 0"),
        ({"min_scale": 0.0}, "min_scale must be a finite number > 0"),
        ({"min_scale": math.nan}, "min_scale must be a finite number > 0"),
        ({"guide_flow": "iaf", "guide_flow_layers": 0}, "guide_flow_layers must be >= 1"),
        ({"input_dropout": 1.0}, "input_dropout must be a probability in [0, 1), got 1.0"),
        ({"input_dropout": math.nan}, "input_dropout must be a probability in [0, 1)"),
        ({"input_dropout": "0.2"}, "input_dropout must be a probability in [0, 1), got '0.2'"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_unknown_options_and_bad_sizes_are_refused(options, message):
    with pytest.raises((ValueError, TypeError), match=re.escape(message)):
        SketchVAE(**{**dict(latent_dim=Z, encoder_dim=4, hidden_dim=8), **options})


def test_a_corrupt_or_tampered_model_file_is_refused_at_load(tmp_path):
    m = vae()
    path = m.save(tmp_path / "sketch.pt")
    raw = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0xFF
    (tmp_path / "flipped.pt").write_bytes(bytes(flipped))
    for name in ("cut.pt", "junk.pt", "flipped.pt"):
        with pytest.raises(ValueError, match=rf"{name} is corrupt"):
            pf.load(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="no model file"):
        pf.load(tmp_path / "missing.pt")


def test_drawings_are_plotted_in_a_grid(tmp_path):
    from matplotlib.image import imread

    from pyro_frmdn.plots import plot_drawings

    m = vae()
    y = drawings()
    decoded = m.decode(m.encode(y[:2]), steps=L, greedy_decoding=True)
    offsets = from_stroke5(y[:1])["y"][0]  # the package's (dx, dy, pen_up) too
    path = plot_drawings([[y[0], y[1]], [decoded[0], offsets]], tmp_path / "grid.png")
    image = imread(path)
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert image[..., :3].min() < 0.5  # ink on the page
    with pytest.raises(ValueError, match="one title per drawing"):
        plot_drawings([[y[0], y[1]]], tmp_path / "x.png", titles=[["a"]])
    with pytest.raises(ValueError, match=r"shape \(T, 3\)"):
        plot_drawings([[y[0][:, :4]]], tmp_path / "x.png")
