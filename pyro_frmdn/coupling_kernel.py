"""The fused inverse of an affine coupling (``flows.AffineCoupling``'s scoring direction): its
network's layers, the affine map and the log-determinant in a few passes over (N, D) rows, and
a backward pass written by hand."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .distributions.float32 import without_autocast


def _fused_linear_op():
    """oneDNN's linear layer with its bias and ReLU applied in the product's epilogue (the CPU
    op torch's own compiler emits), or None where this build of torch has none or this CPU has
    no bfloat16 support in oneDNN (then ``addmm``, as on other devices)."""
    try:
        if not (
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        ):
            return None
        return torch.ops.mkldnn._linear_pointwise
    except (AttributeError, RuntimeError):
        return None


_FUSED_LINEAR = _fused_linear_op()


def _linear(h: Tensor, weight: Tensor, bias: Tensor, relu: bool) -> Tensor:
    """``h @ weight.T + bias``, then a ReLU if ``relu``. In bfloat16 on the CPU one oneDNN call
    with the bias and the ReLU in its epilogue: at (3200, 32) -> (3200, 128) it took 0.09 ms
    against 0.24 ms for ``addmm`` and a ReLU pass, whose bfloat16 elementwise work is slow
    there; its values are ``F.linear``'s bit for bit (what the autograd direction computes)."""
    if _FUSED_LINEAR is not None and h.dtype == torch.bfloat16 and h.device.type == "cpu":
        return _FUSED_LINEAR(h, weight, bias, "relu" if relu else "none", [], "")
    out = torch.addmm(bias, h, weight.t())
    return out.relu_() if relu else out


class _AffineInverse(torch.autograd.Function):
    """The inverse of an affine coupling whose network is linear layers with ReLUs between them:
    x = [y₁, (y₂ − μ) exp(−s)] and log|det| = Σ s, s = clamp(log-scale), with [μ, log-scale] the
    network's output at y₁; the gradient of s passes to the log-scale unchanged (Pyro's
    ``clamp_preserve_gradients``). Forward and backward work on (N, D) rows, each gradient written
    once, the log-determinant summed where the log-scale is made and the ReLUs' gradients written
    over the products they mask (no fresh tensor per layer). With ``dtype`` (bfloat16) the
    network's products run in it, the rest in y's dtype."""

    @staticmethod
    @without_autocast
    def forward(ctx, y, split, low, high, dtype, *weights):
        shape, d = y.shape, y.shape[-1]
        n = d - split
        flat = y.reshape(-1, d)
        weights = [w.to(dtype) for w in weights] if dtype else weights
        h = first = flat[:, :split].to(dtype or flat.dtype)
        hidden = []
        for i in range(0, len(weights) - 2, 2):
            h = _linear(h, weights[i], weights[i + 1], relu=True)
            hidden.append(h)
        params = _linear(h, weights[-2], weights[-1], relu=False)  # (N, 2 n): μ, the log-scale
        params = params.to(flat.dtype)
        log_scale = params[:, n:].clamp(low, high)
        scale = log_scale.exp()  # x₂ = (y₂ − μ) / e^{s}
        x = torch.empty_like(flat)
        x[:, :split] = flat[:, :split]
        torch.sub(flat[:, split:], params[:, :n], out=x[:, split:]).div_(scale)
        # the network's input in its own dtype is kept only where it is a cast (a copy)
        ctx.save_for_backward(flat, scale, x, first if dtype else None, *hidden, *weights)
        ctx.split, ctx.shape, ctx.layers = split, shape, len(weights) // 2
        return x.view(shape), log_scale.sum(-1).view(shape[:-1])

    @staticmethod
    @once_differentiable
    @without_autocast
    def backward(ctx, g_x, g_logdet):
        flat, scale, x, first, *rest = ctx.saved_tensors
        split, layers = ctx.split, ctx.layers
        hidden, weights = rest[: layers - 1], rest[layers - 1 :]
        need_y = ctx.needs_input_grad[0]
        g_x = g_x.reshape(flat.shape)
        g_logdet = flat.new_zeros(flat.shape[0]) if g_logdet is None else g_logdet.reshape(-1)
        n = scale.shape[-1]
        g_x2 = g_x[:, split:]
        g_y = torch.empty_like(flat) if need_y else None
        if need_y:
            g_y[:, :split] = g_x[:, :split]
        g_y2 = g_y[:, split:] if need_y else torch.empty_like(scale)
        torch.div(g_x2, scale, out=g_y2)
        # the gradient of the network's output [μ, log-scale]; the clamp passes the log-scale's
        # gradient unchanged (Pyro's clamp_preserve_gradients)
        g_h = flat.new_empty(flat.shape[0], 2 * n)
        torch.neg(g_y2, out=g_h[:, :n])
        torch.mul(g_x2, x[:, split:], out=g_h[:, n:])
        torch.sub(g_logdet[:, None], g_h[:, n:], out=g_h[:, n:])
        dtype, low = flat.dtype, weights[0].dtype  # low: the network's (bfloat16 or dtype)
        grads = [None] * (2 * layers)
        for i in range(layers - 1, -1, -1):
            inputs = hidden[i - 1] if i else (flat[:, :split] if first is None else first)
            # a bfloat16 sum accumulates in float32 and is 4x faster than one asked for float32
            grads[2 * i + 1] = g_h.sum(0).to(dtype)
            g_h = g_h.to(low)
            grads[2 * i] = (g_h.t() @ inputs).to(dtype)
            if i:
                # the ReLU's gradient, as autograd computes it, written over the product
                g_h = g_h @ weights[2 * i]
                torch.ops.aten.threshold_backward.grad_input(g_h, hidden[i - 1], 0, grad_input=g_h)
            elif need_y and low == dtype:
                g_y[:, :split].addmm_(g_h, weights[0])
            elif need_y:
                g_y[:, :split] += (g_h @ weights[0]).to(dtype)
        g_y = g_y.view(ctx.shape) if need_y else None
        return (g_y, None, None, None, None, *grads)
