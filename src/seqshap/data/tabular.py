"""Users' own labeled text: CSV or JSONL with a text column and a label column (any number of classes)."""

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


def read_labeled(
    path: str | Path, text_column: str = "text", label_column: str = "label", classes: Sequence[str] | None = None
) -> Split:
    """Read ``path`` (``.csv`` or ``.jsonl``/``.json`` lines). Rows are numbered from 1
    as a person counts data rows (the CSV header is not a row).

    Labels may be any strings or numbers. Without ``classes`` (training data) the classes are
    the file's sorted distinct labels (:func:`seqshap.data.labels.infer_classes`); with them (a
    model's classes, for test data) a label outside them is an error naming the row and label.
    ``Split.classes`` holds the class names and ``Split.labels`` each row's index among them.
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
    texts, keys = [], []
    for row, rec in enumerate(records, 1):
        for col in (text_column, label_column):
            if col not in rec or rec[col] is None:
                raise DataFileError(f"{path}, row {row}: missing column {col!r}")
        text = rec[text_column]
        if not isinstance(text, str) or not text.strip():
            raise DataFileError(f"{path}, row {row}: empty text in column {text_column!r}")
        key = label_key(rec[label_column])
        if key is None:
            raise DataFileError(
                f"{path}, row {row}: label {rec[label_column]!r} in column {label_column!r} is not a class name "
                "(give a word or a number)"
            )
        texts.append(text)
        keys.append(key)
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
