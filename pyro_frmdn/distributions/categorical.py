"""A continuous distribution with a one-hot K-state categorical appended: stroke-5's pen state."""

from __future__ import annotations

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import constraints

from .float32 import promote
from .temperature import temper

__all__ = ["WithCategorical"]


class WithCategorical(dist.TorchDistribution):
    r"""The joint of a continuous vector and one of ``K`` states, written one-hot after it.

    .. math::
        p(y) = \prod_{k=1}^{K} \pi_k^{s_k}
        \cdot p_c(y_{1:C})^{\,1 - s_\mathrm{end}},
        \qquad s = y_{C+1:C+K} \in \{e_1, \dots, e_K\},\ \pi = \mathrm{softmax}(\ell)

    The pen of sketch-rnn's stroke-5 format (Ha & Eck 2017, §3.1): the offsets
    :math:`(\Delta x, \Delta y)` by a mixture, the pen state (down, up, end of drawing) by a
    3-way categorical, both given the decoder's state and independent of each other. With
    ``terminal_state`` set, that state (sketch-rnn's end of drawing) has no continuous part: its
    offsets are not scored (sketch-rnn masks them) and are drawn as zeros. The state is written
    one-hot so that the event stays a real vector ``(C + K,)``: it composes with plates,
    ``.mask()`` and padded batches like every other per-step distribution of the package.

    Arguments:
        continuous: the distribution of the first ``C`` coordinates, event ``(C,)`` (a mixture, or
            a flow on one).
        logits: the unnormalised log-probabilities of the ``K >= 2`` states, ``(..., K)``.
        terminal_state: the index of the state whose continuous coordinates are absent, or
            ``None``.

    The batch shape is the broadcast of both batch shapes. The last ``K`` coordinates of a value
    must be one-hot (checked when validation is on). Not reparameterizable (the state is
    discrete); :meth:`sample` draws both parts.

    Example:
        >>> offsets = dist.Normal(torch.zeros(4, 2), 1.0).to_event(1)
        >>> d = WithCategorical(offsets, torch.zeros(4, 3), terminal_state=2)
        >>> d.event_shape, d.sample().shape
        (torch.Size([5]), torch.Size([4, 5]))
    """

    arg_constraints = {"logits": constraints.real_vector}
    support = constraints.real_vector
    has_rsample = False

    def __init__(
        self, continuous, logits: Tensor, terminal_state: int | None = None, validate_args=None
    ):
        if len(continuous.event_shape) != 1:
            raise ValueError(
                f"the continuous part needs event shape (C,), got {tuple(continuous.event_shape)}"
            )
        if not isinstance(logits, Tensor) or logits.dim() < 1 or logits.shape[-1] < 2:
            shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise ValueError(f"logits must be a tensor of shape (..., K) with K >= 2, got {shape}")
        logits = promote(logits)  # float32 under autocast
        k = logits.shape[-1]
        if terminal_state is not None and not (
            isinstance(terminal_state, int) and 0 <= terminal_state < k
        ):
            raise ValueError(f"terminal_state must be None or an index in [0, {k}), got "
                             f"{terminal_state!r}")  # fmt: skip
        self.continuous, self.logits, self.terminal_state = continuous, logits, terminal_state
        self.num_continuous, self.num_states = continuous.event_shape[0], k
        batch_shape = torch.broadcast_shapes(continuous.batch_shape, logits.shape[:-1])
        event_shape = torch.Size([self.num_continuous + k])
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        logits = self.logits.expand(batch_shape + (self.num_states,))
        return WithCategorical(self.continuous.expand(batch_shape), logits, self.terminal_state)

    @property
    def states(self) -> dist.Categorical:
        """The distribution of the state index alone, batch ``(...)``."""
        return dist.Categorical(logits=self.logits)

    def split(self, value: Tensor) -> tuple[Tensor, Tensor]:
        """``value`` (..., C + K) -> its continuous part (..., C) and its one-hot state (..., K)."""
        return value[..., : self.num_continuous], value[..., self.num_continuous :]

    def log_prob(self, value: Tensor) -> Tensor:
        y, s = self.split(value)
        if self._validate_args:
            one_hot = ((s == 0) | (s == 1)).all(-1) & (s.sum(-1) == 1)
            if not bool(one_hot.all()):
                raise ValueError(
                    f"the last {self.num_states} coordinates of the value must be one-hot "
                    "(one 1, the rest 0)"
                )
        log_pi = F.log_softmax(self.logits, dim=-1)
        states = (s * log_pi).sum(-1)  # log pi of the state written one-hot
        continuous = self.continuous.log_prob(y)
        if self.terminal_state is not None:
            ended = s[..., self.terminal_state] == 1
            continuous = torch.where(ended, torch.zeros_like(continuous), continuous)
        return continuous + states

    def sample(self, sample_shape=torch.Size()) -> Tensor:
        continuous = self.continuous
        if continuous.batch_shape != self.batch_shape:
            continuous = continuous.expand(self.batch_shape)
        y = continuous.sample(sample_shape)
        logits = self.logits.expand(self.batch_shape + (self.num_states,))
        index = dist.Categorical(logits=logits).sample(sample_shape)
        return self.compose(y, index)

    def compose(self, y: Tensor, index: Tensor) -> Tensor:
        """The value ``(..., C + K)`` for continuous coordinates ``y`` and state indices
        ``index`` (...): the state written one-hot, ``y`` zeroed in the terminal state."""
        s = F.one_hot(index, self.num_states).to(y.dtype)
        if self.terminal_state is not None:
            y = y * (1 - s[..., self.terminal_state : self.terminal_state + 1])
        return torch.cat([y, s], dim=-1)

    def tempered(
        self, pi_temperature: float = 1.0, scale_temperature: float = 1.0,
        scale_mode: str = "variance",
    ) -> WithCategorical:  # fmt: skip
        r"""A tempered copy: the continuous part by :func:`~pyro_frmdn.distributions.temper`,
        the state logits divided by :math:`\tau_\pi` (sketch-rnn tempers its pen state so)."""
        continuous = temper(self.continuous, pi_temperature, scale_temperature, scale_mode)
        return WithCategorical(continuous, self.logits / pi_temperature, self.terminal_state)
