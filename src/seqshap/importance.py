"""Global word importance: attributions grouped by *word* across many explanations.

Per-position summaries mean nothing for text (position 57 is a different word in every
review), so every occurrence of a word is pooled instead. For each word:

- ``mean``      mean signed attribution per occurrence (direction: + pushes the output up),
- ``mean_abs``  mean absolute attribution per occurrence (strength regardless of sign),
- ``count``     number of occurrences, ``n_reviews`` number of reviews containing it.

A word is the word as written, lowercased: a subword tokenizer's pieces of one word
(``"un" "##believ" "##able"``) are pooled as that one word, with their summed value (for the
native tokenizer a word is one token, so nothing changes there). Padding, start and special
tokens (``[CLS]``, ``<s>``, ...) are not words, as the tokenizer's layout says
(:attr:`Explanation.visible <seqshap.Explanation.visible>`); unknown words (``<oov>``, ``[UNK]``:
the layout's ``unknown_id``) are counted but not pooled (every unknown word shares one id, so
pooling them would mix unrelated words).

A table can carry human word ratings (:meth:`ImportanceTable.with_ratings`: the VADER lexicon of
:mod:`seqshap.faithfulness.plausibility`, matched case-insensitively): each word's rating beside its
mean, and which words the model and people disagree on in sign.

Only numbers live here (the accumulator, the table, running an explainer over texts);
the table's HTML, plot and folder of files are drawn by :mod:`seqshap.viz.importance`.

:class:`WordImportance` keeps only sums and counts and is mergeable: ``a.merge(b)``
equals one run over both parts *exactly*. The float sums are kept as exact expansions
(Shewchuk's non-overlapping partials, as in ``math.fsum``), so the result does not depend
on the order or grouping of the additions (needed when the work is split over workers).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from . import atomic
from ._validation import POSITIVE
from .attribution.explanation import Explanation
from .data.layout import TokenLayout


def _grow(partials: list[float], x: float) -> None:
    """Add ``x`` to the exact expansion ``partials`` in place (Shewchuk / ``math.fsum``)."""
    i = 0
    for y in partials:
        if abs(x) < abs(y):
            x, y = y, x
        hi = x + y
        lo = y - (hi - x)
        if lo:
            partials[i] = lo
            i += 1
        x = hi
    partials[i:] = [x]


def _total(partials: list[float]) -> float:
    return math.fsum(partials)  # correctly rounded value of the exact sum


@dataclass(frozen=True)
class WordStat:
    """One row of the importance table."""

    word: str
    mean: float
    mean_abs: float
    count: int
    n_reviews: int
    sum: float


# What a table explains when its explanations explained different classes (each review's predicted one).
PREDICTED = "the predicted class"


class WordImportance:
    """Mergeable accumulator of per-word attribution sums and counts.

    ``target`` is the class the pooled explanations explain where it must be named
    (:attr:`Explanation.explained_class`: a model with more than two classes); ``None`` for the
    usual two-class table, :data:`PREDICTED` when they explained different classes."""

    def __init__(self, output_space: str | None = None, target: str | None = None):
        self.output_space = output_space
        self.target = target
        self._seen_target = target is not None
        self.n_explanations = 0
        self.n_skipped = 0  # <oov> positions seen (and left out)
        self._sum: dict[str, list[float]] = {}
        self._abs: dict[str, list[float]] = {}
        self._count: dict[str, int] = {}
        self._reviews: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._count)

    def _space(self, space: str | None) -> None:
        if space is None:
            return
        if self.output_space is None:
            self.output_space = space
        elif space != self.output_space:
            raise ValueError(
                f"cannot pool attributions of different output spaces ({self.output_space!r} and {space!r})"
            )

    def _class(self, target: str | None) -> None:
        if not self._seen_target:
            self.target, self._seen_target = target, True
        elif target != self.target:
            self.target = PREDICTED

    def add_tokens(
        self,
        tokens: Iterable[str],
        values: Iterable[float],
        output_space: str | None = None,
        ids: Iterable[int] | None = None,
        layout: TokenLayout | None = None,
    ) -> None:
        """Add one explained text: ``tokens`` ``[T]`` with ``values`` ``[T]``. With their ``ids``
        ``[T]`` and the tokenizer's ``layout``, padding and special tokens are left out and unknown
        words counted, as :meth:`add` does; without, every token is a word."""
        tokens, values = list(tokens), np.asarray(values, dtype=np.float64).ravel()
        if len(tokens) != len(values):
            raise ValueError(f"{len(tokens)} tokens but {len(values)} values")
        if not np.all(np.isfinite(values)):
            raise ValueError("attributions contain NaN or inf")
        if (ids is None) != (layout is None):
            raise ValueError("give both ids and layout (which positions are words), or neither")
        word, unknown = np.ones(len(tokens), dtype=bool), np.zeros(len(tokens), dtype=bool)
        if ids is not None and layout is not None:
            id_row = np.asarray(list(ids), dtype=np.int64)
            if id_row.shape != (len(tokens),):
                raise ValueError(f"{len(tokens)} tokens but {id_row.size} ids")
            word, unknown = layout.visible(id_row), layout.is_unknown(id_row)
        self._add_words(
            [(None if u else t, v) for t, v, w, u in zip(tokens, values.tolist(), word, unknown, strict=True) if w],
            output_space,
        )

    def _add_words(self, words: list[tuple[str | None, float]], output_space: str | None) -> None:
        """Add one text's ``(word, value)`` pairs; word ``None`` is an unknown word (counted, not pooled)."""
        self._space(output_space)
        seen = set()
        for tok, v in words:
            if tok is None:
                self.n_skipped += 1
                continue
            if tok not in self._count:
                self._sum[tok], self._abs[tok], self._count[tok], self._reviews[tok] = [], [], 0, 0
            _grow(self._sum[tok], v)
            _grow(self._abs[tok], abs(v))
            self._count[tok] += 1
            if tok not in seen:
                seen.add(tok)
                self._reviews[tok] += 1
        self.n_explanations += 1

    def add(self, exp: Explanation) -> WordImportance:
        """Add one :class:`Explanation`, word by word (:meth:`Explanation.word_list`)."""
        if not np.all(np.isfinite(exp.values)):
            raise ValueError("attributions contain NaN or inf")
        self._class(exp.explained_class)
        self._add_words([(None if w.unknown else w.text.lower(), w.value) for w in exp.word_list()], exp.output_space)
        return self

    def update(self, exps: Iterable[Explanation]) -> WordImportance:
        for e in exps:
            self.add(e)
        return self

    def merge(self, other: WordImportance) -> WordImportance:
        """Add another partial result into this one (in place); exact."""
        if not isinstance(other, WordImportance):
            raise TypeError(f"can only merge a WordImportance, got {type(other).__name__}")
        self._space(other.output_space)
        if other._seen_target:
            self._class(other.target)
        for w, c in other._count.items():
            if w not in self._count:
                self._sum[w], self._abs[w], self._count[w], self._reviews[w] = [], [], 0, 0
            for x in other._sum[w]:
                _grow(self._sum[w], x)
            for x in other._abs[w]:
                _grow(self._abs[w], x)
            self._count[w] += c
            self._reviews[w] += other._reviews[w]
        self.n_explanations += other.n_explanations
        self.n_skipped += other.n_skipped
        return self

    def __add__(self, other: WordImportance) -> WordImportance:
        return WordImportance.from_state(self.to_state()).merge(other)

    def to_state(self) -> dict:
        """JSON-able state (exact: the partial sums are kept) for shipping between workers."""
        target = {"target": self.target} if self._seen_target else {}
        return {
            "output_space": self.output_space,
            **target,
            "n_explanations": self.n_explanations,
            "n_skipped": self.n_skipped,
            "words": {
                w: [list(self._sum[w]), list(self._abs[w]), self._count[w], self._reviews[w]] for w in self._count
            },
        }

    @classmethod
    def from_state(cls, state: dict) -> WordImportance:
        acc = cls(state.get("output_space"))
        if "target" in state:
            acc.target, acc._seen_target = state["target"], True
        acc.n_explanations = int(state["n_explanations"])
        acc.n_skipped = int(state.get("n_skipped", 0))
        for w, (s, a, c, r) in state["words"].items():
            acc._sum[w], acc._abs[w] = [float(x) for x in s], [float(x) for x in a]
            acc._count[w], acc._reviews[w] = int(c), int(r)
        return acc

    def table(self, min_count: int = 5) -> ImportanceTable:
        """Words seen at least ``min_count`` times, most positive mean first."""
        POSITIVE.check("min_count", min_count)
        rows = []
        for w, c in self._count.items():
            if c < min_count:
                continue
            s, a = _total(self._sum[w]), _total(self._abs[w])
            rows.append(WordStat(w, s / c, a / c, c, self._reviews[w], s))
        rows.sort(key=lambda r: (-r.mean, r.word))
        return ImportanceTable(rows, self.n_explanations, min_count, self.output_space or "probability", self.target)


@dataclass
class ImportanceTable:
    """The finished table (rows sorted by mean signed attribution, highest first)."""

    rows: list[WordStat]
    n_explanations: int
    min_count: int
    output_space: str = "probability"
    target: str | None = None  # the explained class, where it is named (see WordImportance)
    # human word ratings (lowercase word -> rating, -4..+4), see with_ratings
    ratings: Mapping[str, float] | None = None
    # +1: a positive mean pushes toward positive sentiment; -1: toward negative; None: neither (no sign check)
    rating_sign: int | None = None
    ratings_source: str = ""

    def __len__(self) -> int:
        return len(self.rows)

    def with_ratings(self, ratings: Mapping[str, float], sign: int | None = 1, source: str = "") -> ImportanceTable:
        """This table with human word ratings beside the words (a copy). ``sign``: +1 when the
        explained output is positive sentiment (a sentiment model's positive class, the highest star
        rating), -1 when it is negative sentiment (the lowest rating), ``None`` when it is neither
        (a middle rating: the ratings are shown, no disagreement is marked). ``source``: where the
        ratings come from, in words."""
        from .faithfulness.plausibility import normalise_lexicon

        if sign not in (1, -1, None):
            raise ValueError(f"sign must be 1, -1 or None, got {sign!r}")
        return replace(self, ratings=normalise_lexicon(ratings), rating_sign=sign, ratings_source=source)

    def rating(self, word: str) -> float | None:
        """The human rating of ``word`` (``None``: unrated, or the table has no ratings)."""
        return None if self.ratings is None else self.ratings.get(word.lower())

    def disagrees(self, row: WordStat) -> bool:
        """Do the model and people disagree in sign on ``row``'s word: ``sign(rating_sign * mean)
        != sign(rating)``, for a rated word with a non-zero mean and rating (``False`` where there
        is nothing to compare)."""
        r = self.rating(row.word)
        if r is None or self.rating_sign is None or r == 0 or row.mean == 0:
            return False
        return (self.rating_sign * row.mean > 0) != (r > 0)

    def disagreements(self, k: int = 20) -> list[WordStat]:
        """The ``k`` words with the largest mean |attribution| on which model and people disagree in sign."""
        return [r for r in sorted(self.rows, key=lambda r: (-abs(r.mean), r.word)) if self.disagrees(r)][: max(0, k)]

    def __getitem__(self, word: str) -> WordStat:
        for r in self.rows:
            if r.word == word:
                return r
        raise KeyError(word)

    def top_positive(self, k: int = 20) -> list[WordStat]:
        """The ``k`` words with the highest positive mean attribution."""
        return [r for r in self.rows if r.mean > 0][: max(0, k)]

    def top_negative(self, k: int = 20) -> list[WordStat]:
        """The ``k`` words with the most negative mean attribution, most negative first."""
        return sorted((r for r in self.rows if r.mean < 0), key=lambda r: (r.mean, r.word))[: max(0, k)]

    def by_mean_abs(self, k: int = 20) -> list[WordStat]:
        return sorted(self.rows, key=lambda r: (-r.mean_abs, r.word))[: max(0, k)]

    def to_dict(self, k: int = 20) -> dict:
        rated = self.ratings is not None
        return {
            "n_explanations": self.n_explanations,
            "min_count": self.min_count,
            "output_space": self.output_space,
            **({"target": self.target} if self.target is not None else {}),
            "top_positive": [r.word for r in self.top_positive(k)],
            "top_negative": [r.word for r in self.top_negative(k)],
            **(
                {
                    "ratings": {"source": self.ratings_source, "sign": self.rating_sign},
                    "disagree": [r.word for r in self.disagreements(k)],
                }
                if rated
                else {}
            ),
            "words": [
                {**asdict(r), **({"rating": self.rating(r.word), "disagrees": self.disagrees(r)} if rated else {})}
                for r in self.rows
            ],
        }

    def to_csv_text(self) -> str:
        """Every word: ``word, mean, mean_abs, count, n_reviews, sum`` (and ``rating, disagrees``
        with ratings: the rating empty for an unrated word)."""
        rated = self.ratings is not None
        buf = io.StringIO()
        wr = csv.writer(buf, lineterminator="\n")
        wr.writerow(
            ["word", "mean", "mean_abs", "count", "n_reviews", "sum"] + (["rating", "disagrees"] if rated else [])
        )
        for r in self.rows:
            extra = []
            if rated:
                rating = self.rating(r.word)
                extra = ["" if rating is None else repr(rating), int(self.disagrees(r))]
            wr.writerow([r.word, repr(r.mean), repr(r.mean_abs), r.count, r.n_reviews, repr(r.sum), *extra])
        return buf.getvalue()

    def write_csv(self, path: str | Path) -> Path:
        atomic.write_text(Path(path), self.to_csv_text())
        return Path(path)

    def write_json(self, path: str | Path, k: int = 20) -> Path:
        atomic.write_json(Path(path), self.to_dict(k))
        return Path(path)


def word_importance(exps: Iterable[Explanation], min_count: int = 5) -> ImportanceTable:
    """One-shot: pool ``exps`` and return the table."""
    return WordImportance().update(exps).table(min_count)


def explain_batches(
    explainer,
    texts: list[str],
    labels=None,
    batch_size: int = 25,
    progress: bool = False,
    desc: str = "explain",
    target: int | str | None = None,
) -> list[Explanation]:
    """``explainer.explain`` over ``texts`` in batches (class ``target``, default the explainer's),
    with a tqdm bar on stderr."""
    from tqdm import tqdm

    out: list[Explanation] = []
    with tqdm(total=len(texts), desc=desc, unit="review", disable=not progress, leave=False) as bar:
        for i in range(0, len(texts), batch_size):
            lab = None if labels is None else [int(x) for x in labels[i : i + batch_size]]
            out.extend(explainer.explain(list(texts[i : i + batch_size]), labels=lab, target=target))
            bar.update(len(texts[i : i + batch_size]))
    return out


def importance_over(
    explainer,
    texts: list[str],
    labels=None,
    batch_size: int = 25,
    progress: bool = False,
    desc: str = "importance",
    target: int | str | None = None,
) -> WordImportance:
    """Explain ``texts`` (for class ``target``, default the explainer's) batch by batch into a
    :class:`WordImportance` (explanations are not kept)."""
    from tqdm import tqdm

    acc = WordImportance(explainer.output)
    with tqdm(total=len(texts), desc=desc, unit="review", disable=not progress) as bar:
        for i in range(0, len(texts), batch_size):
            chunk = list(texts[i : i + batch_size])
            lab = None if labels is None else [int(x) for x in labels[i : i + batch_size]]
            acc.update(explainer.explain(chunk, labels=lab, target=target))
            bar.update(len(chunk))
    return acc
