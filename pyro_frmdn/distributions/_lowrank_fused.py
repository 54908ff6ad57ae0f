"""The low-rank Gaussian log-density as plain elementwise tensor algebra, for ``torch.compile``.

For ranks r <= :data:`MAX_RANK` every quantity of the capacitance
:math:`C = I_r + W^\\top \\mathrm{diag}(d)^{-1} W` is written out per entry: the r(r+1)/2 + r
sums over D (entries of :math:`W^\\top D^{-1} W` and of the right-hand side), the Cholesky factor
of C and the forward substitution in closed form, each a tensor of the batch shape. Nothing
branches on a value and nothing is a batched matrix routine, so ``torch.compile`` (inductor)
turns the whole density, and its backward by autograd, into a few generated kernels: the sums
over D fused into one reduction per pass, the r×r algebra into one elementwise kernel. That is
the path for the GPU, where the batched tensor path of ``_lowrank`` pays per-kernel launches and
batched cuSOLVER calls on many tiny matrices (measured on an H200: 45-245x the memory floor).
Run eagerly it is correct but slow (one kernel per written-out term).

The algebra is that of :func:`~pyro_frmdn.distributions.lowrank_gaussian_log_prob` (matrix
determinant lemma and Woodbury identity), with the same guards: rows scaled by a power of two
above their largest entry (no overflow before the last product), Cholesky pivots of C kept
>= 1 and a covariance Mahalanobis term >= 0 against rounding.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import warnings

import torch
from torch import Tensor

from ._lowrank_cpu import BAD_DIAG, BAD_FACTOR, BAD_LOC
from ._lowrank_unrolled import MAX_RANK  # the same bound as the CPU loops' written-out ranks

__all__ = [
    "MAX_RANK",
    "applies",
    "checked_log_prob",
    "compiled_log_prob",
    "fused_log_prob",
    "has_triton",
    "usable",
]


def _scaled(diff: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``diff / s`` with ``s`` a power of two at or above ``max |diff|`` of the row (1 for a
    row of zeros), that scale, and which rows hold an infinite value (branch-free).

    The batched path's ``_lowrank._scaled`` does the same with ``frexp``/``ldexp``; this form
    (``log2``, ``ceil``, ``exp2``) is the one measured compiled on the H200, kept until the
    other is checked there."""
    top = diff.abs().amax(-1)
    infinite = torch.isinf(top)
    safe = torch.where(infinite | (top == 0), torch.ones_like(top), top)
    scale = torch.exp2(torch.ceil(torch.log2(safe)))
    return diff / scale.unsqueeze(-1), scale, infinite


def fused_log_prob(diff: Tensor, factor: Tensor, diag: Tensor, precision: bool) -> Tensor:
    """Log-density at ``diff`` (the value minus the mean, ``(..., D)``) of the Gaussian with
    covariance (or, with ``precision``, precision) :math:`W W^\\top + \\mathrm{diag}(d)`;
    ``factor`` ``(..., D, r)`` with ``1 <= r <=`` :data:`MAX_RANK`, ``diag`` ``(..., D)``;
    broadcast over the batch dims. Differentiable by autograd."""
    d, r = diff.shape[-1], factor.shape[-1]
    if not 1 <= r <= MAX_RANK:
        raise ValueError(f"fused_log_prob: the rank must be in [1, {MAX_RANK}], got {r}")
    e, scale, infinite = _scaled(diff)
    inv = diag.reciprocal()
    cols = factor.unbind(-1)  # r tensors (..., D)
    scaled_cols = [c * inv for c in cols]  # D⁻¹ W, column by column
    rhs = e * diag if precision else e
    b = [(sc * rhs).sum(-1) for sc in scaled_cols]  # Wᵀ D⁻¹ e, or Uᵀ e with precision
    low = {}  # the Cholesky factor L of C = I + Wᵀ D⁻¹ W, entry by entry
    for j in range(r):
        for m in range(j + 1):
            c = (scaled_cols[j] * cols[m]).sum(-1) + (1.0 if j == m else 0.0)
            for k in range(m):
                c = c - low[j, k] * low[m, k]
            # every pivot of I + (PSD) is >= 1: rounding must not take one below
            low[j, m] = c.clamp_min(1.0).sqrt() if j == m else c / low[m, m]
    logdet_cap = 2 * sum(low[j, j].log() for j in range(r))
    if precision:  # eᵀ(D + W Wᵀ)e = Σ d e² + ‖Wᵀ e‖²
        maha = (e.square() * diag).sum(-1) + sum(u.square() for u in b)
        logdet = -diag.log().sum(-1) - logdet_cap
    else:  # eᵀ D⁻¹ e - ‖L⁻¹ b‖² (Woodbury)
        white = []  # L⁻¹ b by forward substitution
        for j in range(r):
            w = b[j]
            for k in range(j):
                w = w - low[j, k] * white[k]
            white.append(w / low[j, j])
        white_sq = sum(w.square() for w in white)
        maha = ((e.square() * inv).sum(-1) - white_sq).clamp_min(0.0)
        logdet = diag.log().sum(-1) + logdet_cap
    maha = (maha * scale * scale).masked_fill(infinite, math.inf)
    return -0.5 * (d * math.log(2 * math.pi) + logdet + maha)


def checked_log_prob(
    value: Tensor, loc: Tensor, factor: Tensor, diag: Tensor, precision: bool
) -> tuple[Tensor, Tensor]:
    """:func:`fused_log_prob` at ``value - loc`` and, from the same passes, which arguments are
    invalid: an integer tensor of ``_lowrank_cpu``'s flags (``BAD_DIAG`` if ``diag`` is not
    positive and finite, ``BAD_FACTOR``, ``BAD_LOC`` if ``factor``, ``loc`` holds a value that
    is not finite), so that the caller reads one number (one device sync) to validate."""
    lp = fused_log_prob(value - loc, factor, diag, precision)
    bad_diag = (~((diag > 0) & (diag < math.inf))).any().int()
    bad_factor = (~factor.isfinite()).any().int()
    bad_loc = (~loc.isfinite()).any().int()
    return lp, BAD_DIAG * bad_diag + BAD_FACTOR * bad_factor + BAD_LOC * bad_loc


_compiled: dict = {}
_failure: str | None = None  # why torch.compile could not build the kernel, once it failed


@functools.cache
def has_triton() -> bool:
    """Whether ``torch.compile`` can generate GPU kernels here (Triton installed and, by
    torch's own check, a card it supports)."""
    try:
        from torch.utils._triton import has_triton as found
    except ImportError:  # a private helper of torch: if it moves, look for the package
        return importlib.util.find_spec("triton") is not None
    return found()


def applies(factor: Tensor, kernel: str) -> bool:
    """Whether this kernel scores, under ``use_kernel(kernel)``: asked for (``"inductor"``), or
    ``"auto"`` on CUDA with Triton (measured on an H200: 1.8-3.1x Pyro's stock forward, 3.1-4.0x
    forward + backward, where the batched tensor path ran at 0.5-1.1x); ranks 1 to 8 only, and
    not after ``torch.compile`` failed here."""
    if not 1 <= factor.shape[-1] <= MAX_RANK or not usable():
        return False
    return kernel == "inductor" or (kernel == "auto" and factor.is_cuda and has_triton())


def usable() -> bool:
    """False once ``torch.compile`` has failed to build the kernel in this process."""
    return _failure is None


def compiled_log_prob(
    value: Tensor, loc: Tensor, factor: Tensor, diag: Tensor, precision: bool, validate: bool
) -> tuple[Tensor, Tensor | None]:
    """The log-density at ``value`` through ``torch.compile``: :func:`checked_log_prob` with
    ``validate`` (the log-density and the flags), else :func:`fused_log_prob` (and ``None``).
    Built at the first call of each dtype, device, rank and form; shapes that change are
    recompiled once, then treated as dynamic. Should the compiler fail (no C++ compiler for
    the CPU, a Triton that does not match the card), it warns once and the density is
    computed eagerly, here and by the batched tensor path from then on."""
    global _failure
    eager = checked_log_prob if validate else _unchecked
    if _failure is None:
        if validate not in _compiled:
            _compiled[validate] = torch.compile(eager)
        try:
            return _compiled[validate](value, loc, factor, diag, precision)
        except torch._dynamo.exc.BackendCompilerFailed as err:  # not OOM, not bad values
            _failure = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            warnings.warn(
                f"torch.compile could not build the low-rank kernel ({_failure}); using "
                "the batched tensor kernel instead (use_kernel('torch') silences this)",
                RuntimeWarning,
                stacklevel=3,
            )
    return eager(value, loc, factor, diag, precision)


def _unchecked(value, loc, factor, diag, precision: bool) -> tuple[Tensor, None]:
    return fused_log_prob(value - loc, factor, diag, precision), None
