"""window_lstm: the same numbers and gradients as nn.LSTMCell + AttentionWindow stepped by
autograd (the network before the written-out backward), and torch's gradcheck."""

import pytest
import torch
from torch import nn

from pyro_frmdn.nn import AttentionWindow, encode_texts, one_hot_text
from pyro_frmdn.nn.window_lstm import window_lstm

ALPHABET = "abcde "


def setup(dtype, b=3, t=7, hidden=6, k=2, seed=0):
    torch.manual_seed(seed)
    a = len(ALPHABET)
    cell = nn.LSTMCell(3 + a, hidden).to(dtype)
    window = AttentionWindow(hidden, a, k).to(dtype)
    with torch.no_grad():  # centres that cross the texts within the steps
        window.linear.bias[2 * k :].fill_(-0.5)
    codes, mask = encode_texts(["abcde", "a b", "e"][:b], ALPHABET)
    text = one_hot_text(codes, mask, a, dtype)
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(b, t, 3, generator=g, dtype=dtype)
    state = [torch.randn(b, n, generator=g, dtype=dtype) for n in (hidden, hidden, a, k)]
    state[3] = state[3].abs()
    return cell, window, x, state, text, mask


def reference(cell, window, x, state, text, mask):
    """nn.LSTMCell and AttentionWindow, one step at a time, autograd through all of it."""
    h, c, w, kappa = state
    hs, ws, phis = [], [], []
    for t in range(x.shape[1]):
        h, c = cell(torch.cat([x[:, t], w], -1), (h, c))
        out = window(h, kappa, text, mask)
        w, kappa = out.w, out.kappa
        hs.append(h)
        ws.append(w)
        phis.append(out.phi)
    return torch.stack(hs, 1), torch.stack(ws, 1), torch.stack(phis, 1), c, kappa, out


def fused(cell, window, x, state, text, mask):
    x_gates = x @ cell.weight_ih[:, :3].T + cell.bias_ih + cell.bias_hh
    recurrent = torch.cat([cell.weight_ih[:, 3:], cell.weight_hh], 1).T
    weight, bias = window.linear.weight, window.linear.bias
    return window_lstm(x_gates, recurrent, weight, bias, *state, text, mask)


def losses(outputs, g):
    """A scalar that weighs every output (h, w, phi, c, kappa) with random numbers."""
    return sum((o * torch.randn(o.shape, generator=g, dtype=o.dtype)).sum() for o in outputs)


def gradients(run, dtype):
    cell, window, x, state, text, mask = setup(dtype)
    leaves = [x, *state]
    for leaf in leaves:
        leaf.requires_grad_(True)
    out = run(cell, window, x, state, text, mask)
    params = [*cell.parameters(), *window.parameters()]
    loss = losses(out[:5], torch.Generator().manual_seed(7))
    return out, torch.autograd.grad(loss, params + leaves)


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_values_and_gradients_equal_the_step_by_step_autograd_network(dtype, rtol):
    expected, expected_grads = gradients(reference, dtype)
    got, got_grads = gradients(fused, dtype)
    for e, g in zip(expected[:5], got[:5], strict=True):
        assert torch.allclose(g, e, rtol=rtol, atol=rtol)
    assert torch.allclose(got.alpha, expected[5].alpha, rtol=rtol)
    assert torch.allclose(got.beta, expected[5].beta, rtol=rtol)
    for e, g in zip(expected_grads, got_grads, strict=True):
        assert torch.allclose(g, e, rtol=rtol, atol=rtol * e.abs().max())


def test_masked_positions_get_no_attention_and_no_gradient():
    cell, window, x, state, text, mask = setup(torch.float64)
    out = fused(cell, window, x, state, text, mask)
    assert bool((out.phi[~mask.unsqueeze(1).expand_as(out.phi)] == 0).all())
    assert bool((out.kappa >= state[3]).all())


def test_gradcheck():
    cell, window, x, state, text, mask = setup(torch.float64, b=2, t=3, hidden=3, k=2)
    x_gates = (x @ cell.weight_ih[:, :3].T + cell.bias_ih + cell.bias_hh).detach()
    recurrent = torch.cat([cell.weight_ih[:, 3:], cell.weight_hh], 1).T.detach()
    weight, bias = window.linear.weight.detach(), window.linear.bias.detach()
    args = [x_gates, recurrent, weight, bias, *state]
    args = [a.clone().requires_grad_(True) for a in args]

    def f(*a):
        return window_lstm(*a, text, mask)[:5]

    assert torch.autograd.gradcheck(f, args)


def test_without_gradients_the_same_numbers():
    cell, window, x, state, text, mask = setup(torch.float64)
    with_grad = fused(cell, window, x, state, text, mask)
    with torch.no_grad():
        without = fused(cell, window, x, state, text, mask)
    for a, b in zip(with_grad, without, strict=True):
        assert torch.equal(a.detach(), b)
