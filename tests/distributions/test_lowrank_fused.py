"""The written-out low-rank density (kernel "inductor", the GPU path) against dense float64."""

import math

import pytest
import torch

from pyro_frmdn.distributions import _lowrank, _lowrank_fused
from pyro_frmdn.distributions._lowrank import lowrank_gaussian_log_prob, use_kernel
from pyro_frmdn.distributions._lowrank_fused import (
    MAX_RANK,
    checked_log_prob,
    compiled_log_prob,
    fused_log_prob,
)


def arguments(*batch, d=5, r=3, dtype=torch.float64, seed=0, factor_batch=None):
    g = torch.Generator().manual_seed(seed)
    fb = batch if factor_batch is None else factor_batch
    factor = 0.6 * torch.randn(*fb, d, r, generator=g, dtype=dtype)
    diag = torch.rand(*fb, d, generator=g, dtype=dtype) + 0.3
    diff = torch.randn(*batch, d, generator=g, dtype=dtype)
    return diff, factor, diag


def dense(diff, factor, diag, precision):
    """Reference: a float64 MultivariateNormal with the full matrix."""
    m = factor.double() @ factor.double().mT + torch.diag_embed(diag.double())
    if precision:
        law = torch.distributions.MultivariateNormal(
            torch.zeros(diff.shape[-1], dtype=torch.float64), precision_matrix=m
        )
    else:
        law = torch.distributions.MultivariateNormal(
            torch.zeros(diff.shape[-1], dtype=torch.float64), covariance_matrix=m
        )
    return law.log_prob(diff.double())


@pytest.mark.parametrize("precision", [False, True])
@pytest.mark.parametrize("r", list(range(1, MAX_RANK + 1)))
def test_values_and_gradients_match_a_dense_float64_gaussian(precision, r):
    diff, factor, diag = arguments(4, 3, d=9, r=r, seed=r)
    leaves = [t.clone().requires_grad_() for t in (diff, factor, diag)]
    refs = [t.clone().requires_grad_() for t in (diff, factor, diag)]
    got = fused_log_prob(*leaves, precision)
    want = dense(*refs, precision)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    weights = torch.randn(want.shape, generator=torch.Generator().manual_seed(9), dtype=want.dtype)
    (got * weights).sum().backward()
    (want * weights).sum().backward()
    for a, b in zip(leaves, refs, strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("precision", [False, True])
def test_a_factor_shared_over_the_batch_is_broadcast(precision):
    diff, factor, diag = arguments(6, 2, d=7, r=2, factor_batch=(1, 2))
    got = fused_log_prob(diff, factor, diag, precision)
    want = dense(diff, factor.expand(6, 2, 7, 2), diag.expand(6, 2, 7), precision)
    assert got.shape == (6, 2)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("precision", [False, True])
def test_extreme_rows_match_the_batched_kernel(precision):
    diff, factor, diag = arguments(5, d=4, r=2, dtype=torch.float32)
    diff[0] = 3e30  # its square overflows float32 unless the row is scaled first
    diff[1] = 0.0
    diff[2, 1] = math.inf
    diff[3] = 1e-30
    got = fused_log_prob(diff, factor, diag, precision)
    with use_kernel("torch"):
        want = lowrank_gaussian_log_prob(diff, factor, diag, precision)
    assert not got.isnan().any()
    assert got[2] == -math.inf and got[0] == -math.inf
    torch.testing.assert_close(got, want, rtol=1e-6, atol=0)


@pytest.mark.parametrize(
    "where, what",
    [("diag", -1.0), ("diag", 0.0), ("diag", math.inf), ("diag", math.nan), ("factor", math.nan),
     ("factor", -math.inf), ("loc", math.inf), ("loc", math.nan), (None, None)],
)  # fmt: skip
def test_the_checks_from_the_same_passes_flag_what_the_batched_kernel_refuses(where, what):
    diff, factor, diag = arguments(4, 2, d=6, r=3)
    loc = torch.randn(6, dtype=diff.dtype, generator=torch.Generator().manual_seed(8))
    args = {"factor": factor, "diag": diag, "loc": loc}
    if where is not None:
        args[where].view(-1)[3] = what
    _, found = checked_log_prob(diff + loc, args["loc"], factor, diag, True)
    flags = {None: 0, "diag": 1, "factor": 2, "loc": 4}
    assert int(found) == flags[where]
    # the error is the batched kernel's, word for word
    refused = {}
    for kernel in ("torch", "inductor"):
        with use_kernel(kernel):
            try:
                lowrank_gaussian_log_prob(diff + loc, factor, diag, True, loc=loc, validate=True)
            except ValueError as err:
                refused[kernel] = str(err)
    assert refused.get("torch") == refused.get("inductor")
    assert (where is None) == ("torch" not in refused)


def test_a_rank_outside_the_written_out_range_is_refused():
    diff, factor, diag = arguments(3, d=12, r=MAX_RANK + 1)
    with pytest.raises(ValueError, match=r"rank must be in \[1, 8\], got 9"):
        fused_log_prob(diff, factor, diag, False)


def test_auto_keeps_the_cpu_kernel_and_chooses_by_rank(monkeypatch):
    _, factor, _ = arguments(2, r=2)
    assert not _lowrank._fused_applies(factor)  # auto on CPU: the compiled loops or torch
    with use_kernel("inductor"):
        assert _lowrank._fused_applies(factor)
        assert not _lowrank._fused_applies(arguments(2, d=12, r=9)[1])
    monkeypatch.setattr(_lowrank_fused, "has_triton", lambda: True)
    assert not _lowrank._fused_applies(factor)  # still CPU tensors


@pytest.mark.slow
@pytest.mark.parametrize("precision", [False, True])
def test_the_compiled_kernel_matches_float64_through_the_public_function(precision):
    diff, factor, diag = arguments(8, 3, d=6, r=2, dtype=torch.float32, seed=3)
    loc = torch.randn(6, generator=torch.Generator().manual_seed(4))
    leaves = [t.clone().requires_grad_() for t in (diff, factor, diag)]
    with use_kernel("inductor"):
        got = lowrank_gaussian_log_prob(leaves[0] + loc, *leaves[1:], precision, loc=loc)
    refs = [t.double().requires_grad_() for t in (diff, factor, diag)]
    want = dense(*refs, precision)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)
    got.sum().backward()
    want.sum().backward()
    for a, b in zip(leaves, refs, strict=True):
        torch.testing.assert_close(a.grad.double(), b.grad, rtol=1e-4, atol=1e-5)


def test_a_compiler_failure_warns_once_and_falls_back(monkeypatch):
    from torch._dynamo.exc import BackendCompilerFailed

    class Failed(BackendCompilerFailed):  # its own constructor's arguments vary by release
        def __init__(self):
            Exception.__init__(self, "InvalidCxxCompiler: no working C++ compiler found")

    def broken(*args):
        raise Failed()

    monkeypatch.setattr(_lowrank_fused, "_compiled", {False: broken, True: broken})
    monkeypatch.setattr(_lowrank_fused, "_failure", None)
    diff, factor, diag = arguments(3, r=2)
    loc = torch.zeros(5, dtype=diff.dtype)
    with pytest.warns(RuntimeWarning, match="could not build the low-rank kernel"):
        got, found = compiled_log_prob(diff, loc, factor, diag, False, True)
    torch.testing.assert_close(got, dense(diff, factor, diag, False), rtol=1e-10, atol=1e-10)
    assert int(found) == 0
    assert not _lowrank_fused.usable()
    with use_kernel("inductor"):
        assert not _lowrank._fused_applies(factor)  # the batched tensor path from now on
