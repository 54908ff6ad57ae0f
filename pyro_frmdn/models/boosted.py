r"""The base of gradient-boosted mixtures: :class:`BoostedMixture` and its components' contract.

Giaquinto & Banerjee, "Gradient Boosted Normalizing Flows", NeurIPS 2020 (arXiv 2002.11896): a
density is grown one component at a time,

.. math::
    G_c(x) = (1 - \rho_c)\, G_{c-1}(x) + \rho_c\, g_c(x), \qquad G_0 = g_0,

so that :math:`G_C = \sum_c w_c g_c` with :math:`w_c = \rho_c \prod_{j>c} (1 - \rho_j)`. This
module holds the mixture (its exact density, sampling, a Pyro program, checkpoints); the weights'
algebra and the mixture's distribution are in :mod:`pyro_frmdn.distributions.boosted`, the
boosting loop that trains it is :func:`pyro_frmdn.infer.fit_boosted`.

A component is any ``nn.Module`` with ``log_prob(data, **inputs) -> (N,)`` and
``sample(n, **kwargs)`` (:class:`BoostingComponent`): :class:`~pyro_frmdn.models.FlowComponent`
(a coupling flow over a standard normal, for :class:`~pyro_frmdn.models.BoostedFlow`) and
:class:`~pyro_frmdn.models.FRMDN` (whole sequences, with optional inputs ``x`` and a ``mask``;
``sample(n, steps=T, x=...)``, for :class:`~pyro_frmdn.models.BoostedFRMDN`) both are.
"""

from __future__ import annotations

import warnings
from typing import Protocol, runtime_checkable

import pyro
import torch
from torch import Tensor, nn

from ..distributions import BoostedMixtureDistribution, check_rho, log_weights_from_rho
from .base import PyroModel, model_classes
from .validation import check_count

__all__ = ["BoostedMixture", "BoostingComponent"]


@runtime_checkable
class BoostingComponent(Protocol):
    """What the boosting loop needs of a component (an ``nn.Module``).

    ``log_prob(data, **inputs)`` returns the log density of each example, shape ``(N,)`` (for
    sequences, of the whole sequence; ``inputs`` such as ``x`` and ``mask`` are those the mixture
    declares in ``input_names``); ``sample(n, **kwargs)`` returns ``n`` examples.
    """

    def log_prob(self, data: Tensor, **inputs) -> Tensor: ...

    def sample(self, num: int, **kwargs) -> Tensor: ...


class BoostedMixture(PyroModel):
    r"""A mixture grown by gradient boosting: the base of :class:`~pyro_frmdn.models.BoostedFlow`
    and :class:`~pyro_frmdn.models.BoostedFRMDN` (Giaquinto & Banerjee, NeurIPS 2020,
    arXiv 2002.11896).

    .. math::
        \log G_C(x) = \operatorname{logsumexp}_c \left[\log w_c + \log g_c(x)\right],
        \qquad w_c = \rho_c \prod_{j>c} (1 - \rho_j)

    ``rho`` is a buffer ``(C,)`` (fitted by :func:`~pyro_frmdn.infer.fit_boosted`, not by
    gradients of the model): ``rho[0] = 1`` and ``rho[c] ∈ [0, RHO_MAX]``, so the weights lie in
    [0, 1), sum to one, and :math:`w_0 > 0`. A new component starts with :math:`\rho_c = 0`: adding
    it leaves the density unchanged until its step is fitted. Components other than the one being
    trained are frozen (``requires_grad=False`` and eval mode): :meth:`set_trainable` picks the
    one, :meth:`freeze` freezes them all.

    Subclasses implement :meth:`new_component` and :meth:`check_data` and set ``config`` (the
    keyword arguments that rebuild the model, saved in checkpoints) and ``obs_dim``; those whose
    components take more than the examples (inputs, masks) name them in ``input_names``.
    """

    event_dims = 1
    input_names: tuple[str, ...] = ()

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
        check_rho(new_rho)
        self.components.append(component)
        self.rho = new_rho
        self.set_trainable(c)
        return component

    def set_rho(self, rho: Tensor) -> None:
        """Replace all steps at once, after checking that they give valid weights."""
        rho = torch.as_tensor(rho, dtype=self.rho.dtype, device=self.rho.device)
        if rho.shape != self.rho.shape:
            raise ValueError(f"rho must have shape {tuple(self.rho.shape)}, got {tuple(rho.shape)}")
        check_rho(rho)
        self.rho = rho.clone()

    def set_trainable(self, index: int | None) -> None:
        """Unfreeze component ``index`` (train mode) and freeze the others (eval mode).

        ``None`` unfreezes all of them (joint training); :meth:`freeze` freezes all of them.
        """
        if index is not None and not 0 <= index < self.num_components:
            raise ValueError(f"no component {index}: the mixture has {self.num_components}")
        for c, component in enumerate(self.components):
            trainable = index is None or c == index
            component.requires_grad_(trainable)
            component.train(trainable)

    def freeze(self) -> None:
        """Freeze every component: ``requires_grad=False`` and eval mode."""
        for component in self.components:
            component.requires_grad_(False)
            component.train(False)

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
    def sample(self, num: int, return_components: bool = False, **kwargs):
        """``num`` examples, each from a component drawn by the weights (one choice per example).

        ``return_components=True`` also returns the component index of each example, (num,).
        Extra keyword arguments go to the components' ``sample`` (:meth:`sample_component`).
        """
        num = check_count("num", num)
        k = torch.multinomial(self.weights(), num, replacement=True)  # (num,)
        out = None
        for c, component in enumerate(self.components):
            index = (k == c).nonzero().flatten()
            if len(index):
                drawn = self.sample_component(component, index, **kwargs)
                if out is None:
                    out = drawn.new_empty(num, *drawn.shape[1:])
                out[index] = drawn
        return (out, k) if return_components else out

    def distribution(
        self, event_shape: tuple | None = None, **inputs
    ) -> BoostedMixtureDistribution:
        """The mixture as a Pyro distribution (batch ``()``, event ``event_shape``).

        Usable as ``pyro.sample("y", m.distribution(), obs=y)`` under a ``pyro.plate``. With
        ``inputs`` (per-example tensors such as ``x`` and ``mask`` of
        :class:`~pyro_frmdn.models.BoostedFRMDN`) the
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

    def payload(self) -> dict:
        """What :meth:`from_payload` needs: class, config, component count, state dict."""
        return {**super().payload(), "num_components": self.num_components}

    @classmethod
    def from_payload(cls, payload: dict) -> BoostedMixture:
        """Rebuild a mixture from :meth:`payload`'s dict, all components frozen.

        Files are written by :meth:`save` (or :func:`~pyro_frmdn.infer.fit_boosted`'s
        checkpoints) and read by :func:`~pyro_frmdn.load` (atomic, ``weights_only=True``).
        """
        name = payload.get("model_class")
        target = model_classes().get(name)
        if target is None or not issubclass(target, cls):
            raise ValueError(f"the checkpoint holds a {name}, not a {cls.__name__}")
        model = target.from_config(payload["config"])
        model.to(payload["model"]["rho"].dtype)  # components follow the dtype of rho
        for _ in range(payload["num_components"]):
            model.add_component()
        model.load_state_dict(payload["model"])
        model.freeze()
        return model
