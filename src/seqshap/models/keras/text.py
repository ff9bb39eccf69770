"""``TextVectorizer``: a Keras ``TextVectorization`` layer's tokenizer, for a converted model that
read raw text in Keras.

It standardizes and splits a text exactly as TensorFlow does inside the Keras layer
(``tf.strings.lower`` lowercases ASCII letters only; the punctuation Keras strips is ASCII;
``tf.strings.split`` splits on ASCII whitespace only), looks the tokens up in the layer's
vocabulary, cuts the ids to ``output_sequence_length`` and pads them with 0 at the end.

Ids follow seqshap's scheme so every command treats them alike: 0 padding, 1 the start token
(never produced: Keras has none), 2 out-of-vocabulary (Keras' ``[UNK]``, id 1), and the Keras
word of id ``j >= 2`` gets id ``j + 1``; the converted embedding's rows are moved to match.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ...data.tokenize import OOV, OOV_TOKEN, PAD, PAD_TOKEN, Encoding
from ...data.vocab import Vocab

SCHEME = "keras-text-vectorization"
STANDARDIZE = (None, "lower", "strip_punctuation", "lower_and_strip_punctuation")
SPLIT = (None, "whitespace", "character")
MASK_TOKEN, UNK_TOKEN = "", "[UNK]"
# keras.layers.TextVectorization's DEFAULT_STRIP_REGEX (its characters are all ASCII).
PUNCTUATION = re.compile(r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']')
_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
_WHITESPACE = frozenset(" \t\n\v\f\r")  # what tf.strings.split splits on


class TextVectorizer(Vocab):
    """Texts -> ids ``[n, length]`` as a Keras ``TextVectorization(output_mode="int")`` makes them.

    ``vocabulary``: the layer's tokens by Keras id (``""`` and ``"[UNK]"`` first, as
    ``get_vocabulary()`` lists them); ``standardize``/``split``: the layer's settings (built-in
    names); ``length``: its ``output_sequence_length``."""

    def __init__(self, vocabulary: list[str], standardize: str | None, split: str | None, length: int):
        if standardize not in STANDARDIZE:
            raise ValueError(f"standardize must be one of {STANDARDIZE}, got {standardize!r}")
        if split not in SPLIT:
            raise ValueError(f"split must be one of {SPLIT}, got {split!r}")
        if not isinstance(length, int) or length < 1:
            raise ValueError(f"length must be a whole number >= 1, got {length!r}")
        tokens = list(vocabulary)
        if tokens[:2] != [MASK_TOKEN, UNK_TOKEN]:
            raise ValueError(f"the vocabulary must start with {MASK_TOKEN!r} and {UNK_TOKEN!r}, got {tokens[:2]}")
        if len(set(tokens)) != len(tokens):
            dup = next(t for i, t in enumerate(tokens) if t in tokens[:i])
            raise ValueError(f"the vocabulary lists {dup!r} twice")
        self.vocabulary = tokens
        self.standardize, self.split, self.length = standardize, split, int(length)
        super().__init__({t: j + 1 for j, t in enumerate(tokens) if j >= 2}, len(tokens) + 1)
        self.id_to_word[OOV] = UNK_TOKEN  # what Keras calls it

    def __repr__(self) -> str:
        return f"TextVectorizer({len(self.vocabulary)} tokens, standardize={self.standardize!r}, split={self.split!r})"

    # -- tokenizing ---------------------------------------------------------------------------------
    def tokens_of(self, text: str) -> list[tuple[str, int, int]]:
        """``(token, start, end)`` of each token of ``text``, spans in the original text."""
        lower = self.standardize in ("lower", "lower_and_strip_punctuation")
        strip = self.standardize in ("strip_punctuation", "lower_and_strip_punctuation")
        kept = [
            (ch.translate(_ASCII_LOWER) if lower else ch, i)
            for i, ch in enumerate(text)
            if not (strip and PUNCTUATION.fullmatch(ch))
        ]
        if self.split is None:
            return [("".join(c for c, _ in kept), 0, len(text))]
        if self.split == "character":
            return [(c, i, i + 1) for c, i in kept]
        out: list[tuple[str, int, int]] = []
        word: list[str] = []
        start = end = 0
        for c, i in kept:
            if c in _WHITESPACE:
                if word:
                    out.append(("".join(word), start, end))
                word = []
                continue
            if not word:
                start = i
            word.append(c)
            end = i + 1
        if word:
            out.append(("".join(word), start, end))
        return out

    def ids(self, text: str, start: bool = False) -> list[int]:
        """Unpadded ids of one text (Keras adds no start token; ``start`` is ignored)."""
        get = self.word_to_id.get
        return [PAD if tok == MASK_TOKEN else get(tok, OOV) for tok, _, _ in self.tokens_of(text)]

    def encode(self, texts: list[str], maxlen: int) -> np.ndarray:
        """Texts -> int64 ``[n, maxlen]``: the first ``maxlen`` ids, padded with 0 at the end."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a list of texts, not a single str")
        out = np.zeros((len(texts), maxlen), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = self.ids(text)[:maxlen]
            out[row, : len(ids)] = ids
        return out

    def encodings(self, texts: list[str], maxlen: int) -> list[Encoding]:
        if isinstance(texts, str):
            raise TypeError("encodings() takes a list of texts, not a single str")
        return [self._encoding(t, maxlen) for t in texts]

    def _encoding(self, text: str, maxlen: int) -> Encoding:
        get = self.word_to_id.get
        rows: list[tuple[int, str, tuple[int, int] | None, int | None]] = []
        for w, (tok, s, e) in enumerate(self.tokens_of(text)[:maxlen]):
            i = PAD if tok == MASK_TOKEN else get(tok, OOV)
            rows.append((i, self.id_to_word[i], (s, e), w) if i != PAD else (PAD, PAD_TOKEN, None, None))
        rows += [(PAD, PAD_TOKEN, None, None)] * (maxlen - len(rows))
        ids, toks, spans, word_ids = zip(*rows, strict=True)
        return Encoding(ids, toks, spans, word_ids)

    # -- saving -------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "scheme": SCHEME,
            "num_words": self.num_words,
            "standardize": self.standardize,
            "split": self.split,
            "length": self.length,
            "pad": PAD,
            "oov": OOV,
            "oov_token": OOV_TOKEN,
            "vocabulary": self.vocabulary,
        }

    @classmethod
    def from_json(cls, obj: dict) -> TextVectorizer:
        """From :meth:`to_json`'s form; a ``ValueError`` naming what is wrong."""
        if not isinstance(obj, dict) or obj.get("scheme") != SCHEME:
            raise ValueError(f"expected a JSON object with 'scheme': {SCHEME!r}")
        vocab = obj.get("vocabulary")
        if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab):
            raise ValueError("'vocabulary' must be a list of strings")
        tv = cls(vocab, obj.get("standardize"), obj.get("split"), obj.get("length"))  # type: ignore[arg-type]
        if obj.get("num_words", tv.num_words) != tv.num_words:
            raise ValueError(f"'num_words' is {obj.get('num_words')!r}, but the vocabulary makes it {tv.num_words}")
        return tv
