"""Keep freed memory in the process, so that each training step reuses pages already mapped."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["keep_freed_memory"]

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4
_applied = False


def keep_freed_memory() -> bool:
    """Tell glibc's allocator to keep freed memory in the process instead of unmapping it.

    PyTorch allocates CPU tensors with ``malloc``; glibc serves every request above 32 MiB with
    a fresh ``mmap`` and unmaps it when freed, so a training step that writes the gradient of a
    large low-rank factor (B·T·K·D·r floats) takes a page fault for every 4 KiB of it, at every
    step: memory written fresh is several times slower than memory reused. With ``mmap`` off
    for large requests and no trimming, freed blocks stay in the heap and the next step reuses
    them (``benchmarks/likelihood.py`` and ``docs/performance.md`` give the measured gain).

    The setting is process-wide and lasts until the process ends: the resident size stays at
    its peak after training instead of shrinking. It does nothing on other C libraries or
    platforms. :func:`~pyro_frmdn.infer.fit` calls it for CPU training unless
    ``keep_memory=False``.

    Returns:
        Whether the setting is in force.
    """
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = mallopt(_M_MMAP_MAX, 0) and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    ok = ok and mallopt(_M_TOP_PAD, 64 * 2**20)
    _applied = bool(ok)
    return _applied
