"""Plausibility: do the explanations agree with what people say the words mean?

Faithfulness asks whether an explanation tracks the *model*; plausibility asks whether a *person*
reading it would agree. The human judgements are word ratings: by default the VADER sentiment
lexicon (Hutto & Gilbert 2014, see :data:`VADER_CITATION`), about 7,500 words and emoticons, each
rated by ten people from -4 (extremely negative) to +4 (extremely positive) and the mean kept. The
lexicon is read at run time from the installed ``vaderSentiment`` package (``pip install
'seqshap[plausibility]'``), never copied into seqshap. Any other ``{word: rating}`` mapping on the
same scale can be given instead (:class:`Plausibility`'s ``lexicon``).

Notation: a corpus of explained reviews ``i``, each a list of word occurrences ``(w_ij, v_ij)``;
``v_ij`` is the word's attribution toward *positive sentiment* (:class:`Direction`), summed over
its subword pieces, and ``w_ij`` the word as written, lowercased: the grouping of
:meth:`Explanation.word_list <seqshap.Explanation.word_list>`, the one the global word view
(:mod:`seqshap.importance`) pools by. ``r(w)`` is the human rating (looked up case-insensitively)
and ``S = {w : |r(w)| >= tau}`` the strongly rated words (``tau = 1.5``). Unknown words
(``<oov>``, ``[UNK]``) have no text, so no rating.

- **sign agreement** ``A = #{ij : w_ij in S, sign(v_ij) = sign(r(w_ij))} / #{ij : w_ij in S}``:
  pooled over every occurrence of a strongly rated word (an attribution of exactly 0 has no sign
  and counts as a disagreement). A method that guesses signs scores about 0.5.
- **rank correlation** ``rho = Spearman(mean_w, r(w))`` over the rated words seen at least
  ``m = 5`` times in the corpus, ``mean_w`` the mean of ``v_ij`` over the occurrences of ``w``
  (Pearson's correlation of the average ranks, so ties share a rank).
- **rated top-k** ``P = mean_i |K_i ∩ S| / |K_i|``, ``K_i`` the ``min(k, n_i)`` words of review
  ``i`` with the largest ``|v_ij|`` (ties in text order), ``k = 5``: how much of what an explanation
  shows first is a word people rate strongly. :func:`chance_top_k` is what picking words at random
  scores.

Which output is "positive sentiment" (:func:`sentiment_direction`): the positive class of a
``negative``/``positive`` model; ``P(highest rating) - P(lowest rating)`` for a model of ordered
IMDB star ratings (``--task imdb-rating``). For any other classes the ratings say nothing about the
outputs and :class:`NotApplicableError` says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data.imdb import RATING_CLASSES
from ..errors import LexiconMissingError, NotApplicableError

STRONG = 1.5  # |rating| at least this: a strongly rated word
MIN_COUNT = 5  # occurrences a word needs for the rank correlation
TOP_K = 5  # words per explanation for the rated top-k
EXTRA = "plausibility"  # pip install 'seqshap[plausibility]'
VADER_PIN = "vaderSentiment==3.3.2"
VADER_CITATION = (
    "C. J. Hutto and E. Gilbert (2014), VADER: A Parsimonious Rule-based Model for Sentiment Analysis "
    "of Social Media Text, Proceedings of the 8th International AAAI Conference on Weblogs and Social "
    "Media (ICWSM-14)"
)
RATING_TASK = "imdb-rating"  # its classes, RATING_CLASSES, are star ratings: ordered sentiment
SENTIMENT_CLASSES = ("negative", "positive")

# one word's occurrence in one review: (the word lowercased, or None for an unknown word; its positions)
WordGroup = tuple[str | None, tuple[int, ...]]


# ---- the ratings -------------------------------------------------------------------------------------
def normalise_lexicon(ratings: Mapping[str, float]) -> dict[str, float]:
    """``{word: rating}`` keyed by the lowercased word. Entries of several words (``"can't stand"``)
    are left out (a word of an explanation is one word); entries that differ only in case
    (``":P"``, ``":p"``) become one, their mean rating. Raises ``ValueError`` for a rating that is
    not a finite number."""
    groups: dict[str, list[float]] = {}
    for word, rating in ratings.items():
        if not isinstance(word, str):
            raise ValueError(f"lexicon: words must be strings, got {type(word).__name__} {word!r}")
        if isinstance(rating, bool) or not isinstance(rating, (int, float)) or not math.isfinite(rating):
            raise ValueError(f"lexicon: the rating of {word!r} must be a finite number, got {rating!r}")
        key = word.strip().lower()
        if key and not any(c.isspace() for c in key):
            groups.setdefault(key, []).append(float(rating))
    return {k: math.fsum(v) / len(v) for k, v in groups.items()}


def vader_version() -> str:
    """The installed ``vaderSentiment``'s version ("unknown" if its metadata is missing)."""
    from importlib import metadata

    try:
        return metadata.version("vaderSentiment")
    except metadata.PackageNotFoundError:
        return "unknown"


def vader_lexicon() -> dict[str, float]:
    """The VADER lexicon as the installed ``vaderSentiment`` reads it (its own loader: for a word
    listed twice the last line wins), then :func:`normalise_lexicon`. :class:`LexiconMissingError`
    naming the extra to install when the package is missing."""
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError as e:
        raise LexiconMissingError(
            f"plausibility needs the human word ratings of the VADER lexicon ({VADER_CITATION}), read from the "
            f"vaderSentiment package, which is not installed ({e}): pip install 'seqshap[{EXTRA}]' "
            f"(or pip install {VADER_PIN})"
        ) from None
    return normalise_lexicon(SentimentIntensityAnalyzer().lexicon)


def vader_source() -> str:
    """Where the VADER ratings come from, in one line (for the tables)."""
    return (
        f"the VADER sentiment lexicon, read from the installed vaderSentiment {vader_version()} "
        f"(each word's rating is the mean of ten people's ratings from -4 to +4; {VADER_CITATION})"
    )


# ---- which output is "positive" --------------------------------------------------------------------
@dataclass(frozen=True)
class Direction:
    """The explained quantity whose sign the ratings' sign is compared with: ``sum_c weight_c *
    output_c`` over ``columns`` ``((output column, weight), ...)``. Attributions are linear in it
    for every method here (each column is explained and the values combined), and for an additive
    method the combined values add up to the combined outputs minus their base."""

    columns: tuple[tuple[int, float], ...] = ((0, 1.0),)
    label: str = "the output"

    def combine(self, attribute: Callable[[int], np.ndarray]) -> np.ndarray:
        """``sum_c weight_c * attribute(c)``, ``attribute(column) -> values [n, T]``."""
        total: np.ndarray | None = None
        for column, weight in self.columns:
            part = weight * np.asarray(attribute(column), dtype=np.float64)
            total = part if total is None else total + part
        if total is None:
            raise ValueError("a direction needs at least one output column")
        return total

    @property
    def first_column(self) -> bool:
        """Is this output column 0 as it is (the values the faithfulness metrics already have)?"""
        return self.columns == ((0, 1.0),)


def sentiment_direction(
    classes: Sequence[str] | None, n_outputs: int, task: str | None = None, name: str = "this model"
) -> Direction:
    """What "positive sentiment" is among a model's outputs, or :class:`NotApplicableError`.

    - classes ``negative``/``positive`` (any case; seqshap's default two classes): the positive
      class, output column 0 of a one-output (sigmoid) model, column 1 of a two-output softmax;
    - ordered IMDB star ratings (a model trained with ``--task imdb-rating``, or whose classes are
      that task's ``1 2 3 4 7 8 9 10``): the highest rating minus the lowest, ``P(10) - P(1)``: the
      positive end against the negative end, one number whose sign is the sentiment (the ends are
      where the ratings' sign is clear; a middle class's probability rises and falls with either);
    - anything else (topics, intents, numbered classes of unknown meaning): not applicable.
    """
    names = [str(c) for c in classes] if classes else []
    lowered = tuple(c.strip().lower() for c in names)
    if lowered == SENTIMENT_CLASSES and n_outputs in (1, 2):
        return Direction(((n_outputs - 1, 1.0),), f"P({names[1]})")
    numbers = _numbers(names)
    ordered = task == RATING_TASK or tuple(names) == RATING_CLASSES
    if ordered and numbers is not None and n_outputs == len(names) >= 3:
        lo, hi = int(np.argmin(numbers)), int(np.argmax(numbers))
        return Direction(((hi, 1.0), (lo, -1.0)), f"P({names[hi]}) - P({names[lo]})")
    shown = ", ".join(names) if names else f"{n_outputs} unnamed output(s)"
    raise NotApplicableError(
        f"plausibility does not apply to {name}: its classes ({shown}) are neither negative/positive "
        "sentiment nor ordered IMDB star ratings, and human ratings of how positive a word is say nothing "
        "about them"
    )


def _numbers(names: Sequence[str]) -> list[float] | None:
    try:
        values = [float(n) for n in names]
    except ValueError:
        return None
    return values if values and all(math.isfinite(v) for v in values) else None


def count_outputs(model) -> int:
    """How many output columns a seqshap model has (one forward pass of a one-word text)."""
    import torch

    row = model.encode(["good"])
    was = model.net.training
    model.net.eval()
    try:
        with torch.no_grad():
            out = model.net(row)
    finally:
        model.net.train(was)
    return int(out.reshape(len(row), -1).shape[1])


def direction_of(model) -> Direction:
    """:func:`sentiment_direction` for a seqshap model (its classes, its outputs, its task)."""
    return sentiment_direction(model.classes, count_outputs(model), model.config.get("task"), model.name)


def class_sign(direction: Direction, classes: Sequence[str], n_outputs: int, target: str | None) -> int | None:
    """Which way explaining class ``target`` points on the sentiment ``direction``: +1 (its
    probability is weighted up: the positive class, the highest rating), -1 (weighted down: the
    negative class of a two-output model, the lowest rating) or ``None`` (a middle rating). ``target``
    ``None`` is a two-class model's default, its positive class."""
    if target is None:
        return 1
    names = [str(c) for c in classes]
    if target not in names:
        raise ValueError(f"unknown class {target!r} (classes: {', '.join(names)})")
    if tuple(c.strip().lower() for c in names) == SENTIMENT_CLASSES:
        return 1 if target == names[1] else -1
    column = names.index(target) if n_outputs > 1 else 0
    weight = dict(direction.columns).get(column)
    return None if weight is None else (1 if weight > 0 else -1)


# ---- words --------------------------------------------------------------------------------------------
def word_groups(model, texts: Sequence[str]) -> list[list[WordGroup]]:
    """Each text's words as ``model`` reads them, grouped exactly as :meth:`Explanation.word_list
    <seqshap.Explanation.word_list>` groups them (and :mod:`seqshap.importance` pools them): the
    word as written, lowercased (``None`` for an unknown word), and its positions in the row."""
    from ..attribution.base import layout_of
    from ..attribution.explanation import Explanation

    layout = layout_of(model)
    out = []
    for text, enc in zip(texts, model.encodings(list(texts)), strict=True):
        exp = Explanation(
            tokens=enc.tokens,
            ids=enc.ids,
            values=np.zeros(len(enc.ids)),
            base_value=0.0,
            output_value=0.0,
            completeness_error=0.0,
            text=text,
            spans=enc.spans,
            word_ids=enc.word_ids,
            layout=layout,
        )
        out.append([(None if w.unknown else w.text.lower(), w.positions) for w in exp.word_list()])
    return out


def token_word_groups(tokens: Sequence[Sequence[str]], ids, layout) -> list[list[WordGroup]]:
    """Without the texts: every visible position one word, its token lowercased (right for the
    native tokenizer, where a word is one token; a subword tokenizer's pieces stay apart)."""
    ids = np.asarray(ids)
    out: list[list[WordGroup]] = []
    for toks, row in zip(tokens, ids, strict=True):
        unknown = layout.is_unknown(row)
        places = [int(p) for p in np.flatnonzero(layout.visible(row))]
        out.append([(None if unknown[p] else str(toks[p]).lower(), (p,)) for p in places])
    return out


def word_values(values: np.ndarray, groups: Sequence[WordGroup]) -> list[tuple[str | None, float]]:
    """``(word, value)`` per word of one review: ``values [T]`` summed over each word's positions."""
    values = np.asarray(values, dtype=np.float64)
    return [(word, float(values[list(pos)].sum())) for word, pos in groups]


Review = Sequence[tuple[str | None, float]]


# ---- the three measures -------------------------------------------------------------------------------
def sign_agreement(
    reviews: Sequence[Review], lexicon: Mapping[str, float], strong: float = STRONG
) -> tuple[float, int, np.ndarray]:
    """``(A, occurrences, per review)``: the share of the occurrences of strongly rated words
    (``|r(w)| >= strong``) whose value has the rating's sign, pooled over all reviews; how many
    occurrences that was; and the same share per review ``[n]`` (NaN for a review without one).
    A value of 0 has no sign: a disagreement. ``A`` is NaN when no strongly rated word occurs."""
    hits = total = 0
    per = np.full(len(reviews), np.nan)
    for i, review in enumerate(reviews):
        h = t = 0
        for word, v in review:
            r = lexicon.get(word) if word is not None else None
            if r is None or abs(r) < strong:
                continue
            t += 1
            h += int(np.sign(v) == np.sign(r))
        if t:
            per[i] = h / t
        hits, total = hits + h, total + t
    return (hits / total if total else float("nan")), total, per


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation: Pearson's correlation of the average ranks (ties share the mean
    of their ranks); NaN for fewer than 3 pairs or a constant side."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(x) != len(y):
        raise ValueError(f"spearman: {len(x)} and {len(y)} values")
    if len(x) < 3:
        return float("nan")
    ra, rb = _ranks(x), _ranks(y)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / den) if den > 0 else float("nan")


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (1-based) of ``x``."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    sx = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sx[j + 1] == sx[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def mean_by_word(reviews: Sequence[Review]) -> dict[str, tuple[float, int]]:
    """``{word: (mean value, occurrences)}`` over the corpus (unknown words left out)."""
    sums: dict[str, list[float]] = {}
    for review in reviews:
        for word, v in review:
            if word is not None:
                sums.setdefault(word, []).append(v)
    return {w: (math.fsum(vs) / len(vs), len(vs)) for w, vs in sums.items()}


def rank_correlation(
    reviews: Sequence[Review], lexicon: Mapping[str, float], min_count: int = MIN_COUNT
) -> tuple[float, int]:
    """``(rho, words)``: :func:`spearman` between each rated word's mean value over the corpus and
    its rating, over the rated words seen at least ``min_count`` times, and how many words that was."""
    pairs = [(m, lexicon[w]) for w, (m, c) in sorted(mean_by_word(reviews).items()) if c >= min_count and w in lexicon]
    if not pairs:
        return float("nan"), 0
    return spearman([p[0] for p in pairs], [p[1] for p in pairs]), len(pairs)


def rated_top_k(
    reviews: Sequence[Review], lexicon: Mapping[str, float], k: int = TOP_K, strong: float = STRONG
) -> tuple[float, np.ndarray]:
    """``(P, per review)``: the share of each review's ``min(k, words)`` largest-``|value|`` words
    (ties in text order) that are strongly rated, per review ``[n]`` (NaN for a review without
    words) and its mean over the reviews that have words."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    per = np.full(len(reviews), np.nan)
    for i, review in enumerate(reviews):
        if not review:
            continue
        mags = np.abs(np.array([v for _, v in review], dtype=np.float64))
        top = np.argsort(-mags, kind="stable")[:k]
        per[i] = float(np.mean([_strong(review[j][0], lexicon, strong) for j in top]))
    finite = per[np.isfinite(per)]
    return (float(finite.mean()) if len(finite) else float("nan")), per


def chance_top_k(reviews: Sequence[Review], lexicon: Mapping[str, float], strong: float = STRONG) -> float:
    """What :func:`rated_top_k` scores with words picked at random: the mean over reviews of the
    share of their words that are strongly rated (exact for ``k = 1``, the expectation for any ``k``)."""
    shares = [np.mean([_strong(w, lexicon, strong) for w, _ in r]) for r in reviews if r]
    return float(np.mean(shares)) if shares else float("nan")


def _strong(word: str | None, lexicon: Mapping[str, float], strong: float) -> bool:
    r = lexicon.get(word) if word is not None else None
    return r is not None and abs(r) >= strong


# ---- all three, as the faithfulness table uses them ---------------------------------------------------
@dataclass(frozen=True)
class Plausibility:
    """What to score explanations against, and how.

    ``lexicon``: ``{word: rating}`` on VADER's scale (-4 .. +4), matched case-insensitively
    (:func:`normalise_lexicon` is applied); :meth:`vader` reads the installed VADER lexicon, and a
    small hand-made dict plants known answers in a test. ``direction``: the output whose attributions
    are compared (:func:`sentiment_direction`; default output column 0, a sigmoid model's positive
    class). ``strong``, ``min_count``, ``k``: ``tau``, ``m`` and ``k`` of the module's definitions.
    ``source``: where the ratings come from, in words (printed under the table)."""

    lexicon: Mapping[str, float]
    direction: Direction = field(default_factory=Direction)
    strong: float = STRONG
    min_count: int = MIN_COUNT
    k: int = TOP_K
    source: str = "ratings given by the caller"

    def __post_init__(self) -> None:
        object.__setattr__(self, "lexicon", normalise_lexicon(self.lexicon))
        if not self.lexicon:
            raise ValueError("the lexicon rates no word")
        if not (math.isfinite(self.strong) and self.strong > 0):
            raise ValueError(f"strong must be a positive number, got {self.strong!r}")
        for name in ("min_count", "k"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")

    @classmethod
    def vader(cls, direction: Direction | None = None, **options: Any) -> Plausibility:
        """Against the installed VADER lexicon (:func:`vader_lexicon`)."""
        return cls(vader_lexicon(), direction or Direction(), source=vader_source(), **options)

    def score(self, reviews: Sequence[Review]) -> dict[str, Any]:
        """The three measures on ``reviews`` (each a list of ``(word, value)``), with their counts
        and per-review values (``per_review``: sign agreement and rated top-k, NaN where undefined)."""
        agree, n_rated, agree_per = sign_agreement(reviews, self.lexicon, self.strong)
        rho, n_words = rank_correlation(reviews, self.lexicon, self.min_count)
        topk, topk_per = rated_top_k(reviews, self.lexicon, self.k, self.strong)
        return {
            "sign_agreement": agree,
            "n_rated": n_rated,
            "spearman": rho,
            "n_rank_words": n_words,
            "rated_topk": topk,
            "per_review": {"sign_agreement": agree_per.tolist(), "rated_topk": topk_per.tolist()},
        }

    def describe(self, reviews: Sequence[Review]) -> dict[str, Any]:
        """What the table's notes say about the setting (the same for every method)."""
        return {
            "source": self.source,
            "direction": self.direction.label,
            "strong": self.strong,
            "min_count": self.min_count,
            "k": self.k,
            "lexicon_words": len(self.lexicon),
            "chance_topk": chance_top_k(reviews, self.lexicon, self.strong),
        }


__all__ = [
    "MIN_COUNT",
    "STRONG",
    "TOP_K",
    "VADER_CITATION",
    "Direction",
    "LexiconMissingError",
    "NotApplicableError",
    "Plausibility",
    "WordGroup",
    "chance_top_k",
    "class_sign",
    "count_outputs",
    "direction_of",
    "mean_by_word",
    "normalise_lexicon",
    "rank_correlation",
    "rated_top_k",
    "sentiment_direction",
    "sign_agreement",
    "spearman",
    "token_word_groups",
    "vader_lexicon",
    "vader_source",
    "word_groups",
    "word_values",
]
