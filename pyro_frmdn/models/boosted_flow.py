"""Gradient-boosted normalizing flows: :class:`BoostedFlow` and its :class:`FlowComponent`."""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import Tensor, nn

from ..deprecation import refuse_unknown, renamed
from ..distributions import FlowTransformedDistribution
from ..flows import FLOW_KINDS, INITS, coupling_flow
from .boosted import BoostedMixture
from .validation import as_real, as_tensor

__all__ = ["DEFAULT_COMPONENT", "BoostedFlow", "FlowComponent"]

DEFAULT_COMPONENT = dict(
    flow_layers=2, flow="spline", hidden_dims=(64, 64), count_bins=16, bound=4.0, init="identity"
)
"""The flow of a component unless told otherwise, chosen on the 2-D toys (``docs/boosting.md``):
with conditioners of one hidden layer of 64 (the previous default) one component stayed
0.6-0.7 nats above the entropy of the pinwheel, the checkerboard and the rings; with two hidden
layers, at the same number of optimizer steps, 0.1-0.2 on the first two. Splines of 16 bins
(8 before): with 8 a single component failed on 4 of 10 seeds of the four thin bars (0.17-0.31
nats above the entropy, the inner bars drawn as thin ridges: four steep steps of the data's
distribution function on 8 bins leave the spline no knot to spare); with 16 none did. Each
component starts as the identity (``init="identity"``; Pyro draws a random spline): from some
random starts one component stayed 0.43-0.44 nats above the rings' entropy on every data draw,
where the others reached 0.16-0.26, and from the identity all reached 0.12-0.15."""

CONFIG_BINS_BEFORE = 8
"""The spline bins of configs saved before the default became 16 without the key."""

CONFIG_INIT_BEFORE = "random"
"""How components started in configs saved before ``init`` was a key (as Pyro draws them)."""


class FlowComponent(nn.Module):
    r"""One boosting component: a coupling flow over a standard normal,
    :math:`g(x) = \mathcal N(f(x); 0, I)\,|\det \partial f / \partial x|`.

    The flow (:func:`~pyro_frmdn.flows.coupling_flow`) maps base to data; scoring data runs it
    backwards, analytically. ``seed`` picks its random permutations.
    """

    def __init__(
        self,
        dim: int,
        flow_layers: int,
        flow: str = "affine",
        hidden_dims: list[int] | None = None,
        mixing: str = "permute",
        count_bins: int = 8,
        bound: float = 3.0,
        seed: int = 0,
        init: str = "random",
    ):
        super().__init__()
        self.dim = dim
        self.flow = coupling_flow(
            dim,
            flow_layers,
            flow=flow,
            hidden_dims=hidden_dims,
            mixing=mixing,
            count_bins=count_bins,
            bound=bound,
            seed=seed,
            init=init,
        )
        self.register_buffer("loc", torch.zeros(dim))  # follows .to(device / dtype)

    def distribution(self) -> FlowTransformedDistribution:
        base = dist.Normal(self.loc, torch.ones_like(self.loc)).to_event(1)
        return FlowTransformedDistribution(base, list(self.flow))

    def log_prob(self, y: Tensor) -> Tensor:
        return self.distribution().log_prob(y)

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        return self.distribution().sample((n,))

    def rsample(self, n: int) -> Tensor:
        return self.distribution().rsample((n,))


class BoostedFlow(BoostedMixture):
    r"""Gradient-boosted normalizing flow over :math:`\mathbb R^D` (Giaquinto & Banerjee 2020).

    .. math::
        G_C(x) = \sum_{c=0}^{C-1} w_c\, g_c(x), \qquad
        g_c(x) = \mathcal N(f_c(x); 0, I)\,\left|\det \frac{\partial f_c}{\partial x}\right|

    Each component is a :class:`FlowComponent` with ``flow_layers`` couplings (``flow="affine"``
    or ``"spline"``); component ``c`` uses permutations seeded by ``c``. The model starts empty:
    grow it with :func:`~pyro_frmdn.infer.fit_boosted` (or :meth:`add_component`).

    Arguments:
        dim: D.
        flow_layers, flow, hidden_dims, mixing, count_bins, bound: each component's flow
            (:func:`~pyro_frmdn.flows.coupling_flow`), by default :data:`DEFAULT_COMPONENT`
            (2 spline couplings of 16 bins on ``[-4, 4]``, conditioners of two hidden layers
            of 64, each started as the identity);
            splines are the identity outside ``[-bound, bound]``: standardise the data.
        init: how a new component starts: ``"identity"`` (default: its flow is the identity
            map, the component a standard normal) or ``"random"`` (as Pyro draws its
            couplings); see :func:`~pyro_frmdn.flows.coupling_flow`.
        name: prefix of the parameters in Pyro's param store.

    (``flow_layers`` and ``flow`` were ``num_layers`` and ``kind`` before version 0.2; those
    names still work, with a warning, and configs saved with them load. Up to 0.2 the default
    component was 2 affine couplings of width ``max(32, 2 D)``; configs store every value, and
    those saved without a width get that one back. The previous default conditioner had one
    hidden layer of 64; configs saved with it store ``hidden_dims=[64]`` and rebuild it.)

    Example:
        >>> m = BoostedFlow(2, flow_layers=1, hidden_dims=[8])
        >>> _ = m.add_component(); _ = m.add_component(rho=0.3)
        >>> m.weights()
        tensor([0.7000, 0.3000])
        >>> m.log_prob(torch.randn(5, 2)).shape
        torch.Size([5])
        >>> m.sample(4).shape
        torch.Size([4, 2])
    """

    renamed_config_keys = {"num_layers": "flow_layers", "kind": "flow"}  # before 0.2

    def __init__(
        self,
        dim: int,
        flow_layers: int = DEFAULT_COMPONENT["flow_layers"],
        flow: str = DEFAULT_COMPONENT["flow"],
        hidden_dims: list[int] | None = None,
        mixing: str = "permute",
        count_bins: int = DEFAULT_COMPONENT["count_bins"],
        bound: float = DEFAULT_COMPONENT["bound"],
        init: str = DEFAULT_COMPONENT["init"],
        name: str = "boosted_flow",
        **deprecated,
    ):
        flow_layers = renamed("BoostedFlow", deprecated, "num_layers", "flow_layers", flow_layers)
        if "kind" in deprecated:
            flow = renamed("BoostedFlow", deprecated, "kind", "flow")
        refuse_unknown("BoostedFlow", deprecated)
        if dim < 1 or flow_layers < 1:
            raise ValueError(f"need dim >= 1 and flow_layers >= 1, got {dim} and {flow_layers}")
        if flow not in FLOW_KINDS:
            raise ValueError(f"flow must be one of {FLOW_KINDS}, got {flow!r}")
        if flow == "affine" and dim == 1:
            raise ValueError("an affine coupling needs dim >= 2: use flow='spline' for dim = 1")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        super().__init__(name)
        self.obs_dim = dim
        self.config = dict(
            dim=dim,
            flow_layers=flow_layers,
            flow=flow,
            hidden_dims=list(
                DEFAULT_COMPONENT["hidden_dims"] if hidden_dims is None else hidden_dims
            ),
            mixing=mixing,
            count_bins=count_bins,
            bound=bound,
            init=init,
            name=name,
        )

    @classmethod
    def upgrade_config(cls, config: dict) -> dict:
        """Configs of earlier releases: renamed keys, ``hidden_dims=None`` (which meant the
        width :func:`~pyro_frmdn.flows.coupling_flow` chose then, ``max(32, 2 D)``) made that
        width explicitly, a missing ``count_bins`` the 8 bins of then and a missing ``init`` the
        random start of then, so that a saved model rebuilds (and grows) as it was trained."""
        config = super().upgrade_config(config)
        if config.get("hidden_dims") is None:
            config = {**config, "hidden_dims": [max(32, 2 * config["dim"])]}
        if "count_bins" not in config:  # saved when the default was 8 bins
            config = {**config, "count_bins": CONFIG_BINS_BEFORE}
        if "init" not in config:  # saved when components started as Pyro draws them
            config = {**config, "init": CONFIG_INIT_BEFORE}
        return config

    def new_component(self, index: int) -> FlowComponent:
        cfg = {k: v for k, v in self.config.items() if k != "name"}
        return FlowComponent(seed=index, **cfg)

    def check_data(self, y: Tensor, **inputs) -> tuple[Tensor, dict]:
        given = sorted(k for k, v in inputs.items() if v is not None)
        if given:
            raise ValueError(f"a BoostedFlow scores y (N, D) alone; got also {given}")
        y = as_tensor("y", y, self.rho.device)
        if y.dim() != 2 or y.shape[-1] != self.obs_dim:
            raise ValueError(f"y must have shape (N, {self.obs_dim}), got {tuple(y.shape)}")
        if y.shape[0] == 0:
            raise ValueError("y is empty: shape (0, D)")
        return as_real("y", y, self.rho.dtype), {}
