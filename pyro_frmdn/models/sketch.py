"""sketch-rnn as a Pyro VAE: a bidirectional LSTM guide and an FRMDN decoder over stroke-5."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from torch import Tensor, nn

from ..distributions import WithCategorical, flow_mixture
from ..flows import coupling_flow
from ..nn import MixtureHead
from . import sketch_inputs as s5
from .annealing import kl_weight, weighted_sites
from .base import PyroModel
from .decoding import greedy, slerp
from .sketch_inputs import END, STROKE5_START, check_codes, check_drawing
from .validation import as_tensor, check_count, check_positive
from .world_guide import amortized_posterior, build_guide, posterior_code

__all__ = ["SketchVAE"]


class SketchVAE(PyroModel):
    r"""sketch-rnn (Ha & Eck 2017): a sequence VAE over drawings in stroke-5, trained by SVI.

    .. math::
        z \sim \mathcal N(0, I), \quad
        (h_0, c_0) = \tanh(W z + b), \quad
        h_t = \mathrm{LSTM}(h_{t-1}, [S_{t-1}, z]), \quad
        S_t \sim p_\mathrm{offsets}(\cdot \mid h_t) \times \mathrm{Cat}(\mathrm{pen}; h_t)

    with :math:`S_0` = :data:`STROKE5_START`, the offsets' law the package's low-rank mixture
    (``rank=1`` is sketch-rnn's bivariate Gaussians with correlation) optionally under a coupling
    flow (``flow_layers > 0``, the FRMDN), and the pen a 3-way categorical whose end state has no
    offsets. The guide :math:`q(z \mid S_{1:L})` is a diagonal Gaussian read from the final
    states of a bidirectional LSTM over the drawing (up to its first end row), optionally pushed
    through an IAF (``guide_flow="iaf"``), as the world model's guide.

    Data: ``y`` ``(B, L, 5)`` stroke-5 drawings padded with end rows
    (:func:`~pyro_frmdn.data.to_stroke5`); every row is scored (sketch-rnn scores the pen over the
    whole padded length), unless ``mask`` ``(B, L)`` leaves some out.

    Training (:func:`pyro_frmdn.fit`, ``Trace_ELBO``): the ``"z"`` sites of the model and the
    guide are scaled by :math:`\beta`, rising linearly from ``kl_start`` to ``kl_end`` over the
    first ``kl_warmup`` training calls of :meth:`model` (SVI steps, counted in the buffer
    ``kl_steps``, saved with the weights), so the loss is
    :math:`-E_q \log p(S \mid z) + \beta \max(\mathrm{KL}, \mathrm{KL}_\min)`: sketch-rnn's KL
    annealing and KL tolerance. The floor :math:`\mathrm{KL}_\min` = ``kl_tolerance`` ×
    ``latent_dim`` nats per drawing (sketch-rnn's 0.2 per dimension) applies to the batch's mean
    KL: the guide measures it (exactly for a Gaussian, by 8 draws with a flow) and below the floor
    both ``"z"`` sites get weight 0, the gradient of the max. ``pf.fit`` needs no hook: the
    schedule runs inside the model. :meth:`elbo`, :meth:`iwae` and :meth:`log_prob` are always
    the plain bounds.

    Arguments:
        latent_dim: the size of :math:`z` (sketch-rnn 128); 0 gives sketch-rnn's unconditional
            decoder (no code, no guide, the state starts at zero): the same decoder, scored
            exactly.
        encoder_dim: the size of each direction of the encoder's LSTM (256).
        hidden_dim: the decoder LSTM's size (512).
        num_components, rank, parameterization, min_diag: the offsets' mixture
            (:class:`~pyro_frmdn.nn.MixtureHead`; sketch-rnn: 20 components of rank 1).
        flow_layers, flow, flow_hidden_dims, mixing: a coupling flow on the offsets
            (:func:`~pyro_frmdn.flows.coupling_flow`; 0 layers: the RMDN decoder).
        guide_flow, guide_flow_layers: ``None`` or ``"iaf"`` and its layers.
        kl_warmup, kl_start, kl_end, kl_tolerance: the KL schedule and floor (above).
        min_scale: the floor of the guide's standard deviations.
        z_to_output: the mixture head and the pen read :math:`[h_t, z]` rather than
            :math:`h_t`: a short path from the code to the likelihood (the generative skip
            connections of Dieng et al. 2019, against posterior collapse).
        input_dropout: in training (``model.train()``, gradients on), each previous row the
            decoder reads is replaced by zeros (a row no drawing has) with this probability, so
            that the decoder must take what it cannot see from the code (Bowman et al. 2016's
            word dropout, against posterior collapse); scoring and drawing read every row.
        position_input: the decoder also reads where the pen is, :math:`P_{t-1} = \sum_{s<t}
            (\Delta x_s, \Delta y_s)` (the sum of the offsets so far, in the data's units, from
            the drawing's origin), so that it need not integrate its own offsets to know where
            on the canvas the code's strokes go.
        name: the prefix of the parameters in Pyro's param store.

    Example:
        >>> m = SketchVAE(latent_dim=4, encoder_dim=8, hidden_dim=16, num_components=2)
        >>> from pyro_frmdn.models.sketch_inputs import random_stroke5
        >>> y = random_stroke5(3, 6)  # 3 drawings of 6 rows
        >>> m.encode(y).shape, m.elbo(y).shape, m.sample(2, steps=5).shape
        (torch.Size([3, 4]), torch.Size([3]), torch.Size([2, 5, 5]))
    """

    def __init__(
        self,
        latent_dim: int = 128,
        encoder_dim: int = 256,
        hidden_dim: int = 512,
        num_components: int = 20,
        rank: int = 1,
        parameterization: str = "covariance",
        flow_layers: int = 0,
        flow: str = "affine",
        flow_hidden_dims: list[int] | None = None,
        mixing: str = "permute",
        min_diag: float = 1e-4,
        guide_flow: str | None = None,
        guide_flow_layers: int = 2,
        kl_warmup: int = 0,
        kl_start: float = 0.01,
        kl_end: float = 1.0,
        kl_tolerance: float = 0.2,
        min_scale: float = 1e-3,
        z_to_output: bool = False,
        input_dropout: float = 0.0,
        position_input: bool = False,
        name: str = "sketch",
    ):
        super().__init__()
        sizes = dict(latent_dim=latent_dim, encoder_dim=encoder_dim, hidden_dim=hidden_dim)
        for key, value in sizes.items():
            check_count(key, value + (key == "latent_dim"))  # latent_dim may be 0
        if guide_flow not in (None, "iaf"):
            raise ValueError(f"guide_flow must be None or 'iaf', got {guide_flow!r}")
        if guide_flow == "iaf":
            check_count("guide_flow_layers", guide_flow_layers)
        check_positive("min_scale", min_scale)
        number = isinstance(input_dropout, (int, float)) and not isinstance(input_dropout, bool)
        if not number or not 0 <= input_dropout < 1:
            raise ValueError(
                f"input_dropout must be a probability in [0, 1), got {input_dropout!r}"
            )
        if isinstance(kl_warmup, bool) or not isinstance(kl_warmup, int) or kl_warmup < 0:
            raise ValueError(f"kl_warmup must be an integer >= 0 (SVI steps), got {kl_warmup!r}")
        if not 0 <= kl_start <= 1 or not kl_end > 0 or not kl_tolerance >= 0:
            raise ValueError(
                "need kl_warmup >= 0, 0 <= kl_start <= 1, kl_end > 0 and kl_tolerance >= 0; got "
                f"{kl_warmup}, {kl_start}, {kl_end}, {kl_tolerance}"
            )
        self.config = dict(
            **sizes, num_components=num_components, rank=rank,
            parameterization=parameterization, flow_layers=flow_layers, flow=flow,
            flow_hidden_dims=flow_hidden_dims, mixing=mixing, min_diag=min_diag,
            guide_flow=guide_flow, guide_flow_layers=guide_flow_layers, kl_warmup=kl_warmup,
            kl_start=kl_start, kl_end=kl_end, kl_tolerance=kl_tolerance, min_scale=min_scale,
            z_to_output=bool(z_to_output), input_dropout=float(input_dropout),
            position_input=bool(position_input), name=name,
        )  # fmt: skip
        self.latent_dim, self.name, self.obs_dim = latent_dim, name, 5
        self.kl_warmup, self.kl_start, self.kl_end = kl_warmup, kl_start, kl_end
        self.kl_tolerance, self.min_scale = kl_tolerance, min_scale
        self.input_dropout = float(input_dropout)
        self.encoder = self.guide_head = self.init = None
        self.guide_flow = nn.ModuleList()
        if latent_dim:
            self.encoder = nn.LSTM(5, encoder_dim, batch_first=True, bidirectional=True)
            self.guide_head, self.guide_flow = build_guide(
                guide_flow, latent_dim, 2 * encoder_dim, guide_flow_layers, 1, min_scale
            )
            self.init = nn.Linear(latent_dim, 2 * hidden_dim)  # z -> (h_0, c_0)
        self.position_input = bool(position_input)
        inputs = 5 + latent_dim + 2 * self.position_input  # [S_{t-1}, z] (, P_{t-1})
        self.decoder = nn.LSTM(inputs, hidden_dim, batch_first=True)
        self.z_to_output = bool(z_to_output) and latent_dim > 0
        features = hidden_dim + latent_dim * self.z_to_output  # [h_t, z] with z_to_output
        self.head = MixtureHead(
            features, 2, num_components, rank, parameterization, min_diag=min_diag
        )
        self.pen = nn.Linear(features, 3)
        self.flow = coupling_flow(2, flow_layers, flow=flow, hidden_dims=flow_hidden_dims,
                                  mixing=mixing)  # fmt: skip
        self.register_buffer("start", torch.tensor(STROKE5_START))
        self.register_buffer("kl_steps", torch.zeros((), dtype=torch.long))
        self._kl_gate: bool | None = None  # set by the guide, read by the model (Trace_ELBO)

    @property
    def device(self) -> torch.device:
        return self.start.device

    @property
    def kl_scale(self) -> float:
        """The current KL weight :math:`\\beta` of training (``kl_end`` without annealing)."""
        return kl_weight(int(self.kl_steps), self.kl_warmup, self.kl_start, self.kl_end)

    # -- inputs -------------------------------------------------------------------------------

    def _checked(self, y, mask=None) -> tuple[Tensor, Tensor | None]:
        return s5.check_stroke5(y, mask, self.start.dtype, self.device)

    # -- the pieces ---------------------------------------------------------------------------

    def posterior(self, y: Tensor, mask: Tensor | None = None):
        """:math:`q(z \\mid S)` for checked drawings: batch ``(B,)``, event ``(Z,)``."""
        lengths = s5.stroke5_lengths(y, mask).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(y, lengths, True, enforce_sorted=False)
        h = self.encoder(packed)[1][0]  # (2, B, E): the final state of each direction
        context = torch.cat([h[0], h[1]], -1)
        return amortized_posterior(context, self.guide_head, self.guide_flow, self.min_scale)

    def prior(self, batch: int):
        """:math:`p(z) = \\mathcal N(0, I)`: batch ``(batch,)``, event ``(Z,)``."""
        zero = self.start.new_zeros(())
        return dist.Normal(zero, 1.0).expand((batch, self.latent_dim)).to_event(1)

    def initial_state(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """The decoder's LSTM state :math:`\\tanh(W z + b)` for codes ``(N, Z)`` (zeros without
        a code)."""
        if self.init is None:
            h = z.new_zeros(1, z.shape[0], self.decoder.hidden_size)
            return h, h.clone()
        h, c = torch.tanh(self.init(z)).chunk(2, dim=-1)
        return h.unsqueeze(0).contiguous(), c.unsqueeze(0).contiguous()

    def step_distribution(self, h: Tensor) -> WithCategorical:
        """The law of the next row for decoder features ``h`` (..., H), or (..., H + Z) with
        ``z_to_output`` (:meth:`features`): event ``(5,)``."""
        d = self.head(h)
        if len(self.flow):
            d = flow_mixture(d, self.flow)
        return WithCategorical(d, self.pen(h), terminal_state=END)

    def features(self, y: Tensor, z: Tensor) -> Tensor:
        """Decoder features (teacher forcing): drawings ``(N, L, 5)``, codes ``(N, Z)`` ->
        ``(N, L, H)``, or :math:`[h_t, z]` ``(N, L, H + Z)`` with ``z_to_output``; step t reads
        :math:`[S_{t-1}, z]` (:math:`S_{t-1}` zeroed at random in training with
        ``input_dropout``), and the pen's position :math:`P_{t-1}` with ``position_input``."""
        n, steps = y.shape[:2]
        prev = torch.cat([self.start.expand(n, 1, 5), y[:, :-1]], dim=1)
        inputs = [prev, z.unsqueeze(1).expand(n, steps, -1)]
        if self.position_input:
            inputs.append(prev[..., :2].cumsum(1))
        if self.input_dropout and self.training and torch.is_grad_enabled():
            keep = torch.rand(n, steps, 1, device=y.device) >= self.input_dropout
            inputs[0] = prev * keep
        codes = inputs[1]
        h = self.decoder(torch.cat(inputs, dim=-1), self.initial_state(z))[0]
        return torch.cat([h, codes], -1) if self.z_to_output else h

    def likelihood(self, y: Tensor, z: Tensor, mask: Tensor | None = None):
        """:math:`p(S \\mid z)` for codes ``z`` (..., B, Z): batch ``(..., B)``, event
        ``(L, 5)``."""
        lead = z.shape[:-1]
        flat = z.reshape(math.prod(lead), self.latent_dim)
        ys = y.expand(*lead, *y.shape[-2:]).reshape(-1, *y.shape[-2:])
        d = self.step_distribution(self.features(ys, flat).reshape(*lead, *y.shape[-2:-1], -1))
        return (d if mask is None else d.mask(mask)).to_event(1)

    # -- the Pyro program ---------------------------------------------------------------------

    def model(self, y, mask=None) -> None:
        """Pyro model: ``"z"`` from the prior and the drawings ``"y"``, in a plate of drawings."""
        y, mask = self._checked(y, mask)
        pyro.module(self.name, self)
        gate, self._kl_gate = (True if self._kl_gate is None else self._kl_gate), None
        with pyro.plate("drawings", y.shape[0]):
            z = y.new_zeros(y.shape[0], 0)  # latent_dim = 0: sketch-rnn's unconditional decoder
            if self.latent_dim:
                with self._kl_weight(gate):
                    z = pyro.sample("z", self.prior(y.shape[0]))
            pyro.sample("y", self.likelihood(y, z, mask), obs=y)
        if self.training and torch.is_grad_enabled():
            self.kl_steps += 1

    def guide(self, y, mask=None) -> None:
        """Pyro guide: ``"z"`` from the bidirectional encoder, weighted as the model's."""
        y, mask = self._checked(y, mask)
        if not self.latent_dim:  # nothing latent: the ELBO is the log-likelihood
            return
        pyro.module(self.name, self)
        q = self.posterior(y, mask)
        self._kl_gate = self.kl_mean(q) >= self.kl_tolerance * self.latent_dim
        with pyro.plate("drawings", y.shape[0]), self._kl_weight(self._kl_gate):
            pyro.sample("z", q)

    def _kl_weight(self, gate: bool):
        """Weigh the ``"z"`` sites by :math:`\\beta`, or leave them out when the KL is below its
        floor (``gate`` false) or :math:`\\beta = 0`."""
        return weighted_sites(self.kl_scale, gate)

    @torch.no_grad()
    def kl_mean(self, q) -> float:
        """The mean over drawings of KL(q(z | S) || p(z)) in nats (:meth:`kl`) for a guide's
        ``q``."""
        return float(self._kl(q).mean())

    @torch.no_grad()
    def kl(self, y, mask=None) -> Tensor:
        """KL(q(z | S) || p(z)) of each drawing in nats, ``(B,)``: exact for a Gaussian guide,
        an estimate from 8 draws with a flow; zeros without a code."""
        y, mask = self._checked(y, mask)
        if not self.latent_dim:
            return y.new_zeros(y.shape[0])
        return self._kl(self.posterior(y, mask))

    def _kl(self, q) -> Tensor:
        prior = self.prior(q.batch_shape[0])
        if isinstance(q, dist.TransformedDistribution):
            z = q.sample((8,))
            return (q.log_prob(z) - prior.log_prob(z)).mean(0)
        return torch.distributions.kl_divergence(q, prior)

    # -- bounds -------------------------------------------------------------------------------

    def log_weights(self, y, mask=None, num_particles: int = 1, chunk_size: int = 16) -> Tensor:
        r""":math:`\log p(S, z_i) - \log q(z_i \mid S)` for ``k = num_particles`` draws of the
        guide, ``(k, B)`` (``chunk_size`` draws decoded at a time)."""
        num_particles = check_count("num_particles", num_particles)
        chunk_size = check_count("chunk_size", chunk_size)
        y, mask = self._checked(y, mask)
        if not self.latent_dim:  # exact: every weight is log p(S)
            lp = self.likelihood(y, y.new_zeros(y.shape[0], 0), mask).log_prob(y)
            return lp.expand(num_particles, -1)
        q, prior, out = self.posterior(y, mask), self.prior(y.shape[0]), []
        for start in range(0, num_particles, chunk_size):
            z = q.rsample((min(chunk_size, num_particles - start),))  # (n, B, Z)
            lw = prior.log_prob(z) + self.likelihood(y, z, mask).log_prob(y) - q.log_prob(z)
            out.append(lw)
        return torch.cat(out)

    def elbo(self, y, mask=None, num_particles: int = 1) -> Tensor:
        """The ELBO of each drawing in nats, ``(B,)``: the mean of ``num_particles`` estimates."""
        return self.log_weights(y, mask, num_particles).mean(0)

    def iwae(self, y, mask=None, num_particles: int = 64, chunk_size: int = 16) -> Tensor:
        r"""The importance-weighted bound of each drawing in nats, ``(B,)`` (Burda et al. 2016):
        :math:`\log \frac1k \sum_i w_i \le \log p(S)`, tighter as ``k = num_particles`` grows."""
        lw = self.log_weights(y, mask, num_particles, chunk_size)
        return torch.logsumexp(lw, 0) - math.log(lw.shape[0])

    def log_prob(self, y, mask=None) -> Tensor:
        """A one-sample ELBO per drawing, ``(B,)``: what :func:`pyro_frmdn.evaluate` and ``fit``'s
        validation read (a bound: the "NLL" they report is an upper bound)."""
        return self.elbo(y, mask)

    # -- what users do with it ------------------------------------------------------------------

    @torch.no_grad()
    def encode(self, y, mask=None, sample: bool = False) -> Tensor:
        """Codes ``(B, Z)`` of drawings: the guide's mean (through its flow), or a draw."""
        y, mask = self._checked(y, mask)
        if not self.latent_dim:
            raise ValueError("the model has no code (latent_dim=0): nothing to encode")
        q = self.posterior(y, mask)
        return q.sample() if sample else posterior_code(q)

    @torch.no_grad()
    def decode(
        self,
        z: Tensor,
        steps: int = 250,
        temperature: float = 1.0,
        greedy_decoding: bool = False,
        prime: Tensor | None = None,
    ) -> Tensor:
        r"""Drawings ``(N, steps, 5)`` in stroke-5 for codes ``z`` ``(N, Z)``.

        Each row is drawn from the decoder's law tempered as sketch-rnn does (mixture and pen
        logits divided by :math:`\tau` = ``temperature``, variances times :math:`\tau`), or with
        ``greedy_decoding`` the likeliest pen state and the mean of the likeliest component;
        after a drawing's end every row is an end row. ``prime`` ``(N, P, 5)`` rows are fed
        first and returned as they are (the start of :meth:`complete`).
        """
        z = check_codes(z, self.latent_dim, "z", "(N, Z)", self.start.dtype, self.device)
        steps, n = check_count("steps", steps), z.shape[0]
        temperature = check_positive("temperature", temperature)
        state, prev, rows = self.initial_state(z), self.start.expand(n, 5), []
        if prime is not None:
            prime = s5.check_prime(prime, n, self.start.dtype, self.device)
        p = 0 if prime is None else prime.shape[1]
        ended = torch.zeros(n, dtype=torch.bool, device=self.device)
        position = prev.new_zeros(n, 2)  # P_{t-1}: the offsets fed so far, summed
        for t in range(p + steps):
            position = position + prev[:, :2]
            inputs = [prev, z, position] if self.position_input else [prev, z]
            h, state = self.decoder(torch.cat(inputs, -1).unsqueeze(1), state)
            if t < p:
                prev = prime[:, t]
                rows.append(prev)
                ended |= prev[:, 2 + END] == 1
                continue
            h = torch.cat([h.squeeze(1), z], -1) if self.z_to_output else h.squeeze(1)
            d = self.step_distribution(h).tempered(temperature, temperature)
            if greedy_decoding:
                row = d.compose(greedy(d.continuous), d.logits.argmax(-1))
            else:
                row = d.sample()
            prev = torch.where(ended[:, None], self.start.new_tensor([0, 0, 0, 0, 1.0]), row)
            ended |= prev[:, 2 + END] == 1
            rows.append(prev)
        return torch.stack(rows, 1)

    @torch.no_grad()
    def reconstruct(
        self, y, mask=None, candidates: int = 16, temperature: float = 0.2, steps=None
    ) -> Tensor:
        r"""Redrawings ``(B, steps, 5)`` of drawings ``y``: each code :math:`z` (the guide's mean)
        decoded ``candidates`` times at ``temperature``, and kept the decoding :math:`S_c` that
        maximises :math:`\log q(z \mid S_c)` (a reverse model reranking samples, as in
        noisy-channel decoding: the choice reads :math:`z`, never ``y``); ``steps``: ``y``'s."""
        y, mask = self._checked(y, mask)
        candidates = check_count("candidates", candidates)
        steps = y.shape[1] if steps is None else check_count("steps", steps)
        z = self.encode(y, mask)
        b = z.shape[0]
        codes = z.repeat(candidates, 1)  # candidate c of drawing i in row c * b + i
        drawn = self.decode(codes, steps, temperature)
        score = self.posterior(drawn).log_prob(codes).view(candidates, b)
        return drawn.view(candidates, b, steps, 5)[score.argmax(0), torch.arange(b)]

    def sample(
        self, num: int, steps: int = 250, temperature: float = 1.0, greedy_decoding: bool = False
    ) -> Tensor:
        """``num`` drawings ``(num, steps, 5)`` from the prior: :math:`z \\sim \\mathcal N(0, I)`,
        decoded (:meth:`decode`)."""
        num = check_count("num", num)
        z = torch.randn(num, self.latent_dim, dtype=self.start.dtype, device=self.device)
        return self.decode(z, steps, temperature, greedy_decoding)

    def interpolate(self, a: Tensor, b: Tensor, steps: int = 10) -> Tensor:
        """``steps`` codes ``(steps, Z)`` on the great circle from ``a`` to ``b`` (:func:`slerp`,
        as sketch-rnn), the ends exactly ``a`` and ``b``; ``a`` and ``b`` are codes ``(Z,)`` or
        drawings ``(L, 5)`` (encoded by the guide's mean)."""
        steps = check_count("steps", steps)
        if not self.latent_dim:
            raise ValueError("the model has no code (latent_dim=0): nothing to interpolate")
        a, b = (self._code(v, name) for v, name in ((a, "a"), (b, "b")))
        return slerp(a, b, steps)

    def _code(self, v, name: str) -> Tensor:
        v = as_tensor(name, v, self.device)
        if v.dim() == 2 and v.shape[-1] == 5:  # a drawing
            v = check_drawing(v, self.start.dtype, self.device, name)
            return self.encode(v.unsqueeze(0))[0]
        return check_codes(v, self.latent_dim, name, "(Z,)", self.start.dtype, self.device)

    def complete(
        self, partial, num: int = 1, steps: int = 250, temperature: float = 1.0, z=None
    ) -> Tensor:
        """``num`` completions ``(num, P + steps, 5)`` of one partial drawing ``(P, 5)``: each
        with its own code drawn from :math:`q(z \\mid \\text{partial})` (or the codes ``z``
        ``(num, Z)`` given), the decoder fed the partial rows, then sampling on."""
        partial = check_drawing(partial, self.start.dtype, self.device, "partial")
        num = check_count("num", num)
        prime = partial.expand(num, *partial.shape)
        if z is None:
            z = self.encode(prime, sample=True) if self.latent_dim else prime.new_zeros(num, 0)
        return self.decode(z, steps, temperature, prime=prime)
