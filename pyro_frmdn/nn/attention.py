"""AttentionWindow: Graves' soft window over the characters of a text, one step at a time."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["AttentionWindow", "Window", "encode_texts", "one_hot_text"]


class Window(NamedTuple):
    """One step of :class:`AttentionWindow`.

    ``w`` (B, A) the window vector, ``phi`` (B, U) the weight of each character position (zero at
    masked ones), ``kappa`` (B, K) the components' centres, ``alpha`` and ``beta`` (B, K) their
    weights and sharpnesses.
    """

    w: Tensor
    phi: Tensor
    kappa: Tensor
    alpha: Tensor
    beta: Tensor


def encode_texts(texts: list[str], alphabet: str) -> tuple[Tensor, Tensor]:
    """Texts as character codes ``(B, U)`` (long, 0 where padded) and ``text_mask`` ``(B, U)``.

    ``U`` is the longest text's length; a character's code is its index in ``alphabet``.

    Example:
        >>> codes, mask = encode_texts(["ab", "c"], "abc")
        >>> codes.tolist(), mask.tolist()
        ([[0, 1], [2, 0]], [[True, True], [True, False]])
    """
    if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
        raise TypeError(f"texts must be a list of strings, got {type(texts).__name__}")
    if not texts:
        raise ValueError("texts is empty: give at least one text")
    if not isinstance(alphabet, str) or not alphabet:
        raise ValueError(f"alphabet must be a non-empty string, got {alphabet!r}")
    index = {c: i for i, c in enumerate(alphabet)}
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] must be a string, got {type(text).__name__}")
        if not text:
            raise ValueError(f"texts[{i}] is empty: every text needs at least one character")
        missing = next((c for c in text if c not in index), None)
        if missing is not None:
            raise ValueError(
                f"texts[{i}] = {text!r} has the character {missing!r}, which is not in the "
                f"alphabet {alphabet!r}"
            )
    u = max(len(t) for t in texts)
    codes = torch.zeros(len(texts), u, dtype=torch.long)
    mask = torch.zeros(len(texts), u, dtype=torch.bool)
    for i, text in enumerate(texts):
        codes[i, : len(text)] = torch.tensor([index[c] for c in text])
        mask[i, : len(text)] = True
    return codes, mask


def one_hot_text(codes: Tensor, text_mask: Tensor, alphabet_size: int, dtype) -> Tensor:
    """The one-hot characters :math:`c_u`, ``(B, U, A)``, zero at masked positions."""
    return F.one_hot(codes, alphabet_size).to(dtype) * text_mask.unsqueeze(-1).to(dtype)


class AttentionWindow(nn.Module):
    r"""Graves' soft attention window over character positions (Graves 2013, §5.1).

    From the first layer's output :math:`h_t` a linear layer gives :math:`K` triples

    .. math::
        (\hat\alpha_t, \hat\beta_t, \hat\kappa_t) = W h_t + b, \quad
        \alpha_t = e^{\hat\alpha_t}, \ \beta_t = e^{\hat\beta_t}, \
        \kappa_t = \kappa_{t-1} + e^{\hat\kappa_t},

        \phi(t, u) = \sum_{k=1}^K \alpha^k_t \exp\!\left(-\beta^k_t (\kappa^k_t - u)^2\right),
        \qquad w_t = \sum_{u=1}^U \phi(t, u)\, c_u,

        \text{for character positions } u = 1, \dots, U \text{ and one-hot characters } c_u.

    The centres :math:`\kappa` only move forward. Padded positions (``text_mask`` false) get
    exactly zero weight. Vectorised over the batch, one step a call: the window of step
    :math:`t` feeds the first layer at step :math:`t + 1`.

    Arguments:
        in_features: the size of :math:`h_t`.
        alphabet_size: A, the size of the one-hot characters.
        num_components: K (10 in the paper).

    References:
        A. Graves, *Generating Sequences With Recurrent Neural Networks*, arXiv:1308.0850 (2013).

    Example:
        >>> window = AttentionWindow(8, alphabet_size=5, num_components=3)
        >>> codes, mask = encode_texts(["abc", "d"], "abcde")
        >>> c = one_hot_text(codes, mask, 5, torch.float32)
        >>> out = window(torch.randn(2, 8), torch.zeros(2, 3), c, mask)
        >>> out.w.shape, out.phi.shape, bool(out.phi[1, 1:].eq(0).all())
        (torch.Size([2, 5]), torch.Size([2, 3]), True)
    """

    def __init__(self, in_features: int, alphabet_size: int, num_components: int = 10):
        super().__init__()
        if min(in_features, alphabet_size, num_components) < 1:
            raise ValueError(
                "need in_features, alphabet_size and num_components >= 1, got "
                f"{in_features}, {alphabet_size}, {num_components}"
            )
        self.alphabet_size, self.num_components = alphabet_size, num_components
        self.linear = nn.Linear(in_features, 3 * num_components)
        with torch.no_grad():  # start slow: a centre moves e^-2 ~ 0.14 characters a step
            self.linear.bias[2 * num_components :].fill_(-2.0)

    def forward(self, h: Tensor, kappa: Tensor, text: Tensor, text_mask: Tensor) -> Window:
        """One step: ``h`` (B, H), the previous centres ``kappa`` (B, K), the one-hot ``text``
        (B, U, A) (:func:`one_hot_text`) and ``text_mask`` (B, U) bool."""
        alpha, beta, step = self.linear(h).exp().chunk(3, dim=-1)  # (B, K) each
        kappa = kappa + step
        positions = torch.arange(1, text.shape[1] + 1, dtype=h.dtype, device=h.device)
        phi = self.density(alpha, beta, kappa, positions.expand(h.shape[0], -1))
        phi = torch.where(text_mask, phi, torch.zeros((), dtype=phi.dtype, device=phi.device))
        w = torch.bmm(phi.unsqueeze(1), text).squeeze(1)  # (B, A)
        return Window(w, phi, kappa, alpha, beta)

    @staticmethod
    def density(alpha: Tensor, beta: Tensor, kappa: Tensor, positions: Tensor) -> Tensor:
        r""":math:`\phi(t, u)` at ``positions`` (B, P) for components (B, K): (B, P)."""
        distance = kappa.unsqueeze(1) - positions.unsqueeze(-1)  # (B, P, K)
        return (alpha.unsqueeze(1) * torch.exp(-beta.unsqueeze(1) * distance**2)).sum(-1)

    @staticmethod
    def passed_end(window: Window, lengths: Tensor) -> Tensor:
        r"""Whether the window has passed each text's last character, (B,) bool: Graves' stop,
        :math:`\phi(t, U + 1) > \phi(t, u)` for every :math:`u \le U` (``lengths`` (B,) = U)."""
        end = AttentionWindow.density(
            window.alpha, window.beta, window.kappa, (lengths + 1).to(window.kappa).unsqueeze(-1)
        )
        return end.squeeze(-1) > window.phi.max(-1).values
