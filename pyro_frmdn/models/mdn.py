"""The feedforward mixture density network of Bishop (1994) as a Pyro model."""

from __future__ import annotations

import warnings

import pyro
import torch
from torch import Tensor, nn

from ..deprecation import refuse_unknown, renamed
from ..distributions import temper
from ..nn import MixtureHead
from .base import PyroModel
from .decoding import greedy
from .validation import as_real, as_tensor, check_count, check_positive

__all__ = ["MDN"]


class MDN(PyroModel):
    r"""Conditional density p(y | x) as a Gaussian mixture whose parameters an MLP gives.

    .. math:: p(y \mid x) = \sum_k \pi_k(x)\, \mathcal N(y; \mu_k(x), \Sigma_k(x))

    (Bishop 1994, "Mixture density networks").

    An MLP (tanh) maps x to a :class:`~pyro_frmdn.nn.MixtureHead`: diagonal components by default
    (Bishop 1994), low-rank ones with ``rank > 0``.

    Arguments:
        input_dim, obs_dim: sizes of x and y.
        num_components: K.
        hidden_dims: the MLP's hidden sizes.
        rank, parameterization, min_diag: see :class:`~pyro_frmdn.nn.MixtureHead`.

    Example:
        >>> m = MDN(1, 1, num_components=3, hidden_dims=[16])
        >>> m.log_prob(torch.randn(5, 1), torch.randn(5, 1)).shape
        torch.Size([5])
    """

    def __init__(
        self,
        input_dim: int,
        obs_dim: int,
        num_components: int = 5,
        hidden_dims: list[int] = (64, 64),
        rank: int = 0,
        parameterization: str = "covariance",
        min_diag: float = 1e-4,
        name: str = "mdn",
    ):
        super().__init__()
        self.config = dict(
            input_dim=input_dim,
            obs_dim=obs_dim,
            num_components=num_components,
            hidden_dims=list(hidden_dims),
            rank=rank,
            parameterization=parameterization,
            min_diag=min_diag,
            name=name,
        )
        self.input_dim, self.obs_dim, self.name = input_dim, obs_dim, name
        layers, size = [], input_dim
        for h in hidden_dims:
            layers += [nn.Linear(size, h), nn.Tanh()]
            size = h
        self.net = nn.Sequential(*layers)
        self.head = MixtureHead(
            size, obs_dim, num_components, rank, parameterization, "per_step", min_diag
        )

    def _check(self, x, y=None) -> tuple[Tensor, Tensor | None]:
        """Validate ``x`` (N, X) and ``y`` (N, D) (tensors, arrays or lists); return them as
        tensors in the model's dtype (see :mod:`~pyro_frmdn.models.validation`)."""
        weight = self.head.linear.weight
        x = as_tensor("x", x, weight.device)
        if x.dim() != 2 or x.shape[-1] != self.input_dim:
            raise ValueError(f"x must have shape (N, {self.input_dim}), got {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise ValueError("x is empty")
        x = as_real("x", x, weight.dtype)
        if y is not None:
            y = as_tensor("y", y, weight.device)
            if y.shape != (x.shape[0], self.obs_dim):
                raise ValueError(
                    f"y must have shape {(x.shape[0], self.obs_dim)}, got {tuple(y.shape)}"
                )
            y = as_real("y", y, weight.dtype)
        return x, y

    def distribution(self, x: Tensor):
        """p(y | x) for x (N, X): batch (N,), event (D,)."""
        return self.head(self.net(x))

    def model(self, x: Tensor, y: Tensor) -> None:
        """Pyro model: each ``y`` observed given its ``x``, one plate over the examples."""
        x, y = self._check(x, y)
        pyro.module(self.name, self)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("y", self.distribution(x), obs=y)

    def guide(self, x: Tensor, y: Tensor) -> None:
        """Nothing is latent: the ELBO is exactly the log-likelihood."""

    def log_prob(self, x: Tensor, y: Tensor) -> Tensor:
        """log p(y | x) in nats, (N,)."""
        x, y = self._check(x, y)
        return self.distribution(x).log_prob(y)

    @torch.no_grad()
    def sample(
        self,
        num: int | Tensor = 1,
        x: Tensor | None = None,
        pi_temperature: float = 1.0,
        scale_temperature: float = 1.0,
        greedy_decoding: bool = False,
        **deprecated,
    ) -> Tensor:
        """``num`` draws of y for each row of ``x`` (N, X): (num, N, D); or the greedy mode (N, D).

        (The order ``sample(x, num_samples)`` of earlier releases still works, with a warning.)
        """
        if isinstance(num, Tensor):
            warnings.warn(
                "MDN.sample(x, num_samples) is deprecated: the number comes first, sample(num, x)",
                FutureWarning,
                stacklevel=2,
            )
            num, x = (1 if x is None else x), num
        if "num_samples" in deprecated:
            num = renamed("MDN.sample", deprecated, "num_samples", "num")
        refuse_unknown("MDN.sample", deprecated)
        num = check_count("num", num)
        check_positive("pi_temperature", pi_temperature)
        check_positive("scale_temperature", scale_temperature)
        if x is None:
            raise ValueError("MDN.sample needs the inputs x (N, X) to draw y for")
        x, _ = self._check(x)
        d = temper(self.distribution(x), pi_temperature, scale_temperature)
        return greedy(d) if greedy_decoding else d.sample((num,))
