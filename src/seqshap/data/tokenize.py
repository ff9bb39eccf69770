"""Keras-compatible text -> word list, and word list -> fixed-length ids.

Matches ``keras.preprocessing.text.text_to_word_sequence`` with its default
filters (plus ``<br />`` removal, which the IMDB reviews need), so a vocabulary
built here lines up with the seed notebook's Keras pipeline.
"""
from __future__ import annotations

import numpy as np

KERAS_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
_TABLE = str.maketrans({c: " " for c in KERAS_FILTERS})

PAD, START, OOV = 0, 1, 2
FIRST_WORD_ID = 3  # Keras imdb `index_from=3`


def words(text: str) -> list[str]:
    """Split one text into lowercase words, Keras-style (punctuation -> space)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    text = text.replace("<br />", " ").replace("<br/>", " ").replace("<br>", " ")
    return text.lower().translate(_TABLE).split()


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
            out[row, maxlen - len(tail):] = tail
    return out
