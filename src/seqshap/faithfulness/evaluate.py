"""Run every method over the same reviews and score it (deletion, ERASER, agreement, planted, cost and,
with a :class:`~seqshap.faithfulness.plausibility.Plausibility`, agreement with human word ratings)."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from .._validation import NON_NEGATIVE
from ..attribution import Attribution, ExactShapley, TooManyPlayersError, make_method
from ..attribution.base import as_inputs, layout_of
from ..data.layout import NATIVE, TokenLayout
from .metrics import BINS, agreement, in_top, plant_word, removal_scores
from .plausibility import Plausibility, WordGroup, direction_of, token_word_groups, word_groups, word_values

POSITIVE_WORDS = ("excellent", "superb", "wonderful", "perfect", "brilliant", "great")
NEGATIVE_WORDS = ("worst", "awful", "waste", "terrible", "boring", "bad")


@dataclass
class MethodScores:
    """One method's row. Per-bin lists follow ``bins``; NaN where a part was not run."""

    method: str
    n: int
    bins: tuple[float, ...]
    deletion: list[float]
    comprehensiveness: list[float]
    sufficiency: list[float]
    aopc: float  # mean deletion over bins (higher is better)
    comp: float  # mean comprehensiveness over bins (higher is better)
    suff: float  # mean sufficiency over bins (lower is better)
    pearson: float = float("nan")
    kendall: float = float("nan")
    top3: float = float("nan")
    n_short: int = 0
    planted_top5: float = float("nan")
    n_planted: int = 0
    seconds_per_review: float = float("nan")
    completeness_error: float = float("nan")  # median |sum - (f(x) - base)| (additive methods)
    note: str = ""
    # plausibility (seqshap.faithfulness.plausibility): agreement with human word ratings
    sign_agreement: float = float("nan")  # share of strongly rated occurrences with the rating's sign
    n_rated: int = 0  # how many occurrences of strongly rated words that was
    spearman: float = float("nan")  # rank correlation of words' mean values with their ratings
    n_rank_words: int = 0  # over how many rated words (seen often enough)
    rated_topk: float = float("nan")  # share of each explanation's top-k words that are strongly rated


@dataclass
class FaithfulnessResult:
    model: str
    n: int
    bins: tuple[float, ...]
    rows: list[MethodScores]
    meta: dict = field(default_factory=dict)
    # method -> metric -> one value per review (short text / planted host): for paired comparisons
    per_review: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def row(self, method: str) -> MethodScores:
        for r in self.rows:
            if r.method == method:
                return r
        raise KeyError(f"no results for method {method!r}")

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "n": self.n,
            "bins": list(self.bins),
            "rows": [asdict(r) for r in self.rows],
            "meta": self.meta,
            "per_review": self.per_review,
        }


def _nanmean(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")


class _Progress:
    """A tqdm bar on stderr counting reviews explained (all methods, all parts), or nothing."""

    def __init__(self, total: int, enabled: bool):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="review", file=sys.stderr, desc="faithfulness")

    def step(self, n: int, desc: str) -> None:
        if self.bar is not None:
            self.bar.set_description(desc, refresh=False)
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _chunks(n: int, size: int):
    for i in range(0, n, size):
        yield slice(i, min(n, i + size))


def _attribute_all(method: Attribution, ids: torch.Tensor, chunk: int, output_index: int = 0) -> np.ndarray:
    return np.concatenate([method.attribute(ids[s], output_index) for s in _chunks(len(ids), chunk)])


def _add_note(row: MethodScores, note: str) -> None:
    row.note = f"{row.note}; {note}" if row.note else note


def evaluate(
    methods: dict[str, Attribution],
    ids,
    *,
    short_ids=None,
    reference: ExactShapley | None = None,
    planted_hosts=None,
    planted_words: tuple[int, ...] = (),
    bins: tuple[float, ...] = BINS,
    top_k: int = 5,
    seed: int = 0,
    chunk: int = 25,
    progress: bool = False,
    model_name: str = "model",
    layout: TokenLayout = NATIVE,
    plausibility: Plausibility | None = None,
    words: Sequence[Sequence[WordGroup]] | None = None,
) -> FaithfulnessResult:
    """Score every method.

    ids ``[n, T]``: the reviews for deletion/comprehensiveness/sufficiency and cost.
    short_ids ``[m, T]`` + reference: agreement with ``reference`` (exact Shapley) on short texts.
    planted_hosts ``[h, T]`` + planted_words: host ``i`` gets ``planted_words[i % len]`` inserted
    at a seeded random place; a hit is the planted word among the top ``top_k`` |values|.
    ``layout``: how the rows hold a text (:func:`layout_of` a model; native by default).
    ``plausibility``: also score each method's values on ``ids`` against human word ratings
    (sign agreement, rank correlation, rated top-k: :mod:`seqshap.faithfulness.plausibility`), for
    its ``direction`` (output column 0 as it is reuses the values of the removal metrics; any other
    output is explained once more). ``words``: each row's words as ``(word, positions)``
    (:func:`~seqshap.faithfulness.plausibility.word_groups` of the texts); by default every visible
    position is a word, its token from the methods' seqshap model.
    """
    ids, short, hosts = _check_inputs(methods, ids, short_ids, reference, planted_hosts, planted_words)
    first = next(iter(methods.values()))
    predict = first.predict
    meta: dict = {"bins": list(bins), "top_k": top_k, "seed": seed}
    n_short, n_hosts = (len(short) if short is not None else 0), (len(hosts) if hosts is not None else 0)
    groups = _plausibility_words(first, ids, words, layout) if plausibility is not None else None
    again = len(ids) if plausibility is not None and not plausibility.direction.first_column else 0
    bar = _Progress(len(methods) * (len(ids) + n_short + n_hosts + again) + n_short, progress)
    agree = None
    if short is not None and reference is not None:  # _check_inputs makes them come together
        agree = (reference, short, _reference_values(reference, short, chunk, meta, bar))
    planted = _plant(hosts, planted_words, seed, predict, meta, layout) if hosts is not None else None
    rows: list[MethodScores] = []
    per_review: dict[str, dict[str, list[float]]] = {}
    for name, method in methods.items():
        mine = per_review[name] = {}
        row, values = _removal_row(name, method, ids, predict, bins, chunk, mine, bar, layout)
        if plausibility is not None and groups is not None:
            _score_plausibility(row, method, ids, values, plausibility, groups, chunk, mine, bar)
        if agree is not None:
            _score_agreement(row, method, *agree, chunk, mine, bar, layout)
        if planted is not None:
            planted_rows, planted_at = planted
            _score_planted(row, method, planted_rows, planted_at, top_k, chunk, mine, bar, layout)
        rows.append(row)
    bar.close()
    if plausibility is not None and groups is not None:
        meta["plausibility"] = plausibility.describe([[(w, 0.0) for w, _ in g] for g in groups])
    return FaithfulnessResult(
        model=model_name, n=len(ids), bins=tuple(bins), rows=rows, meta=meta, per_review=per_review
    )


def _check_inputs(methods, ids, short_ids, reference, planted_hosts, planted_words):
    """(ids, short texts or None, planted hosts or None), each checked ``[n, T]``."""
    if not methods:
        raise ValueError("no methods to evaluate")
    ids = as_inputs(ids)
    short = as_inputs(short_ids, "short_ids") if short_ids is not None else None
    if short is not None and reference is None:
        raise ValueError("agreement on short texts needs a reference method (exact Shapley)")
    if short is not None and not reference.supports(short):
        raise TooManyPlayersError(
            f"short texts must have at most {reference.max_players} words for exact "
            f"Shapley; the longest has {int(reference.n_players(short).max())}"
        )
    hosts = as_inputs(planted_hosts, "planted_hosts") if planted_hosts is not None else None
    if hosts is not None and not planted_words:
        raise ValueError("the planted-word check needs at least one word id")
    return ids, short, hosts


def _reference_values(
    reference: ExactShapley, short: torch.Tensor, chunk: int, meta: dict, bar: _Progress
) -> np.ndarray:
    """The reference's (exact Shapley) values ``[m, T]`` on the short texts, timed."""
    t0 = time.perf_counter()
    values = _attribute_all(reference, short, chunk)
    meta["reference"] = reference.name
    meta["n_short"] = len(short)
    meta["short_words_max"] = int(reference.n_players(short).max())
    meta["reference_seconds_per_text"] = (time.perf_counter() - t0) / len(short)
    bar.step(len(short), f"{reference.name} (short texts)")
    return values


def _plant(hosts: torch.Tensor, words: tuple[int, ...], seed: int, predict, meta: dict, layout: TokenLayout):
    """Host ``i`` with ``words[i % len]`` planted at a seeded place: (rows ``[h, T]``, positions ``[h]``)."""
    rng = np.random.default_rng(seed)
    made = [plant_word(hosts[i].numpy(), words[i % len(words)], rng, layout) for i in range(len(hosts))]
    rows = torch.from_numpy(np.stack([m[0] for m in made]))
    meta["n_planted"] = len(hosts)
    meta["planted_mean_abs_shift"] = float(np.abs(predict(rows) - predict(hosts)).mean())
    return rows, np.array([m[1] for m in made])


def _removal_row(
    name: str,
    method: Attribution,
    ids: torch.Tensor,
    predict,
    bins,
    chunk: int,
    mine: dict,
    bar: _Progress,
    layout: TokenLayout,
) -> tuple[MethodScores, np.ndarray | None]:
    """Deletion, comprehensiveness, sufficiency, cost and completeness of one method on the reviews
    (every method scored with the same ``predict``), and its values ``[n, T]`` (``None`` where it
    was not run)."""
    n = len(ids)
    note = ""
    errs: list[np.ndarray] = []
    all_values: np.ndarray | None = None
    if isinstance(method, ExactShapley) and not method.supports(ids):
        dele = comp = suff = np.full((1, len(bins)), np.nan)
        spr, cerr = float("nan"), float("nan")
        note = f"not run on the reviews (more than {method.max_players} words)"
        bar.step(n, name)
    else:
        parts, seconds, kept = [], 0.0, []
        for s in _chunks(n, chunk):
            t0 = time.perf_counter()
            values, base = method.attribute_with_base(ids[s])
            seconds += time.perf_counter() - t0
            kept.append(values)
            parts.append(removal_scores(predict, ids[s].numpy(), values, bins, layout))
            if method.additive:
                errs.append(np.abs(values.sum(1) - (predict(ids[s]) - base)))
            bar.step(s.stop - s.start, name)
        dele, comp, suff = (
            np.concatenate([p[k] for p in parts]) for k in ("deletion", "comprehensiveness", "sufficiency")
        )
        spr = seconds / n
        cerr = float(np.median(np.concatenate(errs))) if errs else float("nan")
        all_values = np.concatenate(kept)
    mine.update({"aopc": dele.mean(1).tolist(), "comp": comp.mean(1).tolist(), "suff": suff.mean(1).tolist()})
    if errs:  # |sum - (f(x) - base)| per review, for more than the median
        mine["completeness"] = np.concatenate(errs).tolist()
    row = MethodScores(
        method=name,
        n=n,
        bins=tuple(bins),
        deletion=[_nanmean(c) for c in dele.T],
        comprehensiveness=[_nanmean(c) for c in comp.T],
        sufficiency=[_nanmean(c) for c in suff.T],
        aopc=_nanmean(dele),
        comp=_nanmean(comp),
        suff=_nanmean(suff),
        seconds_per_review=spr,
        completeness_error=cerr,
        note=note,
    )
    return row, all_values


def _plausibility_words(
    method: Attribution, ids: torch.Tensor, words: Sequence[Sequence[WordGroup]] | None, layout: TokenLayout
) -> list[list[WordGroup]]:
    """Each row's words: ``words`` as given (one list per row), else every visible position a word
    named by its token (the methods' seqshap model's vocabulary)."""
    if words is not None:
        if len(words) != len(ids):
            raise ValueError(f"words: got {len(words)} rows for {len(ids)} reviews")
        return [list(w) for w in words]
    if method.model is None:
        raise ValueError(
            "plausibility on a bare nn.Module needs words= (each row's words and their positions): "
            "there is no vocabulary to read them from"
        )
    return token_word_groups([method.model.tokens(row) for row in ids.tolist()], ids.numpy(), layout)


def _score_plausibility(
    row: MethodScores,
    method: Attribution,
    ids: torch.Tensor,
    values: np.ndarray | None,
    plausibility: Plausibility,
    groups: list[list[WordGroup]],
    chunk: int,
    mine: dict,
    bar: _Progress,
) -> None:
    """Sign agreement, rank correlation and rated top-k of the method's values toward
    ``plausibility.direction`` on the reviews, into ``row``."""
    direction = plausibility.direction
    if values is None or (isinstance(method, ExactShapley) and not method.supports(ids)):
        _add_note(row, "plausibility not run (reviews too long)")
        if not direction.first_column:
            bar.step(len(ids), f"{row.method} (plausibility)")
        return
    if not direction.first_column:
        values = direction.combine(lambda col: _attribute_all(method, ids, chunk, col))
        bar.step(len(ids), f"{row.method} (plausibility)")
    reviews = [word_values(v, g) for v, g in zip(values, groups, strict=True)]
    got = plausibility.score(reviews)
    row.sign_agreement, row.n_rated = got["sign_agreement"], got["n_rated"]
    row.spearman, row.n_rank_words = got["spearman"], got["n_rank_words"]
    row.rated_topk = got["rated_topk"]
    mine.update(got["per_review"])


def _score_agreement(
    row: MethodScores,
    method: Attribution,
    reference: ExactShapley,
    short: torch.Tensor,
    ref_values: np.ndarray,
    chunk: int,
    mine: dict,
    bar: _Progress,
    layout: TokenLayout,
) -> None:
    """Pearson, Kendall and top-3 overlap with the reference on the short texts, into ``row``."""
    values = ref_values if method is reference else _attribute_all(method, short, chunk)
    agree = agreement(values, ref_values, short.numpy(), k=3, layout=layout)
    row.pearson, row.kendall, row.top3 = (_nanmean(agree[k]) for k in ("pearson", "kendall", "top3"))
    mine.update({k: agree[k].tolist() for k in ("pearson", "kendall", "top3")})
    row.n_short = len(short)
    undefined = int(np.isnan(agree["pearson"]).sum())
    if undefined:
        _add_note(row, f"{undefined} short texts with constant values left out of the correlations")
    bar.step(len(short), f"{row.method} (short texts)")


def _score_planted(
    row: MethodScores,
    method: Attribution,
    rows: torch.Tensor,
    positions: np.ndarray,
    top_k: int,
    chunk: int,
    mine: dict,
    bar: _Progress,
    layout: TokenLayout,
) -> None:
    """Share of planted words among the method's top ``top_k`` |values|, into ``row``."""
    if isinstance(method, ExactShapley) and not method.supports(rows):
        _add_note(row, "planted check not run (reviews too long)")
    else:
        values = _attribute_all(method, rows, chunk)
        hits = [in_top(values[i], rows[i].numpy(), int(positions[i]), top_k, layout) for i in range(len(rows))]
        row.planted_top5, row.n_planted = float(np.mean(hits)), len(hits)
        mine["planted_top5"] = [float(h) for h in hits]
    bar.step(len(rows), f"{row.method} (planted)")


def short_texts(model, texts: list[str], words: int) -> torch.Tensor:
    """The first ``words`` words of each text, encoded by ``model`` (start token + words)."""
    from ..data.tokenize import words as split_words

    if words < 1:
        raise ValueError(f"short texts need at least 1 word, got {words}")
    return model.encode([" ".join(split_words(t)[:words]) for t in texts])


def neutral_hosts(model, ids: torch.Tensor, n: int, width: float = 0.15) -> torch.Tensor:
    """Up to ``n`` rows of ``ids`` the model is least sure about (``|p - 0.5| <= width``),
    closest to 0.5 first: texts without a clear sentiment to plant a word into."""
    p = model.predict_ids(ids)
    order = np.argsort(np.abs(p - 0.5), kind="stable")
    order = order[np.abs(p[order] - 0.5) <= width][:n]
    if len(order) == 0:
        raise ValueError(f"no review has a prediction within {width} of 0.5 to plant words into")
    return ids[torch.from_numpy(order)]


def planted_word_ids(model, positive=POSITIVE_WORDS, negative=NEGATIVE_WORDS) -> tuple[list[int], list[str]]:
    """Ids of the sentiment words the vocabulary knows, alternating positive and negative (a
    subword tokenizer's id of the word inside a text, where it is one token)."""
    find = getattr(model.vocab, "word_id", None)
    ids = {w: find(w) if callable(find) else model.vocab.word_to_id.get(w) for w in (*positive, *negative)}
    pos = [w for w in positive if ids[w] is not None]
    neg = [w for w in negative if ids[w] is not None]
    if not pos or not neg:
        raise ValueError(
            f"the vocabulary lacks the planted sentiment words (positive {list(positive)}, negative {list(negative)})"
        )
    order = [w for pair in zip(pos, neg, strict=False) for w in pair] or pos + neg
    return [int(ids[w]) for w in order], order


# Methods whose reference is the text with every word padded: for a text that fills the row (natively:
# no start token left) that is a row of padding only. Not deeplift: its default reference is the empty
# text as the tokenizer writes it (natively the start token alone).
EMPTY_REFERENCE = ("ig", "sampling-shapley", "exact-shapley", "shap-partition")


def empty_row_output(model) -> float:
    """The model's output for a row of padding only (finite for every seqshap model; the native
    Transformer pools over nothing to the zero vector). A layout whose tokenizer truncates at the end
    keeps its markers ([CLS]/[SEP]), so its "no words" row is never that row: 0.0 without a pass."""
    layout = layout_of(model)
    if layout.padding_side == "right":
        return 0.0
    row = torch.from_numpy(layout.place([], model.maxlen))[None]
    return float(np.ravel(model.predict_ids(row))[0])


def whole_texts(model, texts: list[str]) -> list[str]:
    """The texts the model reads whole with room to spare: some padding left in the row, so nothing is
    cut by ``maxlen`` (natively the start token survives, even with a planted word added)."""
    pad = layout_of(model).pad_id
    keep: list[bool] = []
    for i in range(0, len(texts), 2000):
        keep += (model.encode(texts[i : i + 2000]).numpy() == pad).any(1).tolist()
    return [t for t, k in zip(texts, keep, strict=True) if k]


def check_empty_row(model, names: list[str], whole: bool) -> None:
    """Raise ``ValueError`` before any work if a method in ``names`` would explain a text that fills
    the row against a row of padding only and the model gives no number for that row, unless only
    whole texts are scored (``whole``)."""
    needs = [n for n in names if n in EMPTY_REFERENCE]
    if not needs or whole:
        return
    p = empty_row_output(model)
    if not np.isfinite(p):
        raise ValueError(
            f"{model.name}: the model's output for a row of padding only is {p}, and {', '.join(needs)} explain "
            f"a review relative to it whenever the review fills all {model.maxlen} positions (no start token "
            "left); rerun with --whole-reviews (only test reviews the model reads whole) or without those methods"
        )


def run_on_imdb(
    model,
    test_texts: list[str],
    background_texts: list[str],
    method_names: list[str],
    *,
    n: int = 500,
    n_short: int = 100,
    short_words: int = 10,
    n_planted: int = 100,
    seed: int = 0,
    ig_steps: int = 32,
    n_permutations: int = 16,
    chunk: int = 25,
    progress: bool = False,
    extra_methods: Mapping[str, Attribution] | None = None,
    plausibility: bool | Plausibility = False,
    lexicon: Mapping[str, float] | None = None,
) -> FaithfulnessResult:
    """The full comparison for a :class:`SeqshapModel` on (a seeded sample of) test texts.

    Main set: ``n`` reviews sampled with ``seed``. Agreement: the first ``short_words`` words
    of the first ``n_short`` of them. Planted: the ``n_planted`` reviews the model is least
    sure about among up to 4000 further sampled reviews (disjoint from the main set).
    ``extra_methods``: more columns, built by the caller (other libraries' methods behind the
    :class:`Attribution` interface), scored after the named ones.
    ``plausibility``: also score the main set against human word ratings: ``True`` for the installed
    VADER lexicon (or ``lexicon``, a ``{word: rating}`` dict on VADER's -4..+4 scale, e.g. a planted
    one in a test), toward the model's positive sentiment
    (:func:`~seqshap.faithfulness.plausibility.direction_of`: raises
    :class:`~seqshap.faithfulness.plausibility.NotApplicableError` before any work when its classes
    are not sentiment); or a ready :class:`Plausibility`. Words are grouped as
    :meth:`Explanation.word_list <seqshap.Explanation.word_list>` groups them.
    """
    if n < 1 or n > len(test_texts):
        raise ValueError(f"n must be between 1 and {len(test_texts)}, got {n}")
    plaus = make_plausibility(model, plausibility, lexicon)
    NON_NEGATIVE.check("n_short", n_short)
    NON_NEGATIVE.check("n_planted", n_planted)
    order = np.random.default_rng(seed).permutation(len(test_texts))
    main = [test_texts[i] for i in order[:n]]
    ids = model.encode(main)
    methods = {
        name: make_method(
            name, model, background=background_texts, seed=seed, ig_steps=ig_steps, n_permutations=n_permutations
        )
        for name in method_names
    }
    for name, method in (extra_methods or {}).items():
        if name in methods:
            raise ValueError(f"method {name!r} is given twice (by name and as an extra method)")
        methods[name] = method
    given = methods.get("exact-shapley")
    reference = given if isinstance(given, ExactShapley) else ExactShapley(model)
    short = short_texts(model, main[:n_short], short_words) if n_short else None
    hosts = words = names = None
    if n_planted:
        pool = [test_texts[i] for i in order[n : n + 4000]] or main
        hosts = neutral_hosts(model, model.encode(pool), n_planted)
        words, names = planted_word_ids(model)
    result = evaluate(
        methods,
        ids,
        short_ids=short,
        reference=reference if short is not None else None,
        planted_hosts=hosts,
        planted_words=tuple(words or ()),
        seed=seed,
        chunk=chunk,
        progress=progress,
        model_name=model.name,
        layout=layout_of(model),
        plausibility=plaus,
        words=word_groups(model, main) if plaus is not None else None,
    )
    result.meta.update(
        {
            "short_words": short_words,
            "planted_words": names or [],
            "sample_seed": seed,
            "n_background": len(background_texts),
            "ig_steps": ig_steps,
            "n_permutations": n_permutations,
            "torch_threads": torch.get_num_threads(),
            "test_accuracy": model.metrics.get("test_accuracy"),
        }
    )
    return result


def make_plausibility(
    model, plausibility: bool | Plausibility, lexicon: Mapping[str, float] | None = None
) -> Plausibility | None:
    """``run_on_imdb``'s ``plausibility`` and ``lexicon`` as a :class:`Plausibility` toward ``model``'s
    positive sentiment (``None`` when off). Raises ``NotApplicableError`` for a model whose classes
    are not sentiment and ``LexiconMissingError`` when VADER is wanted but not installed."""
    if isinstance(plausibility, Plausibility):
        if lexicon is not None:
            raise ValueError("give the lexicon inside the Plausibility, or plausibility=True with a lexicon, not both")
        return plausibility
    if not plausibility:
        if lexicon is not None:
            raise ValueError("a lexicon was given but plausibility is off (pass plausibility=True)")
        return None
    direction = direction_of(model)
    if lexicon is not None:
        return Plausibility(lexicon, direction, source="the lexicon given")
    return Plausibility.vader(direction)
