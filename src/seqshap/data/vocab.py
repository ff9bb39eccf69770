"""Vocabulary with the Keras ``imdb`` id scheme: 0 pad, 1 start, 2 OOV, words from 3."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .. import atomic
from .layout import NATIVE, TokenLayout
from .tokenize import (
    FIRST_WORD_ID,
    OOV,
    OOV_TOKEN,
    PAD,
    PAD_TOKEN,
    START,
    START_TOKEN,
    Encoding,
    pad_front,
    tokenize,
    words,
)


class Vocab:
    """Word -> id map. ``num_words`` counts the reserved ids, as Keras' ``num_words`` does:
    ``Vocab(num_words=20000)`` holds the 19,997 most frequent words at ids 3..19999.
    """

    def __init__(self, word_to_id: dict[str, int], num_words: int):
        bad = [w for w, i in word_to_id.items() if not FIRST_WORD_ID <= i < num_words]
        if bad:
            raise ValueError(
                f"vocabulary ids must lie in [{FIRST_WORD_ID}, {num_words}); {len(bad)} words do not, e.g. {bad[:3]}"
            )
        self.word_to_id = dict(word_to_id)
        self.num_words = int(num_words)
        self.id_to_word = {i: w for w, i in self.word_to_id.items()}
        self.id_to_word.update({PAD: PAD_TOKEN, START: START_TOKEN, OOV: OOV_TOKEN})

    @classmethod
    def build(cls, texts: Iterable[str], num_words: int = 20000) -> Vocab:
        """Most frequent words first; ties keep first-seen order (as Keras' Tokenizer)."""
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(words(text))
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])  # stable sort
        keep = ranked[: max(0, num_words - FIRST_WORD_ID)]
        return cls({w: FIRST_WORD_ID + r for r, (w, _) in enumerate(keep)}, num_words)

    def __len__(self) -> int:
        return self.num_words

    @property
    def layout(self) -> TokenLayout:
        """Which positions of an encoded row are words: padding 0 in front, the start token 1
        (:data:`~seqshap.data.layout.NATIVE`)."""
        return NATIVE

    def ids(self, text: str, start: bool = True) -> list[int]:
        """Unpadded ids of one text (start token first, as Keras imdb's ``start_char``)."""
        get = self.word_to_id.get
        body = [get(w, OOV) for w in words(text)]
        return ([START, *body]) if start else body

    def encode(self, texts: list[str], maxlen: int) -> np.ndarray:
        """Texts -> int64 ``[n, maxlen]`` (front-truncated, front-padded). Pure per text."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a list of texts, not a single str")
        return pad_front([self.ids(t) for t in texts], maxlen)

    def encodings(self, texts: list[str], maxlen: int) -> list[Encoding]:
        """Like :meth:`encode`, position by position with the span of text each id came from."""
        if isinstance(texts, str):
            raise TypeError("encodings() takes a list of texts, not a single str")
        return [self._encoding(t, maxlen) for t in texts]

    def _encoding(self, text: str, maxlen: int) -> Encoding:
        toks = tokenize(text)
        get = self.word_to_id.get
        # (id, token, span, word index) of the start token and every word; keep the last maxlen.
        rows: list[tuple[int, str, tuple[int, int] | None, int | None]] = [(START, START_TOKEN, None, None)] + [
            (i, self.id_to_word[i], (t.start, t.end), w) for w, t in enumerate(toks) for i in [get(t.text, OOV)]
        ]
        rows = [(PAD, PAD_TOKEN, None, None)] * (maxlen - len(rows)) + rows[-maxlen:]
        ids, tokens, spans, word_ids = zip(*rows, strict=True)
        return Encoding(ids, tokens, spans, word_ids)

    def tokens(self, ids: Iterable[int]) -> list[str]:
        """Ids -> words; an id outside the vocabulary raises (never a silent '?')."""
        out = []
        for i in ids:
            i = int(i)
            if i not in self.id_to_word:
                raise ValueError(f"word id {i} is not in the vocabulary (valid: 0..{self.num_words - 1})")
            out.append(self.id_to_word[i])
        return out

    def to_json(self) -> dict:
        return {
            "scheme": "keras-imdb",
            "pad": PAD,
            "start": START,
            "oov": OOV,
            "index_from": FIRST_WORD_ID,
            "num_words": self.num_words,
            "word_index": self.word_to_id,
        }

    @classmethod
    def from_json(cls, obj: dict) -> Vocab:
        """The vocabulary from :meth:`to_json`'s form; a ``ValueError`` naming the key that is wrong."""
        if not isinstance(obj, dict):
            raise ValueError(f"expected a JSON object with 'word_index' and 'num_words', got {type(obj).__name__}")
        for key in ("word_index", "num_words"):
            if key not in obj:
                raise ValueError(f"missing key {key!r}")
        wi, n = obj["word_index"], obj["num_words"]
        if not isinstance(n, int) or isinstance(n, bool) or n < FIRST_WORD_ID:
            raise ValueError(f"'num_words' must be a whole number of at least {FIRST_WORD_ID}, got {n!r}")
        if not isinstance(wi, dict):
            raise ValueError(f"'word_index' must be an object mapping words to ids, got {type(wi).__name__}")
        bad = next(((w, i) for w, i in wi.items() if not isinstance(i, int) or isinstance(i, bool)), None)
        if bad is not None:
            raise ValueError(f"'word_index': the id of {bad[0]!r} is {bad[1]!r}, not a whole number")
        return cls(wi, n)

    def save(self, path: str | Path) -> None:
        atomic.write_text(path, json.dumps(self.to_json(), ensure_ascii=False))

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))


def check_ids(ids, num_words: int, name: str = "ids", table: str = "this model's vocabulary") -> None:
    """Raise a clear error, naming ``name`` and ``table``, for ids outside ``[0, num_words)``.

    The one id check of the package (ndarray or tensor); ``table`` is what holds the ids.
    """
    ids = np.asarray(ids.detach().cpu() if hasattr(ids, "detach") else ids)
    if ids.size and (ids.min() < 0 or ids.max() >= num_words):
        bad = np.unique(ids[(ids < 0) | (ids >= num_words)])[:5].tolist()
        raise ValueError(f"{name}: unknown word ids {bad}; {table} has ids 0..{num_words - 1}")
