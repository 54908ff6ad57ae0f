"""WorldModel: the Pyro program, its bounds, masks, KL annealing, the two-stage recipe, sprites."""

import math

import pyro
import pytest
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.infer import Trace_ELBO
from support.worlds import SHAPE, A, B, D, T, episode, world

import pyro_frmdn as pf
from pyro_frmdn.infer import evaluate_bounds
from pyro_frmdn.models import dream, shift_actions
from pyro_frmdn.nn import SpriteDecoder

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


# -- the two-stage recipe, and CUDA ------------------------------------------------------------


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


# -- world models with the sprite decoder ----------------------------------------------------


def test_an_unknown_decoder_is_refused():
    with pytest.raises(ValueError, match="decoder must be one of"):
        pf.WorldModel((1, 8, 8), latent_dim=6, decoder="mlp", channels=(4,))


def sprite_world(**kwargs):
    torch.manual_seed(0)
    config = dict(likelihood="bernoulli", channels=(4,), features=8, hidden_dim=8,
                  decoder="sprites", num_sprites=2, sprite_size=4,
                  prior_options={"num_components": 2})  # fmt: skip
    config.update(kwargs)
    return pf.WorldModel((1, 8, 8), latent_dim=6, **config).double()


def test_a_sprite_world_model_is_a_pyro_program_with_gradients_everywhere():
    wm = sprite_world()
    g = torch.Generator().manual_seed(1)
    frames = (torch.rand(3, 4, 1, 8, 8, generator=g) < 0.3).double()
    pyro.set_rng_seed(0)
    loss = Trace_ELBO().differentiable_loss(wm.model, wm.guide, frames)
    loss.backward()
    unused = {n for n, p in wm.named_parameters() if p.grad is None or not bool(p.grad.any())}
    assert not unused
    assert math.isfinite(float(loss.detach()))
    assert wm.decode(wm.encode(frames)).shape == frames.shape


def test_a_sprite_world_model_round_trips_through_its_config():
    wm = sprite_world(likelihood="logistic")
    copy = pf.WorldModel.from_config(wm.config).double()
    copy.load_state_dict(wm.state_dict())
    assert isinstance(copy.decoder, SpriteDecoder)
    frames = torch.randint(0, 256, (2, 3, 1, 8, 8), dtype=torch.uint8)
    torch.manual_seed(5)
    a = wm.elbo(frames)
    torch.manual_seed(5)
    assert torch.allclose(copy.elbo(frames), a)


def test_kl_start_zero_masks_the_latent_sites_for_the_first_step():
    # beta = 0 cannot be a Pyro scale: the first step's loss is the reconstruction alone
    batch = episode()[:3]
    wm = world(kl_warmup=2, kl_start=0.0).eval()  # eval: the schedule stays at its first step
    pyro.set_rng_seed(0)
    guide = poutine.trace(wm.guide).get_trace(*batch)
    model = poutine.trace(poutine.replay(wm.model, trace=guide)).get_trace(*batch)
    model.compute_log_prob()
    assert not bool(guide.nodes["z"]["mask"]) and not bool(model.nodes["z"]["mask"])
    pyro.set_rng_seed(0)  # Trace_ELBO runs the guide first: the same z as above
    loss = pyro.infer.Trace_ELBO().differentiable_loss(wm.model, wm.guide, *batch)
    assert torch.allclose(loss, -model.nodes["x"]["log_prob_sum"])
    wm.train()
    poutine.trace(wm.model).get_trace(*batch)
    assert wm.kl_scale == pytest.approx(0.5)  # then the schedule goes on
