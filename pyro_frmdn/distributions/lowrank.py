"""Gaussians with low-rank-plus-diagonal covariance or precision matrices."""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from torch import Tensor
from torch.distributions.utils import _standard_normal, lazy_property

from ._lowrank import capacitance_tril, check_arguments, lowrank_gaussian_log_prob

__all__ = ["LowRankCovarianceMultivariateNormal", "LowRankPrecisionMultivariateNormal"]


def _broadcast(loc: Tensor, factor: Tensor, diag: Tensor, names: tuple[str, str]):
    """Check the shapes of (loc, factor, diag) and broadcast them to one batch shape."""
    if loc.dim() < 1:
        raise ValueError(f"loc must have at least one dim (D,), got shape {tuple(loc.shape)}")
    d = loc.shape[-1]
    if factor.dim() < 2 or factor.shape[-2] != d:
        raise ValueError(
            f"{names[0]} must have shape (..., {d}, r) to match loc (..., {d}), "
            f"got {tuple(factor.shape)}"
        )
    if factor.shape[-1] < 1:
        raise ValueError(f"{names[0]} must have rank r >= 1; use a diagonal Normal for r = 0")
    if diag.dim() < 1 or diag.shape[-1] != d:
        raise ValueError(f"{names[1]} must have shape (..., {d}), got {tuple(diag.shape)}")
    try:
        batch = torch.broadcast_shapes(loc.shape[:-1], factor.shape[:-2], diag.shape[:-1])
    except RuntimeError as e:
        raise ValueError(
            f"incompatible batch shapes: loc {tuple(loc.shape)}, {names[0]} "
            f"{tuple(factor.shape)}, {names[1]} {tuple(diag.shape)}"
        ) from e
    return (
        batch,
        loc.expand(batch + (d,)),
        factor.expand(batch + factor.shape[-2:]),
        diag.expand(batch + (d,)),
    )


def _validating(validate_args) -> bool:
    if validate_args is not None:
        return bool(validate_args)
    return torch.distributions.Distribution._validate_args


class _DeferredChecks:
    """Argument values checked at first use, not at construction.

    Shapes are checked when the distribution is built. The values (a positive, finite diagonal,
    a finite factor and mean) are checked, when validation is on, by the first method that uses
    them: :meth:`log_prob` on CPU checks them inside its one pass over the arguments at no extra
    cost; other methods check them with tensor operations once. Building thousands of components
    per training step thus never reads the factor only to validate it (Pyro checks
    ``factor == factor`` over the whole factor at every construction). The errors name the
    argument as Pyro's would.
    """

    _names: tuple[str, str]

    def _check_values(self) -> None:
        if self._validate_args and not self._checked:
            check_arguments(self._loc_arg, self._factor_arg, self._diag_arg, self._names)
            self._checked = True

    def _init_checks(self, loc, factor, diag, names, validate_args) -> bool:
        self._loc_arg, self._factor_arg, self._diag_arg = loc, factor, diag
        self._names, self._checked = names, False
        return _validating(validate_args)

    def _copy_checks(self, new) -> None:
        new._loc_arg, new._factor_arg, new._diag_arg = (
            self._loc_arg,
            self._factor_arg,
            self._diag_arg,
        )
        new._names, new._checked = self._names, self._checked
        new._validate_args = self._validate_args

    def _kernel_log_prob(self, value: Tensor, precision: bool, value_checked=False) -> Tensor:
        if self._validate_args and not value_checked:
            self._validate_sample(value)
        lp = lowrank_gaussian_log_prob(
            value,
            self._factor_arg,
            self._diag_arg,
            precision,
            loc=self._loc_arg,
            validate=self._validate_args and not self._checked,
            names=self._names,
        )
        self._checked = self._checked or bool(self._validate_args)
        return lp.expand(torch.broadcast_shapes(lp.shape, self.batch_shape))


class LowRankCovarianceMultivariateNormal(_DeferredChecks, dist.LowRankMultivariateNormal):
    r"""Pyro's :class:`~pyro.distributions.LowRankMultivariateNormal`, faster to score.

    .. math:: \Sigma = W W^\top + \mathrm{diag}(d)

    The same family, arguments and behaviour as the parent class (it *is* one), with two changes
    that matter when thousands of components are built per step of training: the Cholesky factor
    of the capacitance :math:`I + W^\top \mathrm{diag}(d)^{-1} W` is computed only when a method
    needs it, and :meth:`log_prob` runs a fused kernel with a hand-written gradient
    (see :func:`~pyro_frmdn.distributions._lowrank.lowrank_gaussian_log_prob`). ``log_prob`` is
    once differentiable.

    Arguments:
        loc: mean, ``(..., D)``.
        cov_factor: :math:`W`, ``(..., D, r)``, ``r >= 1``.
        cov_diag: :math:`d > 0`, ``(..., D)``.

    Example:
        >>> d = LowRankCovarianceMultivariateNormal(torch.zeros(3), torch.ones(3, 1), torch.ones(3))
        >>> d.log_prob(torch.zeros(3)).shape
        torch.Size([])
    """

    def __init__(self, loc, cov_factor, cov_diag, validate_args=None):
        batch, self.loc, self.cov_factor, self.cov_diag = _broadcast(
            loc, cov_factor, cov_diag, ("cov_factor", "cov_diag")
        )
        self._unbroadcasted_cov_factor = cov_factor
        self._unbroadcasted_cov_diag = cov_diag
        names = ("cov_factor", "cov_diag")
        validate = self._init_checks(loc, cov_factor, cov_diag, names, validate_args)
        torch.distributions.Distribution.__init__(self, batch, loc.shape[-1:], validate_args=False)
        self._validate_args = validate

    @lazy_property
    def _capacitance_tril(self) -> Tensor:
        self._check_values()
        return capacitance_tril(self._unbroadcasted_cov_factor, self._unbroadcasted_cov_diag)

    def rsample(self, sample_shape=torch.Size()) -> Tensor:
        self._check_values()
        return super().rsample(sample_shape)

    @lazy_property
    def variance(self) -> Tensor:
        self._check_values()
        return super().variance

    @lazy_property
    def scale_tril(self) -> Tensor:
        self._check_values()
        return super().scale_tril

    @lazy_property
    def covariance_matrix(self) -> Tensor:
        self._check_values()
        return super().covariance_matrix

    @lazy_property
    def precision_matrix(self) -> Tensor:
        self._check_values()
        return super().precision_matrix

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(LowRankCovarianceMultivariateNormal, _instance)
        batch_shape = torch.Size(batch_shape)
        shape = batch_shape + self.event_shape
        new.loc = self.loc.expand(shape)
        new.cov_diag = self.cov_diag.expand(shape)
        new.cov_factor = self.cov_factor.expand(shape + self.cov_factor.shape[-1:])
        new._unbroadcasted_cov_factor = self._unbroadcasted_cov_factor
        new._unbroadcasted_cov_diag = self._unbroadcasted_cov_diag
        torch.distributions.Distribution.__init__(
            new, batch_shape, self.event_shape, validate_args=False
        )
        self._copy_checks(new)
        return new

    def log_prob(self, value: Tensor, value_checked: bool = False) -> Tensor:
        return self._kernel_log_prob(value, False, value_checked)

    def entropy(self) -> Tensor:
        self._check_values()
        return super().entropy()


class LowRankPrecisionMultivariateNormal(_DeferredChecks, dist.TorchDistribution):
    r"""Multivariate normal whose *precision* is low rank plus diagonal (Razavi et al. 2020).

    .. math::
        \Sigma^{-1} = P = U U^\top + \mathrm{diag}(d), \qquad
        \log \mathcal N(z) = -\tfrac{D}{2}\log 2\pi + \tfrac12 \log\det P - \tfrac12 e^\top P e

    with :math:`e = z - \mu` and :math:`\log\det P = \sum_i \log d_i + \log\det C`,
    :math:`C = I_r + U^\top \mathrm{diag}(d)^{-1} U` (matrix determinant lemma), so scoring costs
    :math:`O(D r^2 + r^3)` and never builds a :math:`D \times D` matrix.

    By the Woodbury identity this is a "diagonal minus low rank" *covariance*: a different family
    from :class:`LowRankCovarianceMultivariateNormal`. It suits data whose dimensions are
    conditionally independent given a few directions of strong coupling, and is the form of the
    FRMDN paper.

    Sampling is exact and reparameterized in :math:`O(D r + r^3)`: with :math:`\epsilon_1 \sim
    \mathcal N(0, I_D)` and :math:`\epsilon_2 \sim \mathcal N(0, I_r)`,
    :math:`z = \mu + P^{-1}(\mathrm{diag}(d)^{1/2} \epsilon_1 + U \epsilon_2)` has covariance
    :math:`P^{-1} P P^{-1} = P^{-1}`, and :math:`P^{-1} v` is a Woodbury solve. Only Cholesky
    factors of :math:`r \times r` matrices are differentiated, so gradients stay finite when
    :math:`U` is rank deficient.

    Arguments:
        loc: mean :math:`\mu`, ``(..., D)``.
        prec_factor: :math:`U`, ``(..., D, r)``, ``r >= 1``.
        prec_diag: :math:`d > 0`, ``(..., D)``.

    Example:
        >>> d = LowRankPrecisionMultivariateNormal(torch.zeros(3), torch.ones(3, 1), torch.ones(3))
        >>> torch.allclose(d.covariance_matrix, torch.linalg.inv(torch.ones(3, 3) + torch.eye(3)))
        True

    References:
        Razavi, Hosseini, Behzad, "FRMDN: Flow-based Recurrent Mixture Density Network",
        arXiv:2008.02144.
    """

    arg_constraints = {
        "loc": constraints.real_vector,
        "prec_factor": constraints.independent(constraints.real, 2),
        "prec_diag": constraints.independent(constraints.positive, 1),
    }
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc, prec_factor, prec_diag, validate_args=None):
        batch, self.loc, self.prec_factor, self.prec_diag = _broadcast(
            loc, prec_factor, prec_diag, ("prec_factor", "prec_diag")
        )
        self._factor = prec_factor
        self._diag = prec_diag
        names = ("prec_factor", "prec_diag")
        validate = self._init_checks(loc, prec_factor, prec_diag, names, validate_args)
        super().__init__(batch, loc.shape[-1:], validate_args=False)
        self._validate_args = validate

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(LowRankPrecisionMultivariateNormal, _instance)
        batch_shape = torch.Size(batch_shape)
        shape = batch_shape + self.event_shape
        new.loc = self.loc.expand(shape)
        new.prec_diag = self.prec_diag.expand(shape)
        new.prec_factor = self.prec_factor.expand(shape + self.prec_factor.shape[-1:])
        new._factor, new._diag = self._factor, self._diag
        super(LowRankPrecisionMultivariateNormal, new).__init__(
            batch_shape, self.event_shape, validate_args=False
        )
        self._copy_checks(new)
        return new

    @lazy_property
    def _capacitance_tril(self) -> Tensor:
        self._check_values()
        return capacitance_tril(self._factor, self._diag)

    @lazy_property
    def _whitened_factor(self) -> Tensor:
        """:math:`X = L^{-1} U^\\top \\mathrm{diag}(d)^{-1}`, ``(..., r, D)``.

        With it, :math:`P^{-1} = \\mathrm{diag}(d)^{-1} - X^\\top X`.
        """
        scaled = (self._factor / self._diag.unsqueeze(-1)).mT
        return torch.linalg.solve_triangular(self._capacitance_tril, scaled, upper=False)

    def _solve(self, v: Tensor) -> Tensor:
        """:math:`P^{-1} v` by Woodbury, for ``v`` of shape ``(..., D)``."""
        x = self._whitened_factor
        return v / self._diag - ((x @ v.unsqueeze(-1)).mT @ x).squeeze(-2)

    @property
    def mean(self) -> Tensor:
        return self.loc

    @property
    def mode(self) -> Tensor:
        return self.loc

    @lazy_property
    def variance(self) -> Tensor:
        var = self._diag.reciprocal() - self._whitened_factor.square().sum(-2)
        return var.expand(self.batch_shape + self.event_shape)

    @lazy_property
    def precision_matrix(self) -> Tensor:
        p = self._factor @ self._factor.mT + torch.diag_embed(self._diag)
        return p.expand(self.batch_shape + self.event_shape + self.event_shape)

    @lazy_property
    def covariance_matrix(self) -> Tensor:
        x = self._whitened_factor
        cov = torch.diag_embed(self._diag.reciprocal()) - x.mT @ x
        return cov.expand(self.batch_shape + self.event_shape + self.event_shape)

    def _log_det_precision(self) -> Tensor:
        logdet_cap = 2 * self._capacitance_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        return self._diag.log().sum(-1) + logdet_cap

    def log_prob(self, value: Tensor, value_checked: bool = False) -> Tensor:
        return self._kernel_log_prob(value, True, value_checked)

    def rsample(self, sample_shape=torch.Size()) -> Tensor:
        self._check_values()
        shape = self._extended_shape(sample_shape)
        eps_d = _standard_normal(shape, dtype=self.loc.dtype, device=self.loc.device)
        eps_r = _standard_normal(
            shape[:-1] + self._factor.shape[-1:], dtype=self.loc.dtype, device=self.loc.device
        )
        v = self._diag.sqrt() * eps_d + (self._factor @ eps_r.unsqueeze(-1)).squeeze(-1)
        return self.loc + self._solve(v)

    def entropy(self) -> Tensor:
        d = self.event_shape[0]
        h = 0.5 * (d * (1.0 + math.log(2 * math.pi)) - self._log_det_precision())
        return h.expand(self.batch_shape)
