"""Sentence pairs as one string: two texts joined by the ASCII record separator.

A pair travels through every layer that carries texts (the API, the CLI, the server, the store)
as one ``str``; only a tokenizer that reads pairs splits it again. The separator is one no text
of words holds, so spans index one string and everything that reads a text (explanations,
pictures, JSON) reads a pair too.
"""

from __future__ import annotations

PAIR_SEP = "\x1e"


def pair(text: str, text_pair: str) -> str:
    """The sentence pair (``text``, ``text_pair``) as one string for a model trained on pairs."""
    for name, t in (("text", text), ("text_pair", text_pair)):
        if not isinstance(t, str):
            raise TypeError(f"{name} must be a str, got {type(t).__name__}")
        if PAIR_SEP in t:
            raise ValueError(f"{name} holds the pair separator \\x1e (a control character no text needs)")
    return f"{text}{PAIR_SEP}{text_pair}"


def split_pair(text: str) -> tuple[str, str | None]:
    """``(text, text_pair)`` of a string made by :func:`pair`; ``(text, None)`` for one text."""
    first, sep, second = text.partition(PAIR_SEP)
    if sep and PAIR_SEP in second:
        raise ValueError("a sentence pair holds two texts, this string holds three or more (two \\x1e separators)")
    return (first, second) if sep else (text, None)
