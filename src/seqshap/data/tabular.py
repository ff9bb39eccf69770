"""Users' own labeled text: CSV or JSONL with a text column and a binary label column."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from .imdb import Split

POSITIVE = {"1", "pos", "positive", "true", "yes"}
NEGATIVE = {"0", "neg", "negative", "false", "no"}


class DataFileError(ValueError):
    """A user data file is malformed; the message names the file and row."""


def _label(value, path: Path, row: int, column: str) -> int:
    key = str(value).strip().lower()
    if isinstance(value, bool):
        return int(value)
    if key in POSITIVE or key == "1.0":
        return 1
    if key in NEGATIVE or key == "0.0":
        return 0
    raise DataFileError(
        f"{path}, row {row}: label {value!r} in column {column!r} is not binary "
        f"(use 0/1, neg/pos, negative/positive or false/true)"
    )


def read_labeled(path: str | Path, text_column: str = "text", label_column: str = "label") -> Split:
    """Read ``path`` (``.csv`` or ``.jsonl``/``.json`` lines). Rows are numbered from 1
    as a person counts data rows (the CSV header is not a row)."""
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
    texts, labels = [], []
    for row, rec in enumerate(records, 1):
        for col in (text_column, label_column):
            if col not in rec or rec[col] is None:
                raise DataFileError(f"{path}, row {row}: missing column {col!r}")
        text = rec[text_column]
        if not isinstance(text, str) or not text.strip():
            raise DataFileError(f"{path}, row {row}: empty text in column {text_column!r}")
        texts.append(text)
        labels.append(_label(rec[label_column], path, row, label_column))
    if len(set(labels)) < 2:
        raise DataFileError(f"{path}: every row has label {labels[0]}; training needs both classes")
    n = len(texts)
    return Split(
        texts,
        np.array(labels, dtype=np.int64),
        np.full(n, -1, dtype=np.int64),
        [f"{path.name}:{i}" for i in range(1, n + 1)],
    )
