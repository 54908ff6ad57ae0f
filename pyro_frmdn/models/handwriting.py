"""HandwritingSynthesis: Graves' text-to-handwriting network with the FRMDN's per-step output."""

from __future__ import annotations

import math
from typing import NamedTuple

import pyro
import torch
from torch import Tensor, nn
from torch.distributions.transforms import AffineTransform

from ..distributions import WithBernoulli, flow_mixture, temper
from ..flows import coupling_flow
from ..nn import AttentionWindow, MixtureHead, Window, encode_texts, one_hot_text
from ..nn.window_lstm import window_lstm
from .base import PyroModel
from .handwriting_inputs import check_prime, check_strokes
from .validation import check_count, check_positive

__all__ = ["HandwritingSynthesis", "State", "Written"]


class State(NamedTuple):
    """The network's state between steps: each layer's LSTM state (``None`` before the first
    step), the last window vector ``w`` (B, A) and the window's centres ``kappa`` (B, K)
    (both ``None`` for a text-blind model)."""

    lstm: tuple
    w: Tensor | None
    kappa: Tensor | None


class Written(NamedTuple):
    """What :meth:`HandwritingSynthesis.write` returns: per text, its ``strokes`` (T_i, 3) in the
    data's units and the ``attention`` trace :math:`\\phi` (T_i, U_i) over its characters."""

    strokes: list[Tensor]
    attention: list[Tensor]


def _trimmed(y: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """``y`` and ``mask`` without the trailing steps that no sequence scores (a minibatch of
    short sequences padded to a long one's length): the network runs one step at a time."""
    if mask is None:
        return y, mask
    steps = int(mask.any(0).nonzero().max()) + 1
    return y[:, :steps], mask[:, :steps]


class HandwritingSynthesis(PyroModel):
    r"""Graves' handwriting synthesis network (Graves 2013, §5) with the package's output head.

    Stacked LSTMs read the previous pen offset :math:`y_{t-1} = (\Delta x, \Delta y, e)`; a soft
    window (:class:`~pyro_frmdn.nn.AttentionWindow`) between the first and the other layers reads
    the text. With skip connections as in the paper, every layer gets the input, the layers above
    the first get the window :math:`w_t`, the first gets :math:`w_{t-1}`, and the output reads
    every layer :math:`h^1_t, \dots, h^L_t`:

    .. math::
        p(y_t \mid y_{<t}, c) = p_{\text{mix}}(\Delta x_t, \Delta y_t \mid h_t)\,
        \mathrm{Bern}(e_t; \sigma(\hat e_t))

    where :math:`p_{\text{mix}}` is the RMDN's per-step mixture
    (:class:`~pyro_frmdn.nn.MixtureHead`: with ``rank=1`` each 2-D component has a full,
    correlated covariance) or, with
    ``flow_layers > 0``, the FRMDN's (the mixture under a coupling flow, Razavi et al. 2020), and
    the end-of-stroke bit :math:`e_t` is a Bernoulli beside it
    (:class:`~pyro_frmdn.distributions.WithBernoulli`). ``text_blind=True`` removes the window
    (same layers and sizes otherwise): the baseline that shows what reading the text is worth.

    The offsets are divided by ``offset_scale`` before the network sees them and the density is
    scaled back (a fixed affine map after the flow), so log-likelihoods and samples are in the
    data's units.

    Data: ``y`` (B, T, 3) offsets with the pen-up bit last (1 on the last point of a stroke),
    ``text`` (B, U) character codes (indices into ``alphabet``, see
    :func:`~pyro_frmdn.nn.encode_texts`; a list of strings is encoded here), ``mask`` (B, T) and
    ``text_mask`` (B, U) bool, True on a prefix of each row. ``fit(model, {"y": y, "text": codes,
    "mask": mask, "text_mask": text_mask})`` trains it. Gradient clipping: Graves clips the
    gradient elements (output layer 100, LSTMs 10); ``fit``'s default ``clip_value=10`` is that
    elementwise clamp; add ``clip_norm`` (the global norm) only if training still diverges.

    Arguments:
        alphabet: the characters the model can write, each once.
        hidden_dim, num_layers: the LSTMs (400 and 3 in the paper; 128 here, for CPUs).
        num_components, rank, parameterization, min_diag: the 2-D mixture
            (:class:`~pyro_frmdn.nn.MixtureHead`).
        window_components: K of the attention window (10 in the paper).
        flow_layers, flow, flow_hidden_dims, mixing: the flow on the offsets
            (:func:`~pyro_frmdn.flows.coupling_flow`); 0 layers is the RMDN head.
        offset_scale: the data's offsets are divided by it inside the model (their std).
        text_blind: no window: the model does not read the text.
        name: the prefix of the parameters in Pyro's param store.

    References:
        A. Graves, *Generating Sequences With Recurrent Neural Networks*, arXiv:1308.0850 (2013).

    Example:
        >>> m = HandwritingSynthesis("ab ", hidden_dim=8, num_layers=2, num_components=2)
        >>> y = torch.zeros(2, 5, 3)
        >>> m.log_prob(y, ["ab", "b"]).shape
        torch.Size([2])
        >>> strokes, attention = m.write(["ab"], max_steps=4)
        >>> strokes[0].shape[1], attention[0].shape[1]
        (3, 2)
    """

    obs_dim = 3

    def __init__(
        self,
        alphabet: str,
        hidden_dim: int = 128,
        num_layers: int = 3,
        num_components: int = 20,
        rank: int = 1,
        parameterization: str = "covariance",
        window_components: int = 10,
        flow_layers: int = 0,
        flow: str = "affine",
        flow_hidden_dims: list[int] | None = None,
        mixing: str = "permute",
        min_diag: float = 1e-4,
        offset_scale: float = 1.0,
        text_blind: bool = False,
        name: str = "handwriting",
    ):
        super().__init__()
        if not isinstance(alphabet, str) or not alphabet:
            raise ValueError(f"alphabet must be a non-empty string, got {alphabet!r}")
        repeated = next((c for i, c in enumerate(alphabet) if c in alphabet[:i]), None)
        if repeated is not None:
            raise ValueError(f"alphabet has the character {repeated!r} twice")
        for key, value in (
            ("hidden_dim", hidden_dim),
            ("num_layers", num_layers),
            ("num_components", num_components),
            ("window_components", window_components),
        ):
            check_count(key, value)
        check_positive("offset_scale", offset_scale)
        if not isinstance(text_blind, bool):
            raise TypeError(f"text_blind must be True or False, got {text_blind!r}")
        self.config = dict(
            alphabet=alphabet,
            hidden_dim=hidden_dim,
            num_layers=num_layers,
            num_components=num_components,
            rank=rank,
            parameterization=parameterization,
            window_components=window_components,
            flow_layers=flow_layers,
            flow=flow,
            flow_hidden_dims=flow_hidden_dims,
            mixing=mixing,
            min_diag=min_diag,
            offset_scale=offset_scale,
            text_blind=text_blind,
            name=name,
        )
        self.alphabet, self.name, self.offset_scale = alphabet, name, float(offset_scale)
        self.text_blind = bool(text_blind)
        window_dim = 0 if text_blind else len(alphabet)
        self.start = nn.Parameter(torch.zeros(3))  # stands for y_0
        self.layers = nn.ModuleList(
            nn.LSTM(3 + window_dim + (hidden_dim if n else 0), hidden_dim, batch_first=True)
            for n in range(num_layers)
        )
        self.window = (
            None if text_blind else AttentionWindow(hidden_dim, len(alphabet), window_components)
        )
        features = num_layers * hidden_dim
        self.head = MixtureHead(
            features, 2, num_components, rank, parameterization, "per_step", min_diag
        )
        self.bits = nn.Linear(features, 1)
        self.flow = coupling_flow(
            2, flow_layers, flow=flow, hidden_dims=flow_hidden_dims, mixing=mixing
        )

    @torch.no_grad()
    def pace_window(self, characters_per_point: float) -> None:
        r"""Before training, start the window at the writing's pace: the bias of
        :math:`\hat\kappa` set to :math:`\log` ``characters_per_point`` (best the training
        data's characters per point), so that from the first step the centres move as fast
        as the pen moves along the text (the default, :math:`e^{-2}`, suits about 7 points a
        character). An initialisation, like the random weights: not part of ``config``."""
        if self.window is None:
            raise ValueError("a text_blind model has no window to pace")
        step = check_positive("characters_per_point", characters_per_point)
        self.window.linear.bias[2 * self.window.num_components :].fill_(math.log(step))

    @property
    def device(self) -> torch.device:
        return self.start.device

    # -- the network -------------------------------------------------------------------------

    def initial_state(self, batch: int) -> State:
        """The state before the first step, for ``batch`` sequences."""
        if self.window is None:
            return State((None,) * len(self.layers), None, None)
        w = self.start.new_zeros(batch, len(self.alphabet))
        return State((None,) * len(self.layers), w, w.new_zeros(batch, self.window.num_components))

    def _scaled(self, y: Tensor) -> Tensor:
        """Points in the data's units -> the network's inputs (offsets / offset_scale)."""
        return torch.cat([y[..., :2] / self.offset_scale, y[..., 2:]], dim=-1)

    def run(
        self, x: Tensor, text: Tensor | None, text_mask: Tensor | None, state: State
    ) -> tuple[Tensor, Window | None, Tensor | None, State]:
        """Run the network over inputs ``x`` (B, T, 3) (previous points, scaled) from ``state``.

        ``text`` is one-hot (B, U, A) (:func:`~pyro_frmdn.nn.one_hot_text`). Returns the
        output features (B, T, L·H), the last step's :class:`~pyro_frmdn.nn.Window`, the
        attention :math:`\\phi` (B, T, U) (both ``None`` when text-blind) and the new state. Only
        the first layer and the window are stepped (:func:`~pyro_frmdn.nn.window_lstm.
        window_lstm`, with its written-out backward); once their trace is known, the layers
        above run over the whole span (torch's fused LSTM).
        """
        lstm = list(state.lstm)
        if self.window is None:
            outs = []
            for n, layer in enumerate(self.layers):
                out, lstm[n] = layer(x if n == 0 else torch.cat([x, outs[-1]], -1), lstm[n])
                outs.append(out)
            return torch.cat(outs, -1), None, None, State(tuple(lstm), None, None)
        # the first layer and the window step together (window_lstm: a written-out backward);
        # the input's part of the first layer's gates for every step at once
        cell, window = self.layers[0], self.window
        x_gates = x @ cell.weight_ih_l0[:, :3].T + cell.bias_ih_l0 + cell.bias_hh_l0
        recurrent = torch.cat([cell.weight_ih_l0[:, 3:], cell.weight_hh_l0], 1).T  # (A + H, 4H)
        h, c = lstm[0] or (x.new_zeros(x.shape[0], cell.hidden_size),) * 2
        trace = window_lstm(
            x_gates, recurrent, window.linear.weight, window.linear.bias,
            h, c, state.w, state.kappa, text, text_mask,
        )  # fmt: skip
        lstm[0] = (trace.h[:, -1], trace.c)
        outs = [trace.h]
        for n in range(1, len(self.layers)):
            out, lstm[n] = self.layers[n](torch.cat([x, outs[-1], trace.w], -1), lstm[n])
            outs.append(out)
        last = Window(trace.w[:, -1], trace.phi[:, -1], trace.kappa, trace.alpha, trace.beta)
        state = State(tuple(lstm), trace.w[:, -1], trace.kappa)
        return torch.cat(outs, -1), last, trace.phi, state

    def step_distribution(self, features: Tensor) -> WithBernoulli:
        """The law of a point given output features (..., L·H), in the data's units."""
        d = self.head(features)
        transforms = list(self.flow)
        if self.offset_scale != 1.0:
            transforms.append(AffineTransform(0.0, self.offset_scale, event_dim=1))
        if transforms:
            d = flow_mixture(d, transforms)
        return WithBernoulli(d, self.bits(features))

    # -- the likelihood ----------------------------------------------------------------------

    def _features(self, y: Tensor, text, text_mask) -> tuple[Tensor, Tensor | None]:
        """Teacher-forced output features (B, T, L·H) and attention (B, T, U) of checked data."""
        start = self._scaled(self.start).expand(y.shape[0], 1, 3)
        x = torch.cat([start, self._scaled(y[:, :-1])], dim=1)
        one_hot = None
        if not self.text_blind:
            one_hot = one_hot_text(text, text_mask, len(self.alphabet), y.dtype)
        out, _, phi, _ = self.run(x, one_hot, text_mask, self.initial_state(y.shape[0]))
        return out, phi

    def model(self, y: Tensor, text=None, mask=None, text_mask=None) -> None:
        """Pyro model: one observation site over (sequences, time); masked steps not scored."""
        y, mask, text, text_mask = check_strokes(self, y, text, mask, text_mask)
        y, mask = _trimmed(y, mask)
        pyro.module(self.name, self)
        d = self.step_distribution(self._features(y, text, text_mask)[0])
        if mask is not None:
            d = d.mask(mask)
        with pyro.plate("sequences", y.shape[0], dim=-2), pyro.plate("time", y.shape[1], dim=-1):
            pyro.sample("y", d, obs=y)

    def guide(self, y: Tensor, text=None, mask=None, text_mask=None) -> None:
        """Nothing is latent: the ELBO of (model, guide) is exactly the log-likelihood."""

    def step_log_prob(self, y: Tensor, text=None, mask=None, text_mask=None) -> Tensor:
        """log p(y_t | y_<t, text) in nats, (B, T); zero at masked steps."""
        y, mask, text, text_mask = check_strokes(self, y, text, mask, text_mask)
        steps = y.shape[1]
        y, mask = _trimmed(y, mask)
        lp = self.step_distribution(self._features(y, text, text_mask)[0]).log_prob(y)
        lp = lp if mask is None else lp.masked_fill(~mask, 0.0)
        return torch.nn.functional.pad(lp, (0, steps - y.shape[1]))

    def log_prob(self, y: Tensor, text=None, mask=None, text_mask=None) -> Tensor:
        """log p(y_1:T | text) in nats per sequence, (B,); masked steps excluded."""
        return self.step_log_prob(y, text, mask, text_mask).sum(-1)

    @torch.no_grad()
    def attention(self, y: Tensor, text, mask=None, text_mask=None) -> Tensor:
        """The window's :math:`\\phi(t, u)` (B, T, U) while reading real strokes ``y``."""
        if self.text_blind:
            raise ValueError("a text_blind model has no attention")
        y, mask, text, text_mask = check_strokes(self, y, text, mask, text_mask)
        return self._features(y, text, text_mask)[1]

    # -- generation ---------------------------------------------------------------------------

    def _biased(self, d: WithBernoulli, bias: float, pi_temperature: float, scale_temperature):
        r"""Graves' bias and the package's temperatures on one step's law.

        Graves: :math:`\pi = \mathrm{softmax}(\hat\pi (1 + b))`, :math:`\sigma = e^{\hat\sigma - b}
        = e^{-b} e^{\hat\sigma}`. The head's diagonal is a softplus, not an exponential, so the
        bias cannot be subtracted before it; what it does is scale every standard deviation by
        :math:`e^{-b}`: the covariance (low-rank factor and diagonal alike) times
        :math:`e^{-2b}`, in the base space of a flow. Composed with
        :func:`~pyro_frmdn.distributions.temper`: weights' temperature
        ``pi_temperature / (1 + b)``, covariance times ``scale_temperature`` :math:`e^{-2b}`. The
        pen bit gets ``pi_temperature`` only (Graves does not bias it).
        """
        continuous = temper(
            d.continuous, pi_temperature / (1 + bias), scale_temperature * math.exp(-2 * bias)
        )
        return WithBernoulli(continuous, d.logits / pi_temperature)

    @torch.no_grad()
    def write(
        self,
        texts: str | list[str],
        bias: float = 0.0,
        pi_temperature: float = 1.0,
        scale_temperature: float = 1.0,
        prime: tuple | None = None,
        max_steps: int = 1000,
    ) -> Written:
        r"""Write ``texts``: sample points until the window has passed each text's last character.

        Generation of a text stops after the step where :math:`\phi(t, U + 1)` exceeds every
        :math:`\phi(t, u \le U)` (Graves 2013), or after ``max_steps``; its last point gets the
        pen-up bit. A text-blind model cannot know where a text ends: it writes ``max_steps``.

        Arguments:
            texts: a string or a list of them, in the alphabet.
            bias: Graves' sampling bias :math:`b \ge 0` (0: none; 1 to 3: neater).
            pi_temperature, scale_temperature: the package's temperatures
                (:func:`~pyro_frmdn.distributions.temper`), composed with the bias.
            prime: ``(strokes (P, 3), text)``, real strokes and the text they write: the network
                reads them first (the window over ``text + " " + each text``), which sets the
                style. They are not returned.
            max_steps: the most points per text.

        Returns:
            :class:`Written`: ``strokes`` (T_i, 3) in the data's units and ``attention`` (T_i,
            U_i), the window over each text's characters at each generated point.
        """
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(bias, (int, float)) or not 0 <= bias < math.inf:
            raise ValueError(f"bias must be a finite number >= 0, got {bias!r}")
        check_positive("pi_temperature", pi_temperature)
        check_positive("scale_temperature", scale_temperature)
        max_steps = check_count("max_steps", max_steps)
        encode_texts(texts, self.alphabet)  # the texts' errors name them, not the primed ones
        strokes, full, skip = check_prime(self, prime, list(texts))
        codes, text_mask = (t.to(self.device) for t in encode_texts(full, self.alphabet))
        n, lengths = len(texts), text_mask.sum(-1)
        one_hot = one_hot_text(codes, text_mask, len(self.alphabet), self.start.dtype)
        state, prev = self.initial_state(n), self._scaled(self.start).expand(n, 3)
        if strokes is not None:
            inputs = torch.cat([prev.unsqueeze(1), self._scaled(strokes[:-1]).expand(n, -1, 3)], 1)
            state = self.run(inputs, one_hot, text_mask, state)[3]
            prev = self._scaled(strokes[-1]).expand(n, 3)
        points, phis = [], []
        steps = torch.full((n,), max_steps, dtype=torch.long, device=self.device)
        for t in range(max_steps):
            out, window, phi, state = self.run(prev.unsqueeze(1), one_hot, text_mask, state)
            d = self._biased(
                self.step_distribution(out[:, 0]), bias, pi_temperature, scale_temperature
            )
            points.append(d.sample())
            phis.append(
                codes.new_zeros(codes.shape, dtype=prev.dtype) if phi is None else phi[:, 0]
            )
            if window is not None:
                ended = AttentionWindow.passed_end(window, lengths) & (steps == max_steps)
                steps[ended] = t + 1
                if bool((steps < max_steps).all()):
                    break
            prev = self._scaled(points[-1])
        points, phis = torch.stack(points, 1), torch.stack(phis, 1)  # (N, T, 3), (N, T, U)
        out = Written([], [])
        for i, text in enumerate(texts):
            y = points[i, : int(steps[i])].clone()
            y[-1, 2] = 1.0
            out.strokes.append(y)
            out.attention.append(phis[i, : int(steps[i]), skip : skip + len(text)])
        return out

    def sample(self, num: int, text: str | list[str], **options) -> list[Tensor]:
        """``num`` handwritten samples of ``text`` (one string, or a list of ``num``): the strokes
        of :meth:`write` (its ``options``: bias, temperatures, prime, max_steps)."""
        num = check_count("num", num)
        if not (isinstance(text, str) or isinstance(text, (list, tuple))):
            raise TypeError(
                f"HandwritingSynthesis.sample(num, text) writes a text: text must be a string or "
                f"a list of num strings, got {type(text).__name__} (see write)"
            )
        texts = [text] * num if isinstance(text, str) else list(text)
        if len(texts) != num:
            raise ValueError(f"text is a list of {len(texts)} strings but num={num}")
        return self.write(texts, **options).strokes
