r"""Data transforms between the user's units and the model's: fitted on the training split only,
saved with the model, undone on samples.

A transform maps a step :math:`y_t \in \mathbb R^D` in the user's units to :math:`z_t = f(y_t)`,
the space the model is fitted in. By the change of variables, the NLL of a step in the user's
units is

.. math::
    -\log p_y(y_t) = -\log p_z(f(y_t)) - \log\left|\det \frac{\partial f}{\partial y_t}\right|,

so an NLL per step in the user's units is the model's NLL per step minus the mean of
:meth:`~DataTransform.log_abs_det_jacobian` over the scored steps
(:meth:`~DataTransform.mean_log_abs_det_jacobian`). For integer data, :class:`UniformDequantize`
makes :math:`y_t = x_t + u_t` (:math:`u_t \sim \mathcal U[0, 1)^D`) and its NLL bounds the code
length of :math:`x_t` in nats (see :mod:`~pyro_frmdn.data.preprocessing`).

A transform's :meth:`~DataTransform.state_dict` holds plain values and tensors only, so that
``model.save(path, transform=t.state_dict())`` stores it and :func:`transform_from_state`
rebuilds it from ``pf.load(path, with_transform=True)``.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor

from .preprocessing import (
    LOGIT_LAMBDA,
    dequantize,
    dequantize_grid,
    inverse_logit_transform,
    logit_transform,
    pixel_nll,
)

__all__ = [
    "Compose",
    "DataTransform",
    "LogitTransform",
    "Standardize",
    "UniformDequantize",
    "transform_from_state",
]


UNFITTED = "Standardize is not fitted: call fit(y, mask) on the training split first"


class DataTransform:
    """A bijection (up to dequantisation) of steps ``(..., D)``, fitted on training data."""

    kind: str  # the name in state_dict()["kind"]

    def fit(self, y: Tensor, mask: Tensor | None = None) -> DataTransform:
        """Fit to the training steps ``y`` (N, T, D) where ``mask`` (N, T) is true; ``self``."""
        return self

    def forward(self, y: Tensor) -> Tensor:
        """:math:`z = f(y)`, the shape of ``y`` (integers become the default float dtype)."""
        raise NotImplementedError

    def inverse(self, z: Tensor) -> Tensor:
        """:math:`y = f^{-1}(z)`: model-space values (samples) back in the user's units."""
        raise NotImplementedError

    def log_abs_det_jacobian(self, y: Tensor) -> Tensor:
        r""":math:`\log|\det \partial f / \partial y|` per step, ``y`` (..., D) -> (...)."""
        raise NotImplementedError

    def forward_and_log_abs_det_jacobian(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """``forward(y)`` and its log-Jacobian per step, from the same noise (dequantisation)."""
        return self.forward(y), self.log_abs_det_jacobian(y)

    def mean_log_abs_det_jacobian(self, y: Tensor, mask: Tensor | None = None) -> float:
        """The mean log-Jacobian over the steps where ``mask`` (N, T) is true (all if None):
        subtract it from a model's NLL per step to get the NLL per step in the user's units."""
        ld = self.log_abs_det_jacobian(_float(y)).double()
        return float(ld.mean() if mask is None else ld[mask.bool()].mean())

    def state_dict(self) -> dict[str, Any]:
        """Plain values and tensors that :func:`transform_from_state` rebuilds ``self`` from:
        ``kind`` and the constructor's arguments."""
        names = inspect.signature(type(self)).parameters
        return {"kind": self.kind} | {k: getattr(self, k) for k in names}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> DataTransform:
        """Rebuild from :meth:`state_dict` (which holds every argument of the constructor)."""
        names = set(inspect.signature(cls).parameters)
        if set(state) != names | {"kind"}:
            raise ValueError(f"a {cls.kind} state holds {sorted(names)}, got {sorted(state)}")
        return cls(**{k: state[k] for k in names})

    def __call__(self, y: Tensor) -> Tensor:
        return self.forward(y)


class Standardize(DataTransform):
    r""":math:`z = (y - m) / s`, with the mean :math:`m` and standard deviation :math:`s` of
    each feature over the observed training steps (the default transform).

    A constant feature gets :math:`s = 1`. The log-Jacobian is :math:`-\sum_d \log s_d`.

    Arguments:
        loc, scale: ``m`` and ``s`` (D,) when known; otherwise call :meth:`fit`.

    Example:
        >>> y = torch.tensor([[[1.0, 10.0], [3.0, 30.0]]])
        >>> t = Standardize().fit(y)
        >>> t(y).tolist(), t.inverse(t(y)).tolist() == y.tolist()
        ([[[-1.0, -1.0], [1.0, 1.0]]], True)
    """

    kind = "standardize"

    def __init__(self, loc: Tensor | None = None, scale: Tensor | None = None):
        self.loc = None if loc is None else torch.as_tensor(loc, dtype=torch.float64)
        self.scale = None if scale is None else torch.as_tensor(scale, dtype=torch.float64)
        if (loc is None) != (scale is None):
            raise ValueError("Standardize takes loc and scale together, or neither (then fit)")
        if self.scale is not None and not bool((self.scale > 0).all()):
            raise ValueError(f"Standardize needs scale > 0, got {self.scale.tolist()}")

    def fit(self, y: Tensor, mask: Tensor | None = None) -> Standardize:
        steps = _observed(y, mask).double()
        if not bool(torch.isfinite(steps).all()):
            raise ValueError("Standardize.fit: the observed steps of y hold NaN or Inf")
        self.loc, std = steps.mean(0), steps.std(0, correction=0)
        self.scale = torch.where(std > 0, std, torch.ones_like(std))
        return self

    def _params(self, y: Tensor) -> tuple[Tensor, Tensor]:
        if self.loc is None:
            raise ValueError(UNFITTED)
        if y.shape[-1] != len(self.loc):
            raise ValueError(
                f"y has {y.shape[-1]} features; Standardize was fitted on {len(self.loc)}"
            )
        return self.loc.to(y.device, y.dtype), self.scale.to(y.device, y.dtype)

    def forward(self, y: Tensor) -> Tensor:
        y = _float(y)
        loc, scale = self._params(y)
        return (y - loc) / scale

    def inverse(self, z: Tensor) -> Tensor:
        loc, scale = self._params(z)
        return z * scale + loc

    def log_abs_det_jacobian(self, y: Tensor) -> Tensor:
        y = _float(y)
        return (-self._params(y)[1].log().sum()).expand(y.shape[:-1])

    def state_dict(self) -> dict[str, Any]:
        if self.loc is None:
            raise ValueError(UNFITTED)
        return super().state_dict()


class LogitTransform(DataTransform):
    r""":math:`z = \operatorname{logit}(\lambda + (1 - 2\lambda) y)` for data in ``[0, 1]``:
    :func:`~pyro_frmdn.data.preprocessing.logit_transform`, its inverse and its Jacobian.

    Arguments:
        lam: the squeeze :math:`\lambda` (``0 <= lam < 0.5``) that keeps 0 and 1 finite.

    Example:
        >>> t = LogitTransform(lam=0.05)
        >>> y = torch.tensor([[0.0, 0.5, 1.0]])
        >>> torch.allclose(t.inverse(t(y)), y)
        True
    """

    kind = "logit"

    def __init__(self, lam: float = LOGIT_LAMBDA):
        logit_transform(torch.zeros(()), lam)  # refuses a lambda out of range
        self.lam = float(lam)

    def forward(self, y: Tensor) -> Tensor:
        y = _float(y)
        if bool(((y < 0) | (y > 1)).any()):
            raise ValueError(
                f"LogitTransform needs data in [0, 1]; got values in "
                f"[{float(y.min())}, {float(y.max())}]"
            )
        return logit_transform(y, self.lam)

    def inverse(self, z: Tensor) -> Tensor:
        return inverse_logit_transform(z, self.lam)

    def log_abs_det_jacobian(self, y: Tensor) -> Tensor:
        z = self.forward(y)
        # pixel_nll with NLL 0 and one level is minus this Jacobian (see its formula)
        return -pixel_nll(0.0, z, logit_lambda=self.lam, levels=1).to(z.dtype)


class UniformDequantize(DataTransform):
    r"""Uniform dequantisation of integer data: :math:`z = (x + u) / L`, :math:`u \sim U[0, 1)`.

    With ``levels=None`` (:math:`L = 1`) any whole numbers are accepted
    (:func:`~pyro_frmdn.data.preprocessing.dequantize_grid`); with ``levels`` the data must be
    ``0 .. levels - 1`` and land in ``[0, 1)``
    (:func:`~pyro_frmdn.data.preprocessing.dequantize`), ready for :class:`LogitTransform`.
    The log-Jacobian is :math:`-D \log L`; the inverse is :math:`\lfloor L z \rfloor`, so that
    samples come back as integers (``inverse(forward(x)) == x`` up to rounding at the edge of a
    level, which float32 reaches for large integers after further transforms).

    Arguments:
        levels: ``L``, or ``None`` to add the noise only.

    Example:
        >>> t = UniformDequantize(levels=4)
        >>> x = torch.tensor([[0, 3], [1, 2]])
        >>> z = t(x)
        >>> bool(((z >= 0) & (z < 1)).all()), t.inverse(z).tolist()
        (True, [[0.0, 3.0], [1.0, 2.0]])
    """

    kind = "dequantize"

    def __init__(self, levels: int | None = None):
        if levels is not None and not (isinstance(levels, int) and levels >= 2):
            raise ValueError(f"levels must be None or an integer >= 2, got {levels!r}")
        self.levels = levels

    def fit(self, y: Tensor, mask: Tensor | None = None) -> UniformDequantize:
        self.forward(_observed(y, mask))  # refuses data that are not whole levels
        return self

    def forward(self, y: Tensor) -> Tensor:
        y = _float(y)
        if self.levels is None:
            return dequantize_grid(y, 1.0, tol=0.0) + 0.5  # x + u, u ~ U[-1/2, 1/2) + 1/2
        return dequantize(y, self.levels, dtype=y.dtype)

    def inverse(self, z: Tensor) -> Tensor:
        levels = self.levels or 1
        x = torch.floor(z * levels)
        return x if self.levels is None else x.clamp(0, levels - 1)

    def log_abs_det_jacobian(self, y: Tensor) -> Tensor:
        y = _float(y)
        log_levels = pixel_nll(0.0, pixels_per_step=y.shape[-1], levels=self.levels or 1)
        return (-log_levels).to(y.dtype).expand(y.shape[:-1])  # -D log L


class Compose(DataTransform):
    """Transforms applied in order (``forward``) and undone in reverse (``inverse``); each is
    fitted on the output of those before it.

    Example:
        >>> t = Compose([UniformDequantize(levels=256), LogitTransform(), Standardize()])
        >>> x = torch.randint(0, 256, (8, 5, 3), generator=torch.Generator().manual_seed(0))
        >>> bool((t.fit(x.double()).inverse(t(x.double())) == x).all())
        True
    """

    kind = "compose"

    def __init__(self, transforms: list[DataTransform]):
        self.transforms = list(transforms)

    def fit(self, y: Tensor, mask: Tensor | None = None) -> Compose:
        for t in self.transforms:
            y = t.fit(y, mask).forward(y)
        return self

    def forward(self, y: Tensor) -> Tensor:
        return self.forward_and_log_abs_det_jacobian(y)[0]

    def inverse(self, z: Tensor) -> Tensor:
        for t in reversed(self.transforms):
            z = t.inverse(z)
        return z

    def log_abs_det_jacobian(self, y: Tensor) -> Tensor:
        return self.forward_and_log_abs_det_jacobian(y)[1]

    def forward_and_log_abs_det_jacobian(self, y: Tensor) -> tuple[Tensor, Tensor]:
        y = _float(y)
        total = y.new_zeros(y.shape[:-1])
        for t in self.transforms:
            y, ld = t.forward_and_log_abs_det_jacobian(y)
            total = total + ld
        return y, total

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "transforms": [t.state_dict() for t in self.transforms]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Compose:
        return cls([transform_from_state(s) for s in state["transforms"]])


def transform_from_state(state: dict[str, Any]) -> DataTransform:
    """Rebuild any transform of this module from its :meth:`~DataTransform.state_dict`.

    Example:
        >>> t = Standardize().fit(torch.randn(4, 6, 2))
        >>> u = transform_from_state(t.state_dict())
        >>> torch.equal(u.loc, t.loc) and torch.equal(u.scale, t.scale)
        True
    """
    classes = {c.kind: c for c in (Standardize, LogitTransform, UniformDequantize, Compose)}
    kind = state.get("kind") if isinstance(state, dict) else None
    if kind not in classes:
        raise ValueError(
            f"not a data transform state: expected a dict with kind in {sorted(classes)}, "
            f"got {kind if isinstance(state, dict) else type(state).__name__!r}"
        )
    try:
        return classes[kind].from_state(state)
    except (TypeError, KeyError) as err:
        raise ValueError(f"the {kind} transform state {sorted(state)} is damaged ({err})") from err


def _float(y: Tensor) -> Tensor:
    """``y`` as a floating tensor (integers and bools as the default float dtype)."""
    y = torch.as_tensor(y)
    return y if y.is_floating_point() else y.to(torch.get_default_dtype())


def _observed(y: Tensor, mask: Tensor | None) -> Tensor:
    """The steps (M, D) of ``y`` (..., D) where ``mask`` (...) is true."""
    y = _float(y)
    steps = y.reshape(-1, y.shape[-1]) if mask is None else y[torch.as_tensor(mask).bool()]
    if len(steps) == 0:
        raise ValueError("no observed step to fit the transform on")
    return steps
