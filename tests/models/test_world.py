"""World models: frame networks, pixel likelihoods, the Pyro program, bounds, dreams, masks."""

import math

import numpy as np
import pyro
import pytest
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.infer import Trace_ELBO

import pyro_frmdn as pf
from pyro_frmdn.models import dream, evaluate_bounds, save_dream, shift_actions
from pyro_frmdn.nn import ConvDecoder, ConvEncoder, DiscretizedLogistic, PixelLikelihood

SHAPE, D, A = (1, 8, 8), 3, 2
B, T = 4, 5


def world(dtype=torch.float64, seed=0, **kwargs):
    torch.manual_seed(seed)
    config = dict(
        latent_dim=D,
        action_dim=A,
        likelihood="bernoulli",
        channels=(4,),
        features=8,
        hidden_dim=8,
        rnn_dim=6,
    )
    if kwargs.get("prior", "frmdn") in ("frmdn", "rmdn"):
        config["prior_options"] = {"num_components": 2}
    config.update(kwargs)
    return pf.WorldModel(SHAPE, **config).to(dtype)


def episode(seed=1, dtype=torch.float64, b=B, t=T):
    g = torch.Generator().manual_seed(seed)
    frames = (torch.rand(b, t, *SHAPE, generator=g) < 0.3).to(dtype)
    actions = torch.randn(b, t, A, generator=g, dtype=dtype)
    rewards = torch.randn(b, t, generator=g, dtype=dtype)
    dones = torch.zeros(b, t, dtype=dtype)
    dones[:, -1] = 1
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[1, 3:] = False
    return frames, actions, mask, rewards, dones


# -- networks and pixel likelihoods -----------------------------------------------------------


def test_encoder_and_decoder_shapes_and_frame_size_errors():
    enc = ConvEncoder((3, 16, 32), 7, channels=(4, 8))
    assert enc(torch.rand(2, 3, 3, 16, 32)).shape == (2, 3, 7)
    dec = ConvDecoder(5, (3, 16, 32), 6, channels=(4, 8))
    assert dec(torch.randn(2, 3, 5)).shape == (2, 3, 6, 16, 32)
    with pytest.raises(ValueError, match="divide by 2\\*\\*3 = 8"):
        ConvEncoder((3, 12, 12), 7, channels=(4, 8, 16))
    with pytest.raises(ValueError, match="channels, height, width"):
        ConvDecoder(5, (16, 16), 3)


@pytest.mark.parametrize("loc, scale", [(0.5, 0.1), (0.0, 0.01), (1.3, 2.0), (0.2, 1e-4)])
def test_discretized_logistic_is_a_normalised_bin_mass(loc, scale):
    levels = 9
    d = DiscretizedLogistic(*torch.tensor([loc, scale], dtype=torch.float64), levels)
    grid = torch.arange(levels, dtype=torch.float64) / (levels - 1)
    lp = d.log_prob(grid)
    assert torch.isfinite(lp).all()
    assert float(lp.exp().sum()) == pytest.approx(1.0, abs=1e-12)
    # against the logistic CDF by hand (in float64 it is exact enough away from the tails)
    half = 0.5 / (levels - 1)
    cdf = torch.sigmoid((torch.cat([grid - half, grid[-1:] + half]) - loc) / scale)
    cdf[0], cdf[-1] = 0.0, 1.0
    manual = cdf[1:] - cdf[:-1]
    assert torch.allclose(lp.exp(), manual, atol=1e-12)


def test_discretized_logistic_samples_lie_on_the_levels_with_the_right_frequencies():
    d = DiscretizedLogistic(torch.full((20000,), 0.4), torch.full((20000,), 0.2), levels=5)
    x = d.sample()
    k = (x * 4).round()
    assert torch.equal(x * 4, k)
    freq = torch.bincount(k.long(), minlength=5).double() / len(k)
    probs = (
        DiscretizedLogistic(torch.tensor(0.4), torch.tensor(0.2), 5)
        .log_prob(torch.arange(5.0) / 4)
        .exp()
    )
    assert torch.allclose(freq, probs.double(), atol=0.015)
    assert d.expand((3, 20000)).batch_shape == (3, 20000)


def test_pixel_likelihoods_shapes_and_input_checks():
    maps = torch.randn(2, 3, 6, 4, 4)
    for kind, per in (("bernoulli", 1), ("gaussian", 1), ("logistic", 2)):
        px = PixelLikelihood(kind, 3)
        d = px(maps[:, :, : 3 * per])
        assert d.batch_shape == (2, 3) and d.event_shape == (3, 4, 4)
        frame = px.frame(maps[:, :, : 3 * per])
        assert (
            frame.shape == (2, 3, 3, 4, 4) and float(frame.min()) >= 0 and float(frame.max()) <= 1
        )
    px = PixelLikelihood("logistic", 3)
    assert torch.equal(
        px.prepare(torch.tensor([0, 255], dtype=torch.uint8)), torch.tensor([0.0, 1.0])
    )
    with pytest.raises(ValueError, match="expected 6"):
        px(maps[:, :, :3])
    with pytest.raises(ValueError, match="lie in \\[0, 1\\]"):
        px.prepare(torch.tensor([1.5]))
    with pytest.raises(ValueError, match="binary frames"):
        PixelLikelihood("bernoulli", 1).prepare(torch.tensor([0.5]))
    with pytest.raises(ValueError, match="not uint8"):
        PixelLikelihood("bernoulli", 1).prepare(torch.tensor([255], dtype=torch.uint8))
    with pytest.raises(ValueError, match="likelihood must be one of"):
        PixelLikelihood("poisson", 1)


# -- the Pyro program -------------------------------------------------------------------------

GUIDES = [
    dict(),
    dict(guide_flow="iaf", backward_rnn=True),
    dict(guide_flow="boosted"),
    dict(prior="rmdn", backward_rnn=True),
    dict(prior="gaussian", guide_flow="iaf"),
    dict(prior="normal"),
]


@pytest.mark.parametrize("config", GUIDES)
def test_log_weights_equal_the_pyro_traces_of_model_and_guide(config):
    """log p(x, r, d, z) - log q(z | x) from log_weights is what Pyro scores at the sites."""
    wm = world(reward=True, done=True, **config)
    batch = episode()
    pyro.set_rng_seed(3)
    lw = wm.log_weights(*batch)
    pyro.set_rng_seed(3)
    guide_trace = poutine.trace(wm.guide).get_trace(*batch)
    model_trace = poutine.trace(poutine.replay(wm.model, trace=guide_trace)).get_trace(*batch)
    sites = set(model_trace.stochastic_nodes) | set(model_trace.observation_nodes)
    assert sites - {"sequences"} == {"z", "x", "reward", "done"}
    manual = model_trace.log_prob_sum() - guide_trace.log_prob_sum()
    assert lw.shape == (1, B)
    assert torch.allclose(lw.sum(), manual, rtol=1e-10)


@pytest.mark.parametrize("config", GUIDES[:3])
def test_every_parameter_gets_a_gradient(config):
    wm = world(reward=True, done=True, **config)
    loss = Trace_ELBO().differentiable_loss(wm.model, wm.guide, *episode())
    loss.backward()
    unused = {n for n, p in wm.named_parameters() if p.grad is None or not bool(p.grad.any())}
    assert not unused


def test_bounds_are_exact_when_the_guide_is_the_true_posterior():
    """With a decoder that ignores z, p(x | z) = p(x) and the posterior is the prior; with the
    guide set to that prior every log-weight is log p(x), which is known in closed form."""
    wm = world(prior="normal", action_dim=0)
    with torch.no_grad():
        wm.decoder.linear.weight.zero_()
        wm.guide_head.weight.zero_()
        wm.guide_head.bias[:D] = 0.0
        wm.guide_head.bias[D:] = math.log(math.expm1(1.0 - wm.min_scale))  # scale exactly 1
    frames, _, mask, _, _ = episode()
    logits = wm.decoder(torch.zeros(D, dtype=torch.float64))  # the same for every z
    per_frame = -F.binary_cross_entropy_with_logits(
        logits.expand_as(frames), frames, reduction="none"
    ).sum((-3, -2, -1))
    exact = (per_frame * mask).sum(-1)
    for bound in (wm.elbo(frames, mask=mask, num_samples=3), wm.iwae_bound(frames, mask=mask)):
        assert torch.allclose(bound, exact, rtol=1e-12)


def test_iwae_is_above_the_elbo_and_equals_it_for_one_sample():
    wm = world()
    frames, actions, mask, _, _ = episode()
    pyro.set_rng_seed(4)
    one = wm.iwae_bound(frames, actions, mask, num_samples=1)
    pyro.set_rng_seed(4)
    assert torch.allclose(one, wm.elbo(frames, actions, mask))
    result = evaluate_bounds(wm, (frames, actions, mask), num_samples=32, batch_size=3)
    assert result["iwae"] >= result["elbo"]
    assert result["frames"] == int(mask.sum())
    assert result["iwae_bits_per_dim"] == pytest.approx(-result["iwae"] / (64 * math.log(2)))
    # in expectation the bound tightens with k: 32 samples beat the average 1-sample ELBO
    with torch.no_grad():
        many = torch.stack([wm.elbo(frames, actions, mask) for _ in range(64)]).mean(0)
        iwae = wm.iwae_bound(frames, actions, mask, num_samples=64)
    assert float(iwae.sum()) > float(many.sum())


def test_padding_changes_neither_the_bound_nor_a_gradient():
    wm = world(backward_rnn=True, reward=True)
    frames, actions, mask, rewards, _ = episode()
    junk = ~mask
    noisy = (
        frames.masked_fill(junk[..., None, None, None], float("nan")),
        actions.masked_fill(junk[..., None], 1e6),
        mask,
        rewards.masked_fill(junk, float("nan")),
    )
    out = []
    for batch in ((frames, actions, mask, rewards), noisy):
        wm.zero_grad()
        pyro.set_rng_seed(7)
        lw = wm.log_weights(*batch)
        lw.sum().backward()
        out.append((lw.detach(), [p.grad.clone() for p in wm.parameters()]))
    assert torch.equal(out[0][0], out[1][0])
    for g0, g1 in zip(out[0][1], out[1][1], strict=True):
        assert torch.equal(g0, g1)


def test_masked_sequence_scores_like_the_truncated_one():
    """Sequence 1 is unmasked up to step 3: its guide (backward RNN included), prior and
    decoder terms equal those of the same sequence cut to 3 steps."""
    wm = world(backward_rnn=True)
    frames, actions, mask, _, _ = episode()
    z = torch.randn(B, T, D, dtype=torch.float64)
    f, a, m, _, _ = wm._check(frames, actions, mask, None, None)
    full = (
        wm.posterior(f, m).log_prob(z)[1],
        wm.prior_distribution(a, m, B, T).log_prob(z)[1],
        wm.frame_distribution(z, m).log_prob(f)[1],
    )
    f3, a3, z3 = f[1:2, :3], a[1:2, :3], z[1:2, :3]
    cut = (
        wm.posterior(f3).log_prob(z3)[0],
        wm.prior_distribution(a3, None, 1, 3).log_prob(z3)[0],
        wm.frame_distribution(z3).log_prob(f3)[0],
    )
    for x, y in zip(full, cut, strict=True):
        assert torch.allclose(x, y, rtol=1e-12)


def test_inputs_are_checked_with_clear_errors():
    wm = world(reward=True)
    frames, actions, mask, rewards, dones = episode()
    with pytest.raises(ValueError, match="built for"):
        wm.elbo(frames[:, :, :, :4], actions)
    with pytest.raises(ValueError, match="pass actions"):
        wm.elbo(frames)
    with pytest.raises(ValueError, match="actions must have shape"):
        wm.elbo(frames, actions[:, :, :1])
    with pytest.raises(ValueError, match="no done head"):
        wm.elbo(frames, actions, mask, rewards, dones)
    with pytest.raises(ValueError, match="mask is false everywhere"):
        wm.elbo(frames, actions, torch.zeros(B, T, dtype=torch.bool))
    with pytest.raises(ValueError, match="binary frames"):
        wm.elbo(frames * 0.5, actions)
    with pytest.raises(ValueError, match="guide_flow must be one of"):
        world(guide_flow="maf")
    with pytest.raises(ValueError, match="input_dim"):
        world(prior=pf.FRMDN(D, input_dim=0, hidden_dim=4))


def test_kl_annealing_scales_the_latent_sites_and_counts_training_steps():
    wm = world(kl_warmup=4, kl_start=0.2)
    batch = episode()[:3]
    assert wm.kl_scale == pytest.approx(0.2)
    trace = poutine.trace(wm.model).get_trace(*batch)
    assert trace.nodes["z"]["scale"] == pytest.approx(0.2)
    assert trace.nodes["x"]["scale"] == 1.0
    assert int(wm.kl_steps) == 1 and wm.kl_scale == pytest.approx(0.4)
    wm.eval()
    poutine.trace(wm.model).get_trace(*batch)
    assert int(wm.kl_steps) == 1  # evaluation does not advance the schedule
    wm.train()
    for _ in range(5):
        poutine.trace(wm.model).get_trace(*batch)
    assert wm.kl_scale == 1.0
    guide = poutine.trace(world(kl_warmup=10, kl_start=0.5).guide).get_trace(*batch)
    assert guide.nodes["z"]["scale"] == pytest.approx(0.5)
    assert "kl_steps" in wm.state_dict()


def test_kl_end_keeps_a_beta_vae_weight_and_leaves_the_bounds_unannealed():
    batch = episode()[:3]
    wm = world(kl_warmup=2, kl_start=0.05, kl_end=0.25)
    scales = [poutine.trace(wm.model).get_trace(*batch).nodes["z"]["scale"] for _ in range(4)]
    assert scales == pytest.approx([0.05, 0.15, 0.25, 0.25])
    constant = world(kl_end=0.3)
    assert poutine.trace(constant.guide).get_trace(*batch).nodes["z"]["scale"] == 0.3
    plain = world()  # same seed, same weights: the bound does not see the training weight
    pyro.set_rng_seed(0)
    a = constant.elbo(*batch[:2], num_samples=4)
    pyro.set_rng_seed(0)
    assert torch.equal(a, plain.elbo(*batch[:2], num_samples=4))
    assert pf.WorldModel.from_config(constant.config).kl_end == 0.3
    with pytest.raises(ValueError, match="kl_end > 0"):
        world(kl_end=0.0)


def test_a_tiny_world_model_trains_with_fit_and_its_elbo_improves():
    """Frames of a bar that moves one pixel right per step: SVI with the same ``fit`` as any
    FRMDN raises the held-out ELBO well above the initial one."""
    b, t = 24, 6
    start = torch.randint(0, 8, (b,))
    cols = (start[:, None] + torch.arange(t)) % 8  # (b, t)
    frames = torch.zeros(b, t, *SHAPE)
    frames[torch.arange(b)[:, None], torch.arange(t), 0, :, cols] = 1.0
    mask = torch.ones(b, t, dtype=torch.bool)
    train = {"frames": frames[:16], "mask": mask[:16]}
    held_out = (frames[16:], None, mask[16:])
    wm = world(torch.float32, action_dim=0, channels=(8,), features=16, kl_warmup=20)
    pyro.set_rng_seed(0)
    before = evaluate_bounds(wm, held_out, num_samples=8)["elbo"]
    history = pf.fit(wm, train, epochs=30, batch_size=8, lr=1e-2, progress=False)
    after = evaluate_bounds(wm, held_out, num_samples=8)["elbo"]
    assert history["train_nll"][-1] < history["train_nll"][0]
    assert after > before + 10, (before, after)
    assert pf.evaluate(wm, {"frames": frames[16:], "mask": mask[16:]}) == pytest.approx(
        -after, rel=0.1
    )


def test_fit_resumes_the_annealing_schedule_from_a_checkpoint(tmp_path):
    frames, actions, mask, _, _ = episode(dtype=torch.float32)
    data = {"frames": frames, "actions": actions, "mask": mask}
    wm = world(torch.float32, kl_warmup=100)
    pf.fit(wm, data, epochs=2, batch_size=2, checkpoint=tmp_path, progress=False)
    again = world(torch.float32, kl_warmup=100, seed=1)
    pf.fit(again, data, epochs=2, batch_size=2, checkpoint=tmp_path, resume=True, progress=False)
    assert int(again.kl_steps) == int(wm.kl_steps) == 4


def test_the_boosted_guide_trains_and_its_encoder_codes_are_deterministic():
    frames, actions, mask, _, _ = episode(dtype=torch.float32)
    wm = world(torch.float32, guide_flow="boosted", guide_components=3)
    history = pf.fit(wm, {"frames": frames, "actions": actions, "mask": mask}, epochs=3,
                     batch_size=2, progress=False)  # fmt: skip
    assert all(math.isfinite(v) for v in history["train_nll"])
    z = wm.encode(frames, mask)
    assert z.shape == (B, T, D) and torch.equal(z, wm.encode(frames, mask))
    draws = torch.stack([wm.encode(frames, mask, sample=True) for _ in range(2)])
    assert draws.shape == (2, B, T, D) and not torch.equal(draws[0], draws[1])


# -- dreams and the two-stage recipe ------------------------------------------------------------


def test_dream_shapes_temperatures_and_errors():
    wm = world(torch.float32, reward=True, done=True)
    frames, actions, _, _, _ = episode(dtype=torch.float32)
    out = dream(wm, frames[:, :2], actions, steps=3, pi_temperature=0.5, scale_temperature=0.1)
    assert out.frames.shape == (B, 3, *SHAPE) and out.latents.shape == (B, 3, D)
    assert out.rewards.shape == (B, 3) and out.dones.shape == (B, 3)
    assert float(out.frames.min()) >= 0 and float(out.frames.max()) <= 1
    assert float(out.dones.min()) >= 0 and float(out.dones.max()) <= 1
    assert torch.allclose(out.frames, wm.decode(out.latents))
    # the dream starts from the prior primed by the encoded frames, with a_{t-1} at step t
    pyro.set_rng_seed(2)
    again = dream(wm, frames[:, :2], actions, steps=3)
    pyro.set_rng_seed(2)
    z = wm.prior.sample(B, 3, x=shift_actions(actions[:, :5]), prime=wm.encode(frames[:, :2]))
    assert torch.allclose(again.latents, z)
    with pytest.raises(ValueError, match="actions must have shape"):
        dream(wm, frames[:, :2], actions[:, :4], steps=3)
    with pytest.raises(ValueError, match="no dynamics"):
        dream(world(prior="normal"), frames[:, :2], actions, steps=3)
    free = world(torch.float32, action_dim=0)
    assert dream(free, frames[:, :2], steps=6).frames.shape == (B, 6, *SHAPE)


def test_save_dream_writes_an_animated_gif_and_a_strip(tmp_path):
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    dreamed = torch.randint(0, 2, (3, 4, 3, 8, 8), generator=g).float()  # 8 colours: exact in a GIF
    real = torch.randint(0, 2, (3, 4, 3, 8, 8), generator=g).float()
    gif, png = save_dream(tmp_path / "d", dreamed, real, num=2)
    with Image.open(gif) as im:
        assert im.n_frames == 4
        assert im.size == (2 * 10 * 3, 2 * 10 * 3)  # 2 sequences, real and dream rows, scale 3
        im.seek(0)
        top_left = np.asarray(im.convert("RGB"))[3:27, 3:27]
    expected = (real[0, 0].permute(1, 2, 0) * 255).round().byte().numpy()
    assert np.array_equal(top_left[::3, ::3], expected)
    assert png.exists() and png.stat().st_size > 0
    with pytest.raises(ValueError, match="differ"):
        save_dream(tmp_path / "e", dreamed, real[:, :2])


def test_two_stage_recipe_vae_then_frmdn_on_the_codes():
    frames, actions, mask, _, _ = episode(dtype=torch.float32, b=8)
    vae = world(torch.float32, prior="normal")
    pf.fit(vae, {"frames": frames, "actions": actions, "mask": mask}, epochs=2, batch_size=4,
           progress=False)  # fmt: skip
    codes = vae.encode(frames, mask)
    rnn = pf.FRMDN(D, input_dim=A, hidden_dim=8, num_components=2, rank=1, flow_layers=1)
    pf.fit(rnn, (codes, shift_actions(actions), mask), epochs=2, batch_size=4, progress=False)
    composed = vae.with_prior(rnn)
    assert composed.prior is rnn and vae.prior is None
    assert composed.config["prior"] == "custom"
    assert composed.config["prior_config"] == rnn.config
    assert torch.equal(composed.encode(frames, mask), codes)
    result = evaluate_bounds(composed, (frames, actions, mask), num_samples=4)
    assert math.isfinite(result["iwae"]) and result["iwae"] >= result["elbo"]
    rebuilt = pf.WorldModel.from_config(composed.config)
    assert rebuilt.config == composed.config
    rebuilt.load_state_dict(composed.state_dict())  # the same parameters, names and shapes
    assert dream(composed, frames[:, :2], actions, steps=2).frames.shape == (8, 2, *SHAPE)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_world_model_runs_on_cuda():
    wm = world(torch.float32, guide_flow="iaf", backward_rnn=True).cuda()
    frames, actions, mask, _, _ = (
        x.cuda() for x in episode(dtype=torch.float32)
    )  # fmt: skip
    loss = Trace_ELBO().differentiable_loss(wm.model, wm.guide, frames, actions, mask)
    loss.backward()
    assert dream(wm, frames[:, :2], actions, steps=3).frames.is_cuda
