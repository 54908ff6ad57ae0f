r"""Image preprocessing for density models, and the exact conversion of an NLL to bits/dim.

A step of an image sequence (a row of a digit, a frame of a video) holds ``D`` integer pixels
:math:`x \in \{0, \dots, L-1\}^D` (``L = 256`` levels for 8-bit images). A density model needs
continuous values; the pipeline, with its Jacobians, is:

1. uniform dequantisation, :math:`v = (x + u) / L` with :math:`u \sim \mathcal U[0, 1)^D`, so that
   :math:`v \in [0, 1)^D`. The scale :math:`1/L` contributes :math:`\log|\partial v/\partial y|
   = -D \log L` per step, where :math:`y = x + u` is the dequantised pixel in :math:`[0, L)^D`.
2. optionally the logit transform :math:`z = \operatorname{logit}(\lambda + (1 - 2\lambda) v)`,
   which maps :math:`[0, 1)` to the real line (``λ`` keeps it finite at 0 and 1). Per pixel, with
   :math:`s = \sigma(z) = \lambda + (1 - 2\lambda) v`,

   .. math::
       \log\left|\frac{\partial z}{\partial v}\right| = \log(1 - 2\lambda) - \log s - \log(1 - s)
       = \log(1 - 2\lambda) + \operatorname{softplus}(z) + \operatorname{softplus}(-z).

The model scores the transformed step (:math:`v`, or :math:`z`) with a negative log-likelihood
:math:`\mathrm{NLL}_z` in nats. By the change of variables, the NLL of the dequantised pixels is

.. math::
    \mathrm{NLL}_y = \mathrm{NLL}_z - \sum_{i=1}^{D} \log\left|\frac{\partial z_i}{\partial v_i}
    \right| + D \log L, \qquad
    \text{bits/dim} = \frac{\mathbb E[\mathrm{NLL}_y]}{D \ln 2},

the number reported in the literature: by Jensen's inequality
:math:`-\log P(x) \le \mathbb E_u[-\log p_y(x + u)]`, so it bounds the code length of the
integer image. A model that is uniform on :math:`[0, 1)^D` scores exactly 8 bits/dim when
``L = 256``. An affine map :math:`z' = a z + b` after these adds :math:`\sum_i \log|a_i|` to
:math:`\mathrm{NLL}_{z'} - \mathrm{NLL}_z`: undo it before calling :func:`bits_per_dim`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "LOGIT_LAMBDA",
    "bits_per_dim",
    "dequantize",
    "dequantize_grid",
    "inverse_logit_transform",
    "logit_transform",
    "pixel_nll",
]

LOGIT_LAMBDA = 1e-6  # as for MNIST in MAF (Papamakarios et al. 2017); RealNVP used 0.05


def dequantize(
    x: Tensor,
    levels: int = 256,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    r"""Uniform dequantisation of integer pixels: :math:`v = (x + u) / L`, :math:`u \sim U[0, 1)`.

    Arguments:
        x: integer levels ``0 .. levels - 1`` (any shape; uint8 or integer-valued floats).
        levels: ``L``, the number of levels (256 for 8-bit images, 17 for the 8×8 digits).
        generator: for reproducible noise.
        dtype: of the result.

    Returns:
        ``v`` in ``[0, 1)``, the shape of ``x``.

    Example:
        >>> v = dequantize(torch.tensor([0, 255], dtype=torch.uint8))
        >>> bool(((v >= 0) & (v < 1)).all()), bool(v[1] >= 255 / 256)
        (True, True)
    """
    x = x.to(dtype)
    if bool((x < 0).any()) or bool((x > levels - 1).any()) or bool((x != x.round()).any()):
        raise ValueError(
            f"x must hold whole levels 0..{levels - 1}; got values in "
            f"[{float(x.min())}, {float(x.max())}]"
        )
    u = torch.rand(x.shape, generator=generator, dtype=dtype, device=x.device)
    return (x + u) / levels


def dequantize_grid(
    x: Tensor, step: float, generator: torch.Generator | None = None, tol: float = 1e-3
) -> Tensor:
    r"""Uniform dequantisation of values on a grid: :math:`y = x + \delta (u - \tfrac12)`.

    For data recorded on a lattice :math:`\delta \mathbb Z^D` (pen positions a tablet stores in
    whole units, and their offsets): each value is spread uniformly over its cell, so that a
    density model has a proper target. As for pixels, :math:`-\log P(x) \le \mathbb E_u[-\log
    p(y)] - D \log \delta` (Theis, van den Oord & Bethge 2016): the NLL of ``y`` plus
    :math:`D\log(1/\delta)` bounds the code length of the discrete values. Without it, a model
    can put unbounded density on the lattice points and its likelihood means nothing.

    Arguments:
        x: values that are whole multiples of ``step`` (any shape, float).
        step: :math:`\delta > 0`, the grid spacing in ``x``'s units.
        generator: for reproducible noise.
        tol: how far (as a fraction of ``step``) ``x`` may be from the grid, for rounding error.

    Returns:
        ``y``, the shape and dtype of ``x``, with ``|y - x| <= step / 2``.

    Example:
        >>> y = dequantize_grid(torch.tensor([0.0, 0.25, -0.5]), step=0.25)
        >>> bool(((y - torch.tensor([0.0, 0.25, -0.5])).abs() <= 0.125).all())
        True
    """
    if not step > 0:
        raise ValueError(f"step must be positive, got {step}")
    off = (x / step - (x / step).round()).abs()
    if not bool(torch.isfinite(x).all()) or bool((off > tol).any()):
        raise ValueError(
            f"x must hold finite multiples of step={step}; the worst value is "
            f"{float(off.nan_to_num(float('inf')).max()):.3g} steps off the grid"
        )
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return x + step * (u - 0.5)


def logit_transform(v: Tensor, lam: float = LOGIT_LAMBDA) -> Tensor:
    r""":math:`z = \operatorname{logit}(\lambda + (1 - 2\lambda) v)`: ``[0, 1]`` to the reals."""
    _check_lambda(lam)
    return torch.logit(lam + (1 - 2 * lam) * v)


def inverse_logit_transform(z: Tensor, lam: float = LOGIT_LAMBDA) -> Tensor:
    r"""Undo :func:`logit_transform`: :math:`v = (\sigma(z) - \lambda) / (1 - 2\lambda)`."""
    _check_lambda(lam)
    return (torch.sigmoid(z) - lam) / (1 - 2 * lam)


def _check_lambda(lam: float) -> None:
    if not 0 <= lam < 0.5:
        raise ValueError(f"the logit transform needs 0 <= lambda < 0.5, got {lam}")


def pixel_nll(
    nll_nats_per_step: Tensor | float,
    x_transformed: Tensor | None = None,
    pixels_per_step: int | None = None,
    logit_lambda: float | None = None,
    levels: int = 256,
) -> Tensor:
    r"""The NLL of a step in nats in the original pixel space :math:`[0, L)^D`, Jacobians counted.

    :math:`\mathrm{NLL}_y = \mathrm{NLL}_z - \sum_i \log|\partial z_i/\partial v_i| + D \log L`
    (see the module's docstring).

    Arguments:
        nll_nats_per_step: the model's NLL per step in nats, in its transformed space: a tensor
            (...) (one per step) or a number (a mean over the steps of ``x_transformed``).
        x_transformed: the steps the model scored, (..., D): ``v`` or, with ``logit_lambda``,
            ``z``. Needed only for the logit's Jacobian (and to read ``D``).
        pixels_per_step: ``D``; read from ``x_transformed`` when it is given.
        logit_lambda: the ``λ`` of :func:`logit_transform` if it was applied, else ``None``.
        levels: ``L`` of :func:`dequantize`.

    Returns:
        A float64 tensor broadcast from ``nll_nats_per_step`` and ``x_transformed.shape[:-1]``.
    """
    if x_transformed is not None:
        if pixels_per_step is not None and pixels_per_step != x_transformed.shape[-1]:
            raise ValueError(
                f"pixels_per_step={pixels_per_step} but x_transformed has "
                f"{x_transformed.shape[-1]} values per step"
            )
        pixels_per_step = x_transformed.shape[-1]
    if pixels_per_step is None or pixels_per_step < 1:
        raise ValueError("give x_transformed (..., D) or pixels_per_step = D >= 1")
    # float64: a few nats per pixel are a small difference of large numbers at D = 4096
    nll = torch.as_tensor(nll_nats_per_step).double()
    if x_transformed is not None:
        nll = nll.to(x_transformed.device)
    nll = nll + pixels_per_step * math.log(levels)  # the 1/L of the dequantisation
    if logit_lambda is None:
        return nll
    if x_transformed is None:
        raise ValueError("the logit's Jacobian needs the transformed data x_transformed")
    _check_lambda(logit_lambda)
    z = x_transformed.double()
    log_jacobian = math.log(1 - 2 * logit_lambda) + F.softplus(z) + F.softplus(-z)  # (..., D)
    return nll - log_jacobian.sum(-1)


def bits_per_dim(
    nll_nats_per_step: Tensor | float,
    x_transformed: Tensor | None = None,
    pixels_per_step: int | None = None,
    logit_lambda: float | None = None,
    levels: int = 256,
    mask: Tensor | None = None,
) -> float:
    """Bits per dimension in the original pixel space: the mean of :func:`pixel_nll` / (D ln 2).

    Arguments:
        nll_nats_per_step, x_transformed, pixels_per_step, logit_lambda, levels: as in
            :func:`pixel_nll`.
        mask: (...) bool, the steps to average over (``None``: all).

    Example:
        The uniform density on :math:`[0, 1)^D` (NLL 0 in ``v`` space) is 8 bits/dim:

        >>> bits_per_dim(0.0, pixels_per_step=784)
        8.0
    """
    nll = pixel_nll(nll_nats_per_step, x_transformed, pixels_per_step, logit_lambda, levels)
    d = pixels_per_step if x_transformed is None else x_transformed.shape[-1]
    if mask is not None:
        nll = nll.expand(mask.shape)[mask.bool()]
    return float(nll.mean()) / (d * math.log(2))
