"""A whole sequence under an FRMDN, as one Pyro distribution: the prior of latent dynamics."""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from torch import Tensor

from .frmdn import FRMDN
from .validation import as_real, as_tensor, check_count, check_mask

__all__ = ["SequenceDistribution", "shift_actions"]


def shift_actions(actions: Tensor) -> Tensor:
    """Actions as the FRMDN's inputs: step t reads the action taken after step t - 1.

    The FRMDN's RNN reads ``[y_{t-1}, x_t]`` at step t, so for :math:`p(z_t \\mid z_{<t},
    a_{<t})` pass ``x = shift_actions(a)``: ``x_1 = 0`` and ``x_t = a_{t-1}``. ``actions`` is
    ``(B, T, A)`` with ``actions[:, t]`` the action taken after frame t (as rollouts store it).

    Example:
        >>> shift_actions(torch.tensor([[[1.0], [2.0], [3.0]]])).squeeze(-1)
        tensor([[0., 1., 2.]])
    """
    if actions.dim() != 3:
        raise ValueError(f"actions must have shape (batch, time, A), got {tuple(actions.shape)}")
    return torch.cat([torch.zeros_like(actions[:, :1]), actions[:, :-1]], dim=1)


class SequenceDistribution(dist.TorchDistribution):
    r"""The law of sequences :math:`z_{1:T}` under an FRMDN (or RMDN): batch ``(B,)``, event
    ``(T, D)``.

    .. math::
        \log p(z_{1:T} \mid x) = \sum_{t=1}^{T} m_t \log p(z_t \mid z_{<t}, x_{\le t})

    with the FRMDN's per-step mixture after its flow (Razavi et al. 2020) and :math:`m_t` the mask.
    ``log_prob`` is teacher forced and vectorised over time (:meth:`FRMDN.step_log_prob`);
    ``sample`` runs the RNN on its own draws (:meth:`FRMDN.sample`). There is no ``rsample``:
    mixtures are not reparameterisable, and a latent sequence is drawn by a guide and only scored
    here. This is the piece that puts FRMDN dynamics on the latents of any Pyro model::

        pyro.module("prior", frmdn)  # its parameters must be registered
        with pyro.plate("sequences", B):
            z = pyro.sample("z", SequenceDistribution(frmdn, shift_actions(actions), mask))

    with a guide that draws ``z`` (B, T, D) at one site of the same name, e.g. a convolutional
    encoder per frame (see ``docs/world_models.md``).

    Arguments:
        prior: the :class:`~pyro_frmdn.models.FRMDN` of the dynamics (D = ``prior.obs_dim``).
        x: its inputs ``(B, T, X)`` (for actions, ``shift_actions(actions)``), or ``None``.
        mask: ``(B, T)`` bool, the scored steps; values of z at other steps never reach the RNN.
            Numbers (0/1 floats, weights) are refused, not binarised.
        batch_size, steps: B and T (>= 1) when neither ``x`` nor ``mask`` gives them.

    Example:
        >>> prior = FRMDN(obs_dim=2, hidden_dim=8, num_components=2, flow_layers=1)
        >>> d = SequenceDistribution(prior, batch_size=3, steps=5)
        >>> z = d.sample()
        >>> z.shape, d.log_prob(z).shape
        (torch.Size([3, 5, 2]), torch.Size([3]))
    """

    arg_constraints = {}
    support = constraints.independent(constraints.real, 2)
    has_rsample = False

    def __init__(
        self,
        prior: FRMDN,
        x: Tensor | None = None,
        mask: Tensor | None = None,
        *,
        batch_size: int | None = None,
        steps: int | None = None,
        validate_args=None,
    ):
        dtype, device = prior.start.dtype, prior.device
        if x is not None:
            x = as_tensor("x", x, device)
            if x.dim() != 3 or x.shape[-1] != prior.input_dim:
                raise ValueError(
                    f"x must have shape (batch, time, {prior.input_dim}) (the prior's input_dim), "
                    f"got {tuple(x.shape)}"
                )
            x = as_real("x", x, dtype)
        elif prior.input_dim:
            raise ValueError(f"the prior reads inputs of size {prior.input_dim}: pass x (B, T, X)")
        if mask is not None and x is None:
            mask = as_tensor("mask", mask, device)
            if mask.dim() != 2:
                raise ValueError(f"mask must have shape (batch, time), got {tuple(mask.shape)}")
        given = x if x is not None else mask
        if given is not None:
            b, t = given.shape[:2]
            if (batch_size, steps) != (None, None) and (batch_size, steps) != (b, t):
                raise ValueError(
                    f"batch_size, steps = {batch_size}, {steps} but x/mask give {b}, {t}"
                )
        elif batch_size is None or steps is None:
            raise ValueError("give x or mask, or batch_size and steps")
        else:
            b, t = check_count("batch_size", batch_size), check_count("steps", steps)
        if mask is not None:
            mask = check_mask(mask, (b, t), "x" if x is not None else "(batch, time)", device)
        self.prior, self.x, self.mask = prior, x, mask
        super().__init__(torch.Size([b]), torch.Size([t, prior.obs_dim]), validate_args)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        if batch_shape[-1:] != self.batch_shape[-1:]:
            raise ValueError(
                f"can only add dims before the batch dim {tuple(self.batch_shape)}, "
                f"got {tuple(batch_shape)}"
            )
        new = self._get_checked_instance(SequenceDistribution, _instance)
        new.prior, new.x, new.mask = self.prior, self.x, self.mask
        super(SequenceDistribution, new).__init__(batch_shape, self.event_shape, False)
        new._validate_args = self._validate_args
        return new

    def _inputs(self, lead: torch.Size) -> tuple[Tensor | None, Tensor | None]:
        """``x`` and ``mask`` broadcast to the leading dims ``lead``, flattened to (N, T, ...)."""
        t = self.event_shape[0]
        x = (
            None
            if self.x is None
            else self.x.expand(*lead, t, self.x.shape[-1]).reshape(-1, t, self.x.shape[-1])
        )
        mask = None if self.mask is None else self.mask.expand(*lead, t).reshape(-1, t)
        return x, mask

    def log_prob(self, value: Tensor) -> Tensor:
        value = as_tensor("value", value, self.prior.device)
        if value.shape[-2:] != self.event_shape:
            raise ValueError(
                f"value (z) must end with the event shape {tuple(self.event_shape)}, "
                f"got {tuple(value.shape)}"
            )
        if self.mask is not None:  # padding (even NaN) is neither validated nor read
            zero = torch.zeros((), dtype=value.dtype, device=value.device)
            value = torch.where(self.mask[..., None], value, zero)
        value = as_real("value", value, self.prior.start.dtype)
        if self._validate_args:
            self._validate_sample(value)
        lead = torch.broadcast_shapes(value.shape[:-2], self.batch_shape)
        x, mask = self._inputs(lead)
        z = value.expand(*lead, *self.event_shape).reshape(-1, *self.event_shape)
        return self.prior.step_log_prob(z, x, mask).sum(-1).reshape(lead)

    def sample(self, sample_shape=torch.Size()) -> Tensor:
        lead = torch.Size(sample_shape) + self.batch_shape
        x, _ = self._inputs(lead)
        z = self.prior.sample(math.prod(lead), self.event_shape[0], x=x)
        return z.reshape(*lead, *self.event_shape)
