"""Gradient-boosted mixtures of normalizing flows (and of FRMDN sequence models).

Giaquinto & Banerjee, "Gradient Boosted Normalizing Flows", NeurIPS 2020 (arXiv 2002.11896): a
density is grown one component at a time,

.. math::
    G_c(x) = (1 - \\rho_c)\\, G_{c-1}(x) + \\rho_c\\, g_c(x), \\qquad G_0 = g_0,

so that :math:`G_C = \\sum_c w_c g_c` with :math:`w_c = \\rho_c \\prod_{j>c} (1 - \\rho_j)`. This
module holds the mixtures (their exact density, sampling, a Pyro distribution, checkpoints); the
boosting loop that trains them is :func:`pyro_frmdn.infer.fit_boosted`.

A component is any ``nn.Module`` with ``log_prob(data, **inputs) -> (N,)`` and
``sample(n, **kwargs)`` (:class:`BoostingComponent`): :class:`FlowComponent` (a coupling flow over
a standard normal) and :class:`~pyro_frmdn.models.FRMDN` (whole sequences, with optional inputs
``x`` and a ``mask``; ``sample(n, steps=T, x=...)``) both are.
"""

from __future__ import annotations

import math
import warnings
from typing import Protocol, runtime_checkable

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from torch import Tensor, nn

from ..distributions import FlowTransformedDistribution, flow_mixture
from ..flows import FLOW_KINDS, coupling_flow
from .frmdn import FRMDN
from .validation import check_finite, check_sequences

__all__ = [
    "RHO_MAX",
    "BoostedFRMDN",
    "BoostedFlow",
    "BoostedGuideDistribution",
    "BoostedGuideFlow",
    "BoostedMixture",
    "BoostedMixtureDistribution",
    "BoostingComponent",
    "FlowComponent",
    "log_weights_from_rho",
    "rho_from_log_weights",
]

RHO_MAX = 0.999
"""Largest ρ_c (c ≥ 1) allowed: it keeps every earlier weight, w_0 above all, strictly positive."""


@runtime_checkable
class BoostingComponent(Protocol):
    """What the boosting loop needs of a component (an ``nn.Module``).

    ``log_prob(data, **inputs)`` returns the log density of each example, shape ``(N,)`` (for
    sequences, of the whole sequence; ``inputs`` such as ``x`` and ``mask`` are those the mixture
    declares in ``input_names``); ``sample(n, **kwargs)`` returns ``n`` examples.
    """

    def log_prob(self, data: Tensor, **inputs) -> Tensor: ...

    def sample(self, n: int, **kwargs) -> Tensor: ...


def log_weights_from_rho(rho: Tensor) -> Tensor:
    r"""Mixture log-weights from the boosting steps, in log space.

    .. math::
        \log w_c = \log \rho_c + \sum_{j > c} \log(1 - \rho_j), \qquad \rho_0 = 1

    (Giaquinto & Banerjee 2020, eq. for :math:`G_c`). ``rho`` has shape ``(C,)``; the result sums
    to one after ``exp``. A component with :math:`\rho_c = 0` gets :math:`\log w_c = -\infty`.

    Example:
        >>> log_weights_from_rho(torch.tensor([1.0, 0.5, 0.5])).exp()
        tensor([0.2500, 0.2500, 0.5000])
    """
    if rho.dim() != 1 or rho.numel() == 0:
        raise ValueError(f"rho must be a non-empty vector (C,), got shape {tuple(rho.shape)}")
    log_keep = torch.log1p(-rho[1:])  # log(1 - ρ_j), j ≥ 1
    tail = torch.cat([log_keep.flip(0).cumsum(0).flip(0), log_keep.new_zeros(1)])  # Σ_{j>c}
    return rho.log() + tail


def rho_from_log_weights(log_w: Tensor) -> Tensor:
    r"""The boosting steps that give mixture weights ``exp(log_w)`` (the inverse of
    :func:`log_weights_from_rho`): :math:`\rho_c = w_c / \sum_{j \le c} w_j`, :math:`\rho_0 = 1`.

    Needs :math:`w_0 > 0`. Example:
        >>> rho_from_log_weights(torch.tensor([0.25, 0.25, 0.5]).log())
        tensor([1.0000, 0.5000, 0.5000])
    """
    if not bool(torch.isfinite(log_w[0])):
        raise ValueError("the first component's weight must be positive")
    return (log_w - torch.logcumsumexp(log_w, 0)).exp()


def _check_rho(rho: Tensor) -> None:
    """ρ_0 = 1 and ρ_c ∈ [0, RHO_MAX] for c ≥ 1: weights in [0, 1) (w_0 > 0) summing to one."""
    if rho.numel() and float(rho[0]) != 1.0:
        raise ValueError(f"rho[0] must be 1 (the first component is G_0), got {float(rho[0])}")
    rest = rho[1:]
    if rest.numel() and not bool(((rest >= 0) & (rest <= RHO_MAX)).all()):
        raise ValueError(f"rho[c] for c >= 1 must lie in [0, {RHO_MAX}], got {rest.tolist()}")


class BoostedMixture(nn.Module):
    r"""A mixture grown by gradient boosting: the base of :class:`BoostedFlow` and
    :class:`BoostedFRMDN` (Giaquinto & Banerjee, NeurIPS 2020, arXiv 2002.11896).

    .. math::
        \log G_C(x) = \operatorname{logsumexp}_c \left[\log w_c + \log g_c(x)\right],
        \qquad w_c = \rho_c \prod_{j>c} (1 - \rho_j)

    ``rho`` is a buffer ``(C,)`` (fitted by :func:`~pyro_frmdn.infer.fit_boosted`, not by
    gradients of the model): ``rho[0] = 1`` and ``rho[c] ∈ [0, RHO_MAX]``, so the weights lie in
    [0, 1), sum to one, and :math:`w_0 > 0`. A new component starts with :math:`\rho_c = 0`: adding
    it leaves the density unchanged until its step is fitted. Components other than the one being
    trained are frozen (``requires_grad=False`` and eval mode).

    Subclasses implement :meth:`new_component` and :meth:`check_data` and set ``config`` (the
    keyword arguments that rebuild the model, saved in checkpoints) and ``obs_dim``; those whose
    components take more than the examples (inputs, masks) name them in ``input_names``.
    """

    _registry: dict[str, type[BoostedMixture]] = {}
    event_dims = 1
    input_names: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        BoostedMixture._registry[cls.__name__] = cls

    def __init__(self, name: str):
        super().__init__()
        self.name = name
        self.components = nn.ModuleList()
        self.register_buffer("rho", torch.zeros(0))
        self.config: dict = {}

    # -- to implement -------------------------------------------------------------------------

    def new_component(self, index: int) -> nn.Module:
        """A fresh component (a :class:`BoostingComponent`) for position ``index``."""
        raise NotImplementedError

    def check_data(self, data: Tensor, **inputs) -> tuple[Tensor, dict[str, Tensor]]:
        """Validate a batch of examples and their ``inputs`` (names from ``input_names``; None
        for absent ones); raise a ValueError saying what was expected.

        Returns the examples and the inputs to pass to every component (the absent ones left
        out).
        """
        raise NotImplementedError

    def sample_kwargs(self, event_shape: torch.Size) -> dict:
        """Extra arguments of the components' ``sample`` for examples of ``event_shape``."""
        return {}

    def sample_component(self, component: nn.Module, index: Tensor, **kwargs) -> Tensor:
        """Draw the examples at positions ``index`` (of the ``n`` asked for) from ``component``.

        Subclasses whose ``sample`` takes per-example tensors (such as inputs ``x``) slice them
        by ``index`` here.
        """
        return component.sample(len(index), **kwargs)

    # -- structure ----------------------------------------------------------------------------

    @property
    def num_components(self) -> int:
        return len(self.components)

    def add_component(self, rho: float | None = None) -> nn.Module:
        """Append a component, trainable, all others frozen; return it.

        Its step ``rho`` defaults to 1 for the first component and to 0 (no weight yet) after.
        """
        c = self.num_components
        value = 1.0 if c == 0 else 0.0 if rho is None else float(rho)
        component = self.new_component(c).to(device=self.rho.device, dtype=self.rho.dtype)
        new_rho = torch.cat([self.rho, self.rho.new_tensor([value])])
        _check_rho(new_rho)
        self.components.append(component)
        self.rho = new_rho
        self.set_trainable(c)
        return component

    def set_rho(self, rho: Tensor) -> None:
        """Replace all steps at once, after checking that they give valid weights."""
        rho = torch.as_tensor(rho, dtype=self.rho.dtype, device=self.rho.device)
        if rho.shape != self.rho.shape:
            raise ValueError(f"rho must have shape {tuple(self.rho.shape)}, got {tuple(rho.shape)}")
        _check_rho(rho)
        self.rho = rho.clone()

    def set_trainable(self, index: int | None) -> None:
        """Unfreeze component ``index`` (train mode) and freeze the others (eval mode).

        ``None`` freezes all of them.
        """
        if index is not None and not 0 <= index < self.num_components:
            raise ValueError(f"no component {index}: the mixture has {self.num_components}")
        for c, component in enumerate(self.components):
            component.requires_grad_(c == index)
            component.train(c == index)

    def train(self, mode: bool = True):
        """Only trainable components follow ``train()``; frozen ones stay in eval mode."""
        self.training = mode
        for component in self.components:
            trainable = any(p.requires_grad for p in component.parameters())
            component.train(mode and trainable)
        return self

    def log_weights(self) -> Tensor:
        """``log w`` (C,), see :func:`log_weights_from_rho`."""
        if not self.num_components:
            raise ValueError("the mixture has no component yet: call add_component() first")
        return log_weights_from_rho(self.rho)

    def weights(self) -> Tensor:
        """The mixture weights (C,): in [0, 1), summing to one."""
        return self.log_weights().exp()

    # -- density and sampling -----------------------------------------------------------------

    def component_log_probs(self, y: Tensor, **inputs) -> Tensor:
        """``log g_c(y_i)`` for every example and component, (N, C)."""
        y, inputs = self.check_data(y, **inputs)
        return torch.stack([c.log_prob(y, **inputs) for c in self.components], dim=-1)

    def log_prob(self, y: Tensor, **inputs) -> Tensor:
        r"""Exact :math:`\log G_C(y)` per example, (N,): a logsumexp over the components with
        positive weight (those with :math:`\rho_c = 0` are skipped). ``inputs`` (those of
        ``input_names``) go to every component."""
        log_w = self.log_weights()
        y, inputs = self.check_data(y, **inputs)
        active = torch.isfinite(log_w).nonzero().flatten().tolist()
        lp = torch.stack([self.components[c].log_prob(y, **inputs) for c in active], dim=-1)
        return torch.logsumexp(lp + log_w[active], dim=-1)

    @torch.no_grad()
    def sample(self, n: int, return_components: bool = False, **kwargs):
        """``n`` examples, each from a component drawn by the weights (one choice per example).

        ``return_components=True`` also returns the component index of each example, (n,).
        Extra keyword arguments go to the components' ``sample`` (:meth:`sample_component`).
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        k = torch.multinomial(self.weights(), n, replacement=True)  # (n,)
        out = None
        for c, component in enumerate(self.components):
            index = (k == c).nonzero().flatten()
            if len(index):
                drawn = self.sample_component(component, index, **kwargs)
                if out is None:
                    out = drawn.new_empty(n, *drawn.shape[1:])
                out[index] = drawn
        return (out, k) if return_components else out

    def distribution(
        self, event_shape: tuple | None = None, **inputs
    ) -> BoostedMixtureDistribution:
        """The mixture as a Pyro distribution (batch ``()``, event ``event_shape``).

        Usable as ``pyro.sample("y", m.distribution(), obs=y)`` under a ``pyro.plate``. With
        ``inputs`` (per-example tensors such as ``x`` and ``mask`` of :class:`BoostedFRMDN`) the
        batch shape is ``(N,)``, one entry per example.
        """
        if event_shape is None:
            event_shape = self.default_event_shape()
        inputs = {k: v for k, v in inputs.items() if v is not None}
        return BoostedMixtureDistribution(self, torch.Size(event_shape), inputs=inputs)

    def default_event_shape(self) -> tuple:
        return (self.obs_dim,)

    # -- Pyro program -------------------------------------------------------------------------

    def model(self, y: Tensor) -> None:
        """Pyro model: the examples ``y`` observed under the mixture, one plate over them.

        Only unfrozen components register parameters, so :func:`pyro_frmdn.fit` trains those
        against the mixture's NLL at fixed weights (with one component: maximum likelihood).
        """
        self._observe(y, {})

    def _observe(self, y: Tensor, inputs: dict) -> None:
        y, inputs = self.check_data(y, **inputs)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*not registered in the param store")
            pyro.module(self.name, self)
        with pyro.plate("data", y.shape[0]):
            pyro.sample("y", self.distribution(tuple(y.shape[1:]), **inputs), obs=y)

    def guide(self, y: Tensor) -> None:
        """Nothing is latent: ``Trace_ELBO``'s loss is exactly the negative log-likelihood."""

    # -- checkpoints ----------------------------------------------------------------------------

    def checkpoint_payload(self) -> dict:
        """What :meth:`from_payload` needs: class, config, component count, state dict."""
        return {
            "model_class": type(self).__name__,
            "config": dict(self.config),
            "num_components": self.num_components,
            "model": self.state_dict(),
        }

    @classmethod
    def from_payload(cls, payload: dict) -> BoostedMixture:
        """Rebuild a mixture from :meth:`checkpoint_payload`'s dict, all components frozen.

        Files are written and read by :func:`~pyro_frmdn.infer.save_boosted` and
        :func:`~pyro_frmdn.infer.load_boosted` (atomic, ``weights_only=True``).
        """
        name = payload.get("model_class")
        target = BoostedMixture._registry.get(name)
        if target is None or (cls is not BoostedMixture and not issubclass(target, cls)):
            raise ValueError(f"the checkpoint holds a {name}, not a {cls.__name__}")
        model = target(**payload["config"])
        model.to(payload["model"]["rho"].dtype)  # components follow the dtype of rho
        for _ in range(payload["num_components"]):
            model.add_component()
        model.load_state_dict(payload["model"])
        model.set_trainable(None)
        return model


class BoostedMixtureDistribution(dist.TorchDistribution):
    """A :class:`BoostedMixture` as a Pyro ``TorchDistribution`` (no ``rsample``: a mixture's
    component choice is not reparameterizable; use it as an observation).

    ``inputs`` are per-example tensors for the components (``x``, ``mask`` of
    :class:`BoostedFRMDN`), each with a leading dim N: the batch shape is then ``(N,)`` and
    ``log_prob`` takes values of batch shape ``(N,)``; ``sample`` zeroes masked steps.
    """

    arg_constraints = {}
    has_rsample = False

    def __init__(
        self,
        mixture: BoostedMixture,
        event_shape,
        batch_shape=None,
        validate_args=None,
        inputs: dict[str, Tensor] | None = None,
    ):
        self.mixture, self.inputs = mixture, dict(inputs or {})
        sizes = {len(v) for v in self.inputs.values()}
        if len(sizes) > 1:
            raise ValueError(f"the inputs have different lengths along dim 0: {sorted(sizes)}")
        if batch_shape is None:
            batch_shape = tuple(sizes)
        if self.inputs and tuple(batch_shape) != tuple(sizes):
            raise ValueError(
                f"with inputs of {sizes.pop()} examples the batch shape must be that, "
                f"got {tuple(batch_shape)}"
            )
        super().__init__(torch.Size(batch_shape), torch.Size(event_shape), validate_args)

    @constraints.dependent_property
    def support(self):
        return constraints.independent(constraints.real, len(self.event_shape))

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        if self.inputs and batch_shape != self.batch_shape:
            raise ValueError(
                f"a mixture with per-example inputs has batch shape {tuple(self.batch_shape)}; "
                f"it cannot be expanded to {tuple(batch_shape)}"
            )
        new = self._get_checked_instance(BoostedMixtureDistribution, _instance)
        new.mixture, new.inputs = self.mixture, self.inputs
        super(BoostedMixtureDistribution, new).__init__(
            batch_shape, self.event_shape, validate_args=False
        )
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        shape = value.shape[: value.dim() - len(self.event_shape)]
        if self.inputs:
            if shape != self.batch_shape:
                raise ValueError(
                    f"value has batch shape {tuple(shape)}, the inputs are for "
                    f"{tuple(self.batch_shape)}"
                )
            return self.mixture.log_prob(value, **self.inputs)
        lp = self.mixture.log_prob(value.reshape(-1, *self.event_shape))
        return lp.reshape(shape)

    def sample(self, sample_shape=torch.Size()) -> Tensor:
        shape = self._extended_shape(sample_shape)
        n = math.prod(shape[: len(shape) - len(self.event_shape)])
        kwargs = self.mixture.sample_kwargs(self.event_shape)
        if not self.inputs:
            return self.mixture.sample(n, **kwargs).reshape(shape)
        if torch.Size(sample_shape):
            raise ValueError("a mixture with per-example inputs draws one sample per example")
        y = self.mixture.sample(n, x=self.inputs.get("x"), **kwargs)
        mask = self.inputs.get("mask")
        if mask is not None:  # padding is zero, as check_sequences makes it
            y = y.masked_fill(~mask.bool()[..., None], 0.0)
        return y


class FlowComponent(nn.Module):
    r"""One boosting component: a coupling flow over a standard normal,
    :math:`g(x) = \mathcal N(f(x); 0, I)\,|\det \partial f / \partial x|`.

    The flow (:func:`~pyro_frmdn.flows.coupling_flow`) maps base to data; scoring data runs it
    backwards, analytically. ``seed`` picks its random permutations.
    """

    def __init__(
        self,
        dim: int,
        num_layers: int,
        kind: str = "affine",
        hidden_dims: list[int] | None = None,
        mixing: str = "permute",
        count_bins: int = 8,
        bound: float = 3.0,
        seed: int = 0,
    ):
        super().__init__()
        self.dim = dim
        self.flow = coupling_flow(
            dim,
            num_layers,
            kind=kind,
            hidden_dims=hidden_dims,
            mixing=mixing,
            count_bins=count_bins,
            bound=bound,
            seed=seed,
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

    Each component is a :class:`FlowComponent` with ``num_layers`` couplings (``kind="affine"``
    or ``"spline"``); component ``c`` uses permutations seeded by ``c``. The model starts empty:
    grow it with :func:`~pyro_frmdn.infer.fit_boosted` (or :meth:`add_component`).

    Arguments:
        dim: D.
        num_layers, kind, hidden_dims, mixing, count_bins, bound: each component's flow
            (:func:`~pyro_frmdn.flows.coupling_flow`); splines are the identity outside
            ``[-bound, bound]``: standardise the data.
        name: prefix of the parameters in Pyro's param store.

    Example:
        >>> m = BoostedFlow(2, num_layers=1, hidden_dims=[8])
        >>> _ = m.add_component(); _ = m.add_component(rho=0.3)
        >>> m.weights()
        tensor([0.7000, 0.3000])
        >>> m.log_prob(torch.randn(5, 2)).shape
        torch.Size([5])
        >>> m.sample(4).shape
        torch.Size([4, 2])
    """

    def __init__(
        self,
        dim: int,
        num_layers: int = 2,
        kind: str = "affine",
        hidden_dims: list[int] | None = None,
        mixing: str = "permute",
        count_bins: int = 8,
        bound: float = 3.0,
        name: str = "boosted_flow",
    ):
        if dim < 1 or num_layers < 1:
            raise ValueError(f"need dim >= 1 and num_layers >= 1, got {dim} and {num_layers}")
        if kind not in FLOW_KINDS:
            raise ValueError(f"kind must be one of {FLOW_KINDS}, got {kind!r}")
        if kind == "affine" and dim == 1:
            raise ValueError("an affine coupling needs dim >= 2: use kind='spline' for dim = 1")
        super().__init__(name)
        self.obs_dim = dim
        self.config = dict(
            dim=dim,
            num_layers=num_layers,
            kind=kind,
            hidden_dims=None if hidden_dims is None else list(hidden_dims),
            mixing=mixing,
            count_bins=count_bins,
            bound=bound,
            name=name,
        )

    def new_component(self, index: int) -> FlowComponent:
        cfg = {k: v for k, v in self.config.items() if k != "name"}
        return FlowComponent(seed=index, **cfg)

    def check_data(self, y: Tensor, **inputs) -> tuple[Tensor, dict]:
        given = sorted(k for k, v in inputs.items() if v is not None)
        if given:
            raise ValueError(f"a BoostedFlow scores y (N, D) alone; got also {given}")
        if not isinstance(y, Tensor) or y.dim() != 2 or y.shape[-1] != self.obs_dim:
            shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
            raise ValueError(f"y must be a tensor of shape (N, {self.obs_dim}), got {shape}")
        if y.shape[0] == 0:
            raise ValueError("y is empty: shape (0, D)")
        check_finite("y", y)
        return y, {}


class BoostedFRMDN(BoostedMixture):
    r"""A boosted mixture of whole-sequence models: each component an
    :class:`~pyro_frmdn.models.FRMDN` (or an RMDN with ``flow_layers=0``).

    .. math::
        \log G(y_{1:T} \mid x_{1:T}) = \operatorname{logsumexp}_c
        \left[\log w_c + \sum_{t:\, m_t} \log p_c(y_t \mid y_{<t}, x_{\le t})\right]

    The component is chosen once per sequence, not per step; the weights do not depend on
    the inputs. Data are ``y`` ``(N, T, D)``, with optional inputs ``x`` ``(N, T, X)`` (for
    components built with ``input_dim=X``) and a ``mask`` ``(N, T)`` for sequences of different
    lengths: every component scores the unmasked steps of each sequence, and padding (trailing,
    as :func:`~pyro_frmdn.pad_sequences` makes it) is never seen. ``log_prob``, ``model``,
    :func:`~pyro_frmdn.infer.fit_boosted` and :func:`~pyro_frmdn.evaluate` take them by name
    (a dict ``{"y": ..., "x": ..., "mask": ...}``) or in that order (a tuple).

    Arguments:
        obs_dim: D.
        steps: the default length of sampled sequences (``sample(n, steps=...)`` overrides it).
        name: prefix of the parameters in Pyro's param store.
        **frmdn_kwargs: passed to every :class:`~pyro_frmdn.models.FRMDN` (``input_dim`` too).

    Example:
        >>> m = BoostedFRMDN(2, steps=5, hidden_dim=4, num_components=1, flow_layers=1)
        >>> _ = m.add_component(); _ = m.add_component(rho=0.5)
        >>> y, mask = torch.randn(3, 5, 2), torch.tensor([[True] * 5, [True] * 3 + [False] * 2,
        ...                                               [True] * 4 + [False]])
        >>> m.log_prob(y, mask=mask).shape
        torch.Size([3])
        >>> m.sample(4).shape
        torch.Size([4, 5, 2])
    """

    event_dims = 2
    input_names = ("x", "mask")

    def __init__(
        self, obs_dim: int, steps: int | None = None, name: str = "boosted_frmdn", **frmdn_kwargs
    ):
        if steps is not None and steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        super().__init__(name)
        with torch.random.fork_rng(devices=[]):  # fail here on bad kwargs, RNG untouched
            FRMDN(obs_dim, **frmdn_kwargs)
        self.obs_dim, self.steps = obs_dim, steps
        self.input_dim = frmdn_kwargs.get("input_dim", 0)
        self.frmdn_kwargs = dict(frmdn_kwargs)
        self.config = dict(obs_dim=obs_dim, steps=steps, name=name, **frmdn_kwargs)

    def new_component(self, index: int) -> FRMDN:
        return FRMDN(self.obs_dim, **self.frmdn_kwargs)

    def check_data(
        self, y: Tensor, x: Tensor | None = None, mask: Tensor | None = None
    ) -> tuple[Tensor, dict]:
        y, x, mask = check_sequences(y, x, mask, self.obs_dim, self.input_dim)
        return y, {k: v for k, v in (("x", x), ("mask", mask)) if v is not None}

    def log_prob(self, y: Tensor, x: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        """Exact log-density of each sequence (its unmasked steps), (N,)."""
        return super().log_prob(y, x=x, mask=mask)

    def component_log_probs(
        self, y: Tensor, x: Tensor | None = None, mask: Tensor | None = None
    ) -> Tensor:
        """``log p_c(y_i)`` of every sequence and component, (N, C)."""
        return super().component_log_probs(y, x=x, mask=mask)

    def model(self, y: Tensor, x: Tensor | None = None, mask: Tensor | None = None) -> None:
        """Pyro model: each sequence observed under the mixture (masked steps not scored)."""
        self._observe(y, {"x": x, "mask": mask})

    def guide(self, y: Tensor, x: Tensor | None = None, mask: Tensor | None = None) -> None:
        """Nothing is latent."""

    def default_event_shape(self) -> tuple:
        if self.steps is None:
            raise ValueError("give the sequence length: distribution((T, D)) or steps=T")
        return (self.steps, self.obs_dim)

    def sample_kwargs(self, event_shape: torch.Size) -> dict:
        return {"steps": event_shape[0]}

    def sample_component(self, component: nn.Module, index: Tensor, **kwargs) -> Tensor:
        x = kwargs.pop("x", None)
        return component.sample(len(index), x=None if x is None else x[index], **kwargs)

    def sample(
        self,
        n: int,
        steps: int | None = None,
        x: Tensor | None = None,
        return_components: bool = False,
    ):
        """``n`` sequences ``(n, steps, D)``, each from one component drawn by the weights.

        ``x`` ``(n, steps, X)``: the inputs of each sequence (needed when ``input_dim > 0``);
        sequence ``i`` is generated with ``x[i]`` by whichever component it drew. To sample
        sequences of different lengths, sample the longest and cut (the components are
        causal: a step never depends on later ones).
        """
        steps = steps or self.steps
        if steps is None:
            raise ValueError("give the sequence length: sample(n, steps=T) or steps=T at init")
        if self.input_dim:
            if x is None or tuple(x.shape) != (n, steps, self.input_dim):
                got = None if x is None else tuple(x.shape)
                raise ValueError(
                    f"the components take inputs: x must have shape "
                    f"{(n, steps, self.input_dim)}, got {got}"
                )
            check_finite("x", x)
        elif x is not None:
            raise ValueError("x was given but the components were built with input_dim=0")
        kwargs = {"steps": steps} if x is None else {"steps": steps, "x": x}
        return super().sample(n, return_components=return_components, **kwargs)


# -- the paper's VAE use: a boosted variational posterior --------------------------------------


class _ConditionalFlowComponent(nn.Module):
    """q_c(z | h): a diagonal Gaussian amortised from ``h``, then a conditional coupling flow."""

    def __init__(self, latent_dim, context_dim, num_layers, kind, hidden_dims, seed, min_scale):
        super().__init__()
        self.min_scale = min_scale
        self.base_net = nn.Linear(context_dim, 2 * latent_dim)
        self.flow = coupling_flow(
            latent_dim,
            num_layers,
            kind=kind,
            hidden_dims=hidden_dims,
            context_dim=context_dim,
            seed=seed,
        )

    def forward(self, context: Tensor) -> FlowTransformedDistribution:
        loc, raw = self.base_net(context).chunk(2, dim=-1)
        scale = nn.functional.softplus(raw) + self.min_scale
        return flow_mixture(dist.Normal(loc, scale).to_event(1), self.flow, context)


class BoostedGuideDistribution(dist.TorchDistribution):
    r"""q(z | h) = Σ_c w_c q_c(z | h) with ``rsample`` (one component per sample) and an exact
    ``log_prob`` (every component inverted at z). See :class:`BoostedGuideFlow`."""

    arg_constraints = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, components, log_weights: Tensor, validate_args=None):
        self.components, self.log_w = list(components), log_weights
        first = self.components[0]
        super().__init__(first.batch_shape, first.event_shape, validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(BoostedGuideDistribution, _instance)
        new.components = [d.expand(batch_shape) for d in self.components]
        new.log_w = self.log_w
        super(BoostedGuideDistribution, new).__init__(
            torch.Size(batch_shape), self.event_shape, validate_args=False
        )
        new._validate_args = self._validate_args
        return new

    def component_log_probs(self, value: Tensor) -> Tensor:
        """``log q_c(z | h)`` for every component, stacked last: (..., C)."""
        return torch.stack([d.log_prob(value) for d in self.components], dim=-1)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return torch.logsumexp(self.component_log_probs(value) + self.log_w, dim=-1)

    def rsample(self, sample_shape=torch.Size(), component: int | None = None) -> Tensor:
        """One reparameterised sample per (sample, batch) entry, from a component drawn by the
        weights (or from ``component``). Every component is run and one kept per entry: C times
        the cost of one flow, which keeps the batch whole for the conditional networks."""
        if component is not None:
            return self.components[component].rsample(sample_shape)
        z = torch.stack([d.rsample(sample_shape) for d in self.components], dim=-1)  # (..., D, C)
        shape = z.shape[:-2]
        k = torch.multinomial(self.log_w.exp(), math.prod(shape), replacement=True).reshape(shape)
        index = k[..., None, None].expand(*shape, z.shape[-2], 1)
        return z.gather(-1, index).squeeze(-1)

    def sample(self, sample_shape=torch.Size()) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)


class BoostedGuideFlow(nn.Module):
    r"""A boosted variational posterior for a VAE encoder (Giaquinto & Banerjee 2020, §4):

    .. math::
        q(z \mid x) = \sum_{c} w_c\, q_c(z \mid h(x)), \qquad
        q_c(z \mid h) = f_c\big(\mathcal N(\mu_c(h), \operatorname{diag} \sigma_c^2(h)); h\big)

    with analytically invertible components (conditional affine or spline couplings from
    :func:`~pyro_frmdn.flows.coupling_flow`), so that :math:`\log q(z \mid x)` is exact: every
    component is inverted at :math:`z` and the terms are log-sum-exp'ed. ``rsample`` draws one
    component per sample and reparameterises within it, as the paper approximates the mixture's
    expectation :math:`E_q[\cdot] = \sum_c w_c E_{q_c}[\cdot]` with one sampled component; the
    weights come from ``rho`` (a buffer, the boosting recursion of :class:`BoostedMixture`;
    default equal weights) and carry no gradient, so that estimator is unbiased for the flows'
    parameters. To boost, train one component at a time (:meth:`set_trainable`, and
    ``dist.rsample(component=c)`` to draw from it).

    Arguments:
        latent_dim: size of z (>= 2 for affine couplings).
        context_dim: size of the encoder features h(x).
        num_components, num_layers, kind, hidden_dims: the mixture and each flow.
        rho: the boosting steps (C,), ``rho[0] = 1``; default ``1 / (c + 1)`` (equal weights).
        min_scale: floor of the base scales.

    Example:
        >>> q = BoostedGuideFlow(latent_dim=2, context_dim=3, num_components=2, hidden_dims=[8])
        >>> d = q(torch.randn(5, 3))            # batch (5,), event (2,)
        >>> z = d.rsample()
        >>> z.shape, d.log_prob(z).shape
        (torch.Size([5, 2]), torch.Size([5]))
    """

    def __init__(
        self,
        latent_dim: int,
        context_dim: int,
        num_components: int = 2,
        num_layers: int = 2,
        kind: str = "affine",
        hidden_dims: list[int] | None = None,
        rho: Tensor | None = None,
        min_scale: float = 1e-3,
    ):
        super().__init__()
        if latent_dim < 1 or context_dim < 1 or num_components < 1 or num_layers < 1:
            raise ValueError(
                "need latent_dim, context_dim, num_components, num_layers >= 1; got "
                f"{latent_dim}, {context_dim}, {num_components}, {num_layers}"
            )
        self.latent_dim, self.context_dim = latent_dim, context_dim
        self.components = nn.ModuleList(
            _ConditionalFlowComponent(
                latent_dim, context_dim, num_layers, kind, hidden_dims, c, min_scale
            )
            for c in range(num_components)
        )
        if rho is None:
            rho = 1.0 / torch.arange(1, num_components + 1, dtype=torch.get_default_dtype())
        rho = torch.as_tensor(rho, dtype=torch.get_default_dtype())
        if rho.shape != (num_components,):
            raise ValueError(f"rho must have shape ({num_components},), got {tuple(rho.shape)}")
        _check_rho(rho)
        self.register_buffer("rho", rho.clone())

    def log_weights(self) -> Tensor:
        return log_weights_from_rho(self.rho)

    def set_trainable(self, index: int | None) -> None:
        """Unfreeze component ``index`` only (``None``: all of them, for joint training)."""
        for c, component in enumerate(self.components):
            component.requires_grad_(index is None or c == index)

    def forward(self, context: Tensor) -> BoostedGuideDistribution:
        """q(z | h) for encoder features ``context`` (..., context_dim): batch (...), event (D,)."""
        if context.shape[-1] != self.context_dim:
            raise ValueError(
                f"context has {context.shape[-1]} features, the guide was built for "
                f"{self.context_dim}"
            )
        return BoostedGuideDistribution([c(context) for c in self.components], self.log_weights())
