"""Keras-compatible text -> words (with where each came from), and words -> fixed-length ids.

The rules are ``keras.preprocessing.text.text_to_word_sequence`` with its default filters
(plus ``<br />`` removal, which the IMDB reviews need): lowercase, the filter characters
and whitespace separate words. :func:`tokenize` applies them to the text *as written* and
keeps each word's character span, so pictures can show the original text without
re-tokenizing it; :func:`words` is the same list without the spans.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

KERAS_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
# A word is a run of characters that are neither filters nor whitespace (str.isspace, as split()).
_WORD = re.compile("[^\\s" + re.escape(KERAS_FILTERS) + "]+")
BR_TAGS = ("<br />", "<br/>", "<br>")  # line breaks in the IMDB reviews; never words

PAD, START, OOV = 0, 1, 2
FIRST_WORD_ID = 3  # Keras imdb `index_from=3`
PAD_TOKEN, START_TOKEN, OOV_TOKEN = "<pad>", "<start>", "<oov>"
# Which ids are words, padding or markers is the tokenizer's layout (data/layout.py), never a list
# of token names: a vocabulary's tokens are its own.


@dataclass(frozen=True)
class Token:
    """One word: ``text`` as the vocabulary sees it (lowercase) and ``text_as_written[start:end]``."""

    text: str
    start: int
    end: int


def _blank_br(text: str) -> str:
    # Same-length blanks keep every character offset valid in the original text.
    for tag in BR_TAGS:
        text = text.replace(tag, " " * len(tag))
    return text


def tokenize(text: str) -> list[Token]:
    """Split one text into lowercase words with their character spans, Keras-style."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return [Token(m.group().lower(), m.start(), m.end()) for m in _WORD.finditer(_blank_br(text))]


def words(text: str) -> list[str]:
    """Split one text into lowercase words, Keras-style (punctuation -> space)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return _WORD.findall(_blank_br(text).lower())


@dataclass(frozen=True)
class Encoding:
    """One text as a model reads it, position by position (all ``[T]``).

    ``spans[t]`` is the ``(start, end)`` of the text that position ``t`` was read from, or
    ``None`` for positions that are not from the text (padding, the start token, a
    subword tokenizer's ``[CLS]``/``[SEP]``). ``word_ids[t]`` numbers the words of the text
    (several subword positions can share one), ``None`` where ``spans[t]`` is.
    """

    ids: tuple[int, ...]
    tokens: tuple[str, ...]
    spans: tuple[tuple[int, int] | None, ...]
    word_ids: tuple[int | None, ...]

    def __post_init__(self) -> None:
        if not len(self.ids) == len(self.tokens) == len(self.spans) == len(self.word_ids):
            raise ValueError("ids, tokens, spans and word_ids must have the same length")


def pad_front(seqs: list[list[int]], maxlen: int) -> np.ndarray:
    """Keras ``pad_sequences`` defaults: keep the last ``maxlen`` ids, pad with 0 in front.

    Returns int64 ``[n, maxlen]``.
    """
    if maxlen < 1:
        raise ValueError(f"maxlen must be >= 1, got {maxlen}")
    out = np.zeros((len(seqs), maxlen), dtype=np.int64)
    for row, seq in enumerate(seqs):
        tail = seq[-maxlen:]
        if tail:
            out[row, maxlen - len(tail) :] = tail
    return out
