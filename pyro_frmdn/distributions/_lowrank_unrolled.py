"""The low-rank Gaussian loops written out for one rank r <= 8: every sum a scalar in a register."""

from __future__ import annotations

__all__ = ["MAX_RANK", "backward_source", "forward_source"]

MAX_RANK = 8
"""The largest rank with written-out loops; above it the general loops of ``_lowrank_cpu`` run."""

# The arguments reach these loops as flat 1-D arrays over their storage plus, per argument, the
# element strides of its two leading dims (rows o and components k), so that the position of
# (o, k, i, j) is  o * so + k * sk + i * r + j  with r a constant of the code: the compiler then
# knows that the factor's entries of one row lie side by side and keeps every sum in a register.
# Each function handles the rows [start, stop): the caller runs disjoint ranges on its threads.


def _pairs(r: int) -> list[tuple[int, int]]:
    return [(j, m) for j in range(r) for m in range(j + 1)]


def _row_offsets(names: tuple[str, ...]) -> list[str]:
    return [f"p{n} = o * st[{a}, 0] + k * st[{a}, 1]" for a, n in enumerate(names)]


def _sums(r: int, precision: bool) -> list[str]:
    """One pass over the D entries of a row: the r(r+1)/2 + r + 1 sums in float64, and two sums
    for the argument checks: ``probe`` is NaN if diag or loc holds a value that is not finite or
    a zero diagonal, ``neg`` positive if a diagonal is negative. Only sums: the compiler
    vectorises the loop (a min or max reduction would keep it scalar).

    The log-determinant of the diagonal comes from the same pass without a logarithm per entry:
    each d_i = m_i 2^(e_i) with the mantissa m_i in [1, 2) and the exponent read from the bits of
    its float (``bits``: an integer view of the diagonal's storage), so that Σ log d_i =
    ln 2 · Σ e_i + log Π m_i, one logarithm per row; the product of D < 1024 mantissas stays below
    2^1024 (the caller passes larger D's sums in). ``tiny`` counts subnormal entries (exponent
    field zero), which this decomposition does not cover."""
    lines = ["quad = 0.0", "probe = 0.0", "probe_e = 0.0", "neg = 0.0"]
    lines += ["ex = 0", "tiny = 0", "mant = 1.0"]
    lines += [f"b{j} = 0.0" for j in range(r)]
    lines += [f"g{j}{m} = 0.0" for j, m in _pairs(r)]
    body = [
        "di = np.float64(dv[i])",
        "mi = np.float64(lv[i])",
        "ei = np.float64(vv[i]) - mi",
        "vi = 1.0 / di",
        "probe += (di + mi + vi) * 0.0",
        "probe_e += ei * 0.0",
        "neg += abs(di) - di",
        "bi = np.int64(bv[i])",
        "eb = (bi >> shift) & emask",
        "ex += eb",
        "tiny += 1 if eb == 0 else 0",
        "mant *= 1.0 + np.float64(bi & mmask) * mscale",
    ]
    body += (
        ["wi = ei", "quad += ei * ei * di"] if precision else ["wi = ei * vi", "quad += ei * wi"]
    )
    body += [f"f{j} = np.float64(fv[i * {r} + {j}])" for j in range(r)]
    body += [f"s{j} = f{j} * vi" for j in range(r)]
    body += [f"b{j} += f{j} * wi" for j in range(r)]
    body += [f"g{j}{m} += s{j} * f{m}" for j, m in _pairs(r)]
    return lines + ["for i in range(d):"] + ["    " + x for x in body]


def _row_views(r: int) -> list[str]:
    """The row's slices: indices from 0 up, so the compiler drops negative-index wrapping."""
    return [
        "o = row // n_k",
        "k = row - o * n_k",
        *_row_offsets(("v", "l", "f", "d")),
        "vv = value[pv : pv + d]",
        "lv = loc[pl : pl + d]",
        f"fv = factor[pf : pf + d * {r}]",
        "dv = diag[pd : pd + d]",
    ]


def _bits_view() -> list[str]:
    return ["bv = bits[pd : pd + d]"]


def _cholesky(r: int) -> list[str]:
    """L with L Lᵀ = I + gram; every pivot >= 1 in exact arithmetic and kept so (rounding must
    not give a density above its true maximum); logcap = log det L."""
    lines = []
    for j in range(r):
        for m in range(j + 1):
            acc = f"g{j}{m}" + "".join(f" - l{j}{p} * l{m}{p}" for p in range(m))
            if j == m:
                lines += [
                    f"c = 1.0 + {acc}",
                    f"l{j}{j} = math.sqrt(c) if c > 1.0 else (1.0 if c == c else c)",
                ]
            else:
                lines.append(f"l{j}{m} = ({acc}) / l{m}{m}")
    pivots = " * ".join(f"l{j}{j}" for j in range(r))
    logs = " + ".join(f"math.log(l{j}{j})" for j in range(r))
    # one log of the product unless the product could leave the float64 range
    lines.append(f"piv = {pivots}")
    lines.append(f"logcap = math.log(piv) if piv < 1e300 else {logs}")
    return lines


def _inverse(r: int) -> list[str]:
    """C⁻¹ = L⁻ᵀ L⁻¹ from L, as the packed lower triangle (what the backward pass reads)."""
    lines = []
    for j in range(r):
        lines.append(f"n{j}{j} = 1.0 / l{j}{j}")
        for m in range(j - 1, -1, -1):
            acc = " + ".join(f"l{j}{p} * n{p}{m}" for p in range(m, j))
            lines.append(f"n{j}{m} = -({acc}) * n{j}{j}")
    for idx, (j, m) in enumerate(_pairs(r)):
        acc = " + ".join(f"n{p}{j} * n{p}{m}" for p in range(j, r))
        lines.append(f"cinv[row, {idx}] = {acc}")
    return lines


def forward_source(r: int, precision: bool) -> tuple[str, str]:
    """Source and name of the forward loops for rank ``r`` and one form.

    The function ``(start, stop, value, loc, factor, diag, bits, st, logdet_diag, own, shift,
    emask, mmask, mscale, bias, d, n_k, out, cinv, proj, flags)`` writes, for every row (o, k) =
    divmod(row, n_k) in [start, stop):
    ``out[row]`` the log-density, ``cinv[row]``
    the packed lower triangle of C⁻¹ (C = I + Wᵀ D⁻¹ W), ``proj[row]`` C⁻¹ Wᵀ D⁻¹ e (covariance)
    or Uᵀ e (precision), which the backward pass reuses, and ``flags[row]`` the invalid arguments.
    ``st`` (4, 2) holds the (o, k) element strides of value, loc, factor and diag; ``bits`` is
    the diagonal's storage viewed as integers of its width, read with the float format's exponent
    shift and mask, mantissa mask and scale and exponent bias; ``logdet_diag[row]`` receives
    Σ log d_i when ``own``, else holds it. A row whose
    squared distance nears the float64 limit is flagged ``REDO`` for the general loops.
    """
    name = f"_forward_{'precision' if precision else 'covariance'}_r{r}"
    rows = [
        *_row_views(r),
        *_bits_view(),
        *_sums(r, precision),
        "flag = 0",
        # rare: the squared distance is near the float64 limit or not finite; the caller scores
        # such rows again with the general loops, which scale e first
        "if not quad < HUGE_SUM:",
        "    flag = REDO",
        "infinite = probe_e != probe_e",
        "if probe != probe or neg > 0.0:",
        "    for i in range(d):",
        "        di = np.float64(dv[i])",
        "        if not (di > 0.0 and di < math.inf):",
        "            flag |= BAD_DIAG",
        "        if not math.isfinite(lv[i]):",
        "            flag |= BAD_LOC",
        # log Π d_i: from the exponents and mantissas, or (a zero, negative, subnormal or not
        # finite diagonal, or D's sums passed in) one logarithm per entry / the caller's sum
        "if not own:",
        "    ld = np.float64(logdet_diag[row])",
        "elif tiny > 0 or probe != probe or neg > 0.0:",
        "    ld = 0.0",
        "    for i in range(d):",
        "        ld += math.log(np.float64(dv[i]))",
        "else:",
        "    ld = (ex - d * bias) * LOG_2 + math.log(mant)",
        "logdet_diag[row] = ld",
        "if infinite:",
        "    for i in range(d):",
        "        ei = np.float64(vv[i]) - np.float64(lv[i])",
        "        if ei != ei:",
        "            flag |= NAN_VALUE",
        "if not (" + " and ".join(f"math.isfinite(g{j}{j})" for j in range(r)) + "):",
        "    flag |= BAD_FACTOR",
        *_cholesky(r),
    ]
    # w = L⁻¹ b
    for j in range(r):
        acc = f"b{j}" + "".join(f" - l{j}{p} * w{p}" for p in range(j))
        rows.append(f"w{j} = ({acc}) / l{j}{j}")
    if precision:
        rows.append("maha = quad + " + " + ".join(f"b{j} * b{j}" for j in range(r)))
        rows += [f"v{j} = b{j}" for j in range(r)]
        rows.append("logdet = -ld - 2.0 * logcap")
    else:
        white = " + ".join(f"w{j} * w{j}" for j in range(r))
        # eᵀΣ⁻¹e >= 0: rounding must not make it negative
        rows.append(f"maha = max(quad - ({white}), 0.0) if quad == quad else quad")
        for j in range(r - 1, -1, -1):  # v = L⁻ᵀ w = C⁻¹ b
            acc = f"w{j}" + "".join(f" - l{p}{j} * v{p}" for p in range(j + 1, r))
            rows.append(f"v{j} = ({acc}) / l{j}{j}")
        rows.append("logdet = ld + 2.0 * logcap")
    rows += [f"proj[row, {j}] = v{j}" for j in range(r)]
    rows += _inverse(r)
    rows += [
        # a point infinitely far has density zero (never Inf - Inf = NaN)
        "if infinite and not flag & NAN_VALUE:",
        "    out[row] = -math.inf",
        "else:",
        "    out[row] = -0.5 * (d * LOG_2PI + logdet + maha)",
        "flags[row] = flag",
    ]
    head = [
        f"def {name}(start, stop, value, loc, factor, diag, bits, st, logdet_diag, own, shift,"
        " emask, mmask, mscale, bias, d, n_k, out, cinv, proj, flags):",
        "    for row in range(start, stop):",
    ]
    return "\n".join(head + ["        " + x for x in rows]) + "\n", name


def backward_source(r: int, precision: bool) -> tuple[str, str]:
    """Source and name of the backward loops for rank ``r`` and one form.

    The function ``(start, stop, value, loc, factor, diag, st, d, n_k, cinv, proj, grad, g_loc,
    g_factor, g_diag)`` writes the gradients of ``grad[row] * log-density`` with respect to loc,
    the factor and the diagonal into contiguous (rows, D), (rows, D, r) and (rows, D) arrays, in
    one pass per row from the forward pass's C⁻¹ and projection. With t = C⁻¹ Wᵀ (per entry i:
    t_j = Σ_m C⁻¹_jm W_im), Wv and corr_i = W_i C⁻¹ W_iᵀ:

    - precision, ℓ = -½[eᵀPe - log det P], P = diag(d) + U Uᵀ: ∂ℓ/∂e = -P e,
      ∂ℓ/∂U = P⁻¹U - e uᵀ with P⁻¹U = D⁻¹ U C⁻¹;
    - covariance, ℓ = -½[eᵀΣ⁻¹e + log det Σ], Σ = W Wᵀ + diag(d), α = Σ⁻¹e = D⁻¹(e - W v):
      ∂ℓ/∂W = α vᵀ - D⁻¹ W C⁻¹, ∂ℓ/∂d_i = ½(α_i² - 1/d_i + corr_i / d_i²).
    """
    name = f"_backward_{'precision' if precision else 'covariance'}_r{r}"
    pairs = _pairs(r)
    rows = [
        *_row_views(r),
        "g = np.float64(grad[row])",
        "glv = g_loc[row * d : (row + 1) * d]",
        "gdv = g_diag[row * d : (row + 1) * d]",
        f"gfv = g_factor[row * d * {r} : (row + 1) * d * {r}]",
        *[f"c{j}{m} = cinv[row, {idx}]" for idx, (j, m) in enumerate(pairs)],
        *[f"v{j} = proj[row, {j}]" for j in range(r)],
        "for i in range(d):",
    ]
    body = [
        "di = np.float64(dv[i])",
        "ei = np.float64(vv[i]) - np.float64(lv[i])",
        "vi = 1.0 / di",
        *[f"f{j} = np.float64(fv[i * {r} + {j}])" for j in range(r)],
    ]
    for j in range(r):
        terms = " + ".join(f"{_sym(j, m)} * f{m}" for m in range(r))
        body.append(f"t{j} = {terms}")
    body.append("wv = " + " + ".join(f"f{j} * v{j}" for j in range(r)))
    body.append("corr = " + " + ".join(f"f{j} * t{j}" for j in range(r)))
    if precision:
        body += [
            "glv[i] = g * (ei * di + wv)",
            "gdv[i] = 0.5 * g * (vi - corr * vi * vi - ei * ei)",
            "ca = -g * ei",
            "cb = g * vi",
        ]
    else:
        body += [
            "alpha = (ei - wv) * vi",
            "glv[i] = g * alpha",
            "gdv[i] = 0.5 * g * (alpha * alpha - vi + corr * vi * vi)",
            "ca = g * alpha",
            "cb = -g * vi",
        ]
    body += [f"gfv[i * {r} + {j}] = ca * v{j} + cb * t{j}" for j in range(r)]
    rows += ["    " + x for x in body]
    head = [
        f"def {name}(start, stop, value, loc, factor, diag, st, d, n_k, cinv, proj, grad, g_loc,"
        " g_factor, g_diag):",
        "    for row in range(start, stop):",
    ]
    return "\n".join(head + ["        " + x for x in rows]) + "\n", name


def _sym(j: int, m: int) -> str:
    return f"c{j}{m}" if m <= j else f"c{m}{j}"
