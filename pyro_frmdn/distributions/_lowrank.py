"""Fused log-density of Gaussians with a low-rank-plus-diagonal covariance or precision."""

from __future__ import annotations

import math
import threading

import numpy as np
import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from . import _lowrank_cpu
from . import _lowrank_fused as _fused
from ._lowrank_unrolled import MAX_RANK
from .float32 import float32_math, promote, without_autocast

__all__ = [
    "KERNELS",
    "capacitance_tril",
    "check_arguments",
    "lowrank_gaussian_log_prob",
    "use_kernel",
]

KERNELS = ("auto", "compiled", "torch", "inductor")
"""Which implementation scores low-rank Gaussians: ``"compiled"`` (one-pass CPU loops compiled by
Numba, for CPU float32/float64 tensors), ``"torch"`` (batched tensor operations in cache-sized
chunks: CUDA, other dtypes, or without Numba), ``"inductor"`` (the algebra written out per entry
for ranks 1-8 and compiled by ``torch.compile``: generated kernels on the GPU; see
``_lowrank_fused``; other ranks take ``"torch"``) or ``"auto"`` (the first of the first two that
applies)."""

_kernel = "auto"

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


class _TorchLogProb(torch.autograd.Function):
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
    @without_autocast
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


class use_kernel:
    """Choose the implementation of :func:`lowrank_gaussian_log_prob` (one of :data:`KERNELS`),
    for the whole process or, as a context manager, for a block.

    Example:
        >>> with use_kernel("torch"):
        ...     pass  # scores here use batched tensor operations
    """

    def __init__(self, name: str):
        global _kernel
        if name not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {name!r}")
        if name == "compiled" and not _lowrank_cpu.AVAILABLE:
            raise ValueError(
                "kernel 'compiled' needs Numba: pip install 'pyro-frmdn[fast]' (or numba)"
            )
        self.previous, _kernel = _kernel, name

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        global _kernel
        _kernel = self.previous


def _compiled(*tensors: Tensor) -> bool:
    if _kernel in ("torch", "inductor") or not _lowrank_cpu.AVAILABLE:
        return False
    dtype = tensors[0].dtype
    return dtype in (torch.float32, torch.float64) and all(
        t.device.type == "cpu" and t.dtype == dtype for t in tensors
    )


def _fused_applies(factor: Tensor) -> bool:
    return _fused.applies(factor, _kernel)


def _rows(t: Tensor, shape: torch.Size, tail: int) -> Tensor:
    """``t`` broadcast to ``shape`` + its last ``tail`` dims, as ``(O, K, ...)`` with
    ``K = shape[-1]``: a view (zero strides where ``t`` is broadcast) whenever one exists."""
    full = t.expand(shape + t.shape[t.dim() - tail :])
    lead = shape[:-1].numel() if len(shape) else 1
    k = shape[-1] if len(shape) else 1
    return full.reshape((lead, k) + full.shape[len(shape) :])


_INVALID = (
    (_lowrank_cpu.BAD_DIAG, "{diag} must be positive and finite everywhere"),
    (_lowrank_cpu.BAD_FACTOR, "{factor} holds NaN or infinite values"),
    (_lowrank_cpu.BAD_LOC, "loc holds NaN or infinite values"),
)


def _raise(found: int, names: tuple[str, str]) -> None:
    for bit, message in _INVALID:
        if found & bit:
            raise ValueError("Expected parameter " + message.format(factor=names[0], diag=names[1]))


def _storage(t: Tensor) -> tuple[Tensor, tuple[int, int]]:
    """``t`` (O, K, ...) as a flat tensor over its storage and the element strides of O and K;
    the trailing dims must be contiguous (one copy of ``t`` where they are not)."""
    want = torch.empty(t.shape[2:], device="meta").stride()
    inner = zip(t.shape[2:], t.stride()[2:], want, strict=True)
    if not all(size == 1 or got == need for size, got, need in inner):
        t = t.contiguous()
    span = 1 + sum((n - 1) * st for n, st in zip(t.shape, t.stride(), strict=True))
    span = span if t.numel() else 0
    return torch.as_strided(t, (span,), (1,), t.storage_offset()), t.stride()[:2]


def _arguments(value, loc, factor, diag):
    """The batch shape and the four arguments as (O, K, ...) views (broadcast rows with zero
    strides, never copied)."""
    shape = torch.broadcast_shapes(
        value.shape[:-1], loc.shape[:-1], factor.shape[:-2], diag.shape[:-1]
    )
    args = (_rows(value, shape, 1), _rows(loc, shape, 1), _rows(factor, shape, 2))
    return shape, args + (_rows(diag, shape, 1),)


def _logdet(diag: Tensor, shape: torch.Size) -> Tensor:
    """Σ log diag per row, (rows,) contiguous, computed on the unbroadcast diagonal."""
    return _rows(diag.detach().log().sum(-1, keepdim=True), shape, 1)[..., 0].reshape(-1)


def _threads() -> int:
    # Numba's default threading layer must not be entered from two threads at once: the
    # parallel loops run from the main thread only (other threads take the serial loops)
    main = threading.current_thread() is threading.main_thread()
    return torch.get_num_threads() if main else 1


class _CompiledLogProb(torch.autograd.Function):
    """Ranks up to ``MAX_RANK``: the written-out loops over flat storage; above: general loops."""

    @staticmethod
    def forward(ctx, value, loc, factor, diag, precision, validate, names):
        shape, args = _arguments(value, loc, factor, diag)
        d, r = factor.shape[-2:]
        threads = _threads()
        if r <= MAX_RANK:
            flat = [_storage(a.detach()) for a in args]
            strides = np.array([st for _, st in flat], dtype=np.int64)
            out, cinv, proj, flags = _lowrank_cpu.forward_unrolled(
                *(f.numpy() for f, _ in flat),
                strides,
                shape.numel(),
                d,
                r,
                shape[-1] if len(shape) else 1,
                precision,
                threads,
                None if d <= _lowrank_cpu.OWN_LOGDET_MAX_D else _logdet(diag, shape).numpy(),
            )
            ctx.save_for_backward(*(f for f, _ in flat), torch.from_numpy(cinv))
            ctx.strides = strides
        else:
            logdet = _logdet(diag, shape).reshape(args[0].shape[:2])
            out, tril, proj, flags = _lowrank_cpu.forward(
                *(a.detach().numpy() for a in args + (logdet,)), precision, threads
            )
            ctx.save_for_backward(*args, torch.from_numpy(tril))
        if validate:
            _raise(int(np.bitwise_or.reduce(flags, axis=None)) if flags.size else 0, names)
        ctx.proj = torch.from_numpy(proj)
        ctx.precision, ctx.threads, ctx.shape = precision, threads, shape
        ctx.shapes = (value.shape, loc.shape, factor.shape, diag.shape)
        return torch.from_numpy(out).reshape(shape)

    @staticmethod
    @once_differentiable
    @without_autocast
    def backward(ctx, grad):
        value, loc, factor, diag, saved = ctx.saved_tensors
        need = ctx.needs_input_grad
        full = ctx.shape
        s_value, s_loc, s_factor, s_diag = ctx.shapes
        d, r = s_factor[-2:]
        grad = grad.reshape(-1).contiguous()
        if r <= MAX_RANK:
            g_loc, g_factor, g_diag = (
                torch.from_numpy(g)
                for g in _lowrank_cpu.backward_unrolled(
                    *(t.numpy() for t in (value, loc, factor, diag)),
                    ctx.strides,
                    d,
                    r,
                    full[-1] if len(full) else 1,
                    ctx.precision,
                    saved.numpy(),
                    ctx.proj.numpy(),
                    grad.numpy(),
                    ctx.threads,
                )
            )
        else:
            # gradients in their argument's memory layout (the mixture head's), dense where
            # broadcast
            g_loc, g_factor, g_diag = (torch.empty_like(t) for t in (loc, factor, diag))
            _lowrank_cpu.backward(
                *(t.detach().numpy() for t in (value, loc, factor, diag)),
                ctx.precision,
                saved.numpy(),
                ctx.proj.numpy(),
                grad.reshape(factor.shape[:2]).numpy(),
                g_loc.numpy(),
                g_factor.numpy(),
                g_diag.numpy(),
                ctx.threads,
            )
        g_loc = g_loc.reshape(full + (d,))
        return (
            -g_loc.sum_to_size(s_value) if need[0] else None,
            g_loc.sum_to_size(s_loc) if need[1] else None,
            g_factor.reshape(full + (d, r)).sum_to_size(s_factor) if need[2] else None,
            g_diag.reshape(full + (d,)).sum_to_size(s_diag) if need[3] else None,
            None,
            None,
            None,
        )


def lowrank_gaussian_log_prob(
    value: Tensor,
    factor: Tensor,
    diag: Tensor,
    precision: bool,
    loc: Tensor | None = None,
    validate: bool = False,
    names: tuple[str, str] = ("factor", "diag"),
) -> Tensor:
    r"""Log-density of a Gaussian with low-rank-plus-diagonal structure.

    With :math:`e` = ``value - loc``, :math:`W` = ``factor`` (``(..., D, r)``) and :math:`d` =
    ``diag``:

    - ``precision=False``: :math:`\Sigma = W W^\top + \mathrm{diag}(d)`,
    - ``precision=True``: :math:`\Sigma^{-1} = W W^\top + \mathrm{diag}(d)` (Razavi et al. 2020),

    using the matrix determinant lemma and the Woodbury identity on the :math:`r \times r`
    capacitance :math:`C = I + W^\top \mathrm{diag}(d)^{-1} W`: :math:`O(D r^2 + r^3)` per point and
    never a :math:`D \times D` matrix.

    On CPU (float32 or float64, Numba installed) one compiled loop per point reads ``value``,
    ``loc``, the factor and the diagonal once, sums in float64, and keeps :math:`C^{-1}` and
    :math:`C^{-1} W^\top D^{-1} e` (:math:`r^2 + r` numbers per point) for the backward pass, a
    second loop that writes each gradient once; broadcast arguments (``value`` over the
    components, a factor shared by every step) are read through zero strides, never copied.
    Elsewhere (CUDA) batched tensor operations in large chunks do the same algebra
    (:func:`use_kernel` chooses). Once differentiable.

    bfloat16 or float16 arguments are promoted to float32 and the algebra runs with autocast
    off (:mod:`pyro_frmdn.distributions.float32`).

    Arguments:
        value: ``(..., D)``; the value minus the mean when ``loc`` is ``None``.
        factor: ``(..., D, r)`` with ``r >= 1``.
        diag: positive, ``(..., D)``.
        precision: whether ``factor`` and ``diag`` describe the precision instead of the covariance.
        loc: the mean, ``(..., D)``, or ``None`` (zero).
        validate: raise a ValueError naming the argument when ``diag`` is not positive or a
            parameter is not finite (checked in the same pass on CPU, at no extra cost).
        names: what the errors call the factor and the diagonal.

    Returns:
        The log-density, of the broadcast batch shape of the arguments.
    """
    value, loc, factor, diag = (promote(t) for t in (value, loc, factor, diag))
    if loc is None:
        loc = value.new_zeros(()).expand(value.shape[-1:])
    with float32_math():  # under autocast too (see pyro_frmdn.distributions.float32)
        if _compiled(value, loc, factor, diag):
            return _CompiledLogProb.apply(value, loc, factor, diag, precision, validate, names)
        if _fused_applies(factor):  # the checks in the same compiled passes: one sync
            lp, found = _fused.compiled_log_prob(value, loc, factor, diag, precision, validate)
            if validate:
                _raise(int(found), names)
            return lp
        if validate:
            check_arguments(loc, factor, diag, names)
        return _TorchLogProb.apply(value - loc, factor, diag, precision)


def check_arguments(
    loc: Tensor, factor: Tensor, diag: Tensor, names: tuple[str, str] = ("factor", "diag")
) -> None:
    """Raise a ValueError naming the argument if ``diag`` is not positive and finite or
    ``factor`` or ``loc`` holds a value that is not finite (tensor operations: one pass each)."""
    found = 0
    if not bool(((diag > 0) & (diag < math.inf)).all()):
        found |= _lowrank_cpu.BAD_DIAG
    if not bool(torch.isfinite(factor).all()):
        found |= _lowrank_cpu.BAD_FACTOR
    if not bool(torch.isfinite(loc).all()):
        found |= _lowrank_cpu.BAD_LOC
    _raise(found, names)
