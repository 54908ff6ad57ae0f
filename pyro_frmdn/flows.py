"""Builders of normalizing-flow stacks that are cheap to run in both directions.

FRMDN scores data (data → base) during training and samples (base → data) at generation time, so
every stack built here is analytically invertible with a tractable log-Jacobian both ways: affine
or rational-quadratic spline couplings, interleaved with fixed permutations or learned Householder
reflections, optionally with batch normalisation. With ``context_dim > 0`` the couplings (and the
Householder reflections) are conditional on a context vector, e.g. the RNN state of FRMDN.
"""

from __future__ import annotations

import math
from functools import partial

import pyro.distributions.transforms as PT
import torch
from pyro.distributions import constraints
from pyro.distributions.conditional import ConditionalTransformModule
from pyro.distributions.torch_transform import TransformModule
from pyro.distributions.transforms.utils import clamp_preserve_gradients
from pyro.nn import ConditionalDenseNN, DenseNN
from torch import Tensor, nn
from torch.nn import functional as F

from .coupling_kernel import _AffineInverse
from .deprecation import refuse_unknown, renamed
from .distributions.float32 import without_autocast

__all__ = [
    "FLOW_KINDS",
    "INITS",
    "MIXINGS",
    "PRECISIONS",
    "AffineCoupling",
    "ConditionalSplineCoupling",
    "Permutation",
    "coupling_flow",
    "default_hidden_dims",
    "identity_start",
    "uncapped_hidden_dims",
]

FLOW_KINDS = ("affine", "spline")
"""The coupling layers :func:`coupling_flow` builds: affine or rational-quadratic spline."""
PRECISIONS = (None, "bfloat16")
"""What the affine couplings' networks may compute in: the data's dtype, or bfloat16."""
INITS = ("random", "identity")
"""How :func:`coupling_flow` starts its couplings: as drawn, or as the identity map."""
MIXINGS = ("permute", "householder", "none")
"""What :func:`coupling_flow` puts between couplings: a fixed permutation, a learned
Householder reflection, or nothing."""


def default_hidden_dims(dim: int) -> list[int]:
    """The hidden sizes of a coupling network when none are given: ``[min(max(32, 2 * dim), 128)]``.

    Twice the event size, at least 32 and at most 128, so that a flow's parameters grow linearly
    in D: a coupling holds about ``1.5 * width * D`` weights. (Earlier releases had no cap,
    :func:`uncapped_hidden_dims`: parameters quadratic in D, 201M in the four couplings of a
    64 x 64-frame FRMDN, D = 4096; the widths agree up to D = 64.) See ``docs/performance.md``
    for the measurements behind the cap.

    Example:
        >>> default_hidden_dims(2), default_hidden_dims(40), default_hidden_dims(4096)
        ([32], [80], [128])
    """
    return [min(max(32, 2 * dim), 128)]


def uncapped_hidden_dims(dim: int) -> list[int]:
    """The default of earlier releases, ``[max(32, 2 * dim)]``: what ``hidden_dims=None`` meant
    in the configs they saved, for models to rebuild those (see ``FRMDN.upgrade_config``)."""
    return [max(32, 2 * dim)]


class Permutation(TransformModule):
    """A fixed permutation of the last dim, stored as a buffer so that it follows ``.to(device)``.

    Pyro's :class:`~pyro.distributions.transforms.Permute` is not an ``nn.Module``: its index
    tensor stays on the device it was made on.
    """

    bijective = True
    volume_preserving = True
    domain = constraints.real_vector
    codomain = constraints.real_vector

    def __init__(self, permutation: Tensor):
        super().__init__(cache_size=1)
        self.register_buffer("permutation", permutation.long())
        self.register_buffer("inverse_permutation", torch.argsort(permutation).long())

    def _call(self, x: Tensor) -> Tensor:
        return _Select.apply(x, self.permutation, self.inverse_permutation)

    def _inverse(self, y: Tensor) -> Tensor:
        return _Select.apply(y, self.inverse_permutation, self.permutation)

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return x.new_zeros(x.shape[:-1])


class _Select(torch.autograd.Function):
    """``x.index_select(-1, index)`` for a permutation ``index``, on (N, D) rows, whose gradient is
    the same selection by the inverse permutation (autograd's would be a scatter-add)."""

    @staticmethod
    def forward(ctx, x: Tensor, index: Tensor, inverse: Tensor) -> Tensor:
        ctx.save_for_backward(index, inverse)
        # on (N, D) rows: 1.5x faster than a gather here, 3x faster than on (B, T, D)
        return x.reshape(-1, x.shape[-1]).index_select(-1, index).view(x.shape)

    @staticmethod
    def backward(ctx, grad: Tensor):
        index, inverse = ctx.saved_tensors
        return _Select.apply(grad, inverse, index), None, None


class AffineCoupling(PT.AffineCoupling):
    r"""Pyro's :class:`~pyro.distributions.transforms.AffineCoupling` (Dinh et al. 2017, RealNVP)
    with the same parameters and values, whose inverse, the direction that scores data, runs in a
    few fused passes: :math:`x = [y_1, (y_2 - \mu(y_1)) e^{-s(y_1)}]` with :math:`s` the clamped
    log-scale, the network's layers included, and a backward pass written by hand (no zero-filled
    slices to add up). With the permutations' gather, the four couplings of an FRMDN at D = 64
    went from 44 to 29-35 ms forward and backward (``benchmarks/results/training/``).

    Gradients pass the clamp of the log-scale unchanged, as Pyro's do.

    ``precision="bfloat16"`` runs the network (inputs, weights, products) in bfloat16, in both
    directions alike, and everything else (the affine map, the log-determinant, the
    gradients' sums) in the data's dtype: mixed precision for the matrix products, which CPUs
    with AMX or AVX512-BF16 and GPUs with bfloat16 tensor cores run several times faster. The
    coupling stays an exact bijection with an exact log-determinant (both directions read the
    same rounded network), so the density is still a density: of a network rounded to about
    three significant digits. CPUs without bfloat16 units emulate it, slower than float32.

    Example:
        >>> from pyro.nn import DenseNN
        >>> t = AffineCoupling(2, DenseNN(2, [8], [2, 2]))
        >>> y = torch.randn(5, 4)
        >>> torch.allclose(t(t.inv(y)), y, atol=1e-6)
        True
    """

    def __init__(self, *args, precision: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._cached_logdet = None
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if precision and not self._fused():
            raise ValueError(
                "precision='bfloat16' needs a DenseNN with ReLUs on the last dim (what "
                "coupling_flow builds)"
            )
        self.precision = precision
        self._low = getattr(torch, precision) if precision else None

    def _fused(self) -> bool:
        net = self.nn
        return self.dim == -1 and type(net) is DenseNN and type(net.f) is nn.ReLU

    def _conditioner(self, x1: Tensor) -> tuple[Tensor, Tensor]:
        """The network's mean and clamped log-scale at ``x1``, in ``precision`` (autograd)."""
        h, low = x1.to(self._low), self._low
        layers = self.nn.layers
        for layer in layers[:-1]:
            h = F.linear(h, layer.weight.to(low), layer.bias.to(low)).relu()
        out = F.linear(h, layers[-1].weight.to(low), layers[-1].bias.to(low)).to(x1.dtype)
        mean, log_scale = out.split(out.shape[-1] // 2, -1)
        return mean, clamp_preserve_gradients(
            log_scale, self.log_scale_min_clip, self.log_scale_max_clip
        )

    @without_autocast  # both directions compute the same network, autocast or not
    def _call(self, x: Tensor) -> Tensor:
        self._cached_logdet = None
        if not self.precision:
            return super()._call(x)
        x1, x2 = x[..., : self.split_dim], x[..., self.split_dim :]
        mean, log_scale = self._conditioner(x1)
        self._cached_log_scale = log_scale
        return torch.cat([x1, torch.exp(log_scale) * x2 + mean], -1)

    def _inverse(self, y: Tensor) -> Tensor:
        if not self._fused():
            self._cached_logdet = None
            return super()._inverse(y)
        weights = [p for layer in self.nn.layers for p in (layer.weight, layer.bias)]
        low, high = self.log_scale_min_clip, self.log_scale_max_clip
        x, self._cached_logdet = _AffineInverse.apply(
            y, self.split_dim, low, high, self._low, *weights
        )
        self._cached_log_scale = None
        return x

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        x_old, y_old = self._cached_x_y
        logdet = getattr(self, "_cached_logdet", None)
        if logdet is not None and x is x_old and y is y_old:
            return logdet
        if self.precision and not (x is x_old and y is y_old):  # read the rounded network
            return self._conditioner(x[..., : self.split_dim])[1].sum(-1)
        return super().log_abs_det_jacobian(x, y)


class ConditionalSplineCoupling(ConditionalTransformModule):
    """A rational-quadratic spline coupling whose upper half is conditioned on a context.

    The lower ``split_dim`` coordinates pass through an unconditional elementwise spline; the
    others through a spline whose knots come from a network of the lower coordinates and the
    context (Durkan et al. 2019, "Neural Spline Flows"). Pyro offers only the unconditional
    :class:`~pyro.distributions.transforms.SplineCoupling`; this is its conditional twin.
    """

    def __init__(self, input_dim, context_dim, split_dim, hidden_dims, count_bins=8, bound=3.0):
        super().__init__()
        self.input_dim, self.split_dim = input_dim, split_dim
        self.count_bins, self.bound = count_bins, bound
        n = input_dim - split_dim
        param_dims = [n * count_bins, n * count_bins, n * (count_bins - 1), n * count_bins]
        self.nn = ConditionalDenseNN(split_dim, context_dim, hidden_dims, param_dims)
        self.lower_spline = PT.Spline(split_dim, count_bins, bound)

    def condition(self, context: Tensor) -> PT.SplineCoupling:
        t = PT.SplineCoupling(
            self.input_dim,
            self.split_dim,
            partial(self.nn, context=context),
            self.count_bins,
            self.bound,
        )
        t.lower_spline = self.lower_spline
        return t


def _coupling(kind, dim, context_dim, hidden_dims, count_bins, bound, precision=None):
    if dim == 1:
        if kind == "affine":
            raise ValueError(
                "an affine coupling needs dim >= 2 (nothing to condition on in 1-D): use "
                "flow='spline', which becomes an elementwise spline for dim = 1"
            )
        if context_dim:
            return PT.conditional_spline(1, context_dim, hidden_dims, count_bins, bound)
        return PT.Spline(1, count_bins, bound)
    split = dim // 2
    if kind == "affine":
        if context_dim:
            return PT.conditional_affine_coupling(dim, context_dim, hidden_dims, split)
        net = DenseNN(split, hidden_dims, [dim - split, dim - split])
        return AffineCoupling(split, net, precision=precision)
    if context_dim:
        return ConditionalSplineCoupling(dim, context_dim, split, hidden_dims, count_bins, bound)
    n = dim - split
    param_dims = [n * count_bins, n * count_bins, n * (count_bins - 1), n * count_bins]
    return PT.SplineCoupling(dim, split, DenseNN(split, hidden_dims, param_dims), count_bins, bound)


# softplus of this plus Pyro's minimum derivative (1e-3) is 1: a spline's slope at a knot
_UNIT_SLOPE = math.log(math.expm1(1.0 - 1e-3))


@torch.no_grad()
def identity_start(layer: nn.Module) -> nn.Module:
    """Set an unconditional coupling (affine or spline) or an elementwise spline to the identity
    map, in place, and return it: an affine coupling's shift and log-scale 0, a spline's bins
    equal and its slope 1 at every inner knot, the coupling network's last layer zeroed so that
    this holds for every input. Pyro fixes a spline's slope at the interval's two ends to 0.999,
    so its first and last bins bend by that much (at most 1e-3 nats of log-determinant per
    coordinate, under 2e-4 of the bin's width in value); inside them it is exact. Starting a
    flow at its base distribution, where a randomly drawn spline can start it far from any data,
    is what ``init="identity"`` of :func:`coupling_flow` does."""
    if isinstance(layer, PT.SplineCoupling):
        identity_start(layer.lower_spline)
        last = layer.upper_spline.nn.layers[-1]
        last.weight.zero_()
        last.bias.zero_()
        n, k = layer.upper_spline.input_dim, layer.upper_spline.count_bins
        last.bias[2 * n * k : 2 * n * k + n * (k - 1)] = _UNIT_SLOPE  # widths, heights, slopes, λ
    elif isinstance(layer, PT.Spline):
        for p in (layer.unnormalized_widths, layer.unnormalized_heights):
            p.zero_()
        layer.unnormalized_derivatives.fill_(_UNIT_SLOPE)
        if layer.order == "linear":
            layer.unnormalized_lambdas.zero_()
    elif isinstance(layer, PT.AffineCoupling):
        last = layer.nn.layers[-1]
        last.weight.zero_()
        last.bias.zero_()
    else:
        raise TypeError(f"identity_start takes an unconditional coupling or spline, got {layer}")
    return layer


def coupling_flow(
    dim: int,
    flow_layers: int | None = None,
    flow: str = "affine",
    hidden_dims: list[int] | None = None,
    mixing: str = "permute",
    batchnorm: bool = False,
    context_dim: int = 0,
    count_bins: int = 8,
    bound: float = 3.0,
    seed: int = 0,
    precision: str | None = None,
    init: str = "random",
    **deprecated,
) -> nn.ModuleList:
    """A stack of coupling layers from the base space to the data space.

    Each layer is a coupling (``flow="affine"``, RealNVP, Dinh et al. 2017; or ``"spline"``,
    rational-quadratic, Durkan et al. 2019), followed by a mixing of coordinates so that every
    coordinate is transformed: a fixed random permutation (``mixing="permute"``, seeded), learned
    Householder reflections (``"householder"``, conditional when ``context_dim > 0``) or nothing,
    and optionally a :class:`~pyro.distributions.transforms.BatchNorm` (in training mode Pyro's
    batch norm takes values of shape ``(N, D)`` only: flatten sequences first). For ``dim = 1``, a
    layer is an elementwise spline. Splines are the identity outside ``[-bound, bound]``:
    standardise the data or raise ``bound``.

    Arguments:
        dim: event size D.
        flow_layers: number of couplings; 0 gives an empty stack. (``num_layers`` before 0.2.)
        flow: the kind of coupling, ``"affine"`` or ``"spline"``. (``kind`` before 0.2.)
        hidden_dims: hidden sizes of each coupling network; default
            :func:`default_hidden_dims` (twice D, within [32, 128]; Pyro's default for splines,
            ``10 * dim``, is far too large for D = 64 and up).
        mixing: ``"permute"``, ``"householder"`` or ``"none"``.
        batchnorm: add a batch-norm transform after each layer.
        context_dim: size of the context vector; 0 for an unconditional flow.
        count_bins, bound: spline resolution and the half-width of its interval.
        seed: seed of the random permutations.
        precision: ``None`` (the data's dtype) or ``"bfloat16"``: the affine couplings'
            networks in bfloat16 (mixed precision, :class:`AffineCoupling`); affine,
            unconditional couplings only.
        init: ``"random"`` (default): each coupling as its module draws it (for Pyro's splines
            a random spline); ``"identity"``: every coupling starts as the identity map (its
            network's last layer zero, the spline's slope 1 at every inner knot; the hidden
            layers stay random, so gradients differ), so that the untrained flow is its base
            whatever the seed (:func:`identity_start`); unconditional couplings only.

    Returns:
        An ``nn.ModuleList`` of transforms (conditional ones if ``context_dim > 0``), to pass to
        :func:`~pyro_frmdn.distributions.flow_mixture` and to register with ``pyro.module``.

    Example:
        >>> flow = coupling_flow(4, 2, flow="spline", hidden_dims=[16])
        >>> x = torch.randn(10, 4)
        >>> y = x
        >>> for t in flow:
        ...     y = t(y)
        >>> for t in reversed(flow):
        ...     y = t.inv(y)
        >>> torch.allclose(x, y, atol=1e-5)
        True
    """
    flow_layers = renamed("coupling_flow", deprecated, "num_layers", "flow_layers", flow_layers)
    if "kind" in deprecated:
        flow = renamed("coupling_flow", deprecated, "kind", "flow")
    refuse_unknown("coupling_flow", deprecated)
    if flow_layers is None:
        raise TypeError("coupling_flow needs flow_layers, the number of couplings")
    if flow not in FLOW_KINDS:
        raise ValueError(f"flow must be one of {FLOW_KINDS}, got {flow!r}")
    if mixing not in MIXINGS:
        raise ValueError(f"mixing must be one of {MIXINGS}, got {mixing!r}")
    if dim < 1 or flow_layers < 0 or context_dim < 0:
        raise ValueError(
            "need dim >= 1, flow_layers >= 0, context_dim >= 0; "
            f"got {dim}, {flow_layers}, {context_dim}"
        )
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if init == "identity" and context_dim:
        raise ValueError(
            f"init='identity' is for unconditional couplings; got context_dim={context_dim}"
        )
    if precision and (flow != "affine" or context_dim or dim < 2):
        raise ValueError(
            f"precision={precision!r} is for unconditional affine couplings (dim >= 2); got "
            f"flow={flow!r}, context_dim={context_dim}, dim={dim}"
        )
    hidden_dims = list(hidden_dims) if hidden_dims else default_hidden_dims(dim)
    gen = torch.Generator().manual_seed(seed)
    layers = []
    for i in range(flow_layers):
        layers.append(_coupling(flow, dim, context_dim, hidden_dims, count_bins, bound, precision))
        if init == "identity":
            identity_start(layers[-1])
        if batchnorm:
            layers.append(PT.BatchNorm(dim))
        if dim > 1 and i < flow_layers - 1:
            if mixing == "permute":
                perm = torch.randperm(dim, generator=gen)
                while bool((perm == torch.arange(dim)).all()):  # an identity would mix nothing
                    perm = torch.randperm(dim, generator=gen)
                layers.append(Permutation(perm))
            elif mixing == "householder":
                layers.append(
                    PT.conditional_householder(dim, context_dim, hidden_dims)
                    if context_dim
                    else PT.Householder(dim, count_transforms=1)
                )
    return nn.ModuleList(layers)
