"""Users' own labeled text: CSV or JSONL with a text column and a label column (any number of classes,
or, multi-label, any number of labels per row separated by ``|``)."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import safe_files
from ..errors import DataFileError
from .imdb import Split
from .labels import MAX_CLASSES, class_index, infer_classes, label_key, unknown_label_message

LABEL_SEPARATOR = "|"  # between the labels of one row of a multi-label file


def read_labeled(
    path: str | Path,
    text_column: str = "text",
    label_column: str = "label",
    classes: Sequence[str] | None = None,
    multi_label: bool = False,
) -> Split:
    """Read ``path`` (``.csv`` or ``.jsonl``/``.json`` lines). Rows are numbered from 1
    as a person counts data rows (the CSV header is not a row).

    Labels may be any strings or numbers. Without ``classes`` (training data) the classes are
    the file's sorted distinct labels (:func:`seqshap.data.labels.infer_classes`); with them (a
    model's classes, for test data) a label outside them is an error naming the row and label.
    ``Split.classes`` holds the class names and ``Split.labels`` each row's index among them.

    ``multi_label``: each row has any number of labels, ``|``-separated in one cell (``acting|plot``;
    each part stripped, empty parts ignored; a JSONL row may give a list instead). An empty cell
    is refused naming the row (usually a mistake; a row with no label on cannot be written). The
    classes are the sorted distinct labels (by number when all are numbers; binary words keep
    their names), at least two for training, and ``Split.labels`` is multi-hot, ``[n, labels]``
    int64 0/1.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data file not found: {path}")
    try:
        raw = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        bad_line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise DataFileError(
            f"{path}: not UTF-8 text (bad byte at line {bad_line}); re-save the file as UTF-8"
        ) from None
    records: list[dict] = []
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        for n, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            if safe_files.json_depth(line) > safe_files.MAX_JSON_DEPTH:  # the parser recurses per level
                raise DataFileError(f"{path}, line {n}: JSON nested more than {safe_files.MAX_JSON_DEPTH} levels deep")
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataFileError(f"{path}, line {n}: not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise DataFileError(f"{path}, line {n}: expected a JSON object per line")
            records.append(obj)
    else:
        reader = csv.DictReader(raw.splitlines())
        for col in (text_column, label_column):
            if reader.fieldnames is None or col not in reader.fieldnames:
                raise DataFileError(f"{path}: no column {col!r} (columns: {reader.fieldnames})")
        records = list(reader)
    if not records:
        raise DataFileError(f"{path}: no data rows")
    texts: list[str] = []
    keys: list[str] = []
    multi_keys: list[list[str]] = []
    for row, rec in enumerate(records, 1):
        for col in (text_column, label_column):
            if col not in rec or rec[col] is None:
                raise DataFileError(f"{path}, row {row}: missing column {col!r}")
        text = rec[text_column]
        if not isinstance(text, str) or not text.strip():
            raise DataFileError(f"{path}, row {row}: empty text in column {text_column!r}")
        texts.append(text)
        if multi_label:
            multi_keys.append(_label_set(path, row, rec[label_column], label_column))
            continue
        key = label_key(rec[label_column])
        if key is None:
            raise DataFileError(
                f"{path}, row {row}: label {rec[label_column]!r} in column {label_column!r} is not a class name "
                "(give a word or a number)"
            )
        keys.append(key)
    if multi_label:
        return _multi_hot(path, texts, multi_keys, label_column, classes)
    training = classes is None
    if classes is None:
        classes = infer_classes(keys)
        if len(classes) > MAX_CLASSES:
            raise DataFileError(
                f"{path}: column {label_column!r} has {len(classes):,} different labels (at most {MAX_CLASSES:,} "
                "classes); is it the label column?"
            )
    index = class_index(classes)
    labels = []
    for row, key in enumerate(keys, 1):
        i = index(key)
        if i is None:
            raise DataFileError(
                f"{path}, row {row}: label {key!r} in column {label_column!r} {unknown_label_message(key, classes)}"
            )
        labels.append(i)
    if training and len(set(labels)) < 2:  # "1" and "yes" are one class
        raise DataFileError(
            f"{path}: every row has label {keys[0]}; training needs both classes (at least two different labels)"
        )
    n = len(texts)
    return Split(
        texts,
        np.array(labels, dtype=np.int64),
        np.full(n, -1, dtype=np.int64),
        [f"{path.name}:{i}" for i in range(1, n + 1)],
        classes=tuple(classes),
    )


def _label_set(path: Path, row: int, value: object, label_column: str) -> list[str]:
    """One multi-label cell as its labels, in order, each once: ``"a | b"`` or a JSON list ``["a", "b"]``."""
    parts = value if isinstance(value, list) else value.split(LABEL_SEPARATOR) if isinstance(value, str) else [value]
    found: list[str] = []
    for part in parts:
        if isinstance(part, str) and not part.strip():
            continue  # "a||b", "a|": empty parts are ignored
        key = label_key(part)
        if key is None:
            raise DataFileError(
                f"{path}, row {row}: label {part!r} in column {label_column!r} is not a label name "
                "(give a word or a number)"
            )
        if key not in found:
            found.append(key)
    if not found:
        raise DataFileError(
            f"{path}, row {row}: no label in column {label_column!r} (the cell is {value!r}); a multi-label row "
            f"names at least one label, several separated by {LABEL_SEPARATOR!r} (rows with no label on are "
            "not read: an empty cell is usually a mistake)"
        )
    return found


def _multi_hot(
    path: Path, texts: list[str], keys: list[list[str]], label_column: str, classes: Sequence[str] | None
) -> Split:
    """The multi-label split: classes inferred from ``keys`` (training) or given (a model's labels)."""
    if classes is None:
        classes = infer_classes([k for row in keys for k in row], binary_words=False)
        if len(classes) > MAX_CLASSES:
            raise DataFileError(
                f"{path}: column {label_column!r} has {len(classes):,} different labels (at most {MAX_CLASSES:,}); "
                "is it the label column?"
            )
        if len(classes) < 2:
            raise DataFileError(
                f"{path}: every row has the one label {classes[0]!r}; multi-label training needs at least two "
                "different labels"
            )
    index = class_index(classes, binary_words=False)
    labels = np.zeros((len(texts), len(classes)), dtype=np.int64)
    for row, row_keys in enumerate(keys, 1):
        for key in row_keys:
            i = index(key)
            if i is None:
                raise DataFileError(
                    f"{path}, row {row}: label {key!r} in column {label_column!r} "
                    f"{unknown_label_message(key, classes, 'labels')}"
                )
            labels[row - 1, i] = 1
    n = len(texts)
    return Split(
        texts,
        labels,
        np.full(n, -1, dtype=np.int64),
        [f"{path.name}:{i}" for i in range(1, n + 1)],
        classes=tuple(classes),
    )
