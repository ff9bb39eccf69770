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
from .pairs import split_pair
from .tokenize import Encoding


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    """A token's span without the space in front that SentencePiece (``▁word``) and byte-level
    BPE without offset trimming (``Ġword``, Llama 3's tokenizers) count as part of the token."""
    while start < end and text[start].isspace():
        start += 1
    return start, end


def _type_separator(tokenizer: Any) -> int | None:
    """The token after whose first occurrence a pair's second text has token type 1 (BERT's
    ``[SEP]``), when the tokenizer gives pairs token types (as its ``model_input_names`` say); None
    otherwise (RoBERTa, decoders, a tokenizer saved without them: the model was trained on zeros)."""
    sep = tokenizer.sep_token_id
    if sep is None:
        return None
    enc = tokenizer("a", "b")  # as the user's own code calls it: types only if it gives them
    types, ids = enc.get("token_type_ids"), enc["input_ids"]
    if not types or 1 not in types or sep not in ids:
        return None
    first = ids.index(sep)
    want = [0 if t <= first else 1 for t in range(len(ids))]
    return int(sep) if list(types) == want else None


class HFTokenizer:
    """``tokenizer``: a ``transformers`` fast tokenizer (``tokenizer.is_fast``), used as the model
    was trained: right padding with its pad token, right truncation (of the longer text of a pair
    first, as ``truncation="longest_first"``)."""

    reads_pairs = True

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
        self.type_sep: int | None = _type_separator(tokenizer)

    def __repr__(self) -> str:
        return f"HFTokenizer({type(self.tokenizer).__name__}, {self.num_words} tokens)"

    def __len__(self) -> int:
        return self.num_words

    @property
    def word_to_id(self) -> dict[str, int]:
        """Token -> id, as the tokenizer's vocabulary has it (subwords included)."""
        return dict(self.tokenizer.get_vocab())

    def word_id(self, word: str) -> int | None:
        """The one id ``word`` gets inside a text (after a space: ``Ġgreat``, ``▁great``, or
        WordPiece's ``great``), else ``None`` when the tokenizer splits it."""
        for text in (" " + word, word):
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            if len(ids) == 1:
                return int(ids[0])
        return None

    def _call(self, texts: list[str], maxlen: int, offsets: bool, pairs: bool = False):
        if maxlen < 1:
            raise ValueError(f"maxlen must be >= 1, got {maxlen}")
        if pairs:
            split = [split_pair(t) for t in texts]
            firsts, seconds = [a for a, _ in split], [b for _, b in split]
            args: tuple = (firsts, seconds)
        else:
            args = (list(texts),)
        return self.tokenizer(
            *args,
            padding="max_length",
            truncation="longest_first" if pairs else True,
            max_length=maxlen,
            return_attention_mask=False,
            return_token_type_ids=False,
            return_offsets_mapping=offsets,
        )

    def _groups(self, texts: list[str]) -> list[list[int]]:
        """Indices of the single texts, then of the sentence pairs (each group one tokenizer call)."""
        if isinstance(texts, str):
            raise TypeError("pass a list of texts, not a single str")
        is_pair = [split_pair(t)[1] is not None for t in texts]
        return [g for g in ([i for i, p in enumerate(is_pair) if not p], [i for i, p in enumerate(is_pair) if p]) if g]

    def encode(self, texts: list[str], maxlen: int) -> np.ndarray:
        """Texts (or sentence pairs, :func:`~seqshap.data.pairs.pair`) -> int64 ``[n, maxlen]``:
        special tokens, subwords, then padding."""
        out = np.zeros((len(texts), maxlen), dtype=np.int64)
        for group in self._groups(texts):
            batch = self._call(
                [texts[i] for i in group], maxlen, offsets=False, pairs=bool(split_pair(texts[group[0]])[1] is not None)
            )
            out[group] = np.asarray(batch["input_ids"], dtype=np.int64).reshape(-1, maxlen)
        return out

    def encodings(self, texts: list[str], maxlen: int) -> list[Encoding]:
        """Like :meth:`encode`, with the span of text behind every position and its word id. A
        pair's spans index the joined string (the second text's start after the separator) and
        its second text's words are numbered after the first's."""
        out: list[Encoding | None] = [None] * len(texts)
        for group in self._groups(texts):
            pairs = split_pair(texts[group[0]])[1] is not None
            batch = self._call([texts[i] for i in group], maxlen, offsets=True, pairs=pairs)
            for row, i in enumerate(group):
                text = texts[i]
                shift = len(split_pair(text)[0]) + 1 if pairs else 0
                seq = batch.sequence_ids(row) if pairs else [0] * maxlen
                word_ids = batch.word_ids(row)
                first_words = 1 + max(
                    (w for w, q in zip(word_ids, seq, strict=True) if w is not None and q == 0), default=-1
                )
                spans: list[tuple[int, int] | None] = []
                words: list[int | None] = []
                for w, q, (a, b) in zip(word_ids, seq, batch["offset_mapping"][row], strict=True):
                    if w is None:
                        spans.append(None)
                        words.append(None)
                        continue
                    base = shift if q == 1 else 0
                    spans.append(_trimmed(text, base + int(a), base + int(b)))
                    words.append(w + first_words if q == 1 else w)
                ids = batch["input_ids"][row]
                out[i] = Encoding(tuple(ids), tuple(self.tokens(ids)), tuple(spans), tuple(words))
        return [e for e in out if e is not None]

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
