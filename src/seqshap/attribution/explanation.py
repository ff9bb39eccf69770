"""The one object every picture, the CLI, the web page and word importance read, and its one JSON form."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data.layout import NATIVE, TokenLayout

Span = tuple[int, int]


def _finite_or_none(x: float) -> float | None:
    """JSON has no NaN: a number a method does not define (NaN) is written as null."""
    return float(x) if math.isfinite(x) else None


def _float_or_nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


@dataclass(frozen=True)
class Word:
    """One word of the text: the positions read from it and their summed value."""

    text: str  # as written (the token itself when there is no text)
    token: str  # as the model's vocabulary has it ("<oov>" for unknown words)
    value: float
    positions: tuple[int, ...]
    span: Span | None
    unknown: bool  # read as the out-of-vocabulary token


@dataclass(frozen=True, eq=False)
class Explanation:
    """Attributions of one prediction, one value per token position.

    ``values`` ``[T]`` sum to ``output_value - base_value`` up to ``completeness_error``.
    ``output_space`` is ``"probability"``, ``"logit"`` or ``"raw"`` (what the model returns).
    ``spans[t]`` is where position ``t`` was read from in ``text`` (``None`` for padding and
    start/special tokens) and ``word_ids[t]`` which word it belongs to; both are ``None``
    when the explanation was made from token ids without a text.
    ``output_name`` names what is explained (a class, e.g. ``"positive"``); ``predicted``
    is the class the model predicts (for a ``multi_label`` model, where each class is a label of
    its own, the labels it gives the text, comma-separated, ``""`` for none); ``label`` the true
    class index when known, a position in ``classes``. ``layout`` is the tokenizer's
    :class:`~seqshap.data.layout.TokenLayout` the ids follow: which positions are words
    (:attr:`visible`) and which id is the unknown word (default: the native tokenizer's). Its JSON
    form travels in ``meta["layout"]``.
    """

    tokens: tuple[str, ...]
    ids: tuple[int, ...]
    values: np.ndarray
    base_value: float
    output_value: float
    completeness_error: float
    output_space: str = "probability"
    model_name: str = "model"
    method: str = "deepshap"
    output_index: int = 0
    text: str | None = None
    label: int | None = None
    meta: dict = field(default_factory=dict)
    spans: tuple[Span | None, ...] | None = None
    word_ids: tuple[int | None, ...] | None = None
    classes: tuple[str, ...] | None = None
    output_name: str | None = None
    predicted: str | None = None
    layout: TokenLayout = NATIVE
    multi_label: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.layout, TokenLayout):
            raise TypeError(f"layout must be a TokenLayout, got {type(self.layout).__name__}")
        values = np.asarray(self.values, dtype=np.float64).copy()
        values.setflags(write=False)  # frozen means frozen, arrays included
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "tokens", tuple(self.tokens))
        object.__setattr__(self, "ids", tuple(int(i) for i in self.ids))
        n = len(values)
        if not (len(self.tokens) == len(self.ids) == n):
            raise ValueError(
                f"tokens ({len(self.tokens)}), ids ({len(self.ids)}) and values ({n}) must have the same length"
            )
        if self.spans is not None:
            spans = tuple(None if s is None else (int(s[0]), int(s[1])) for s in self.spans)
            if len(spans) != n or self.text is None:
                raise ValueError(f"spans need a text and one entry per position ({n}), got {len(spans)}")
            if any(s is not None and not 0 <= s[0] <= s[1] <= len(self.text) for s in spans):
                raise ValueError("a span lies outside the text")
            object.__setattr__(self, "spans", spans)
            word_ids = (
                self.word_ids
                if self.word_ids is not None
                else tuple(None if s is None else t for t, s in enumerate(spans))
            )
            word_ids = tuple(None if w is None else int(w) for w in word_ids)
            object.__setattr__(self, "word_ids", word_ids)
            if len(word_ids) != n:
                raise ValueError(f"word_ids must have one entry per position ({n})")
        if self.classes is not None:
            object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))

    # -- reading it -----------------------------------------------------------------------
    @property
    def prediction(self) -> float:
        """The explained output value (a probability in the default output space)."""
        return self.output_value

    @property
    def predicted_label(self) -> int | None:
        """The predicted class index: ``predicted``'s position in ``classes``, else read off a
        one-output (sigmoid) model: 1 above 0.5, else 0."""
        if self.predicted is not None and self.classes is not None and self.predicted in self.classes:
            return self.classes.index(self.predicted)
        if self.multi_label:  # labels are not exclusive: no one class is "the" prediction
            return None
        if self.output_space == "probability":
            return int(self.output_value > 0.5)
        if self.output_space == "logit":
            return int(self.output_value > 0)
        return None

    @property
    def visible(self) -> np.ndarray:
        """Boolean mask ``[T]`` of positions a person should see: the words, as the tokenizer's
        layout says (no padding, no start or special tokens)."""
        return self.layout.visible(np.asarray(self.ids, dtype=np.int64))

    @property
    def hidden_value(self) -> float:
        """The summed value of the positions that are not words (padding, start and special
        tokens): with every word's value it adds up to ``output_value - base_value``."""
        return float(self.values[~self.visible].sum())

    def word_list(self) -> list[Word]:
        """The visible words in text order, each with the summed value of its positions."""
        groups: dict[Any, list[int]] = {}
        for p in np.flatnonzero(self.visible).tolist():
            key = self.word_ids[p] if self.word_ids is not None else ("pos", p)
            groups.setdefault(key, []).append(p)
        out = []
        unknown_at = self.layout.is_unknown(np.asarray(self.ids, dtype=np.int64))
        for pos in groups.values():
            token = "".join(self.tokens[p] for p in pos)
            unknown = bool(unknown_at[list(pos)].any())
            span, text = None, token
            # a tokenizer gives its words spans (its layout and its spans agree: tests/test_token_layout.py)
            spans = [s for p in pos if (s := self.spans[p]) is not None] if self.spans is not None else []
            if spans and self.text is not None:
                span = (min(s[0] for s in spans), max(s[1] for s in spans))
                text = self.text[span[0] : span[1]]
            out.append(Word(text, token, float(sum(self.values[p] for p in pos)), tuple(pos), span, unknown))
        return out

    def words(self) -> list[tuple[str, float]]:
        """(word, value) for the visible words in text order: the word as written in the text where
        the tokenizer knows where it came from (a word of several subwords once, summed), as the
        pictures show it; else its token."""
        return [(w.text, w.value) for w in self.word_list()]

    def top(self, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` visible words with the largest absolute attribution, as (word, value)."""
        return sorted(self.words(), key=lambda tv: -abs(tv[1]))[:k]

    def class_name(self, index: int | None) -> str | None:
        if index is None:
            return None
        return self.classes[index] if self.classes is not None and 0 <= index < len(self.classes) else str(index)

    @property
    def explained_class(self) -> str | None:
        """The explained class's name where a picture must say it ("why *9*"): a model with more
        than two classes, or a two-class model explained for its first class. ``None`` for the
        usual two-class explanation (the positive class), whose pictures speak of positive/negative."""
        if self.classes is None or self.output_name is None:
            return None
        named = len(self.classes) > 2 or self.multi_label or self.output_name != self.classes[-1]
        return self.output_name if named else None

    @property
    def predicted_name(self) -> str | None:
        """The predicted class's name (``predicted``, else read off a one-output model)."""
        if self.predicted is not None:
            return self.predicted
        return self.class_name(self.predicted_label) if self.classes is not None else None

    # -- its one JSON form --------------------------------------------------------------------
    def to_dict(self, top: int = 10) -> dict[str, Any]:
        """The JSON form used by the CLI, the web API, the corpus runner and the report.

        Every number is finite, so it is JSON: an explanation with NaN or infinity is refused
        at its source, and here too. ``base_value`` and ``completeness_error`` are ``None`` for
        methods that have none (gradient x input, occlusion, random). ``top`` lists the ``top``
        words with the largest |value|, each with its positions.
        """
        if not (np.all(np.isfinite(self.values)) and math.isfinite(self.output_value)):
            raise ValueError("this explanation holds NaN or infinity (values or prediction); it has no JSON form")
        words = self.word_list()
        ranked = sorted(words, key=lambda w: -abs(w.value))[: max(0, top)]
        return {
            "model": self.model_name,
            "method": self.method,
            "output": self.output_space,
            "output_index": self.output_index,
            "output_name": self.output_name,
            "text": self.text,
            "tokens": list(self.tokens),
            "ids": list(self.ids),
            "values": self.values.tolist(),
            "visible": self.visible.tolist(),
            "spans": None if self.spans is None else [None if s is None else list(s) for s in self.spans],
            "word_ids": None if self.word_ids is None else list(self.word_ids),
            "base_value": _finite_or_none(self.base_value),
            "prediction": float(self.output_value),
            "completeness_error": _finite_or_none(self.completeness_error),
            "label": self.predicted_name,
            "true_label": self.class_name(self.label),
            "classes": None if self.classes is None else list(self.classes),
            "multi_label": self.multi_label,
            "top": [
                {"pos": w.positions[0], "positions": list(w.positions), "word": w.text, "value": w.value}
                for w in ranked
            ],
            "meta": {**self.meta, "layout": self.layout.to_json()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Explanation:
        """Rebuild an explanation from :meth:`to_dict` output."""
        classes = tuple(d["classes"]) if d.get("classes") is not None else None
        true = d.get("true_label")
        label = None if true is None else (classes.index(true) if classes and true in classes else int(true))
        meta = dict(d.get("meta") or {})
        layout = TokenLayout.from_json(meta.pop("layout")) if "layout" in meta else NATIVE
        return cls(
            tokens=d["tokens"],
            ids=d["ids"],
            values=np.asarray(d["values"], dtype=np.float64),
            base_value=_float_or_nan(d["base_value"]),
            output_value=float(d["prediction"]),
            completeness_error=_float_or_nan(d["completeness_error"]),
            output_space=d.get("output", "probability"),
            model_name=d.get("model", "model"),
            method=d.get("method", "deepshap"),
            output_index=int(d.get("output_index", 0)),
            text=d.get("text"),
            label=label,
            meta=meta,
            spans=None if d.get("spans") is None else tuple(None if s is None else tuple(s) for s in d["spans"]),
            word_ids=None if d.get("word_ids") is None else tuple(d["word_ids"]),
            classes=classes,
            output_name=d.get("output_name"),
            predicted=d.get("label"),
            layout=layout,
            multi_label=bool(d.get("multi_label", False)),
        )

    def is_finite(self) -> bool:
        return (
            bool(np.all(np.isfinite(self.values)))
            and math.isfinite(self.base_value)
            and math.isfinite(self.output_value)
        )

    def _repr_html_(self) -> str:
        from ..viz.html import explanation_html  # lazy: viz sits above attribution

        return explanation_html(self)
