r"""A mixture of flows trained jointly by gradient: :class:`MixtureOfFlows`, boosting's baseline."""

from __future__ import annotations

import warnings

import pyro
import torch
from torch import Tensor, nn

from ..distributions import BoostedMixtureDistribution
from .base import PyroModel
from .boosted_flow import DEFAULT_COMPONENT, FlowComponent
from .validation import as_real, as_tensor, check_count

__all__ = ["MixtureOfFlows"]


class MixtureOfFlows(PyroModel):
    r"""C flows and their weights, all trained at once on the mixture's likelihood.

    .. math::
        p(x) = \sum_{c=0}^{C-1} \pi_c\, g_c(x), \qquad \pi = \operatorname{softmax}(a), \qquad
        g_c(x) = \mathcal N(f_c(x); 0, I)\,\left|\det \frac{\partial f_c}{\partial x}\right|

    The natural baseline of :class:`~pyro_frmdn.models.BoostedFlow` (Giaquinto & Banerjee 2020
    grow the same family one component at a time): here every component and the logits
    :math:`a` follow the gradient of the mixture's NLL together, which moves each component by
    its responsibilities :math:`\pi_c g_c(x) / p(x)` (the gradient of an EM step). Train it with
    :func:`pyro_frmdn.fit` like any model. Components are :class:`FlowComponent` with the same
    defaults as a :class:`BoostedFlow`'s, and component ``c`` is seeded by ``c``.

    With ``init_loc`` the base of component ``c`` is centred at ``init_loc[c]`` (for example
    k-means centres of the data, :meth:`centres`) so that the components start apart; without
    it they all start at the origin and are told apart only by their random initialisation.
    With ``init_loc``, ``init="identity"`` starts each component as a standard normal at its
    centre (the boosted components' start); without it, keep ``"random"`` (the default), or all
    components would start as the same density.

    Arguments:
        dim: D.
        num_components: C.
        flow_layers, flow, hidden_dims, mixing, count_bins, bound, init: each component's
            flow, as for :class:`BoostedFlow` (but ``init`` is ``"random"`` by default).
        init_loc: (C, D) centres of the components' bases, or None.
        name: prefix of the parameters in Pyro's param store.

    Example:
        >>> m = MixtureOfFlows(2, num_components=3, flow_layers=1, hidden_dims=[8])
        >>> m.log_prob(torch.randn(5, 2)).shape, m.sample(4).shape
        (torch.Size([5]), torch.Size([4, 2]))
    """

    def __init__(
        self,
        dim: int,
        num_components: int = 4,
        flow_layers: int = DEFAULT_COMPONENT["flow_layers"],
        flow: str = DEFAULT_COMPONENT["flow"],
        hidden_dims: list[int] | None = None,
        mixing: str = "permute",
        count_bins: int = DEFAULT_COMPONENT["count_bins"],
        bound: float = DEFAULT_COMPONENT["bound"],
        init: str = "random",
        init_loc: list | Tensor | None = None,
        name: str = "mixture_of_flows",
    ):
        super().__init__()
        check_count("num_components", num_components)
        check_count("dim", dim)
        hidden_dims = list(DEFAULT_COMPONENT["hidden_dims"] if hidden_dims is None else hidden_dims)
        if init_loc is not None:
            init_loc = torch.as_tensor(init_loc, dtype=torch.get_default_dtype())
            if init_loc.shape != (num_components, dim) or not bool(init_loc.isfinite().all()):
                raise ValueError(
                    f"init_loc must be finite of shape ({num_components}, {dim}), "
                    f"got {tuple(init_loc.shape)}"
                )
        self.name, self.obs_dim = name, dim
        flow_kwargs = dict(
            flow_layers=flow_layers,
            flow=flow,
            hidden_dims=hidden_dims,
            mixing=mixing,
            count_bins=count_bins,
            bound=bound,
            init=init,
        )
        self.config = dict(
            dim=dim,
            num_components=num_components,
            **flow_kwargs,
            init_loc=None if init_loc is None else init_loc.tolist(),
            name=name,
        )
        self.components = nn.ModuleList(
            FlowComponent(dim, seed=c, **flow_kwargs) for c in range(num_components)
        )
        if init_loc is not None:
            for c, component in enumerate(self.components):
                component.loc.copy_(init_loc[c])
        self.logits = nn.Parameter(torch.zeros(num_components))

    @staticmethod
    def centres(y: Tensor, num_components: int, iters: int = 50, seed: int = 0) -> Tensor:
        """k-means centres of ``y`` (N, D), (C, D): Lloyd's iterations from a k-means++ start,
        to pass as ``init_loc``."""
        y = torch.as_tensor(y).detach().double()
        g = torch.Generator().manual_seed(seed)
        chosen = [y[torch.randint(len(y), (1,), generator=g)].squeeze(0)]
        for _ in range(1, num_components):  # k-means++: far points more likely
            d2 = torch.cdist(y, torch.stack(chosen)).pow(2).min(-1).values
            chosen.append(y[torch.multinomial(d2 / d2.sum(), 1, generator=g)].squeeze(0))
        centres = torch.stack(chosen)
        for _ in range(iters):
            nearest = torch.cdist(y, centres).argmin(-1)
            for c in range(num_components):
                if bool((nearest == c).any()):
                    centres[c] = y[nearest == c].mean(0)
        return centres

    @property
    def num_components(self) -> int:
        return len(self.components)

    def log_weights(self) -> Tensor:
        """log π (C,)."""
        return torch.log_softmax(self.logits, -1)

    def weights(self) -> Tensor:
        """π (C,), detached."""
        return self.log_weights().detach().exp()

    def check_data(self, y, **inputs) -> tuple[Tensor, dict]:
        given = sorted(k for k, v in inputs.items() if v is not None)
        if given:
            raise ValueError(f"a MixtureOfFlows scores y (N, D) alone; got also {given}")
        y = as_tensor("y", y, self.logits.device)
        if y.dim() != 2 or y.shape[-1] != self.obs_dim or y.shape[0] == 0:
            raise ValueError(
                f"y must have shape (N, {self.obs_dim}) with N >= 1, got {tuple(y.shape)}"
            )
        return as_real("y", y, self.logits.dtype), {}

    def component_log_probs(self, y) -> Tensor:
        """``log g_c(y_i)`` for every example and component, (N, C)."""
        y, _ = self.check_data(y)
        return torch.stack([c.log_prob(y) for c in self.components], dim=-1)

    def log_prob(self, y) -> Tensor:
        """Exact log-density per example, (N,)."""
        return torch.logsumexp(self.component_log_probs(y) + self.log_weights(), dim=-1)

    @torch.no_grad()
    def sample(self, num: int, return_components: bool = False):
        """``num`` examples (num, D), each from a component drawn by the weights."""
        num = check_count("num", num)
        k = torch.multinomial(self.weights(), num, replacement=True)
        out = self.logits.new_empty(num, self.obs_dim)
        for c, component in enumerate(self.components):
            index = (k == c).nonzero().flatten()
            if len(index):
                out[index] = component.sample(len(index))
        return (out, k) if return_components else out

    def sample_kwargs(self, event_shape: torch.Size) -> dict:
        return {}

    def model(self, y: Tensor) -> None:
        """Pyro model: ``y`` (N, D) observed under the mixture (the guide is empty, so
        ``Trace_ELBO`` is the NLL)."""
        y, _ = self.check_data(y)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*not registered in the param store")
            pyro.module(self.name, self)
        with pyro.plate("data", y.shape[0]):
            pyro.sample("y", BoostedMixtureDistribution(self, torch.Size([self.obs_dim])), obs=y)

    def guide(self, y: Tensor) -> None:
        """Nothing is latent."""
