"""A Hugging Face fast tokenizer behind the vocabulary interface seqshap models use.

:class:`HFTokenizer` wraps a ``transformers`` fast tokenizer so a loaded Hugging Face model reads
texts the way it was trained to (subwords, ``[CLS]``/``[SEP]`` or ``<s>``/``</s>``, padding at
the *end*, truncation to the model's length) and still knows where each position came from:
:meth:`HFTokenizer.encodings` gives the fast tokenizer's character offsets as spans and its word
ids, so the pictures show the words of the original text and several subwords add up to one word.
Special tokens and padding get span ``None``, as the native start token and padding do.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NoReturn

import numpy as np

from .layout import TokenLayout, hf_layout
from .tokenize import Encoding


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    """A token's span without the space in front that SentencePiece (``▁word``) and byte-level
    BPE without offset trimming (``Ġword``, Llama 3's tokenizers) count as part of the token."""
    while start < end and text[start].isspace():
        start += 1
    return start, end


class HFTokenizer:
    """``tokenizer``: a ``transformers`` fast tokenizer (``tokenizer.is_fast``), used as the model
    was trained: right padding with its pad token, right truncation."""

    def __init__(self, tokenizer: Any):
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError(
                "seqshap needs a fast tokenizer (tokenizer.json, from the `tokenizers` library): it "
                "reads each token's character offsets from it"
            )
        if tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no padding token (pad_token); set one and save it again")
        tokenizer.padding_side = "right"
        tokenizer.truncation_side = "right"
        self.tokenizer = tokenizer
        self.pad_id = int(tokenizer.pad_token_id)
        self.num_words = len(tokenizer)
        # which positions are words, read once off the tokenizer as it is set up above
        self.layout: TokenLayout = hf_layout(tokenizer)

    def __repr__(self) -> str:
        return f"HFTokenizer({type(self.tokenizer).__name__}, {self.num_words} tokens)"

    def __len__(self) -> int:
        return self.num_words

    @property
    def word_to_id(self) -> dict[str, int]:
        """Token -> id, as the tokenizer's vocabulary has it (subwords included)."""
        return dict(self.tokenizer.get_vocab())

    def _call(self, texts: list[str], maxlen: int, offsets: bool):
        if isinstance(texts, str):
            raise TypeError("pass a list of texts, not a single str")
        if maxlen < 1:
            raise ValueError(f"maxlen must be >= 1, got {maxlen}")
        return self.tokenizer(
            list(texts),
            padding="max_length",
            truncation=True,
            max_length=maxlen,
            return_attention_mask=False,
            return_token_type_ids=False,
            return_offsets_mapping=offsets,
        )

    def encode(self, texts: list[str], maxlen: int) -> np.ndarray:
        """Texts -> int64 ``[n, maxlen]``: special tokens, subwords, then padding."""
        return np.asarray(self._call(texts, maxlen, offsets=False)["input_ids"], dtype=np.int64).reshape(-1, maxlen)

    def encodings(self, texts: list[str], maxlen: int) -> list[Encoding]:
        """Like :meth:`encode`, with the span of text behind every position and its word id."""
        batch = self._call(texts, maxlen, offsets=True)
        out = []
        for i, ids in enumerate(batch["input_ids"]):
            word_ids = batch.word_ids(i)
            spans = tuple(
                None if w is None else _trimmed(texts[i], int(s), int(e))
                for w, (s, e) in zip(word_ids, batch["offset_mapping"][i], strict=True)
            )
            out.append(Encoding(tuple(ids), tuple(self.tokens(ids)), spans, tuple(word_ids)))
        return out

    def empty_ids(self, maxlen: int) -> np.ndarray:
        """The empty text as the model reads it (``[CLS] [SEP]`` or ``<s> </s>``, then padding),
        ``[1, maxlen]``: the reference "no words at all" for this model (its layout's empty row)."""
        return self.layout.empty_row(maxlen)[None]

    def tokens(self, ids: Iterable[int]) -> list[str]:
        """Ids -> tokens; an id outside the vocabulary raises (never a silent '?')."""
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.num_words]
        if bad:
            raise ValueError(f"token id {bad[0]} is not in the vocabulary (valid: 0..{self.num_words - 1})")
        return list(self.tokenizer.convert_ids_to_tokens(ids))

    def save(self, path: Any) -> NoReturn:
        raise TypeError(
            "a Hugging Face model is saved with transformers: model.save_pretrained(dir) and "
            "tokenizer.save_pretrained(dir)"
        )
