"""Fused log-density of Gaussians with a low-rank-plus-diagonal covariance or precision."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["capacitance_tril", "lowrank_gaussian_log_prob"]

# Elements of (D, r) factors handled per chunk: small enough that a chunk's temporaries stay in the
# CPU cache and in malloc's heap (a large fresh allocation costs a page fault per 4 KiB touched).
_CHUNK_ELEMENTS = 1 << 19
# On a GPU the cost is kernel launches, not cache misses: far fewer, larger chunks.
_CUDA_CHUNK_ELEMENTS = 1 << 25


def _rows_per_chunk(t: Tensor, d: int, r: int) -> int:
    size = _CUDA_CHUNK_ELEMENTS if t.is_cuda else _CHUNK_ELEMENTS
    return max(1, size // (d * r))


def capacitance_tril(factor: Tensor, diag: Tensor) -> Tensor:
    r"""Cholesky factor of the capacitance :math:`C = I_r + W^\top \mathrm{diag}(d)^{-1} W`.

    Arguments:
        factor: :math:`W`, shape ``(..., D, r)``.
        diag: :math:`d > 0`, shape ``(..., D)``.
    """
    scaled = factor * diag.rsqrt().unsqueeze(-1)
    cap = scaled.mT @ scaled
    cap.diagonal(dim1=-2, dim2=-1).add_(1.0)
    return torch.linalg.cholesky(cap)


def _flat(t: Tensor, shape: torch.Size, tail: int) -> Tensor:
    """Expand ``t`` to ``shape + t.shape[-tail:]`` and flatten the batch dims to one."""
    return t.expand(shape + t.shape[t.dim() - tail :]).reshape((-1,) + t.shape[t.dim() - tail :])


def _scaled(diff: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``diff / scale`` with ``scale`` (n,) the power of two just above ``max |diff|`` of a row,
    and which rows hold an infinite value.

    The squared distance of a row is ``scale²`` times that of the scaled row: nothing overflows
    before that last product (which gives Inf, a density of zero, where the true value is beyond
    the dtype, never Inf - Inf = NaN), and division by a power of two is exact, so ordinary
    values give bit for bit the unscaled result. A row with an infinite value is infinitely far.
    """
    top = diff.abs().amax(-1)
    infinite = torch.isinf(top)
    _, exponent = torch.frexp(torch.where(infinite, 1.0, top))
    scale = torch.ldexp(torch.ones_like(top), exponent)
    return diff / scale.unsqueeze(-1), scale, infinite


def _chunk_terms(diff, factor, diag, precision):
    """Per-row pieces shared by the forward and backward passes, for one chunk of rows."""
    r = factor.shape[-1]
    inv = diag.reciprocal()
    fd = factor * inv.unsqueeze(-1)  # D⁻¹ W, (n, D, r)
    # one small product gives both W^T D⁻¹ W and W^T D⁻¹ e (covariance) or Uᵀ e (precision)
    rhs = diff * diag if precision else diff
    both = fd.mT @ torch.cat([factor, rhs.unsqueeze(-1)], dim=-1)  # (n, r, r + 1)
    cap, b = both[..., :r], both[..., r]
    cap.diagonal(dim1=-2, dim2=-1).add_(1.0)
    tril, info = torch.linalg.cholesky_ex(cap)
    if bool(info.any()):
        raise ValueError(
            "the low-rank capacitance matrix I + Wᵀ diag⁻¹ W is not positive definite in "
            f"{diff.dtype}: the factor is too large relative to diag; raise the floor on diag"
        )
    # L⁻¹ (r x r), never C⁻¹: eᵀΣ⁻¹e = Σ e²/d - ‖L⁻¹b‖² loses accuracy in proportion to the
    # condition number of C when C⁻¹ is formed first; products with L⁻¹ are as accurate as
    # triangular solves here and much faster for many tiny systems.
    eye = torch.eye(tril.shape[-1], dtype=tril.dtype, device=tril.device)
    tril_inv = torch.linalg.solve_triangular(tril, eye, upper=False)
    if precision:
        return inv, fd, tril, tril_inv, b, None  # b = u = Uᵀ e
    white = (tril_inv * b.unsqueeze(-2)).sum(-1)  # w = L⁻¹ b
    proj = (tril_inv * white.unsqueeze(-1)).sum(-2)  # v = L⁻ᵀ w = C⁻¹ b
    return inv, fd, tril, tril_inv, white, proj


class _LowRankLogProb(torch.autograd.Function):
    @staticmethod
    def forward(ctx, diff, factor, diag, precision):
        shape = torch.broadcast_shapes(diff.shape[:-1], factor.shape[:-2], diag.shape[:-1])
        d, r = diff.shape[-1], factor.shape[-1]
        e, w, s = _flat(diff, shape, 1), _flat(factor, shape, 2), _flat(diag, shape, 1)
        out = torch.empty(e.shape[0], dtype=e.dtype, device=e.device)
        step = _rows_per_chunk(e, d, r)
        for i in range(0, e.shape[0], step):
            sl = slice(i, i + step)
            ec, scale, infinite = _scaled(e[sl])
            inv, _, tril, _, white, _ = _chunk_terms(ec, w[sl], s[sl], precision)
            # C = I + (PSD) has every Cholesky pivot >= 1, and a covariance Mahalanobis term is
            # >= 0: rounding (float32, a factor far larger than the diagonal) can break both, and a
            # density far above its true maximum would win every comparison (the best epoch),
            # so both bounds are kept
            logdet_cap = 2 * tril.diagonal(dim1=-2, dim2=-1).clamp_min(1.0).log().sum(-1)
            if precision:
                maha = (ec.square() * s[sl]).sum(-1) + white.square().sum(-1)
                logdet = -s[sl].log().sum(-1) - logdet_cap
            else:
                maha = ((ec.square() * inv).sum(-1) - white.square().sum(-1)).clamp_min(0.0)
                logdet = s[sl].log().sum(-1) + logdet_cap
            maha = (maha * scale * scale).masked_fill(infinite, math.inf)
            out[sl] = -0.5 * (d * math.log(2 * math.pi) + logdet + maha)
        ctx.save_for_backward(diff, factor, diag)
        ctx.precision = precision
        ctx.shape = shape
        return out.reshape(shape)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        diff, factor, diag = ctx.saved_tensors
        precision, shape = ctx.precision, ctx.shape
        d, r = diff.shape[-1], factor.shape[-1]
        e, w, s = _flat(diff, shape, 1), _flat(factor, shape, 2), _flat(diag, shape, 1)
        g = grad.reshape(-1)
        n = e.shape[0]
        g_diff = torch.empty_like(e)
        g_factor = torch.empty_like(w)
        g_diag = torch.empty_like(s)
        step = _rows_per_chunk(e, d, r)
        for i in range(0, n, step):
            sl = slice(i, i + step)
            ec, wc, gc = e[sl], w[sl], g[sl].unsqueeze(-1)
            inv, fd, _, tril_inv, proj, v = _chunk_terms(ec, wc, s[sl], precision)
            # P = D⁻¹ W C⁻¹ and diag(D⁻¹ W C⁻¹ Wᵀ D⁻¹) (the Woodbury correction)
            x = tril_inv @ fd.mT  # L⁻¹ Wᵀ D⁻¹, (n, r, D)
            corr = x.square().sum(-2)
            p = torch.matmul(x.mT, tril_inv, out=g_factor[sl])
            if precision:
                # ℓ = -½[eᵀ P e - log det P], P = diag(d) + U Uᵀ, Σ = P⁻¹
                pe = ec * s[sl] + (wc @ proj.unsqueeze(-1)).squeeze(-1)
                g_diff[sl] = -gc * pe
                g_diag[sl] = 0.5 * gc * (inv - corr - ec.square())
                # g (ΣU - e (Uᵀe)ᵀ)
                p.mul_(gc.unsqueeze(-1)).addcmul_((-gc * ec).unsqueeze(-1), proj.unsqueeze(-2))
            else:
                # ℓ = -½[eᵀ Σ⁻¹ e + log det Σ], Σ = W Wᵀ + diag(d); α = Σ⁻¹ e, αᵀW = vᵀ
                alpha = ec * inv - (fd @ v.unsqueeze(-1)).squeeze(-1)
                g_diff[sl] = -gc * alpha
                g_diag[sl] = 0.5 * gc * (alpha.square() - inv + corr)
                # g (α vᵀ - Σ⁻¹W)
                p.mul_(-gc.unsqueeze(-1)).addcmul_((gc * alpha).unsqueeze(-1), v.unsqueeze(-2))
        g_diff = g_diff.reshape(shape + (d,))
        g_factor = g_factor.reshape(shape + (d, r))
        g_diag = g_diag.reshape(shape + (d,))
        return (
            g_diff.sum_to_size(diff.shape) if ctx.needs_input_grad[0] else None,
            g_factor.sum_to_size(factor.shape) if ctx.needs_input_grad[1] else None,
            g_diag.sum_to_size(diag.shape) if ctx.needs_input_grad[2] else None,
            None,
        )


def lowrank_gaussian_log_prob(
    diff: Tensor, factor: Tensor, diag: Tensor, precision: bool
) -> Tensor:
    r"""Log-density of a zero-mean Gaussian with low-rank-plus-diagonal structure at ``diff``.

    With :math:`e` = ``diff``, :math:`W` = ``factor`` (``(..., D, r)``) and :math:`d` = ``diag``:

    - ``precision=False``: :math:`\Sigma = W W^\top + \mathrm{diag}(d)`,
    - ``precision=True``: :math:`\Sigma^{-1} = W W^\top + \mathrm{diag}(d)` (Razavi et al. 2020),

    using the matrix determinant lemma and the Woodbury identity on the :math:`r \times r`
    capacitance :math:`C = I + W^\top \mathrm{diag}(d)^{-1} W`: :math:`O(D r^2 + r^3)` per point and
    never a :math:`D \times D` matrix. The gradient is written by hand (one pass over the factor in
    each direction, in cache-sized chunks); it is once differentiable.

    Arguments:
        diff: the value minus the mean, ``(..., D)``.
        factor: ``(..., D, r)`` with ``r >= 1``.
        diag: positive, ``(..., D)``.
        precision: whether ``factor`` and ``diag`` describe the precision instead of the covariance.

    Returns:
        The log-density, of the broadcast batch shape of the three arguments.
    """
    return _LowRankLogProb.apply(diff, factor, diag, precision)
