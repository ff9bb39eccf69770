"""Class labels: which classes a labelled file has, and each row's class index.

The classes are the sorted distinct labels of the training data (numerically when every label
is a number, so ``2`` comes before ``10``). Two-class files written with the usual binary words
(0/1, neg/pos, negative/positive, false/true, no/yes, in any mix) keep the names
``negative``/``positive`` and the indices 0/1 they always had. Data scored against a model (a
test file) must use the model's classes: a label it does not know is an error naming the row.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

DEFAULT_CLASSES = ("negative", "positive")  # labels 0 and 1 of a two-class model
POSITIVE = frozenset({"1", "1.0", "pos", "positive", "true", "yes"})
NEGATIVE = frozenset({"0", "0.0", "neg", "negative", "false", "no"})
BINARY_HINT = "use 0/1, neg/pos, negative/positive or false/true"
MAX_CLASSES = 1000  # a label column with more distinct values is almost surely the wrong column


def label_key(value: object) -> str | None:
    """A label as a class name: strings stripped, JSON numbers written plainly (``3.0`` -> ``"3"``),
    booleans as ``"true"``/``"false"``. ``None`` for a value that cannot be a label (empty,
    null, NaN, a list or an object)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value.strip() or None
    return None


def binary_index(key: str) -> int | None:
    """0 or 1 for the usual binary words (any case), else ``None``."""
    k = key.lower()
    return 1 if k in POSITIVE else 0 if k in NEGATIVE else None


def _number(key: str) -> float | None:
    try:
        x = float(key)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def infer_classes(keys: Sequence[str], binary_words: bool = True) -> tuple[str, ...]:
    """The classes of labels ``keys``: ``DEFAULT_CLASSES`` for binary words (unless
    ``binary_words`` is false: a multi-label file's labels are names of their own), else the
    sorted distinct labels (by number when all are numbers)."""
    distinct = set(keys)
    if binary_words and all(binary_index(k) is not None for k in distinct):
        return DEFAULT_CLASSES
    numbers = {k: _number(k) for k in distinct}
    if all(v is not None for v in numbers.values()):
        return tuple(sorted(distinct, key=lambda k: (numbers[k], k)))
    return tuple(sorted(distinct))


def class_index(classes: Sequence[str], binary_words: bool = True) -> Callable[[str], int | None]:
    """``key -> index in classes`` (``None`` when unknown); binary words match the default classes
    (unless ``binary_words`` is false, as for a multi-label file)."""
    exact = {c: i for i, c in enumerate(classes)}
    binary = binary_words and tuple(classes) == DEFAULT_CLASSES

    def index(key: str) -> int | None:
        i = exact.get(key)
        if i is None and binary:
            i = binary_index(key)
        return i

    return index


def unknown_label_message(key: str, classes: Sequence[str], what: str = "classes") -> str:
    """Why label ``key`` is refused for ``classes`` (``what``: "classes", or "labels" for a multi-label model)."""
    if what == "classes" and tuple(classes) == DEFAULT_CLASSES:
        return f"is not binary ({BINARY_HINT})"
    shown = ", ".join(list(classes)[:20]) + (", ..." if len(classes) > 20 else "")
    return f"is not one of the model's {len(classes)} {what} ({shown})"
