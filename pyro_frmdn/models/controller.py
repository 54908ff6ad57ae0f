r"""World Models' controller C: a linear policy on the latent z and M's hidden state h."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .base import PyroModel
from .validation import as_real, as_tensor

__all__ = ["Controller"]


class Controller(PyroModel):
    r"""The controller of World Models (Ha & Schmidhuber 2018, §2.3): one linear layer,

    .. math::
        u_t = \tanh(W_c [z_t, h_t] + b_c),

    read from V's latent :math:`z_t` and M's hidden state :math:`h_t` (or from :math:`z_t`
    alone with ``use_hidden=False``, the paper's "V only" agent). The outputs become actions:

    - a continuous (Box) space of bounds ``low``, ``high``: :math:`a = \text{low} + (u + 1)
      (\text{high} - \text{low}) / 2`, inside the bounds; or, for the coordinates marked
      ``one_sided``, :math:`a = \text{low} + \max(u, 0)\,(\text{high} - \text{low})`, which
      rests at ``low`` for every :math:`u \le 0` (World Models' CarRacing controller maps its
      brake as :math:`\max(u, 0)`, so a controller near zero weights does not brake);
    - a discrete space of ``num_actions`` = n actions: for n = 2 one output, and the action is
      1 when :math:`u > 0` (a threshold); for n > 2, n outputs and the action is their argmax.
      M reads a discrete action as its one-hot vector (:meth:`action_features`).

    The inputs can be standardised, :math:`[z, h] \mapsto ([z, h] - m) / s` with ``m`` and ``s``
    the mean and standard deviation of V's codes and M's states over data (:meth:`fit_inputs`;
    buffers saved with C, not searched). This is an affine reparameterisation of ``W`` and ``b``,
    the same policies, but it puts CMA-ES's isotropic start on the inputs' scale: a VAE's codes
    of nearly identical frames (CartPole's white screen) vary by 1e-3 around large means.

    All parameters make one flat vector of :attr:`num_parameters` numbers (``W`` row-major, then
    ``b``; 867 for CarRacing with z 32, h 256 and 3 actions), which evolution strategies search
    (:meth:`get_flat`, :meth:`set_flat`). Every method takes ``params`` ``(P, n)``: a population
    of such vectors, evaluated at once on inputs with the population first, ``(P, ..., D)``.

    C is a deterministic policy trained by evolution, not a Pyro program: it has the model
    contract's ``config``, ``name``, ``save`` and :func:`~pyro_frmdn.models.load`, but no
    ``model``, ``guide`` or ``log_prob`` (:func:`~pyro_frmdn.fit` refuses it, saying so).

    Arguments:
        latent_dim: D, the size of z.
        hidden_dim: H, the size of M's hidden state (ignored with ``use_hidden=False``).
        action_space: a gymnasium ``Box`` or ``Discrete`` space, or ``None`` to give ``low`` and
            ``high`` (a Box) or ``num_actions`` (discrete) instead.
        low, high: the bounds of each action coordinate (finite, ``low < high``).
        num_actions: the number of discrete actions (>= 2).
        one_sided: for a Box, one flag per coordinate (default none): those flagged rest at
            ``low`` for half the outputs (``low + max(u, 0) (high - low)``) instead of taking
            the middle of the bounds at ``u = 0``. For CarRacing, ``(False, False, True)``
            (the brake) is World Models' mapping.
        use_hidden: read ``[z, h]`` (V + M) or ``z`` only (V).
        name: the prefix of its parameters.

    Example:
        >>> c = Controller(4, 8, low=[-1.0, 0.0], high=[1.0, 1.0])
        >>> c.num_parameters, c.act(torch.zeros(4), torch.zeros(8)).shape
        (26, torch.Size([2]))
        >>> pop = torch.randn(5, c.num_parameters)
        >>> c.act(torch.randn(5, 3, 4), torch.randn(5, 3, 8), params=pop).shape
        torch.Size([5, 3, 2])
    """

    def __init__(
        self,
        latent_dim: int,
        hidden_dim: int = 0,
        action_space=None,
        *,
        low: Sequence[float] | None = None,
        high: Sequence[float] | None = None,
        num_actions: int | None = None,
        one_sided: Sequence[bool] | None = None,
        use_hidden: bool = True,
        name: str = "controller",
    ):
        super().__init__()
        if action_space is not None:
            if low is not None or high is not None or num_actions is not None:
                raise TypeError("give action_space or low/high or num_actions, not both")
            low, high, num_actions = _from_space(action_space)
        for arg, value in (("latent_dim", latent_dim), ("hidden_dim", hidden_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{arg} must be an integer >= 0, got {value!r}")
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
        if use_hidden and hidden_dim < 1:
            raise ValueError("use_hidden=True needs hidden_dim >= 1 (M's hidden size)")
        if num_actions is not None:
            if low is not None or high is not None:
                raise TypeError("give low/high (continuous) or num_actions (discrete), not both")
            if isinstance(num_actions, bool) or not isinstance(num_actions, int) or num_actions < 2:
                raise ValueError(f"num_actions must be an integer >= 2, got {num_actions!r}")
            outputs = 1 if num_actions == 2 else num_actions
        else:
            if low is None or high is None:
                raise TypeError("Controller needs action_space, low and high, or num_actions")
            low, high = [float(v) for v in low], [float(v) for v in high]
            if not low or len(low) != len(high):
                raise ValueError(f"low and high must be equally long and non-empty: {low}, {high}")
            if not all(
                math.isfinite(a) and math.isfinite(b) and a < b
                for a, b in zip(low, high, strict=True)
            ):
                raise ValueError(f"need finite bounds with low < high, got low={low}, high={high}")
            outputs = len(low)
        one_sided = _check_one_sided(one_sided, num_actions, len(low or ()))
        self.latent_dim, self.hidden_dim = latent_dim, hidden_dim if use_hidden else 0
        self.use_hidden, self.num_actions, self.name = use_hidden, num_actions, name
        self.outputs = outputs
        inputs = latent_dim + self.hidden_dim
        layer = nn.Linear(inputs, outputs)
        self.weight, self.bias = layer.weight, layer.bias  # (O, I), (O,)
        bounds = torch.tensor([low, high]) if num_actions is None else torch.zeros(2, 0)
        self.register_buffer("bounds", bounds)
        flags = torch.tensor(one_sided or [], dtype=torch.bool)  # from the config: not saved
        self.register_buffer("one_sided", flags, persistent=False)
        self.register_buffer("input_loc", torch.zeros(inputs))
        self.register_buffer("input_scale", torch.ones(inputs))
        self.config = dict(
            latent_dim=latent_dim,
            hidden_dim=hidden_dim,
            low=low,
            high=high,
            num_actions=num_actions,
            one_sided=one_sided,
            use_hidden=use_hidden,
            name=name,
        )

    @property
    def num_parameters(self) -> int:
        """The length of the flat parameter vector: ``outputs × (D [+ H]) + outputs``."""
        return self.weight.numel() + self.bias.numel()

    @property
    def action_dim(self) -> int:
        """The size of an action as M reads it: the Box's dimension, or n (one-hot)."""
        return self.num_actions or self.outputs

    @property
    def discrete(self) -> bool:
        return self.num_actions is not None

    def get_flat(self) -> Tensor:
        """The parameters as one vector ``(n,)`` (a copy)."""
        return torch.cat([self.weight.detach().flatten(), self.bias.detach()]).clone()

    @torch.no_grad()
    def set_flat(self, vector) -> None:
        """Set the parameters from one vector ``(n,)`` (a tensor, array or list)."""
        vector = as_real("vector", as_tensor("vector", vector, self.weight.device),
                         self.weight.dtype)  # fmt: skip
        if tuple(vector.shape) != (self.num_parameters,):
            raise ValueError(
                f"vector must have shape ({self.num_parameters},), got {tuple(vector.shape)}"
            )
        self.weight.copy_(vector[: self.weight.numel()].view_as(self.weight))
        self.bias.copy_(vector[self.weight.numel() :])

    @torch.no_grad()
    def fit_inputs(self, z, h=None, min_scale: float = 1e-6) -> None:
        """Standardise the inputs by the mean and standard deviation (at least ``min_scale``) of
        codes ``z`` ``(N, D)`` and, when C reads them, M's states ``h`` ``(N, H)``."""
        x = self._inputs(z, h, None)
        x = x.reshape(-1, x.shape[-1])
        if len(x) < 2:
            raise ValueError(f"fit_inputs needs at least 2 rows of z, got {len(x)}")
        self.input_loc.copy_(x.mean(0))
        self.input_scale.copy_(x.std(0).clamp_min(min_scale))

    @torch.no_grad()
    def start_from(self, other: Controller) -> None:
        """Take a V-only controller's policy: ``other``'s weights on z, its bias and its
        standardisation of z, zeros on h, so that this C acts as ``other`` whatever M's state.

        A staged start for C on [z, h]: CMA-ES then searches around a controller that already
        drives (and can only use h where h helps), instead of from zero weights, where M's
        state, which moves far more than V's codes, swamps what z says about the world. The
        standardisation of h (:meth:`fit_inputs`) is kept.
        """
        if not isinstance(other, Controller):
            raise TypeError(f"other must be a Controller, got {type(other).__name__}")
        if other.use_hidden:
            raise ValueError("other must be a V-only controller (use_hidden=False)")
        if other.latent_dim != self.latent_dim or other.outputs != self.outputs:
            raise ValueError(
                f"other must read z of {self.latent_dim} and give {self.outputs} outputs, got "
                f"{other.latent_dim} and {other.outputs}"
            )
        same = torch.equal(other.bounds, self.bounds) and torch.equal(
            other.one_sided, self.one_sided
        )
        if other.num_actions != self.num_actions or not same:
            raise ValueError("other must act in the same action space")
        d = self.latent_dim
        self.weight.zero_()
        self.weight[:, :d] = other.weight
        self.bias.copy_(other.bias)
        self.input_loc[:d] = other.input_loc
        self.input_scale[:d] = other.input_scale

    def _layers(self, params: Tensor | None) -> tuple[Tensor, Tensor]:
        """``W`` ``(P, O, I)`` and ``b`` ``(P, O)`` (P = 1 without ``params``)."""
        if params is None:
            return self.weight[None], self.bias[None]
        params = as_tensor("params", params, self.weight.device)
        if params.dim() != 2 or params.shape[1] != self.num_parameters:
            raise ValueError(
                f"params must have shape (P, {self.num_parameters}), got {tuple(params.shape)}"
            )
        params = as_real("params", params, self.weight.dtype)
        cut = self.weight.numel()
        return params[:, :cut].reshape(-1, *self.weight.shape), params[:, cut:]

    def _inputs(self, z, h, population: int | None) -> Tensor:
        z = as_real("z", as_tensor("z", z, self.weight.device), self.weight.dtype)
        if z.dim() < 1 or z.shape[-1] != self.latent_dim:
            raise ValueError(f"z must have shape (..., {self.latent_dim}), got {tuple(z.shape)}")
        if population is not None and (z.dim() < 2 or z.shape[0] != population):
            raise ValueError(f"with params of P={population}, z must be (P, ..., D): {z.shape}")
        if not self.use_hidden:
            return z
        if h is None:
            raise ValueError(
                f"this controller reads M's hidden state: pass h (..., {self.hidden_dim})"
            )
        h = as_real("h", as_tensor("h", h, self.weight.device), self.weight.dtype)
        if h.shape[:-1] != z.shape[:-1] or h.shape[-1] != self.hidden_dim:
            want = (*z.shape[:-1], self.hidden_dim)
            raise ValueError(f"h must have shape {want}, got {tuple(h.shape)}")
        return torch.cat([z, h], dim=-1)

    def forward(self, z, h=None, params=None) -> Tensor:
        r""":math:`u = \tanh(W ([z, h] - m) / s + b)` in :math:`(-1, 1)`: ``(..., O)`` for ``z``
        ``(..., D)``, or with ``params`` ``(P, n)`` for ``z`` ``(P, ..., D)``, ``(P, ..., O)``."""
        population = None if params is None else len(params)
        w, b = self._layers(params)
        x = (self._inputs(z, h, population) - self.input_loc) / self.input_scale
        if population is None:
            return torch.tanh(x @ w[0].T + b[0])
        lead = x.shape[1:-1]
        flat = x.reshape(population, -1, x.shape[-1])  # (P, N, I)
        out = torch.baddbmm(b[:, None], flat, w.transpose(1, 2))  # (P, N, O)
        return torch.tanh(out).reshape(population, *lead, self.outputs)

    def act(self, z, h=None, params=None) -> Tensor:
        """Environment actions: ``(..., A)`` inside the bounds, or discrete indices ``(...)``."""
        u = self(z, h, params)
        if not self.discrete:
            low, high = self.bounds
            if self.one_sided.any():
                u = torch.where(self.one_sided, 2 * u.clamp(min=0) - 1, u)
            return low + (u + 1) * (high - low) / 2
        if self.num_actions == 2:
            return (u[..., 0] > 0).long()
        return u.argmax(-1)

    def action_features(self, action: Tensor) -> Tensor:
        """Actions as M reads them, ``(..., action_dim)``: a Box's values, or one-hot indices."""
        if not self.discrete:
            return action.to(self.weight.dtype)
        return nn.functional.one_hot(action.long(), self.num_actions).to(self.weight.dtype)


def _check_one_sided(one_sided, num_actions: int | None, coordinates: int) -> list[bool] | None:
    """``one_sided`` as a list of ``coordinates`` flags, or None (no coordinate)."""
    if one_sided is None:
        return None
    if num_actions is not None:
        raise ValueError("one_sided applies to a Box action space, not to discrete actions")
    flags = list(one_sided)
    if len(flags) != coordinates or not all(isinstance(f, bool) for f in flags):
        raise ValueError(
            f"one_sided must be {coordinates} flags (True or False), one per action coordinate, "
            f"got {one_sided!r}"
        )
    return flags


def _from_space(space) -> tuple[list | None, list | None, int | None]:
    """``(low, high, None)`` of a Box, ``(None, None, n)`` of a Discrete (duck-typed)."""
    n = getattr(space, "n", None)
    if n is not None:
        if int(getattr(space, "start", 0)) != 0:
            raise ValueError("a Discrete action space must start at 0")
        return None, None, int(n)
    low, high = getattr(space, "low", None), getattr(space, "high", None)
    if low is None or high is None:
        raise TypeError(f"action_space must be a Box or a Discrete space, got {space!r}")
    return [float(v) for v in low.reshape(-1)], [float(v) for v in high.reshape(-1)], None
