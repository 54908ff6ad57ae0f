"""The low-rank Gaussian log-density and its gradient as compiled one-pass CPU loops (Numba)."""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import types
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import _lowrank_unrolled as _unrolled

try:
    import numba
except ImportError:  # the "fast" extra is not installed: the torch path is used
    numba = None

__all__ = ["AVAILABLE", "backward", "backward_unrolled", "forward", "forward_unrolled"]

AVAILABLE = numba is not None
"""Whether Numba is installed, so that CPU float32/float64 tensors take these loops."""

_LOG_2PI = math.log(2 * math.pi)
# rows handled by one task: its scratch arrays are allocated once per task, not once per row
_ROWS = 64
# beyond this |value - loc|, squares could overflow float64
_HUGE = 2.0**500
# flags of a row (an int8 per row): what the caller's validation names
BAD_DIAG, BAD_FACTOR, BAD_LOC, NAN_VALUE = 1, 2, 4, 8
# the written-out loops leave a row whose squared distance nears this to the general loops
_HUGE_SUM = 1e290
REDO = 16


def _load_row(value, loc, factor, diag, o, k, f, e, inv):
    """Copy row (o, k) into float64 scratch: f (r, D) the factor transposed, e = value - loc,
    inv = 1 / diag; returns (flags, whether e is infinite somewhere). Branch-free, so that the
    compiler vectorises it: x * 0 is NaN exactly when x is not finite."""
    d, r = f.shape[1], f.shape[0]
    probe = 0.0
    probe_e = 0.0
    low = math.inf
    top = 0.0
    for i in range(d):
        di = np.float64(diag[o, k, i])
        mi = np.float64(loc[o, k, i])
        ei = np.float64(value[o, k, i]) - mi
        probe += (di + mi) * 0.0
        probe_e += ei * 0.0
        low = min(low, di)
        top = max(top, abs(ei))
        e[i] = ei
        inv[i] = 1.0 / di
    for j in range(r):
        for i in range(d):
            f[j, i] = factor[o, k, i, j]
    flag = 0
    infinite = False
    if probe != probe or not low > 0.0:  # rare: name the argument
        for i in range(d):
            di = np.float64(diag[o, k, i])
            if not (di > 0.0 and di < math.inf):
                flag |= BAD_DIAG
            if not math.isfinite(loc[o, k, i]):
                flag |= BAD_LOC
    if probe_e != probe_e:
        infinite = True
        for i in range(d):
            if e[i] != e[i]:
                flag |= NAN_VALUE
    # a finite e whose square would overflow float64 is scaled by a power of two (exact); the
    # squared distance is scaled back at the end, to Inf (density zero) if it is that large
    scale = 1.0
    if top > _HUGE and top < math.inf:
        scale = math.ldexp(1.0, math.frexp(top)[1])
        for i in range(d):
            e[i] /= scale
    return flag, infinite, scale


def _forward_rows(value, loc, factor, diag, logdet_diag, precision, out, tril, proj, flags):
    """Log-density of rows (o, k): value (O, K, D), loc (O, K, D), factor (O, K, D, r),
    diag (O, K, D), any strides (zero strides for broadcast rows), and logdet_diag (O, K) the sum
    of log diag (a vectorised pass of torch's, far cheaper than a log per element here). Writes
    out (O, K), the Cholesky factor tril (O, K, r, r) of the capacitance C = I + Wᵀ D⁻¹ W and proj
    (O, K, r): C⁻¹ Wᵀ D⁻¹ e (covariance) or Uᵀ e (precision), which the backward pass reuses;
    flags (O, K) mark invalid arguments."""
    n_o, n_k, d, r = factor.shape
    n = n_o * n_k
    for task in numba.prange((n + _ROWS - 1) // _ROWS):
        f = np.empty((r, d))
        fs = np.empty((r, d))
        e = np.empty(d)
        inv = np.empty(d)
        we = np.empty(d)
        gram = np.empty((r, r))
        low = np.empty((r, r))
        b = np.empty(r)
        w = np.empty(r)
        for row in range(task * _ROWS, min(n, (task + 1) * _ROWS)):
            o, k = row // n_k, row % n_k
            flag, infinite, scale = _load_row(value, loc, factor, diag, o, k, f, e, inv)
            # the sums over D, in float64: no overflow, no cancellation worth naming
            quad = 0.0
            if precision:
                for i in range(d):
                    we[i] = e[i]
                    quad += e[i] * e[i] / inv[i]
            else:
                for i in range(d):
                    we[i] = e[i] * inv[i]
                    quad += e[i] * we[i]
            for j in range(r):
                acc = 0.0
                for i in range(d):
                    fs[j, i] = f[j, i] * inv[i]
                    acc += f[j, i] * we[i]
                b[j] = acc
            for j in range(r):
                for m in range(j + 1):
                    acc = 0.0
                    for i in range(d):
                        acc += fs[j, i] * f[m, i]
                    gram[j, m] = acc
            # Cholesky of C = I + gram (lower). Every pivot is >= 1 in exact arithmetic and is
            # kept so: rounding must not give a density above its true maximum
            logdet_cap = 0.0
            for j in range(r):
                if not math.isfinite(gram[j, j]):
                    flag |= BAD_FACTOR
                for m in range(j + 1):
                    acc = gram[j, m]
                    for p in range(m):
                        acc -= low[j, p] * low[m, p]
                    if j == m:
                        acc += 1.0
                        piv = math.sqrt(acc) if acc > 1.0 else (1.0 if acc == acc else acc)
                        low[j, j] = piv
                        logdet_cap += math.log(piv)
                    else:
                        low[j, m] = acc / low[m, m]
            # w = L⁻¹ b; proj = L⁻ᵀ w = C⁻¹ b (covariance) or u = b (precision)
            white = 0.0
            for j in range(r):
                acc = b[j]
                for p in range(j):
                    acc -= low[j, p] * w[p]
                w[j] = acc / low[j, j]
                white += w[j] * w[j]
            if precision:
                maha = quad
                for j in range(r):
                    maha += b[j] * b[j]
                    proj[o, k, j] = b[j]
                logdet = -np.float64(logdet_diag[o, k]) - 2.0 * logdet_cap
            else:
                # eᵀΣ⁻¹e >= 0: rounding must not make it negative
                maha = max(quad - white, 0.0) if quad == quad else quad
                for j in range(r - 1, -1, -1):
                    acc = w[j]
                    for p in range(j + 1, r):
                        acc -= low[p, j] * proj[o, k, p]
                    proj[o, k, j] = acc / low[j, j]
                logdet = np.float64(logdet_diag[o, k]) + 2.0 * logdet_cap
            maha = maha * scale * scale
            if scale != 1.0:
                for j in range(r):
                    proj[o, k, j] *= scale
            # a point infinitely far has density zero (never Inf - Inf = NaN)
            if infinite and not flag & NAN_VALUE:
                out[o, k] = -math.inf
            else:
                out[o, k] = -0.5 * (d * _LOG_2PI + logdet + maha)
            for j in range(r):
                for m in range(r):
                    tril[o, k, j, m] = low[j, m] if m <= j else 0.0
            flags[o, k] = flag


def _inverse(tril, o, k, cinv, x):
    """C⁻¹ = L⁻ᵀ L⁻¹ from the Cholesky factor of row (o, k), into cinv (r, r)."""
    r = cinv.shape[0]
    for c in range(r):
        for j in range(r):
            acc = 1.0 if j == c else 0.0
            for p in range(j):
                acc -= tril[o, k, j, p] * x[p]
            x[j] = acc / tril[o, k, j, j]
        for j in range(r - 1, -1, -1):
            acc = x[j]
            for p in range(j + 1, r):
                acc -= tril[o, k, p, j] * cinv[p, c]
            cinv[j, c] = acc / tril[o, k, j, j]


def _backward_rows(value, loc, factor, diag, precision, tril, proj, grad, g_loc, g_factor, g_diag):
    """Gradients of the log-density of rows (o, k) with respect to loc, the factor and the
    diagonal, from the forward pass's tril and proj: one pass over the row, each gradient
    written once."""
    n_o, n_k, d, r = factor.shape
    n = n_o * n_k
    for task in numba.prange((n + _ROWS - 1) // _ROWS):
        f = np.empty((r, d))
        t = np.empty((r, d))
        e = np.empty(d)
        inv = np.empty(d)
        wv = np.empty(d)
        corr = np.empty(d)
        cinv = np.empty((r, r))
        x = np.empty(r)
        ca = np.empty(d)
        cb = np.empty(d)
        for row in range(task * _ROWS, min(n, (task + 1) * _ROWS)):
            o, k = row // n_k, row % n_k
            scale = _load_row(value, loc, factor, diag, o, k, f, e, inv)[2]
            if scale != 1.0:
                for i in range(d):
                    e[i] *= scale
            _inverse(tril, o, k, cinv, x)
            g = np.float64(grad[o, k])
            # t = C⁻¹ Wᵀ (r, D); wv_i = W_i · proj; corr_i = W_i C⁻¹ W_iᵀ
            wv[:] = 0.0
            corr[:] = 0.0
            for j in range(r):
                pj = proj[o, k, j]
                for i in range(d):
                    t[j, i] = 0.0
                for m in range(r):
                    c = cinv[j, m]
                    for i in range(d):
                        t[j, i] += c * f[m, i]
                for i in range(d):
                    wv[i] += f[j, i] * pj
                    corr[i] += f[j, i] * t[j, i]
            # g_factor[i, j] = ca_i proj_j + cb_i t[j, i], with
            # precision: ℓ = -½[eᵀPe - log det P], P = diag(d) + U Uᵀ; ∂ℓ/∂e = -P e and
            #   ∂ℓ/∂U = P⁻¹U - e uᵀ, P⁻¹U = D⁻¹ U C⁻¹: ca = -g e, cb = g / d;
            # covariance: ℓ = -½[eᵀΣ⁻¹e + log det Σ], Σ = W Wᵀ + diag(d); α = Σ⁻¹e = D⁻¹(e - W v),
            #   ∂ℓ/∂W = α vᵀ - Σ⁻¹W, Σ⁻¹W = D⁻¹ W C⁻¹, (Σ⁻¹)_ii = 1/d - corr/d²: ca = g α, cb = -g/d
            if precision:
                for i in range(d):
                    ei, vi = e[i], inv[i]
                    g_loc[o, k, i] = g * (ei / vi + wv[i])
                    g_diag[o, k, i] = 0.5 * g * (vi - corr[i] * vi * vi - ei * ei)
                    ca[i] = -g * ei
                    cb[i] = g * vi
            else:
                for i in range(d):
                    vi = inv[i]
                    alpha = (e[i] - wv[i]) * vi
                    g_loc[o, k, i] = g * alpha
                    g_diag[o, k, i] = 0.5 * g * (alpha * alpha - vi + corr[i] * vi * vi)
                    ca[i] = g * alpha
                    cb[i] = -g * vi
            for j in range(r):
                pj = proj[o, k, j]
                for i in range(d):
                    g_factor[o, k, i, j] = ca[i] * pj + cb[i] * t[j, i]


def _renamed(fn, name: str):
    """``fn`` under another name: Numba's on-disk cache is keyed by the function's name, and the
    serial and parallel compilations of one function would otherwise overwrite each other."""
    code = fn.__code__.replace(co_name=name, co_qualname=name)
    new = types.FunctionType(code, fn.__globals__, name, fn.__defaults__, fn.__closure__)
    new.__qualname__ = name
    return new


if AVAILABLE:
    _jit = dict(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
    _load_row = numba.njit(inline="always", **_jit)(_load_row)
    _inverse = numba.njit(inline="always", **_jit)(_inverse)
    _FORWARD = (
        numba.njit(parallel=False, **_jit)(_forward_rows),
        numba.njit(parallel=True, **_jit)(_renamed(_forward_rows, "_forward_rows_parallel")),
    )
    _BACKWARD = (
        numba.njit(parallel=False, **_jit)(_backward_rows),
        numba.njit(parallel=True, **_jit)(_renamed(_backward_rows, "_backward_rows_parallel")),
    )


def forward(value, loc, factor, diag, logdet_diag, precision, threads):
    """Run the forward loops on numpy views; returns (out, tril, proj, flags)."""
    n_o, n_k, _, r = factor.shape
    out = np.empty((n_o, n_k), dtype=factor.dtype)
    tril = np.empty((n_o, n_k, r, r))
    proj = np.empty((n_o, n_k, r))
    flags = np.empty((n_o, n_k), dtype=np.int8)
    _run(
        _FORWARD, threads, value, loc, factor, diag, logdet_diag, precision, out, tril, proj, flags
    )
    return out, tril, proj, flags


def backward(
    value, loc, factor, diag, precision, tril, proj, grad, g_loc, g_factor, g_diag, threads
):
    """Run the backward loops, writing into g_loc, g_factor and g_diag (numpy views)."""
    _run(
        _BACKWARD,
        threads,
        value,
        loc,
        factor,
        diag,
        precision,
        tril,
        proj,
        grad,
        g_loc,
        g_factor,
        g_diag,
    )


_UNROLLED: dict = {}
# the threads that share a call's rows with the calling thread, made at first use; a forked child
# (worker processes) inherits the pool object but not its threads, so it starts without one
_POOL: list = []
os.register_at_fork(after_in_child=_POOL.clear)


def _unrolled_loops(kind: str, r: int, precision: bool):
    """The compiled loops written out for rank ``r`` (see ``_lowrank_unrolled``), built once.

    The function is named after a hash of its source and constants, so that Numba's disk cache
    (keyed by name and bytecode) never serves loops from another version of the generator."""
    key = (kind, r, precision)
    if key not in _UNROLLED:
        make = _unrolled.forward_source if kind == "forward" else _unrolled.backward_source
        source, name = make(r, precision)
        constants = dict(HUGE_SUM=_HUGE_SUM, LOG_2PI=_LOG_2PI, BAD_DIAG=BAD_DIAG, REDO=REDO)
        constants.update(LOG_2=math.log(2.0))
        constants.update(BAD_FACTOR=BAD_FACTOR, BAD_LOC=BAD_LOC, NAN_VALUE=NAN_VALUE)
        tag = hashlib.sha256((source + repr(sorted(constants.items()))).encode()).hexdigest()
        full = f"{name}_{tag[:12]}"
        source = source.replace(f"def {name}(", f"def {full}(", 1)
        namespace = dict(constants, np=np, math=math, __name__=_unrolled.__name__)
        exec(compile(source, _unrolled.__file__, "exec"), namespace)
        _UNROLLED[key] = numba.njit(**_jit)(namespace[full])
    return _UNROLLED[key]


def _over_rows(fn, n: int, threads: int, *args) -> None:
    """``fn(start, stop, *args)`` over the rows [0, n), split into one contiguous range per
    thread (the loops release the GIL); compiled first on this thread."""
    fn(0, 0, *args)
    if threads <= 1 or n < threads * _ROWS:
        fn(0, n, *args)
        return
    if not _POOL or _POOL[0]._max_workers < threads - 1:
        _POOL[:] = [ThreadPoolExecutor(threads - 1, thread_name_prefix="pyro_frmdn_lowrank")]
    bounds = np.linspace(0, n, threads + 1).astype(np.int64)
    pending = [_POOL[0].submit(fn, a, b, *args) for a, b in itertools.pairwise(bounds[1:])]
    fn(0, bounds[1], *args)
    for job in pending:
        job.result()


# the float formats' bits: exponent shift and mask, mantissa mask and scale, exponent bias
_BITS = {
    np.dtype(np.float32): (np.int32, 23, 0xFF, 2**23 - 1, 2.0**-23, 127),
    np.dtype(np.float64): (np.int64, 52, 0x7FF, 2**52 - 1, 2.0**-52, 1023),
}
# the product of this many mantissas in [1, 2) stays finite in float64
OWN_LOGDET_MAX_D = 1000


def forward_unrolled(value, loc, factor, diag, strides, n, d, r, n_k, precision, threads, logdet):
    """The forward loops for rank ``r <= 8`` over flat storage arrays, ``n`` rows: ``strides``
    (4, 2) holds the (o, k) element strides of value, loc, factor and diag, whose (D,) and (D, r)
    tails are contiguous. ``logdet`` (rows,) is Σ log diag per row, or None for the loops to
    compute it (D <= 1000). Returns (out, cinv, proj, flags), one entry per row: cinv the packed
    lower triangle of C⁻¹."""
    out = np.empty(n, dtype=factor.dtype)
    cinv = np.empty((n, r * (r + 1) // 2))
    proj = np.empty((n, r))
    flags = np.empty(n, dtype=np.int8)
    own = logdet is None
    if own and d > OWN_LOGDET_MAX_D:
        raise ValueError(f"the loops compute log det diag for D <= {OWN_LOGDET_MAX_D}, got {d}")
    logdet_diag = np.empty(n) if own else np.ascontiguousarray(logdet, dtype=np.float64)
    width, *fmt = _BITS[diag.dtype]
    fn = _unrolled_loops("forward", r, precision)
    args = (value, loc, factor, diag, diag.view(width), strides, logdet_diag, own, *fmt, d, n_k)
    _over_rows(fn, n, threads, *args, out, cinv, proj, flags)
    redo = np.flatnonzero(flags & REDO)
    if redo.size:  # rare: a squared distance near the float64 limit, scaled by the general loops
        rows = [
            _gather(a, strides[i], redo, n_k, d, r if i == 2 else 0)
            for i, a in enumerate((value, loc, factor, diag))
        ]
        out_r, tril, proj_r, flags_r = forward(*rows, logdet_diag[redo, None], precision, 1)
        inverse = np.linalg.inv(tril[:, 0])
        cinv_r = np.swapaxes(inverse, -1, -2) @ inverse
        out[redo], proj[redo], flags[redo] = out_r[:, 0], proj_r[:, 0], flags_r[:, 0]
        low, col = np.tril_indices(r)
        cinv[redo] = cinv_r[:, low, col]
    return out, cinv, proj, flags


def _gather(flat, strides, rows, n_k, d, r):
    """Rows (o, k) of a flat storage array as a (len(rows), 1, D) or (len(rows), 1, D, r) copy."""
    start = (rows // n_k) * strides[0] + (rows % n_k) * strides[1]
    width = d * r if r else d
    picked = flat[start[:, None] + np.arange(width)]
    return picked.reshape((len(rows), 1, d) + ((r,) if r else ()))


def backward_unrolled(
    value, loc, factor, diag, strides, d, r, n_k, precision, cinv, proj, grad, threads
):
    """The backward loops for rank ``r <= 8``; returns contiguous gradients with respect to
    loc (rows, D), the factor (rows, D, r) and the diagonal (rows, D)."""
    n = grad.shape[0]
    g_loc = np.empty(n * d, dtype=factor.dtype)
    g_factor = np.empty(n * d * r, dtype=factor.dtype)
    g_diag = np.empty(n * d, dtype=factor.dtype)
    fn = _unrolled_loops("backward", r, precision)
    args = (value, loc, factor, diag, strides, d, n_k, cinv, proj, grad, g_loc, g_factor, g_diag)
    _over_rows(fn, n, threads, *args)
    return g_loc.reshape(n, d), g_factor.reshape(n, d, r), g_diag.reshape(n, d)


def _run(kernels, threads, *args):
    if threads > 1:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        kernels[1](*args)
    else:
        kernels[0](*args)
