"""window_lstm: the first LSTM layer and the attention window stepped together, fast backward."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from ..distributions.float32 import float32_math, promote, without_autocast

__all__ = ["WindowTrace", "window_lstm"]


class WindowTrace(NamedTuple):
    """What :func:`window_lstm` returns over ``T`` steps.

    ``h`` (B, T, H) the first layer's outputs, ``w`` (B, T, A) the window vectors, ``phi``
    (B, T, U) the attention, ``c`` (B, H) the last cell state, ``kappa`` (B, K) the last centres,
    ``alpha`` and ``beta`` (B, K) the last step's window weights and sharpnesses (no gradient).
    """

    h: Tensor
    w: Tensor
    phi: Tensor
    c: Tensor
    kappa: Tensor
    alpha: Tensor
    beta: Tensor


def _exp(x: Tensor) -> Tensor:
    """:math:`e^x` with ``x`` floored at -80: far from its centres a window term is 2e-35, not
    a subnormal number or zero, whose exp and products are a hundred times slower on a CPU; the
    change is below any sum's rounding."""
    return x.clamp(min=-80.0).exp()


def _forward(x_gates, recurrent, window_weight, window_bias, h, c, w, kappa, text, text_mask):
    """The recurrence without autograd: the per-step tensors (B, T, ·) the backward needs:
    gates' sigmoids, tanh(g), c, h, phi, kappa and the window's linear outputs."""
    a, k, hidden = text.shape[-1], kappa.shape[-1], h.shape[-1]
    rec_w, rec_h = recurrent[:a], recurrent[a:]  # (A, 4H), (H, 4H)
    text_rec = text @ rec_w  # (B, U, 4H): w_t R_w = phi_t (c R_w)
    x_gates = torch.cat([x_gates[:, :1] + (w @ rec_w).unsqueeze(1), x_gates[:, 1:]], 1)
    weight_t = window_weight.T  # (H, 3K)
    positions = torch.arange(1, text.shape[1] + 1, dtype=h.dtype, device=h.device).unsqueeze(-1)
    mask = text_mask.to(h.dtype).unsqueeze(-1)  # (B, U, 1)
    phi = None  # (B, 1, U): the first step's window part is w's, in x_gates
    ss, gs, cs, hs, phis, kappas, pres = [], [], [], [], [], [], []
    for x_t in x_gates.unbind(1):
        z = torch.addmm(x_t, h, rec_h)  # (B, 4H)
        if phi is not None:  # the window's part: phi_{t-1} (c R_w)
            z = torch.baddbmm(z.unsqueeze(1), phi, text_rec).squeeze(1)
        s = torch.sigmoid(z)
        g = torch.tanh(z[:, 2 * hidden : 3 * hidden])
        i, f, _, o = s.chunk(4, -1)
        c = torch.addcmul(f * c, i, g)
        h = o * torch.tanh(c)
        pre = torch.addmm(window_bias, h, weight_t)  # (B, 3K): log alpha, log beta, log step
        beta, step = pre[:, k:].exp().chunk(2, -1)
        kappa = kappa + step
        distance = kappa.unsqueeze(1) - positions  # (B, U, K)
        log_e = torch.addcmul(pre[:, None, :k], beta.unsqueeze(1), distance * distance, value=-1)
        phi = (_exp(log_e) * mask).sum(-1).unsqueeze(1)  # (B, 1, U)
        ss.append(s)
        gs.append(g)
        cs.append(c)
        hs.append(h)
        phis.append(phi)
        kappas.append(kappa)
        pres.append(pre)
    stack = [torch.stack(v, 1) for v in (ss, gs, cs, hs, kappas, pres)]
    return (*stack[:4], torch.cat(phis, 1), *stack[4:])


def _outputs(trace, text) -> tuple[Tensor, ...]:
    """The trace's outputs: h, w, phi, the last c and kappa, the last alpha and beta."""
    _, _, cs, hs, phis, kappas, pres = trace
    k = kappas.shape[-1]
    alpha, beta = pres[:, -1, : 2 * k].exp().chunk(2, -1)
    return hs, torch.bmm(phis, text), phis, cs[:, -1], kappas[:, -1], alpha, beta


class _WindowLSTM(torch.autograd.Function):
    """The recurrence with a hand-written backward through time: the step-local derivatives are
    formed for all steps at once, the loop only carries the gradients of the state back (a few
    small products a step), and the parameters' gradients are one product over all steps."""

    @staticmethod
    def forward(
        ctx, x_gates, recurrent, window_weight, window_bias, h0, c0, w0, kappa0, text, mask
    ):
        trace = _forward(
            x_gates, recurrent, window_weight, window_bias, h0, c0, w0, kappa0, text, mask
        )
        out = _outputs(trace, text)
        ctx.save_for_backward(recurrent, window_weight, h0, c0, w0, text, mask, *trace, out[1])
        ctx.mark_non_differentiable(out[5], out[6])
        return out

    @staticmethod
    @once_differentiable
    @without_autocast
    def backward(ctx, g_h, g_w, g_phi, g_c, g_kappa, _g_alpha, _g_beta):
        recurrent, window_weight, h0, c0, w0, text, mask, *trace, ws = ctx.saved_tensors
        ss, gs, cs, hs, _, kappas, pres = trace
        steps, a, k = ss.shape[1], text.shape[-1], kappas.shape[-1]
        rec_w, rec_h = recurrent[:a], recurrent[a:]
        # step-local derivatives, all steps at once
        text_t = text.transpose(1, 2)  # (B, A, U)
        g_phi = g_phi + torch.bmm(g_w, text_t)  # (B, T, U): w_t = phi_t c
        beta, step = pres[..., k:].exp().chunk(2, -1)  # (B, T, K)
        positions = torch.arange(1, text.shape[1] + 1, dtype=hs.dtype, device=hs.device)
        distance = kappas.unsqueeze(2) - positions.unsqueeze(-1)  # (B, T, U, K)
        log_alpha = pres[..., :k].unsqueeze(2)
        e = _exp(log_alpha - beta.unsqueeze(2) * distance**2) * mask.to(hs.dtype)[:, None, :, None]
        beta = beta.unsqueeze(2)
        local = torch.cat([e, -beta * distance**2 * e, -2 * beta * distance * e], -1)
        i, f, o = ss[..., : 2 * hs.shape[-1]].chunk(2, -1) + (ss[..., 3 * hs.shape[-1] :],)
        tanh_c = torch.tanh(cs)
        c_prev = torch.cat([c0.unsqueeze(1), cs[:, :-1]], 1)
        gate = torch.cat(
            [gs * i * (1 - i), c_prev * f * (1 - f), i * (1 - gs**2), tanh_c * o * (1 - o)], -1
        )  # dz = [dc, dc, dc, dh] * gate
        dc_dh = o * (1 - tanh_c**2)
        # the loop over steps, backwards: the gradients of the state (h, c, kappa, phi)
        text_rec_t = (text @ rec_w).transpose(1, 2)  # (B, 4H, U)
        rec_h_t = rec_h.T  # (4H, H)
        dh_next = torch.zeros_like(hs[:, 0])
        dc, dkappa = g_c, g_kappa
        dz = None
        dzs, das = [None] * steps, [None] * steps
        per_step = (t.unbind(1) for t in (g_phi, local, step, g_h, dc_dh, gate, f))
        for t, (g_phi_t, local_t, step_t, g_h_t, dc_dh_t, gate_t, f_t) in reversed(
            list(enumerate(zip(*per_step, strict=True)))
        ):
            dphi = g_phi_t.unsqueeze(1)  # (B, 1, U)
            if dz is not None:
                dphi = torch.baddbmm(dphi, dz.unsqueeze(1), text_rec_t)
            q = torch.bmm(dphi, local_t).squeeze(1)  # (B, 3K)
            dkappa = dkappa + q[:, 2 * k :]
            da = torch.cat([q[:, : 2 * k], dkappa * step_t], -1)
            dh = torch.addmm(g_h_t + dh_next, da, window_weight)
            dc = torch.addcmul(dc, dh, dc_dh_t)
            dz = torch.cat([dc, dc, dc, dh], -1) * gate_t
            dh_next = dz @ rec_h_t
            dc = dc * f_t
            dzs[t], das[t] = dz, da
        dz, da = torch.stack(dzs, 1), torch.stack(das, 1)  # (B, T, 4H), (B, T, 3K)
        # the parameters: one product over all steps
        w_prev = torch.cat([w0.unsqueeze(1), ws[:, :-1]], 1)
        h_prev = torch.cat([h0.unsqueeze(1), hs[:, :-1]], 1)
        inputs = torch.cat([w_prev, h_prev], -1).flatten(0, 1)
        d_recurrent = inputs.T @ dz.flatten(0, 1)
        d_weight = da.flatten(0, 1).T @ hs.flatten(0, 1)
        d_w0 = dz[:, 0] @ rec_w.T
        return (
            dz, d_recurrent, d_weight, da.sum((0, 1)), dh_next, dc, d_w0, dkappa, None, None,
        )  # fmt: skip


def window_lstm(
    x_gates: Tensor,
    recurrent: Tensor,
    window_weight: Tensor,
    window_bias: Tensor,
    h: Tensor,
    c: Tensor,
    w: Tensor,
    kappa: Tensor,
    text: Tensor,
    text_mask: Tensor,
) -> WindowTrace:
    r"""Run an LSTM layer and Graves' attention window (:class:`AttentionWindow`) over ``T`` steps.

    Step :math:`t`: the gates :math:`z_t = x_t + [w_{t-1}, h_{t-1}] R` in torch's order
    (i, f, g, o), :math:`c_t = \sigma(f) c_{t-1} + \sigma(i) \tanh(g)`,
    :math:`h_t = \sigma(o) \tanh(c_t)`, then the window of :math:`h_t` (Graves 2013, §5.1) gives
    :math:`\kappa_t, \phi(t, \cdot), w_t`. The same numbers as ``nn.LSTM`` stepped with
    ``AttentionWindow``, but when gradients are needed the backward through time is written out:
    no autograd graph of the loop, a loop of a few small products a step, several times faster
    on a CPU. (Only first derivatives.)

    Arguments:
        x_gates: (B, T, 4H) the inputs' part of the gates, biases included.
        recurrent: (A + H, 4H) the weights of :math:`[w_{t-1}, h_{t-1}]`.
        window_weight, window_bias: the window's linear layer, (3K, H) and (3K,).
        h, c, w, kappa: the state before the first step, (B, H), (B, H), (B, A), (B, K).
        text: (B, U, A) one-hot characters (:func:`one_hot_text`); text_mask: (B, U) bool.

    References:
        A. Graves, *Generating Sequences With Recurrent Neural Networks*, arXiv:1308.0850 (2013).

    Example:
        >>> from pyro_frmdn.nn import encode_texts, one_hot_text
        >>> codes, mask = encode_texts(["ab", "b"], "ab")  # A = 2 characters, U = 2
        >>> text = one_hot_text(codes, mask, 2, torch.float32)
        >>> h, k = 3, 2  # H = 3 units, K = 2 window components; B = 2 texts, T = 5 steps
        >>> z = torch.zeros
        >>> trace = window_lstm(z(2, 5, 4 * h), z(2 + h, 4 * h), z(3 * k, h), z(3 * k),
        ...                     z(2, h), z(2, h), z(2, 2), z(2, k), text, mask)
        >>> trace.h.shape, trace.w.shape, trace.phi.shape
        (torch.Size([2, 5, 3]), torch.Size([2, 5, 2]), torch.Size([2, 5, 2]))
        >>> trace.kappa.tolist()  # a step of e^0 = 1 character a step
        [[5.0, 5.0], [5.0, 5.0]]
    """
    args = (x_gates, recurrent, window_weight, window_bias, h, c, w, kappa, text, text_mask)
    # float32 under autocast: the hand-written backward reads the forward's dtypes
    args = (*(promote(t) for t in args[:9]), text_mask)
    with float32_math():
        if torch.is_grad_enabled() and any(t.requires_grad for t in args[:8]):
            return WindowTrace(*_WindowLSTM.apply(*args))
        with torch.no_grad():
            return WindowTrace(*_outputs(_forward(*args), text))
