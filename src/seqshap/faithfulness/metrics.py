"""Faithfulness metrics: does removing the words an attribution ranks highest change the model?

All metrics are about the *predicted class*: ``c = 1 if f(x) > 0.5 else 0`` and
``p_c(x) = f(x)`` or ``1 - f(x)``. Words are ranked by their signed attribution toward
``c`` (``+v`` for class 1, ``-v`` for class 0), ties by position; only visible words count.
For a bin ``k%`` the top ``ceil(k% * n_words)`` words (at least one) are used.

- **deletion** (Samek et al. AOPC): the top-k words are replaced by padding *in place*
  (positions do not move); score ``p_c(x) - p_c(x')``, higher is better.
- **comprehensiveness** (ERASER, DeYoung et al. 2020): the top-k words are *removed* from the
  text (the rest shifts and the sequence is re-padded in front, as a shorter review would
  be encoded); ``p_c(x) - p_c(x \\ r_k)``, higher is better.
- **sufficiency** (ERASER): only the top-k words are kept (with the start token), in order;
  ``p_c(x) - p_c(r_k)``, lower is better.

Each is reported per bin and as the mean over bins (the AOPC).

Rows follow the model's :class:`~seqshap.data.layout.TokenLayout` (its tokenizer's): the native one
(padding 0 in front, a start token 1) by default, or a Hugging Face tokenizer's (its pad id at the
end, ``[CLS]``/``[SEP]`` kept, never ranked).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..data.layout import NATIVE, TokenLayout

BINS: tuple[float, ...] = (1, 5, 10, 20, 50)
Predict = Callable[[np.ndarray], np.ndarray]  # ids [m, T] -> output column 0 [m]


def predicted_class(p: np.ndarray) -> np.ndarray:
    """Class 1 where ``p > 0.5`` else 0, ``[n]``."""
    return (np.asarray(p) > 0.5).astype(np.int64)


def class_prob(p: np.ndarray, cls: np.ndarray) -> np.ndarray:
    """Probability of class ``cls`` given positive-class probability ``p``."""
    p = np.asarray(p, dtype=np.float64)
    return np.where(np.asarray(cls) == 1, p, 1.0 - p)


def n_top(n_words: int, pct: float) -> int:
    """How many words bin ``pct`` covers: ``ceil(pct% of n_words)``, at least 1, at most all."""
    if n_words <= 0:
        return 0
    return int(min(n_words, max(1, math.ceil(pct * n_words / 100 - 1e-9))))


def rank_words(values: np.ndarray, ids: np.ndarray, cls: int, layout: TokenLayout = NATIVE) -> np.ndarray:
    """Visible positions ``[n_words]`` ordered from most to least supportive of class ``cls``."""
    pos = np.flatnonzero(layout.visible(ids))
    score = values[pos] if cls == 1 else -values[pos]
    return pos[np.argsort(-score, kind="stable")]


def pad_in_place(ids: np.ndarray, positions: np.ndarray, layout: TokenLayout = NATIVE) -> np.ndarray:
    """``ids [T]`` with the words at ``positions`` replaced by padding (:meth:`TokenLayout.blank_words`)."""
    which = np.zeros(len(ids), dtype=bool)
    which[positions] = True
    return layout.blank_words(ids, which)


def remove_words(ids: np.ndarray, positions: np.ndarray, layout: TokenLayout = NATIVE) -> np.ndarray:
    """``ids [T]`` without ``positions``; the rest closes up and is re-padded (in front, natively)."""
    keep = np.ones(len(ids), dtype=bool)
    keep[positions] = False
    return layout.place(ids[keep & (ids != layout.pad_id)], len(ids), ids.dtype)


def keep_words(ids: np.ndarray, positions: np.ndarray, layout: TokenLayout = NATIVE) -> np.ndarray:
    """Only ``positions`` (and the markers: start token, ``[CLS]``/``[SEP]``) of ``ids [T]``, in order, re-padded."""
    keep = np.isin(ids, list(layout.special_ids))
    keep[positions] = True
    return layout.place(ids[keep], len(ids), ids.dtype)


def removal_scores(
    predict: Predict, ids: np.ndarray, values: np.ndarray, bins: tuple[float, ...] = BINS, layout: TokenLayout = NATIVE
) -> dict[str, np.ndarray]:
    """Deletion, comprehensiveness and sufficiency per review and bin, each ``[n, len(bins)]``.

    ``ids [n, T]``, ``values [n, T]`` (attributions of output column 0). One batched call of
    ``predict`` on the ``3 * n * len(bins)`` perturbed inputs (plus the originals).
    """
    ids = np.asarray(ids)
    values = np.asarray(values, dtype=np.float64)
    if ids.shape != values.shape:
        raise ValueError(f"ids {ids.shape} and values {values.shape} must have the same shape")
    n, B = len(ids), len(bins)
    fx = predict(ids)
    cls = predicted_class(fx)
    pc = class_prob(fx, cls)
    perturbed = np.empty((3, n, B, ids.shape[1]), dtype=ids.dtype)
    for i in range(n):
        order = rank_words(values[i], ids[i], int(cls[i]), layout)
        for b, pct in enumerate(bins):
            top = order[: n_top(len(order), pct)]
            perturbed[0, i, b] = pad_in_place(ids[i], top, layout)
            perturbed[1, i, b] = remove_words(ids[i], top, layout)
            perturbed[2, i, b] = keep_words(ids[i], top, layout)
    p = predict(perturbed.reshape(-1, ids.shape[1])).reshape(3, n, B)
    drop = pc[None, :, None] - class_prob(p, cls[None, :, None])
    return {"deletion": drop[0], "comprehensiveness": drop[1], "sufficiency": drop[2]}


# ---- agreement with a reference attribution (exact Shapley) --------------------------------------
def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; NaN when either side is constant (no ranking information)."""
    a, b = np.asarray(a, float) - np.mean(a), np.asarray(b, float) - np.mean(b)
    den = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else float("nan")


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-b (ties in either ranking handled); NaN if either side is constant."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    i, j = np.triu_indices(len(a), 1)
    sa, sb = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
    n0 = len(i)
    den = math.sqrt(float((n0 - (sa == 0).sum()) * (n0 - (sb == 0).sum())))
    return float((sa * sb).sum() / den) if den > 0 else float("nan")


def top_overlap(a: np.ndarray, b: np.ndarray, k: int = 3) -> float:
    """Share of the ``k`` largest-|value| positions of ``a`` that are also among ``b``'s."""
    k = min(k, len(a))
    if k == 0:
        return float("nan")
    ta = set(np.argsort(-np.abs(a), kind="stable")[:k].tolist())
    tb = set(np.argsort(-np.abs(b), kind="stable")[:k].tolist())
    return len(ta & tb) / k


def agreement(
    values: np.ndarray, reference: np.ndarray, ids: np.ndarray, k: int = 3, layout: TokenLayout = NATIVE
) -> dict[str, np.ndarray]:
    """Per-review Pearson, Kendall tau-b and top-``k`` overlap over the visible words, ``[n]`` each."""
    vis = layout.visible(ids)
    out: dict[str, list[float]] = {"pearson": [], "kendall": [], f"top{k}": []}
    for v, r, m in zip(np.asarray(values), np.asarray(reference), vis, strict=True):
        out["pearson"].append(pearson(v[m], r[m]))
        out["kendall"].append(kendall_tau(v[m], r[m]))
        out[f"top{k}"].append(top_overlap(v[m], r[m], k))
    return {key: np.array(val) for key, val in out.items()}


# ---- planted words ---------------------------------------------------------------------------------
def plant_word(
    ids: np.ndarray, word_id: int, rng: np.random.Generator, layout: TokenLayout = NATIVE
) -> tuple[np.ndarray, int]:
    """Insert ``word_id`` at a random place among the words of ``ids [T]``.

    Natively the sequence is re-padded in front and, if it was full, the oldest id is dropped
    (as the model's front truncation would). With padding at the end (Hugging Face) the word goes
    between the leading and trailing markers (``[CLS]`` ... ``[SEP]``) and a full row loses its
    last word (as the tokenizer's end truncation would). Returns the new row and the planted
    word's position.
    """
    if layout.padding_side == "right":
        return _plant_right(ids, word_id, rng, layout)
    seq = ids[ids != layout.pad_id]
    full = len(seq) >= len(ids)
    # never before the start token; in a full row never first (that id is the one dropped)
    lo = 1 if full or (len(seq) and seq[0] in layout.special_ids) else 0
    at = int(rng.integers(lo, len(seq) + 1))
    seq = np.concatenate([seq[:at], [word_id], seq[at:]]).astype(ids.dtype)
    if len(seq) > len(ids):
        seq, at = seq[len(seq) - len(ids) :], at - (len(seq) - len(ids))
    return layout.place(seq, len(ids), ids.dtype), len(ids) - len(seq) + at


def _plant_right(
    ids: np.ndarray, word_id: int, rng: np.random.Generator, layout: TokenLayout
) -> tuple[np.ndarray, int]:
    seq = ids[ids != layout.pad_id]
    marker = np.isin(seq, list(layout.special_ids))
    lead = int(np.argmin(marker)) if not marker.all() else min(1, len(seq))  # [CLS] (none is a word)
    trail = int(np.argmin(marker[::-1])) if not marker.all() else len(seq) - lead  # [SEP]
    full = len(seq) >= len(ids)
    # in a full row never after the last word: that one is dropped
    hi = len(seq) - trail - (1 if full and not marker.all() else 0)
    at = int(rng.integers(lead, max(lead, hi) + 1))
    seq = np.concatenate([seq[:at], [word_id], seq[at:]]).astype(ids.dtype)
    if len(seq) > len(ids):
        seq = np.delete(seq, len(seq) - trail - 1)
    return layout.place(seq, len(ids), ids.dtype), at


def in_top(values: np.ndarray, ids: np.ndarray, position: int, k: int = 5, layout: TokenLayout = NATIVE) -> bool:
    """Whether ``position`` is among the ``k`` visible words with the largest |value|."""
    pos = np.flatnonzero(layout.visible(ids))
    top = pos[np.argsort(-np.abs(values[pos]), kind="stable")[:k]]
    return bool(position in set(top.tolist()))
