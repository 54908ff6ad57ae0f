"""Short random English texts to write: words from the word lists of the ``wonderwords`` package."""

from __future__ import annotations

import functools

import numpy as np

from ._cache import require

__all__ = ["PATTERNS", "random_texts", "word_lists"]

PATTERNS = (
    "{noun}",
    "{adjective}",
    "{adjective} {noun}",
    "the {noun}",
    "the {adjective} {noun}",
    "{verb} the {noun}",
    "{verb} the {adjective} {noun}",
    "{adjective}, {adjective} {noun}",
    "{noun} and {noun}",
    "{noun}'s {noun}",
    "{noun} {number}",
    "{adjective} {noun} {number}",
    "{noun} - {noun}",
    "{noun}: {adjective}",
    "({adjective} {noun})",
    '"{noun}"',
)
"""The shapes of the texts, each drawn with equal chance; 1-4 words."""

ENDINGS = ("", "", "", ".", ".", "!", "?", ";")  # a quote or bracket is not followed by one
WORD = r"[a-z]+(-[a-z]+)?"  # lower-case words, possibly hyphenated: no abbreviations
PURPOSE = "the word lists of the handwriting texts"


@functools.lru_cache(maxsize=1)
def word_lists(max_length: int = 10) -> dict[str, tuple[str, ...]]:
    """The nouns, adjectives and verbs of ``wonderwords`` of at most ``max_length`` letters,
    lower case, profanities removed, sorted (6,000, 900 and 1,000 words)."""
    wonderwords = require("wonderwords", "wonderwords", PURPOSE)
    finder = wonderwords.RandomWord()
    return {
        category: tuple(
            wonderwords.filter_profanity(
                finder.filter(include_categories=[category], word_max_length=max_length, regex=WORD)
            )
        )
        for category in ("noun", "adjective", "verb")
    }


def _text(rng: np.random.Generator, words: dict[str, tuple[str, ...]]) -> str:
    pattern = PATTERNS[rng.integers(len(PATTERNS))]
    parts = pattern.replace("{", "}").split("}")  # text, field, text, field, ...
    filled = [
        part
        if i % 2 == 0
        else str(rng.integers(2, 100))
        if part == "number"
        else words[part][rng.integers(len(words[part]))]
        for i, part in enumerate(parts)
    ]
    text = "".join(filled)
    if rng.random() < 0.5:
        text = text[0].upper() + text[1:]
    if text[-1].isalnum():
        text += ENDINGS[rng.integers(len(ENDINGS))]
    return text


def random_texts(
    num: int, seed: int = 0, max_length: int = 25, alphabet: str | None = None
) -> list[str]:
    """``num`` distinct short texts, the same for the same arguments (and word lists).

    Each text fills one of :data:`PATTERNS` with words drawn uniformly from :func:`word_lists`
    (or a number 2-99), starts with a capital half of the time and, unless it ends in a quote
    or bracket, ends with nothing (3/8), a full stop (2/8), ``!``, ``?`` or ``;``. Texts longer
    than ``max_length`` characters, or with a character outside ``alphabet``, are drawn again.

    Arguments:
        num: how many texts.
        seed: the seed of the draws.
        max_length: the most characters a text may have (at least 12).
        alphabet: the characters allowed (``None``: any).

    Example:
        >>> texts = random_texts(3, seed=0)
        >>> len(set(texts)), max(map(len, texts)) <= 25
        (3, True)
    """
    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise ValueError(f"num must be a positive int, got {num!r}")
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 12:
        raise ValueError(f"max_length must be an int >= 12, got {max_length!r}")
    words = word_lists()
    rng = np.random.default_rng(seed)
    texts: dict[str, None] = {}  # insertion-ordered set
    for _ in range(100 * num):
        text = _text(rng, words)
        if len(text) <= max_length and (alphabet is None or set(text) <= set(alphabet)):
            texts[text] = None
            if len(texts) == num:
                return list(texts)
    raise ValueError(
        f"could not draw {num} distinct texts of at most {max_length} characters"
        + ("" if alphabet is None else f" in the alphabet {alphabet!r}")
    )
