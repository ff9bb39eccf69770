"""Which positions of a row are words: one answer, owned by the tokenizer (:class:`TokenLayout`).

A model reads a text as a row of ids ``[T]``: the words (one id each, or several subwords), the
marker tokens its tokenizer puts around them (the native start token; BERT's ``[CLS]``/``[SEP]``;
RoBERTa's ``<s>``/``</s>``), and padding on one side. Every method that makes words absent
(Integrated Gradients' baseline, occlusion, the Shapley games, DeepLIFT's default reference), the
faithfulness metrics, :attr:`Explanation.visible <seqshap.Explanation.visible>` and the pictures
ask this one object which positions are words, and what "no words" looks like.

The tokenizer owns it: :attr:`Vocab.layout <seqshap.data.Vocab.layout>` (:data:`NATIVE`) and
:attr:`HFTokenizer.layout <seqshap.data.hf_tokenizer.HFTokenizer.layout>` (read off the Hugging
Face tokenizer by :func:`hf_layout`). A bare ``nn.Module`` without a tokenizer gets :data:`NATIVE`
unless a layout is passed to the method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .tokenize import OOV, PAD, START

SIDES = ("left", "right")


@dataclass(frozen=True)
class TokenLayout:
    """How a tokenizer lays a text out in a row of ids.

    ``pad_id``: the padding id, on ``padding_side`` (``"left"``: in front, as Keras pads;
    ``"right"``: at the end, as BERT-style tokenizers do). ``special_ids``: marker tokens that are
    not words but stay when the words are removed (start, ``[CLS]``, ``[SEP]``, ``<s>``, ``</s>``,
    BOS/EOS). ``empty_ids``: the empty text as the tokenizer writes it, before padding (natively the
    start token; ``[CLS] [SEP]``; nothing for a tokenizer that adds no markers). ``unknown_id``: the
    id every out-of-vocabulary word shares (a word, but one whose text the id does not tell), or None.

    A position is a *word* when its id is neither padding nor special. Where the padding id is also
    a marker (a decoder whose pad token is its end-of-text token), that id reads as padding, as the
    model's own padding mask reads it.
    """

    pad_id: int
    padding_side: str = "left"
    special_ids: frozenset[int] = frozenset()
    empty_ids: tuple[int, ...] = ()
    unknown_id: int | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if self.padding_side not in SIDES:
            raise ValueError(f"padding_side must be one of {SIDES}, got {self.padding_side!r}")
        object.__setattr__(self, "pad_id", int(self.pad_id))
        object.__setattr__(self, "special_ids", frozenset(int(i) for i in self.special_ids) - {self.pad_id})
        object.__setattr__(self, "empty_ids", tuple(int(i) for i in self.empty_ids if int(i) != self.pad_id))
        unk = None if self.unknown_id is None or int(self.unknown_id) == self.pad_id else int(self.unknown_id)
        object.__setattr__(self, "unknown_id", unk)
        words = [i for i in self.empty_ids if i not in self.special_ids]
        if words:
            raise ValueError(f"the empty text {list(self.empty_ids)} holds ids {words} that are not special tokens")

    # -- reading rows -----------------------------------------------------------------------------
    def visible(self, ids: Any) -> np.ndarray:
        """Boolean ``[..., T]``: positions holding a word (not padding, not a special token)."""
        ids = _numpy(ids)
        out = ids != self.pad_id
        if self.special_ids:
            out &= ~np.isin(ids, list(self.special_ids))
        return out

    def players(self, row: Any) -> np.ndarray:
        """The positions ``[p]`` of the words of one row ``[T]``: the players of the Shapley games
        and the positions occlusion removes."""
        return np.flatnonzero(self.visible(row))

    def is_unknown(self, ids: Any) -> np.ndarray:
        """Boolean ``[..., T]``: words the vocabulary does not know (all share ``unknown_id``)."""
        ids = _numpy(ids)
        return ids == self.unknown_id if self.unknown_id is not None else np.zeros(ids.shape, dtype=bool)

    # -- making words absent ----------------------------------------------------------------------
    def blank_words(self, ids: Any, which: Any = None) -> Any:
        """``ids`` ``[..., T]`` (ndarray or tensor, returned as the same kind, a copy) with the words at
        ``which`` (boolean, same shape; default every word) replaced by padding *in place*: special
        tokens and every position stay where they are. With ``which`` left out this is "the text with
        its words taken out" as the model reads it: IG's baseline, the Shapley games' empty coalition."""
        arr = _numpy(ids)
        words = self.visible(arr)
        mask = words if which is None else np.asarray(which, dtype=bool)
        if mask.shape != arr.shape:
            raise ValueError(f"which has shape {mask.shape}, the ids {arr.shape}")
        if (mask & ~words).any():
            at = tuple(int(v) for v in np.argwhere(mask & ~words)[0])
            raise ValueError(f"position {at} holds id {int(arr[at])}, padding or a special token: not a word to blank")
        out = np.where(mask, self.pad_id, arr).astype(arr.dtype, copy=False)
        return ids.new_tensor(out) if hasattr(ids, "new_tensor") else out

    def empty_row(self, length: int) -> np.ndarray:
        """The empty text as the model reads it, ``[length]`` int64: the markers of ``empty_ids``
        (natively the start token; ``[CLS] [SEP]``), then padding on the padding side."""
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        return self.place(
            np.asarray(self.empty_ids[-length:] if self.padding_side == "left" else self.empty_ids[:length]), length
        )

    def place(self, kept: Any, length: int, dtype: Any = np.int64) -> np.ndarray:
        """``kept`` ids ``[k]`` (``k <= length``) padded to ``[length]`` on the padding side."""
        kept = _numpy(kept)
        if len(kept) > length:
            raise ValueError(f"{len(kept)} ids do not fit a row of {length}")
        out = np.full(length, self.pad_id, dtype=dtype)
        if len(kept):
            if self.padding_side == "right":
                out[: len(kept)] = kept
            else:
                out[length - len(kept) :] = kept
        return out

    # -- its JSON form ----------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "pad_id": self.pad_id,
            "padding_side": self.padding_side,
            "special_ids": sorted(self.special_ids),
            "empty_ids": list(self.empty_ids),
            "unknown_id": self.unknown_id,
            "name": self.name,
        }

    @classmethod
    def from_json(cls, obj: Any) -> TokenLayout:
        """The layout from :meth:`to_json`'s form; ``ValueError`` naming the field that is wrong."""
        if not isinstance(obj, dict) or "pad_id" not in obj:
            raise ValueError("a token layout is a JSON object with at least 'pad_id'")

        def ints(key: str) -> list[int]:
            v = obj.get(key, [])
            if not isinstance(v, list) or not all(_whole(i) for i in v):
                raise ValueError(f"layout {key!r} must be a list of whole numbers, got {v!r}")
            return v

        for key in ("pad_id", "unknown_id"):
            if not (_whole(obj.get(key)) or (key == "unknown_id" and obj.get(key) is None)):
                raise ValueError(f"layout {key!r} must be a whole number, got {obj.get(key)!r}")
        return cls(
            pad_id=obj["pad_id"],
            padding_side=str(obj.get("padding_side", "left")),
            special_ids=frozenset(ints("special_ids")),
            empty_ids=tuple(ints("empty_ids")),
            unknown_id=obj.get("unknown_id"),
            name=str(obj.get("name", "")),
        )


def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _numpy(ids: Any) -> np.ndarray:
    if hasattr(ids, "detach"):  # a torch tensor, without importing torch here
        ids = ids.detach().cpu().numpy()
    return np.asarray(ids)


# seqshap's own tokenizer (Keras' imdb ids): padding 0 in front, the start token 1, unknown words 2.
NATIVE = TokenLayout(
    pad_id=PAD, padding_side="left", special_ids=frozenset({START}), empty_ids=(START,), unknown_id=OOV, name="native"
)

# No token ids at all (a model explained from float embeddings): every position is shown.
POSITIONS = TokenLayout(pad_id=-1, padding_side="right", name="positions")


def hf_layout(tokenizer: Any) -> TokenLayout:
    """The layout of a Hugging Face tokenizer (duck-typed: ``pad_token_id``, ``padding_side``,
    ``all_special_ids``, ``unk_token_id``, ``mask_token_id``, and calling it): its special tokens other
    than padding, unknown and mask are the markers, and the empty text is what it makes of ``""``."""
    pad = tokenizer.pad_token_id
    if pad is None:
        raise ValueError("the tokenizer has no padding token (pad_token); set one and save it again")
    unk, mask = tokenizer.unk_token_id, tokenizer.mask_token_id
    specials = {int(i) for i in tokenizer.all_special_ids} - {pad, unk, mask}
    empty = tokenizer("", add_special_tokens=True)["input_ids"]
    return TokenLayout(
        pad_id=int(pad),
        padding_side=str(getattr(tokenizer, "padding_side", "right")),
        special_ids=frozenset(specials),
        empty_ids=tuple(int(i) for i in empty),
        unknown_id=None if unk is None or unk in specials else int(unk),
        name=type(tokenizer).__name__,
    )
