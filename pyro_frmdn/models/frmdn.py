"""FRMDN and RMDN: recurrent mixture density networks as Pyro models."""

from __future__ import annotations

import math

import pyro
import torch
from pyro.distributions.conditional import ConditionalTransform
from torch import Tensor, nn
from torch.distributions.transforms import AffineTransform

from ..deprecation import refuse_unknown, renamed
from ..distributions import (
    SCALE_MODES,
    WithBernoulli,
    clear_transform_cache,
    flow_mixture,
)
from ..flows import PRECISIONS, coupling_flow, default_hidden_dims, uncapped_hidden_dims
from ..nn import MixtureHead
from .base import PyroModel
from .decoding import chosen, component_noise, greedy
from .validation import (
    as_real,
    as_tensor,
    check_count,
    check_generation_inputs,
    check_positive,
    check_sequences,
)

__all__ = ["CELLS", "FRMDN", "RMDN", "greedy", "pad_sequences"]

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}
"""The recurrent cells by name, as the models' ``cell`` argument takes them."""


def pad_sequences(sequences: list[Tensor], max_len: int | None = None) -> tuple[Tensor, Tensor]:
    """Pad sequences of shape (T_i, D) into ``y`` (B, T, D), zero-filled, and ``mask`` (B, T)."""
    if not sequences:
        raise ValueError("pad_sequences needs at least one sequence")
    d = sequences[0].shape[-1]
    for i, s in enumerate(sequences):
        if s.dim() != 2 or s.shape[-1] != d:
            raise ValueError(f"sequence {i} has shape {tuple(s.shape)}; expected (T_i, {d})")
    t = max_len or max(len(s) for s in sequences)
    y = sequences[0].new_zeros(len(sequences), t, d)
    mask = torch.zeros(len(sequences), t, dtype=torch.bool, device=y.device)
    for i, s in enumerate(sequences):
        n = min(len(s), t)
        y[i, :n] = s[:n]
        mask[i, :n] = True
    return y, mask


class FRMDN(PyroModel):
    r"""Flow-based recurrent mixture density network (Razavi, Hosseini & Behzad 2020).

    .. math::
        h_t = \mathrm{RNN}(h_{t-1}, [y_{t-1}, x_t]), \qquad
        \log p(y_t \mid y_{<t}, x_{\le t}) = \log \sum_k \pi_k(h_t)\,
        \mathcal N(f(y_t); \mu_k(h_t), \Sigma_k(h_t))
        + \log\left|\det \frac{\partial f}{\partial y_t}\right|

    with :math:`\Sigma_k` low rank plus diagonal, as a covariance or as a precision (see
    :func:`~pyro_frmdn.distributions.low_rank_mixture`), and :math:`f` a coupling flow shared over
    time (or conditioned on :math:`h_t` with ``conditional_flow=True``). ``flow_layers=0`` is the
    RMDN (Graves 2013; World Models' MDN-RNN); ``rank=0`` makes the components diagonal.

    With ``binary_dims=B`` the last ``B`` coordinates of :math:`y_t` are bits (a pen-up flag, an
    end-of-sequence flag), modelled by independent Bernoullis given :math:`h_t` beside the
    mixture, as in Graves' handwriting model; the mixture and the flow act on the other
    ``obs_dim - B`` coordinates (see :class:`~pyro_frmdn.distributions.WithBernoulli`).

    Data (``y`` (B, T, D), ``x`` (B, T, X), ``mask`` (B, T)) may be tensors on the model's
    device, numpy arrays or lists; values are converted to the model's dtype, the mask must be
    boolean; what is refused, and how, is listed in ``docs/errors.md``.

    Arguments:
        obs_dim: D, the size of :math:`y_t`.
        input_dim: X, the size of optional inputs :math:`x_t` (text, actions); 0 for none.
        hidden_dim, num_layers, cell: the RNN (``"lstm"`` or ``"gru"``).
        num_components, rank, parameterization, factor_mode, min_diag: the mixture head
            (:class:`~pyro_frmdn.nn.MixtureHead`).
        flow_layers, flow, flow_hidden_dims, conditional_flow, mixing: the flow
            (:func:`~pyro_frmdn.flows.coupling_flow`); ``flow="affine"`` or ``"spline"``.
        flow_precision: ``None`` or ``"bfloat16"``: the affine couplings' networks in
            bfloat16, both directions alike (mixed precision; see
            :class:`~pyro_frmdn.flows.AffineCoupling` and ``docs/performance.md``).
        binary_dims: how many trailing coordinates of ``y`` are 0/1 bits with a Bernoulli head.
        name: the prefix of the parameters in Pyro's param store.

    Example:
        >>> m = FRMDN(obs_dim=3, hidden_dim=16, num_components=2, rank=1, flow_layers=2)
        >>> y = torch.randn(4, 10, 3)
        >>> m.log_prob(y).shape
        torch.Size([4])
        >>> m.sample(2, steps=5).shape
        torch.Size([2, 5, 3])
    """

    renamed_config_keys = {"factor": "factor_mode"}  # before 0.2
    default_flow_layers = 4  # what a config without flow_layers meant

    @classmethod
    def upgrade_config(cls, config: dict) -> dict:
        """``config`` with renamed keys, and the flow width that ``flow_hidden_dims=None`` meant
        when it was saved: configs now store the width, and ``None`` in a saved config is the
        uncapped ``[max(32, 2 * D)]`` of earlier releases (D the continuous size), so that their
        checkpoints rebuild the architecture they were trained with. (Without a flow the width
        means nothing and stays ``None``.)"""
        config = super().upgrade_config(config)
        has_flow = config.get("flow_layers", cls.default_flow_layers) > 0
        if config.get("flow_hidden_dims", 0) is None and "obs_dim" in config and has_flow:
            continuous = config["obs_dim"] - config.get("binary_dims", 0)
            config["flow_hidden_dims"] = uncapped_hidden_dims(continuous)
        return config

    def __init__(
        self,
        obs_dim: int,
        input_dim: int = 0,
        hidden_dim: int = 128,
        num_layers: int = 1,
        cell: str = "lstm",
        num_components: int = 5,
        rank: int = 0,
        parameterization: str = "covariance",
        factor_mode: str = "per_step",
        flow_layers: int = 4,
        flow: str = "affine",
        conditional_flow: bool = False,
        flow_hidden_dims: list[int] | None = None,
        mixing: str = "permute",
        min_diag: float = 1e-4,
        binary_dims: int = 0,
        name: str = "frmdn",
        flow_precision: str | None = None,
        **deprecated,
    ):
        super().__init__()
        if "factor" in deprecated:
            factor_mode = renamed("FRMDN", deprecated, "factor", "factor_mode")
        refuse_unknown("FRMDN", deprecated)
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {tuple(CELLS)}, got {cell!r}")
        if obs_dim < 1 or input_dim < 0 or hidden_dim < 1 or num_layers < 1:
            raise ValueError("need obs_dim >= 1, input_dim >= 0, hidden_dim >= 1, num_layers >= 1")
        if not 0 <= binary_dims < obs_dim:
            raise ValueError(
                f"binary_dims must be in [0, obs_dim) (at least one continuous coordinate), got "
                f"binary_dims={binary_dims} with obs_dim={obs_dim}"
            )
        continuous_dim = obs_dim - binary_dims
        if flow_precision not in PRECISIONS:
            raise ValueError(f"flow_precision must be one of {PRECISIONS}, got {flow_precision!r}")
        if flow_hidden_dims is None and flow_layers > 0:  # stored: the default may change
            flow_hidden_dims = default_hidden_dims(continuous_dim)
        self.config = dict(
            obs_dim=obs_dim, input_dim=input_dim, hidden_dim=hidden_dim, num_layers=num_layers,
            cell=cell, num_components=num_components, rank=rank,
            parameterization=parameterization, factor_mode=factor_mode, flow_layers=flow_layers,
            flow=flow, conditional_flow=conditional_flow,
            flow_hidden_dims=None if flow_hidden_dims is None else list(flow_hidden_dims),
            mixing=mixing, min_diag=min_diag, binary_dims=binary_dims, name=name,
            flow_precision=flow_precision,
        )  # fmt: skip
        self.obs_dim, self.input_dim, self.name = obs_dim, input_dim, name
        self.binary_dims = binary_dims
        self.conditional_flow = conditional_flow and flow_layers > 0
        self.rnn = CELLS[cell](obs_dim + input_dim, hidden_dim, num_layers, batch_first=True)
        self.start = nn.Parameter(torch.zeros(obs_dim))  # stands for y_0
        self.head = MixtureHead(
            hidden_dim,
            continuous_dim,
            num_components,
            rank,
            parameterization,
            factor_mode,
            min_diag,
        )
        self.bits = nn.Linear(hidden_dim, binary_dims) if binary_dims else None
        self.flow = coupling_flow(
            continuous_dim,
            flow_layers,
            flow=flow,
            hidden_dims=flow_hidden_dims,
            mixing=mixing,
            context_dim=hidden_dim if self.conditional_flow else 0,
            precision=flow_precision,
        )
        # a fixed affine map of the continuous coordinates (set_standardization): identity here
        self.register_buffer("y_loc", torch.zeros(continuous_dim))
        self.register_buffer("y_scale", torch.ones(continuous_dim))
        self._standardized = False

    def set_standardization(self, loc, scale) -> None:
        r"""Model the continuous coordinates of y in standard units, :math:`u = (y - 	ext{loc})
        / 	ext{scale}`: the RNN reads :math:`u_{t-1}`, the mixture (and flow) describe
        :math:`u_t`, and an affine map, the last transform, takes it to y (its log-Jacobian,
        :math:`-\sum \log 	ext{scale}` per step, in the density). Values, samples and
        ``log_prob`` stay in y's units. For data whose coordinates have far smaller spreads than
        magnitudes, such as a VAE's codes under a learnt prior, which an RNN cannot resolve; see
        :func:`~pyro_frmdn.infer.refit_dynamics`. Saved with the model (buffers ``y_loc`` and
        ``y_scale``); ``loc = 0, scale = 1`` undoes it.
        """
        size = self.obs_dim - self.binary_dims
        loc = as_real("loc", as_tensor("loc", loc, self.device), self.start.dtype)
        scale = as_real("scale", as_tensor("scale", scale, self.device), self.start.dtype)
        if loc.shape != (size,) or scale.shape != (size,):
            raise ValueError(
                f"loc and scale must have shape ({size},) (the continuous coordinates), got "
                f"{tuple(loc.shape)} and {tuple(scale.shape)}"
            )
        if not bool((scale > 0).all()):
            raise ValueError(f"scale must be > 0 everywhere, got min {float(scale.min())}")
        with torch.no_grad():
            self.y_loc.copy_(loc)
            self.y_scale.copy_(scale)
        self._standardized = bool((loc != 0).any() or (scale != 1).any())

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # files saved before set_standardization existed hold no y_loc / y_scale: identity
        state_dict.setdefault(prefix + "y_loc", torch.zeros_like(self.y_loc))
        state_dict.setdefault(prefix + "y_scale", torch.ones_like(self.y_scale))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._standardized = bool((self.y_loc != 0).any() or (self.y_scale != 1).any())

    def rnn_input(
        self, y_prev: Tensor | None, x: Tensor | None = None, batch: int | None = None
    ) -> Tensor:
        """What the RNN reads at one step: ``[u_prev, x]`` for previous values ``y_prev``
        (B, D), u the standardised continuous coordinates, and inputs ``x`` (B, X); with
        ``y_prev=None`` (the first step) the learnt ``y_0`` for ``batch`` rows (or x's)."""
        if y_prev is None:  # y_0 stands for itself, in standard units already
            y_prev = self.start.expand(batch if x is None else x.shape[0], -1)
        elif self._standardized:
            c = self.obs_dim - self.binary_dims
            u = (y_prev[..., :c] - self.y_loc) / self.y_scale
            y_prev = torch.cat([u, y_prev[..., c:]], -1) if self.binary_dims else u
        return y_prev if x is None else torch.cat([y_prev, x], dim=-1)

    def _teacher_inputs(self, y: Tensor, x: Tensor | None) -> Tensor:
        """What the RNN reads over a sequence ``y`` (B, T, D) with inputs ``x`` (B, T, X):
        step t reads ``[u_{t-1}, x_t]``, step 1 the learnt ``y_0``."""
        first = self.start.expand(y.shape[0], 1, -1)
        prev = torch.cat([first, self.rnn_input(y[:, :-1])], dim=1)
        return prev if x is None else torch.cat([prev, x], dim=-1)

    def _data_transforms(self) -> list:
        """The flow, then the affine map to y's units when standardised."""
        if not self._standardized:
            return list(self.flow)
        return [*self.flow, AffineTransform(self.y_loc, self.y_scale, event_dim=1)]

    @property
    def device(self) -> torch.device:
        return self.start.device

    # -- the likelihood --------------------------------------------------------------------

    def features(self, y: Tensor, x: Tensor | None = None) -> Tensor:
        """RNN features h_t of y_<t and x_<=t (teacher forcing): (B, T, D) -> (B, T, H)."""
        return self.rnn(self._teacher_inputs(y, x))[0]

    def step_distribution(self, h: Tensor):
        """The distribution of y_t given RNN features h (..., H): batch (...), event (D,)."""
        d = self.head(h)
        if len(self.flow) or self._standardized:
            d = flow_mixture(d, self._data_transforms(), h if self.conditional_flow else None)
        return d if self.bits is None else WithBernoulli(d, self.bits(h))

    def _check_bits(self, y: Tensor, mask: Tensor | None) -> None:
        if not self.binary_dims:
            return
        bits = y[..., -self.binary_dims :]
        bad = (bits != 0) & (bits != 1)
        if mask is not None:
            bad &= mask.unsqueeze(-1)
        if bool(bad.any()):
            pos = tuple(int(i) for i in bad.nonzero()[0])
            pos = (*pos[:-1], pos[-1] + self.obs_dim - self.binary_dims)
            raise ValueError(
                f"y[{', '.join(map(str, pos))}] = {float(y[pos])}: the last {self.binary_dims} "
                "coordinates of y are bits (binary_dims) and must be 0 or 1"
            )

    def _checked(self, y, x=None, mask=None) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Validate ``y`` (B, T, D), ``x`` (B, T, X) and ``mask`` (B, T) (tensors, arrays or
        lists); return them as tensors in the model's dtype, with the padding of ``y`` zeroed.

        See :func:`~pyro_frmdn.models.validation.check_sequences` for what is refused.
        """
        dtype, device = self.start.dtype, self.start.device
        y, x, mask = check_sequences(y, x, mask, self.obs_dim, self.input_dim, dtype, device)
        self._check_bits(y, mask)
        return y, x, mask

    def model(self, y: Tensor, x: Tensor | None = None, mask: Tensor | None = None) -> None:
        """Pyro model: one observation site over (sequences, time); masked steps are not scored."""
        y, x, mask = self._checked(y, x, mask)
        pyro.module(self.name, self)
        d = self.step_distribution(self.features(y, x))
        if mask is not None:
            d = d.mask(mask)
        with pyro.plate("sequences", y.shape[0], dim=-2), pyro.plate("time", y.shape[1], dim=-1):
            pyro.sample("y", d, obs=y)

    def guide(self, y: Tensor, x: Tensor | None = None, mask: Tensor | None = None) -> None:
        """Nothing is latent: the ELBO of (model, guide) is exactly the log-likelihood."""

    def step_log_prob(self, y: Tensor, x: Tensor | None = None, mask: Tensor | None = None):
        """log p(y_t | y_<t, x_<=t) in nats, (B, T); zero at masked steps."""
        y, x, mask = self._checked(y, x, mask)
        lp = self.step_distribution(self.features(y, x)).log_prob(y)
        return lp if mask is None else lp.masked_fill(~mask, 0.0)

    def log_prob(self, y: Tensor, x: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        """log p(y_1:T | x) in nats per sequence, (B,); masked steps excluded."""
        return self.step_log_prob(y, x, mask).sum(-1)

    # -- generation ------------------------------------------------------------------------

    def initial_state(self, batch: int):
        """The RNN state before the first step, for ``batch`` sequences."""
        size = (self.rnn.num_layers, batch, self.rnn.hidden_size)
        h = self.start.new_zeros(size)
        return (h, h.clone()) if isinstance(self.rnn, nn.LSTM) else h

    def step(self, state, y_prev: Tensor | None = None, x_t: Tensor | None = None):
        """One step: ``y_prev`` (B, D) (``None`` at the first step) and ``x_t`` (B, X).

        Returns ``(dist, state)``: the distribution of the next value, batch (B,), and the new RNN
        state.
        """
        batch = (state[0] if isinstance(state, tuple) else state).shape[1]
        inputs = self.rnn_input(y_prev, x_t, batch)
        out, state = self.rnn(inputs.unsqueeze(1), state)
        return self.step_distribution(out.squeeze(1)), state

    @torch.no_grad()
    def sample(
        self,
        num: int | None = None,
        steps: int | None = None,
        x: Tensor | None = None,
        prime: Tensor | None = None,
        pi_temperature: float = 1.0,
        scale_temperature: float = 1.0,
        scale_mode: str = "variance",
        greedy_decoding: bool = False,
        **deprecated,
    ) -> Tensor:
        """Generate ``(num, steps, D)`` by running the RNN on its own samples.

        Arguments:
            num: N >= 1, the number of sequences (``num_sequences`` before version 0.2).
            steps: how many values to generate after the prime, >= 1.
            x: inputs for every step, the prime's included: (N, P + steps, X).
            prime: a prefix (N, P, D) (or (P, D), shared), P >= 1, to condition on; not
                returned.
            pi_temperature, scale_temperature, scale_mode: see
                :func:`~pyro_frmdn.distributions.temper`.
            greedy_decoding: take the mean of the most likely component at each step instead of
                a sample (see :func:`greedy`).

        ``x`` and ``prime`` are checked as the data of :meth:`log_prob` are (see
        ``docs/errors.md``): tensors on the model's device, numpy arrays or lists, converted to
        the model's dtype, finite.
        """
        num = renamed("FRMDN.sample", deprecated, "num_sequences", "num", num)
        refuse_unknown("FRMDN.sample", deprecated)
        if num is None or steps is None:
            raise TypeError("FRMDN.sample needs num (sequences) and steps")
        num, steps = check_count("num", num), check_count("steps", steps)
        check_positive("pi_temperature", pi_temperature)
        check_positive("scale_temperature", scale_temperature)
        prime, x = check_generation_inputs(
            prime, x, num, steps, self.obs_dim, self.input_dim, self.start.dtype, self.device
        )
        p = 0 if prime is None else prime.shape[1]
        if prime is not None:
            self._check_bits(prime, None)
        state, y_prev = self.initial_state(num), None
        if p:  # the prime is teacher forced: one call of the RNN, no distributions
            inputs = self._teacher_inputs(prime, None if x is None else x[:, :p])
            state, y_prev = self.rnn(inputs, state)[1], prime[:, -1]
        if scale_mode not in SCALE_MODES:
            raise ValueError(f"scale_mode must be one of {SCALE_MODES}, got {scale_mode!r}")
        # the factor of the standard deviations (temper's scale_temperature, in base space)
        spread = math.sqrt(scale_temperature) if scale_mode == "variance" else scale_temperature
        out = []
        for t in range(p, p + steps):
            inputs = self.rnn_input(y_prev, None if x is None else x[:, t], num)
            h, state = self.rnn(inputs.unsqueeze(1), state)
            y_prev = self._draw(h.squeeze(1), pi_temperature, spread, greedy_decoding)
            out.append(y_prev)
        clear_transform_cache(self.flow)
        return torch.stack(out, dim=1)

    def _draw(self, h: Tensor, pi_temperature: float, spread: float, mode: bool) -> Tensor:
        r"""One value per row of the features ``h`` (N, H): (N, D).

        The component is picked from the weights :math:`\mathrm{softmax}(\text{logits} /
        \tau_\pi)` (or the likeliest, when ``mode``), and only that component is drawn, with
        its covariance times ``spread**2`` (its mean when ``mode``); the draw is pushed through
        the flow and the bits appended, as :func:`~pyro_frmdn.distributions.temper` and
        :func:`greedy` define it for the step's distribution.
        """
        with pyro.validation_enabled(False):  # the head's outputs are valid by construction
            mix = self.head(h)
        logits, comps = mix.mixture_distribution.logits, mix.component_distribution
        if mode:
            k = logits.argmax(-1)
        else:  # an exponential race: argmax(l_k - log E_k) ~ Categorical(logits=l), no checks
            race = torch.empty_like(logits).exponential_().log_()
            k = (logits / pi_temperature - race).argmax(-1)
        z = chosen(comps.mean, k)
        if not mode:
            z = z + spread * component_noise(comps, k)
        for t in self._data_transforms():
            z = (t.condition(h) if isinstance(t, ConditionalTransform) else t)(z)
        if self.bits is None:
            return z
        logits = self.bits(h)
        bits = logits > 0 if mode else torch.bernoulli(torch.sigmoid(logits / pi_temperature))
        return torch.cat([z, bits.to(z.dtype)], dim=-1)


class RMDN(FRMDN):
    """Recurrent mixture density network: :class:`FRMDN` without a flow.

    ``rank=0`` is the classic diagonal RMDN (Graves 2013; the MDN-RNN of World Models).
    """

    default_flow_layers = 0

    def __init__(self, obs_dim: int, **kwargs):
        if kwargs.pop("flow_layers", 0):
            raise ValueError("RMDN has no flow; use FRMDN(flow_layers=...)")
        kwargs.setdefault("name", "rmdn")
        super().__init__(obs_dim, flow_layers=0, **kwargs)
