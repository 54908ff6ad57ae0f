"""Checks of what enters the handwriting model: strokes with their pen bit, texts, a prime."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..nn import encode_texts
from .validation import as_tensor, check_mask, check_sequences

if TYPE_CHECKING:
    from .handwriting import HandwritingSynthesis

__all__ = ["check_prime", "check_strokes", "check_text"]


def check_strokes(
    model: HandwritingSynthesis, y, text, mask, text_mask
) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None]:
    """``y`` (B, T, 3) and ``mask`` checked as any model's sequences (``docs/errors.md``), the
    pen bit 0 or 1; ``text`` by :func:`check_text`, one row per sequence (``None`` only for a
    text-blind model). Returns ``y``, ``mask``, codes and text mask."""
    y, _, mask = check_sequences(y, None, mask, 3, 0, model.start.dtype, model.device)
    pen = y[..., 2]
    bad = (pen != 0) & (pen != 1)
    if mask is not None:
        bad &= mask
    if bool(bad.any()):
        b, t = (int(i) for i in bad.nonzero()[0])
        raise ValueError(f"y[{b}, {t}, 2] = {float(pen[b, t])}: the pen bit is 0 or 1")
    if text is None:
        if not model.text_blind:
            raise ValueError("the model reads a text: pass text (B, U) codes or strings")
        return y, mask, None, None
    text, text_mask = check_text(model, text, text_mask)
    if text.shape[0] != y.shape[0]:
        raise ValueError(f"text has {text.shape[0]} rows but y has {y.shape[0]} sequences")
    return y, mask, text, text_mask


def check_text(model: HandwritingSynthesis, text, text_mask) -> tuple[Tensor, Tensor]:
    """Codes (B, U) long and text mask (B, U) bool from a list of strings (encoded in the
    model's alphabet) or from codes: integers, in the alphabet where the mask is True, the mask
    True on a non-empty prefix of each row (default: everywhere)."""
    alphabet, device = model.alphabet, model.device
    if isinstance(text, str):
        raise TypeError(
            f"text must be a list of strings, one per sequence, or (B, U) codes; got the string "
            f"{text!r} (write [{text!r}])"
        )
    if isinstance(text, (list, tuple)) and text and isinstance(text[0], str):
        if text_mask is not None:
            raise ValueError("text_mask comes from the strings: pass it only with codes")
        codes, text_mask = encode_texts(list(text), alphabet)
        return codes.to(device), text_mask.to(device)
    text = as_tensor("text", text, device)
    if text.is_floating_point() or text.is_complex() or text.dtype == torch.bool:
        raise TypeError(f"text must hold integer character codes, got {text.dtype}")
    if text.dim() != 2 or 0 in text.shape:
        raise ValueError(f"text must have shape (batch, characters), got {tuple(text.shape)}")
    if text_mask is None:
        text_mask = torch.ones(text.shape, dtype=torch.bool, device=text.device)
    text_mask = check_mask(text_mask, tuple(text.shape), "text", device)
    if not bool(text_mask[:, 0].all()) or bool((text_mask[:, 1:] > text_mask[:, :-1]).any()):
        raise ValueError("text_mask must be True on a non-empty prefix of each row")
    bad = ((text < 0) | (text >= len(alphabet))) & text_mask
    if bool(bad.any()):
        i, u = (int(v) for v in bad.nonzero()[0])
        raise ValueError(
            f"text[{i}, {u}] = {int(text[i, u])} is not a character code: codes are 0 to "
            f"{len(alphabet) - 1} (the alphabet {alphabet!r})"
        )
    return text.long(), text_mask


def check_prime(
    model: HandwritingSynthesis, prime, texts: list[str]
) -> tuple[Tensor | None, list[str], int]:
    """The prime ``(strokes (P, 3), text)`` of ``write``: its strokes checked, the texts to
    read (``text + " " + each text``) and how many characters the prime's part has."""
    if prime is None:
        return None, texts, 0
    if not (isinstance(prime, (tuple, list)) and len(prime) == 2):
        raise TypeError("prime must be a pair (strokes (P, 3), the text they write)")
    strokes, text = prime
    if not isinstance(text, str) or not text:
        raise TypeError(f"prime's text must be a non-empty string, got {text!r}")
    strokes = as_tensor("prime strokes", strokes, model.device)
    if strokes.dim() != 2 or strokes.shape[-1] != 3 or strokes.shape[0] < 1:
        raise ValueError(f"prime strokes must have shape (P, 3), got {tuple(strokes.shape)}")
    if strokes.is_floating_point() and not bool(torch.isfinite(strokes).all()):
        row = int((~torch.isfinite(strokes)).any(-1).nonzero()[0])
        raise ValueError(f"prime strokes have NaN or Inf at row {row}: all must be finite")
    codes = None if model.text_blind else [text]
    strokes = check_strokes(model, strokes.unsqueeze(0), codes, None, None)[0]
    sep = " " if " " in model.alphabet and not text.endswith(" ") else ""
    return strokes[0], [text + sep + t for t in texts], len(text + sep)
