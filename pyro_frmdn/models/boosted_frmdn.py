"""Gradient-boosted mixtures of whole-sequence models: :class:`BoostedFRMDN`."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .boosted import BoostedMixture
from .frmdn import FRMDN
from .validation import as_real, as_tensor, check_count, check_sequences

__all__ = ["BoostedFRMDN"]


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
            probe = FRMDN(obs_dim, **frmdn_kwargs)
        # the flow width is stored: a config without one is from before widths were stored
        frmdn_kwargs.setdefault("flow_hidden_dims", probe.config["flow_hidden_dims"])
        self.obs_dim, self.steps = obs_dim, steps
        self.input_dim = frmdn_kwargs.get("input_dim", 0)
        self.frmdn_kwargs = dict(frmdn_kwargs)
        self.config = dict(obs_dim=obs_dim, steps=steps, name=name, **frmdn_kwargs)

    @classmethod
    def upgrade_config(cls, config: dict) -> dict:
        """``config`` with renamed keys, and the components' flow width that a config saved
        without one meant (:meth:`FRMDN.upgrade_config`: the uncapped ``max(32, 2 D)``)."""
        config = super().upgrade_config(config)
        if config.get("flow_hidden_dims") is None and "obs_dim" in config:
            component = {k: v for k, v in config.items() if k not in ("steps", "name")}
            config["flow_hidden_dims"] = FRMDN.upgrade_config(
                {**component, "flow_hidden_dims": None}
            )["flow_hidden_dims"]
        return config

    def new_component(self, index: int) -> FRMDN:
        return FRMDN(self.obs_dim, **self.frmdn_kwargs)

    def check_data(
        self, y: Tensor, x: Tensor | None = None, mask: Tensor | None = None
    ) -> tuple[Tensor, dict]:
        dtype, device = self.rho.dtype, self.rho.device
        y, x, mask = check_sequences(y, x, mask, self.obs_dim, self.input_dim, dtype, device)
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
        num: int,
        steps: int | None = None,
        x: Tensor | None = None,
        return_components: bool = False,
    ):
        """``num`` sequences ``(num, steps, D)``, each from one component drawn by the weights.

        ``x`` ``(num, steps, X)``: the inputs of each sequence (needed when ``input_dim > 0``);
        sequence ``i`` is generated with ``x[i]`` by whichever component it drew. To sample
        sequences of different lengths, sample the longest and cut (the components are
        causal: a step never depends on later ones).
        """
        num = check_count("num", num)
        if steps is None:
            steps = self.steps
            if steps is None:
                raise ValueError(
                    "give the sequence length: sample(num, steps=T) or steps=T at init"
                )
        steps = check_count("steps", steps)
        if self.input_dim:
            x = None if x is None else as_tensor("x", x, self.rho.device)
            if x is None or tuple(x.shape) != (num, steps, self.input_dim):
                got = None if x is None else tuple(x.shape)
                raise ValueError(
                    f"the components take inputs: x must have shape "
                    f"{(num, steps, self.input_dim)}, got {got}"
                )
            x = as_real("x", x, self.rho.dtype)
        elif x is not None:
            raise ValueError("x was given but the components were built with input_dim=0")
        kwargs = {"steps": steps} if x is None else {"steps": steps, "x": x}
        return super().sample(num, return_components=return_components, **kwargs)
