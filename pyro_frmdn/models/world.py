r"""World models: a VAE whose latent dynamics follow an FRMDN, written as one Pyro program.

The World Models recipe (Ha & Schmidhuber 2018) encodes each frame :math:`x_t` to a latent
:math:`z_t` with a VAE and lets an MDN-RNN predict :math:`z_{t+1}` from :math:`z_t` and the action
:math:`a_t`. Here the two are one generative model, trained jointly by SVI,

.. math::
    p(x_{1:T}, z_{1:T} \mid a) = \prod_t p(z_t \mid z_{<t}, a_{<t})\, p(x_t \mid z_t),

with the FRMDN (Razavi et al. 2020) as the transition prior, a convolutional decoder for
:math:`p(x_t \mid z_t)`, and an amortised convolutional encoder :math:`q(z_t \mid x_t)` as the
guide (optionally refined by an IAF, Kingma et al. 2016, or a boosted flow, Giaquinto & Banerjee
2020, and conditioned on a backward RNN over the frames as in the DMM of Krishnan et al. 2017).
"""

from __future__ import annotations

import copy
import math

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nn import ConvDecoder, ConvEncoder, PixelLikelihood, SpriteDecoder, check_frame_shape
from .annealing import kl_weight, weighted_sites
from .base import PyroModel
from .frmdn import FRMDN
from .sequence import SequenceDistribution, shift_actions
from .validation import check_count
from .world_guide import (
    GUIDE_FLOWS,
    amortized_posterior,
    backward_context,
    build_guide,
    posterior_code,
)
from .world_heads import PRIORS, build_prior, head_distributions, hidden_states, make_head
from .world_inputs import (
    DECODERS,
    check_frames,
    check_inputs,
    check_options,
    check_sample_actions,
)

__all__ = ["DECODERS", "GUIDE_FLOWS", "PRIORS", "WorldModel"]


class WorldModel(PyroModel):
    r"""A VAE over frames whose latent sequence has FRMDN dynamics conditioned on actions.

    Generative model (:meth:`model`), for frames ``(B, T, C, H, W)`` and actions ``(B, T, A)``
    (``actions[:, t]`` is taken after frame t):

    .. math::
        z_{1:T} \sim \mathrm{FRMDN}(\cdot \mid a_{<t}), \quad
        x_t \mid z_t \sim p_\theta(x_t \mid z_t), \quad
        r_t \sim \mathcal N(\mu_r(z_t, a_t), \sigma_r^2(z_t, a_t)), \quad
        d_t \sim \mathrm{Bernoulli}(\pi_d(z_t, a_t))

    (reward and done heads optional). The prior site ``"z"`` is one
    :class:`~pyro_frmdn.models.SequenceDistribution` over the whole sequence, fed
    ``shift_actions(actions)`` so that step t reads :math:`a_{t-1}`. The guide (:meth:`guide`)
    draws all of ``z`` at once from :math:`q(z_t \mid x_t)` (or :math:`q(z_t \mid x_{t:T})` with
    ``backward_rnn``), a diagonal Gaussian from a convolutional encoder, optionally pushed through
    an IAF or replaced by a boosted mixture of conditional flows. Masked frames are scored by
    neither the prior, the guide nor the decoder.

    KL annealing: with ``kl_warmup = N`` the ``"z"`` sites of the model and the guide are scaled
    by :math:`\beta` rising linearly from ``kl_start`` to ``kl_end`` over the first N training
    calls of :meth:`model` (SVI steps; counted in ``kl_steps``, a buffer saved with the weights),
    i.e. the loss is :math:`-E_q[\log p(x \mid z)] + \beta\, \mathrm{KL}`. ``kl_end`` below 1
    keeps a β-VAE weight after the warm-up (Higgins et al. 2017): the codes keep more of each
    frame, at the price of a loss that is no longer the ELBO (useful for the first stage of the
    two-stage recipe, whose dynamics are fitted on the codes afterwards). :meth:`elbo`,
    :meth:`iwae_bound` and :meth:`log_prob` are always unannealed.

    Arguments:
        frame_shape: ``(C, H, W)``; H and W must divide by ``2 ** len(channels)``.
        latent_dim: D (>= 2 for the FRMDN prior's affine couplings).
        action_dim: A; 0 for an action-free world.
        likelihood: ``"logistic"`` (discretised logistic, 8-bit pixels), ``"bernoulli"`` (binary
            frames) or ``"gaussian"`` (see :class:`~pyro_frmdn.nn.PixelLikelihood`).
        channels: convolution channels of the encoder (the ``"conv"`` decoder mirrors them).
        features: size of the encoder's features.
        decoder: one of :data:`DECODERS`. With ``"sprites"`` the latent of a frame is
            ``num_sprites`` blocks of what-numbers and a position, so ``latent_dim`` must be
            ``num_sprites × (what_dim + 2)``; good for a few objects moving on a dark background.
        num_sprites, sprite_size: the objects per frame and their side in pixels (``"sprites"``).
        prior: a name from :data:`PRIORS`, or an :class:`~pyro_frmdn.models.FRMDN` of
            ``obs_dim=latent_dim`` and ``input_dim=action_dim``.
        hidden_dim: the prior RNN's size (named priors).
        prior_options: keyword arguments of the named prior's FRMDN that override
            :data:`PRIORS` (e.g. ``{"rank": 2, "cell": "gru"}``).
        guide_flow: ``None``, ``"iaf"`` (conditional affine autoregressive layers) or
            ``"boosted"`` (:class:`~pyro_frmdn.nn.BoostedGuideFlow`).
        guide_flow_layers, guide_components: layers of that flow, components of the boosted one.
        backward_rnn: condition the guide on a GRU run backwards over the frames' features.
        rnn_dim: that GRU's size.
        reward, done: add the reward and done heads (scored when ``rewards``/``dones`` are given).
        done_hidden: the done head reads M's state as well, :math:`\pi_d(z_t, a_t, h_t)`, with
            :math:`h_t` M's RNN features after :math:`(z_{<t}, a_{<t})` (what a single code
            cannot show, e.g. velocities); needs ``done`` and dynamics (not ``"normal"``).
        kl_warmup, kl_start, kl_end: KL annealing (see above).
        min_scale: floor of the guide's standard deviations.
        name: prefix of the parameters in Pyro's param store.

    Example:
        >>> wm = WorldModel((1, 8, 8), latent_dim=2, channels=(4,), features=8, hidden_dim=8,
        ...                 likelihood="bernoulli")
        >>> frames = torch.randint(0, 2, (3, 4, 1, 8, 8)).float()
        >>> wm.elbo(frames).shape, wm.encode(frames).shape
        (torch.Size([3]), torch.Size([3, 4, 2]))
    """

    def __init__(
        self,
        frame_shape,
        latent_dim: int = 32,
        action_dim: int = 0,
        *,
        likelihood: str = "logistic",
        channels=(32, 64, 128, 256),
        features: int = 256,
        decoder: str = "conv",
        num_sprites: int = 2,
        sprite_size: int = 16,
        prior: str | FRMDN = "frmdn",
        hidden_dim: int = 256,
        prior_options: dict | None = None,
        guide_flow: str | None = None,
        guide_flow_layers: int = 2,
        guide_components: int = 2,
        backward_rnn: bool = False,
        rnn_dim: int = 128,
        reward: bool = False,
        done: bool = False,
        done_hidden: bool = False,
        kl_warmup: int = 0,
        kl_start: float = 0.1,
        kl_end: float = 1.0,
        min_scale: float = 1e-3,
        name: str = "world",
    ):
        super().__init__()
        check_options(latent_dim, action_dim, features, rnn_dim, decoder, guide_flow, kl_warmup,
                      kl_start, kl_end)  # fmt: skip
        channels = [int(c) for c in channels]
        self.frame_shape = check_frame_shape(frame_shape, len(channels))
        self.pixels = PixelLikelihood(likelihood, self.frame_shape[0])
        self.encoder = ConvEncoder(frame_shape, features, channels)
        if decoder == "sprites":
            self.decoder = SpriteDecoder(
                latent_dim, frame_shape, num_sprites, sprite_size, likelihood
            )
        else:
            maps = self.pixels.maps_per_channel * self.frame_shape[0]
            self.decoder = ConvDecoder(latent_dim, frame_shape, maps, channels)
        if decoder == "conv" and likelihood != "bernoulli":  # start the locations mid-range
            with torch.no_grad():
                self.decoder.deconvs[-1].bias[: self.frame_shape[0]].fill_(0.5)
        self.latent_dim, self.action_dim, self.name = latent_dim, action_dim, name
        self.obs_dim = math.prod(self.frame_shape)  # what pf.evaluate reads for bits/dim
        self.prior = build_prior(prior, latent_dim, action_dim, hidden_dim, prior_options)
        self.prior_kind = prior if isinstance(prior, str) else "custom"

        self.backward_rnn = nn.GRU(features, rnn_dim, batch_first=True) if backward_rnn else None
        context = features + (rnn_dim if backward_rnn else 0)
        self.min_scale, self.guide_flow_kind = min_scale, guide_flow
        self.guide_head, self.guide_flow = build_guide(
            guide_flow, latent_dim, context, guide_flow_layers, guide_components, min_scale
        )

        self.reward_head = make_head(latent_dim + action_dim, 2) if reward else None
        if done_hidden and (not done or self.prior is None):
            raise ValueError(
                "done_hidden needs done=True and dynamics (a prior other than 'normal')"
            )
        self.done_hidden = bool(done_hidden)
        extra = self.prior.rnn.hidden_size if done_hidden else 0
        self.done_head = make_head(latent_dim + action_dim, 1, extra) if done else None
        self.kl_warmup, self.kl_start, self.kl_end = kl_warmup, kl_start, kl_end
        self.register_buffer("kl_steps", torch.zeros((), dtype=torch.long))
        self.config = dict(
            frame_shape=list(self.frame_shape),
            latent_dim=latent_dim,
            action_dim=action_dim,
            likelihood=likelihood,
            channels=channels,
            features=features,
            decoder=decoder,
            num_sprites=num_sprites,
            sprite_size=sprite_size,
            prior=self.prior_kind,
            hidden_dim=hidden_dim,
            prior_options=None if prior_options is None else dict(prior_options),
            guide_flow=guide_flow,
            guide_flow_layers=guide_flow_layers,
            guide_components=guide_components,
            backward_rnn=backward_rnn,
            rnn_dim=rnn_dim,
            reward=reward,
            done=done,
            done_hidden=self.done_hidden,
            kl_warmup=kl_warmup,
            kl_start=kl_start,
            kl_end=kl_end,
            min_scale=min_scale,
            name=name,
            prior_config=None if self.prior is None else dict(self.prior.config),
        )

    @classmethod
    def from_config(cls, config: dict) -> WorldModel:
        """Rebuild a model (untrained) from its ``config``, e.g. one saved in a checkpoint."""
        kwargs = {k: v for k, v in config.items() if k != "prior_config"}
        if kwargs.get("prior") == "custom":
            kwargs["prior"] = FRMDN.from_config(config["prior_config"])
        return cls(**kwargs)

    def with_prior(self, prior: FRMDN) -> WorldModel:
        """A copy of this model (encoder, decoder, heads) with ``prior`` as its dynamics.

        The second stage of the two-stage recipe: fit this model with ``prior="normal"`` (a VAE),
        fit an FRMDN on ``shift_actions``-conditioned codes of :meth:`encode`, then compose them.
        """
        new = copy.deepcopy(self)
        new.prior = build_prior(prior, self.latent_dim, self.action_dim, None, None)
        new.prior_kind = "custom"
        new.config.update(prior="custom", prior_options=None, prior_config=dict(prior.config))
        return new

    @property
    def device(self) -> torch.device:
        return self.kl_steps.device

    @property
    def kl_scale(self) -> float:
        """The current KL weight :math:`\\beta` of training (``kl_end`` without annealing)."""
        return kl_weight(int(self.kl_steps), self.kl_warmup, self.kl_start, self.kl_end)

    def _kl_weight(self):
        """The KL weight on the ``"z"`` sites (β = 0, as ``kl_start=0`` at the first step, masks
        them out of the loss: the same objective, since Pyro refuses a scale of 0)."""
        return weighted_sites(self.kl_scale)

    # -- inputs -------------------------------------------------------------------------------

    def _check_frames(self, frames, mask):
        """Validate frames and mask; return frames as floats (masked ones zeroed) and the mask."""
        return check_frames(self, frames, mask)

    def _check(self, frames, actions, mask, rewards, dones):
        """Validate the inputs; return them with masked steps zeroed and frames as floats."""
        return check_inputs(self, frames, actions, mask, rewards, dones)

    # -- the pieces of the model and the guide -------------------------------------------------

    def prior_distribution(
        self, actions: Tensor | None, mask: Tensor | None, batch: int, steps: int
    ):
        """:math:`p(z_{1:T} \\mid a)`: batch ``(B,)``, event ``(T, D)``."""
        if self.prior is None:
            zero = self.kl_steps.new_zeros((), dtype=self.guide_dtype)
            d = dist.Normal(zero, 1.0).expand((batch, steps, self.latent_dim)).to_event(1)
            return (d if mask is None else d.mask(mask)).to_event(1)
        x = None if actions is None else shift_actions(actions)
        return SequenceDistribution(self.prior, x, mask, batch_size=batch, steps=steps)

    @property
    def guide_dtype(self) -> torch.dtype:
        return self.encoder.linear.weight.dtype

    def _context(self, frames: Tensor, mask: Tensor | None) -> Tensor:
        """The guide's per-frame context ``(B, T, F [+ R])``: encoder features, and the backward
        GRU's state over frames t..T of each sequence (up to its last unmasked frame)."""
        e = F.relu(self.encoder(frames))
        if self.backward_rnn is None:
            return e
        return backward_context(e, self.backward_rnn, mask)

    def step_posterior(self, frames: Tensor, mask: Tensor | None = None):
        """:math:`q(z_t \\mid x)` per frame: batch ``(B, T)``, event ``(D,)`` (checked inputs)."""
        context = self._context(frames, mask)
        return amortized_posterior(context, self.guide_head, self.guide_flow, self.min_scale)

    def posterior(self, frames: Tensor, mask: Tensor | None = None):
        """:math:`q(z_{1:T} \\mid x)`: batch ``(B,)``, event ``(T, D)``, masked steps unscored."""
        q = self.step_posterior(frames, mask)
        return (q if mask is None else q.mask(mask)).to_event(1)

    def frame_distribution(self, z: Tensor, mask: Tensor | None = None):
        """:math:`p(x_{1:T} \\mid z_{1:T})` for ``z`` (..., T, D): batch ``(...)``, event
        ``(T, C, H, W)``."""
        px = self.pixels(self.decoder(z))
        return (px if mask is None else px.mask(mask)).to_event(1)

    def hidden_states(self, z: Tensor, actions: Tensor | None) -> Tensor:
        """M's RNN features :math:`h_t` along whole sequences ``z`` ``(..., T, D)`` (teacher
        forced on ``z`` and ``shift_actions(actions)``): ``(..., T, H)``."""
        return hidden_states(self.prior, z, actions)

    def head_distributions(
        self, z: Tensor, actions: Tensor | None, mask: Tensor | None, hidden: Tensor | None = None
    ):
        """The reward and done heads' distributions at ``z`` ``(..., T, D)`` and ``actions``;
        with ``done_hidden``, ``hidden`` is M's state at each step ``(..., T, H)`` (default: M
        teacher forced along ``z``, which must then be whole sequences from their first step).
        Returns ``{"reward": Normal, "done": Bernoulli}`` (those the model has), each of batch
        ``(...)`` and event ``(T,)``, masked by ``mask`` where given."""
        return head_distributions(self, z, actions, mask, hidden)

    # -- the Pyro program ---------------------------------------------------------------------

    def model(self, frames, actions=None, mask=None, rewards=None, dones=None) -> None:
        """Pyro model: sites ``"z"`` (the latent sequence), ``"x"`` (the frames) and, when given,
        ``"reward"`` and ``"done"``, under a plate over sequences."""
        frames, actions, mask, rewards, dones = self._check(frames, actions, mask, rewards, dones)
        pyro.module(self.name, self)
        b, t = frames.shape[:2]
        with pyro.plate("sequences", b):
            with self._kl_weight():
                z = pyro.sample("z", self.prior_distribution(actions, mask, b, t))
            pyro.sample("x", self.frame_distribution(z, mask), obs=frames)
            heads = self.head_distributions(z, actions, mask)
            for site, value in (("reward", rewards), ("done", dones)):
                if value is not None:
                    pyro.sample(site, heads[site], obs=value)
        if self.training and torch.is_grad_enabled():
            self.kl_steps += 1

    def guide(self, frames, actions=None, mask=None, rewards=None, dones=None) -> None:
        """Pyro guide: all of ``"z"`` at once from the amortised encoder."""
        frames, actions, mask, rewards, dones = self._check(frames, actions, mask, rewards, dones)
        pyro.module(self.name, self)
        with pyro.plate("sequences", frames.shape[0]), self._kl_weight():
            pyro.sample("z", self.posterior(frames, mask))

    # -- bounds -------------------------------------------------------------------------------

    def log_weights(
        self,
        frames,
        actions=None,
        mask=None,
        rewards=None,
        dones=None,
        num_samples: int = 1,
        chunk_size: int = 16,
    ) -> Tensor:
        r"""Importance log-weights :math:`\log p(x, z_i) - \log q(z_i \mid x)`, ``(k, B)``, for
        ``k = num_samples`` draws of the guide (``chunk_size`` of them decoded at a time)."""
        num_samples = check_count("num_samples", num_samples)
        chunk_size = check_count("chunk_size", chunk_size)
        frames, actions, mask, rewards, dones = self._check(frames, actions, mask, rewards, dones)
        b, t = frames.shape[:2]
        q = self.posterior(frames, mask)
        prior = self.prior_distribution(actions, mask, b, t)
        out = []
        for start in range(0, num_samples, chunk_size):
            z = q.rsample((min(chunk_size, num_samples - start),))  # (n, B, T, D)
            lw = prior.log_prob(z) + self.frame_distribution(z, mask).log_prob(frames)
            heads = self.head_distributions(z, actions, mask)
            for site, value in (("reward", rewards), ("done", dones)):
                if value is not None:
                    lw = lw + heads[site].log_prob(value)
            out.append(lw - q.log_prob(z))
        return torch.cat(out)

    def elbo(self, frames, actions=None, mask=None, rewards=None, dones=None, num_samples=1):
        """The ELBO of each sequence in nats, ``(B,)``: the mean of ``num_samples`` estimates."""
        return self.log_weights(frames, actions, mask, rewards, dones, num_samples).mean(0)

    def iwae_bound(self, frames, actions=None, mask=None, rewards=None, dones=None, num_samples=64):
        r"""The importance-weighted bound of each sequence in nats, ``(B,)`` (Burda et al. 2016):
        :math:`\log \frac1k \sum_i w_i \le \log p(x)`, tighter as ``k = num_samples`` grows."""
        lw = self.log_weights(frames, actions, mask, rewards, dones, num_samples)
        return torch.logsumexp(lw, 0) - math.log(num_samples)

    def log_prob(self, frames, actions=None, mask=None, rewards=None, dones=None) -> Tensor:
        """A one-sample ELBO per sequence, ``(B,)``: what :func:`pyro_frmdn.evaluate` reads (a
        bound, so its "NLL" is an upper bound, in nats per frame)."""
        return self.elbo(frames, actions, mask, rewards, dones)

    # -- codes --------------------------------------------------------------------------------

    @torch.no_grad()
    def encode(self, frames: Tensor, mask: Tensor | None = None, sample: bool = False) -> Tensor:
        """Codes ``(B, T, D)`` of frames: the guide's Gaussian mean pushed through its flow (with
        ``"boosted"``, through the flow of its heaviest component), or with ``sample=True`` a
        draw of :math:`q(z_t \\mid x)` (what World Models trained its MDN-RNN on)."""
        frames, mask = self._check_frames(frames, mask)
        if sample:
            return self.step_posterior(frames, mask).sample()
        context = self._context(frames, mask)
        if self.guide_head is None:
            best = int(self.guide_flow.log_weights().argmax())
            q = self.guide_flow.components[best](context)
        else:
            q = self.step_posterior(frames, mask)
        return posterior_code(q)

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        """Frames to show, ``(..., C, H, W)`` in ``[0, 1]``, for latents ``(..., D)``."""
        return self.pixels.frame(self.decoder(z))

    @torch.no_grad()
    def sample(
        self,
        num: int,
        steps: int,
        actions: Tensor | None = None,
        pi_temperature: float = 1.0,
        scale_temperature: float = 1.0,
    ) -> Tensor:
        """``num`` videos of ``steps`` frames from the prior, decoded: ``(num, steps, C, H, W)``.

        ``actions`` ``(num, steps, A)`` when the model takes them; the temperatures as in
        :func:`~pyro_frmdn.dream` (which starts from encoded frames instead).
        """
        num, steps = check_count("num", num), check_count("steps", steps)
        actions = check_sample_actions(self, actions, num, steps)
        if self.prior is None:
            z = torch.randn(num, steps, self.latent_dim, device=self.device, dtype=self.guide_dtype)
        else:
            x = None if actions is None else shift_actions(actions)
            z = self.prior.sample(num, steps, x=x, pi_temperature=pi_temperature,
                                  scale_temperature=scale_temperature)  # fmt: skip
        return self.decode(z)
