"""AttentionWindow and encode_texts: shapes, monotone centres, masks, exact values by hand."""

import math

import pytest
import torch

from pyro_frmdn.nn import AttentionWindow, Window, encode_texts, one_hot_text

ALPHABET = "abcde "


def window(h_dim=6, k=3, seed=0):
    torch.manual_seed(seed)
    return AttentionWindow(h_dim, len(ALPHABET), k).double()


def inputs(texts, h_dim=6, seed=1):
    codes, mask = encode_texts(texts, ALPHABET)
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(len(texts), h_dim, generator=g, dtype=torch.float64)
    return h, codes, mask, one_hot_text(codes, mask, len(ALPHABET), torch.float64)


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("texts", [["a"], ["abc", "d", "ee e"]])
def test_shapes(k, texts):
    w = window(k=k)
    h, codes, mask, c = inputs(texts)
    out = w(h, torch.zeros(len(texts), k, dtype=torch.float64), c, mask)
    b, u = codes.shape
    assert out.w.shape == (b, len(ALPHABET))
    assert out.phi.shape == (b, u)
    for name in ("kappa", "alpha", "beta"):
        assert getattr(out, name).shape == (b, k)


def test_centres_only_move_forward_over_many_steps():
    w = window()
    _, _, mask, c = inputs(["abcde", "ab"])
    kappa = torch.zeros(2, 3, dtype=torch.float64)
    g = torch.Generator().manual_seed(5)
    for _ in range(20):
        h = 3 * torch.randn(2, 6, generator=g, dtype=torch.float64)
        new = w(h, kappa, c, mask).kappa
        assert bool((new > kappa).all())
        kappa = new


def test_masked_positions_get_exactly_zero_and_do_not_reach_the_window():
    w = window()
    h, codes, mask, c = inputs(["abcde", "ab", "c"])
    kappa = torch.full((3, 3), 2.5, dtype=torch.float64)
    out = w(h, kappa, c, mask)
    assert bool((out.phi[~mask] == 0).all())
    assert bool((out.phi[mask] > 0).all())
    other = codes.clone()
    other[~mask] = 4  # what stands in the padding must not matter
    again = w(h, kappa, one_hot_text(other, mask, len(ALPHABET), torch.float64), mask)
    assert torch.equal(out.w, again.w)


def test_one_letter_text_gives_the_exact_window():
    w = window(k=2)
    h, _, mask, c = inputs(["d"])
    kappa = torch.tensor([[0.3, 1.7]], dtype=torch.float64)
    out = w(h, kappa, c, mask)
    raw = (w.linear.weight @ h[0] + w.linear.bias).tolist()
    alpha, beta, step = raw[:2], raw[2:4], raw[4:]
    phi = sum(
        math.exp(alpha[j])
        * math.exp(-math.exp(beta[j]) * (kappa[0, j].item() + math.exp(step[j]) - 1) ** 2)
        for j in range(2)
    )
    expected = torch.zeros(len(ALPHABET), dtype=torch.float64)
    expected[ALPHABET.index("d")] = phi
    assert torch.allclose(out.w[0], expected, rtol=1e-12, atol=0)


def test_against_a_direct_loop():
    w = window(k=3)
    h, codes, mask, c = inputs(["abcde", "a b", "e"], seed=4)
    kappa = torch.rand(3, 3, dtype=torch.float64) * 3
    out = w(h, kappa, c, mask)
    for b in range(3):
        raw = (w.linear.weight @ h[b] + w.linear.bias).tolist()
        alpha, beta, step = raw[:3], raw[3:6], raw[6:]
        centres = [kappa[b, k].item() + math.exp(step[k]) for k in range(3)]
        expected_w = [0.0] * len(ALPHABET)
        for u in range(codes.shape[1]):
            phi = 0.0
            if mask[b, u]:
                for k in range(3):
                    phi += math.exp(alpha[k]) * math.exp(
                        -math.exp(beta[k]) * (centres[k] - (u + 1)) ** 2
                    )
                expected_w[int(codes[b, u])] += phi
            assert out.phi[b, u].item() == pytest.approx(phi, rel=1e-12, abs=0)
        assert out.w[b].tolist() == pytest.approx(expected_w, rel=1e-12, abs=0)
        assert out.kappa[b].tolist() == pytest.approx(centres, rel=1e-12)


def test_passed_end_is_graves_stop_rule():
    alpha = torch.ones(2, 1, dtype=torch.float64)
    beta = torch.ones(2, 1, dtype=torch.float64)
    # one component centred on 3.4 (before the end of "abc") and one on 3.6 (past it)
    kappa = torch.tensor([[3.4], [3.6]], dtype=torch.float64)
    positions = torch.arange(1.0, 4.0, dtype=torch.float64).expand(2, -1)
    phi = AttentionWindow.density(alpha, beta, kappa, positions)
    win = Window(torch.zeros(2, 6), phi, kappa, alpha, beta)
    ended = AttentionWindow.passed_end(win, torch.tensor([3, 3]))
    assert ended.tolist() == [False, True]


def test_encode_texts_codes_and_mask():
    codes, mask = encode_texts(["ab ", "e"], ALPHABET)
    assert codes.tolist() == [[0, 1, 5], [4, 0, 0]]
    assert mask.tolist() == [[True, True, True], [True, False, False]]
    assert codes.dtype == torch.long and mask.dtype == torch.bool


@pytest.mark.parametrize(
    "texts, error, message",
    [
        (["abx"], ValueError, "'x', which is not in the alphabet"),
        (["ab", ""], ValueError, "texts[1] is empty"),
        ("abc", TypeError, "list of strings"),
        ([], ValueError, "texts is empty"),
        (["a", 3], TypeError, "texts[1] must be a string"),
    ],
)
def test_encode_texts_refuses_bad_texts(texts, error, message):
    with pytest.raises(error) as e:
        encode_texts(texts, ALPHABET)
    assert message in str(e.value)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="num_components"):
        AttentionWindow(4, 3, 0)
