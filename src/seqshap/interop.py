"""seqshap's numbers as a ``shap.Explanation``, for the plots shap users already know.

``to_shap(explanations)`` hands seqshap's exact DeepSHAP values, word by word, to
``shap.plots.text``, ``shap.plots.waterfall`` and ``shap.plots.bar``; ``to_shap(table)``
hands a word-importance table to ``shap.plots.bar``. shap is an optional extra
(``pip install 'seqshap[shap]'``, pinned to shap 0.51.0) and is imported only here, when
a conversion runs.

One explanation becomes one row of words:

- ``values[i]``: the attribution of word ``i`` (a word read as several positions gets
  their sum, as in every seqshap picture), in text order;
- ``data[i]``: the word as written, followed by one space (none after the last), so
  ``shap.plots.text`` shows the words the model read, spaced, the way shap's own text
  maskers leave the whitespace on their tokens;
- ``feature_names[i]``: the word as the model's vocabulary has it (lower case, ``<oov>``
  for an unknown word), so ``to_shap(many).abs.mean(0)`` pools by vocabulary word, as
  seqshap's word importance does;
- ``base_values``: the mean output over the background; ``output_names``: the class the
  output belongs to (``"positive"``), else the output space.

Padding and the start token carry attribution too (the background reviews have words
where a short review has padding). By default their sum is one more feature,
``"padding/start"``, first in the row, as seqshap's force plot draws it, so that
``base_values + values.sum()`` is the model's output, which is what shap's plots print as
f(x).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from .attribution.explanation import Explanation
from .importance import ImportanceTable, WordImportance

HIDDEN_FEATURE = "padding/start"
STATISTICS = ("mean", "mean_abs")


def _shap() -> Any:
    try:
        import shap
    except ImportError as e:
        raise ImportError("seqshap.to_shap needs shap: pip install 'seqshap[shap]' (installs shap==0.51.0)") from e
    return shap


def _row(exp: Explanation, padding: bool) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(values [W], data [W], feature names [W]) of one explanation's words."""
    words = exp.word_list()
    values = [w.value for w in words]
    data = [w.text for w in words]
    names = [w.token for w in words]
    if padding and exp.hidden_value != 0.0:
        values.insert(0, exp.hidden_value)
        data.insert(0, HIDDEN_FEATURE)
        names.insert(0, HIDDEN_FEATURE)
    spaced = [d + " " for d in data[:-1]] + data[-1:]
    return np.asarray(values, dtype=np.float64), np.asarray(spaced, dtype=object), names


def _explanations(exps: list[Explanation], padding: bool) -> Any:
    if not exps:
        raise ValueError("to_shap: no explanations to convert")
    for i, e in enumerate(exps):
        if not isinstance(e, Explanation):
            raise TypeError(f"to_shap: item {i} is a {type(e).__name__}, not a seqshap Explanation")
        if not e.is_finite():
            raise ValueError(f"to_shap: explanation {i} has NaN or infinite values; nothing sensible to plot")
    first = exps[0]
    output = (first.output_space, first.output_name, first.output_index)
    for i, e in enumerate(exps):
        # one shap.Explanation has one output axis: rows explaining different outputs are not comparable
        if (e.output_space, e.output_name, e.output_index) != output:
            raise ValueError(
                f"to_shap: explanation {i} explains output {e.output_name or e.output_index} "
                f"({e.output_space}), explanation 0 explains {first.output_name or first.output_index} "
                f"({first.output_space}); convert them separately"
            )
    shap = _shap()
    n = len(exps)
    # Ragged rows (reviews have different numbers of words) are object arrays of arrays,
    # the layout shap's own text explainers produce.
    values, data, names = np.empty(n, dtype=object), np.empty(n, dtype=object), np.empty(n, dtype=object)
    for i, e in enumerate(exps):
        values[i], data[i], names[i] = _row(e, padding)
    return shap.Explanation(
        values,
        base_values=np.array([float(e.base_value) for e in exps]),
        data=data,
        feature_names=names,
        output_names=first.output_name or first.output_space,
    )


def _importance(table: ImportanceTable, by: str, k: int | None) -> Any:
    if by not in STATISTICS:
        raise ValueError(f"to_shap: by must be one of {', '.join(STATISTICS)}, got {by!r}")
    if k is not None and k < 1:
        raise ValueError(f"to_shap: k must be at least 1, got {k}")
    rows = sorted(table.rows, key=lambda r: (-abs(getattr(r, by)), r.word))[:k]
    if not rows:
        raise ValueError(
            f"to_shap: the importance table has no words (min_count={table.min_count} over "
            f"{table.n_explanations} explanations)"
        )
    values = np.array([getattr(r, by) for r in rows], dtype=np.float64)
    if not all(math.isfinite(v) for v in values):
        raise ValueError("to_shap: the importance table has NaN or infinite values")
    # No output name: shap 0.51.0 cannot copy a one-row Explanation that has one (Explanation.__copy__
    # fails in compute_output_dims), and .abs / slicing copy; the bar plot does not show it anyway.
    return _shap().Explanation(values, feature_names=[r.word for r in rows])


def to_shap(
    obj: Explanation | Iterable[Explanation] | ImportanceTable,
    *,
    padding: bool | None = None,
    by: str | None = None,
    k: int | None = None,
) -> Any:
    """A ``shap.Explanation`` with seqshap's exact values (needs ``seqshap[shap]``).

    - one :class:`Explanation` -> one row ``[words]`` (``values``, ``data`` = the words as
      written, ``feature_names`` = the vocabulary words, ``base_values``, ``output_names``):
      ``shap.plots.text``, ``shap.plots.waterfall`` and ``shap.plots.bar`` draw it. It is
      ``to_shap([exp])[0]``; shap 0.51.0 cannot copy such a row (``.abs``, slicing fail
      inside shap, as for shap's own ``sv[0, :, "POSITIVE"]``): transform the many form.
    - many -> ``[n, words]`` with ragged rows: ``shap.plots.text(sv)``,
      ``shap.plots.waterfall(sv[0])``, ``shap.plots.bar(sv.abs.mean(0))`` (pooled by word).
      All must explain the same output.
    - an :class:`ImportanceTable` -> ``[words]``: each word's ``by`` statistic (``"mean"``
      signed attribution, default, or ``"mean_abs"``), the ``k`` largest by absolute value
      (default all), for ``shap.plots.bar(sv, max_display=k)``.

    ``padding`` (explanations only, default True) keeps the padding/start positions'
    summed attribution as a first feature ``"padding/start"`` (when it is not 0), so that
    ``base_values + values.sum()`` is the model's output as shap's plots assume.
    """
    if isinstance(obj, WordImportance):
        raise TypeError("to_shap: got a WordImportance accumulator; convert its table: to_shap(acc.table(min_count))")
    if isinstance(obj, ImportanceTable):
        if padding is not None:
            raise TypeError("to_shap: padding applies to explanations, not to an importance table")
        return _importance(obj, by or "mean", k)
    if by is not None or k is not None:
        raise TypeError("to_shap: by and k apply to an importance table, not to explanations")
    keep_padding = True if padding is None else bool(padding)
    if isinstance(obj, Explanation):
        return _explanations([obj], keep_padding)[0]
    if isinstance(obj, (str, bytes, dict)) or not isinstance(obj, Iterable):
        raise TypeError(
            f"to_shap: expected an Explanation, a list of them or an ImportanceTable, got {type(obj).__name__}"
        )
    return _explanations(list(obj), keep_padding)
