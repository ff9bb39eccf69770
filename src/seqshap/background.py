"""The one place that picks the DeepSHAP background (the reference texts) for a run.

Where the background comes from, first match wins (:func:`choose_background`):

1. ``file``: texts the user gave (``--background-file FILE``): one per line, or CSV/JSONL/JSON
   with a text column (a model's ``background.json`` works too);
2. the model directory's own ``background.json`` (``seqshap train`` writes the first 100
   training texts there; the shipped model carries the first 100 IMDB training reviews), so an
   installed seqshap explains with no network and no archive;
3. the IMDB training reviews, from the archive ``imdb`` (``--imdb PATH``) or the one
   :func:`seqshap.data.load_imdb` finds (``$SEQSHAP_IMDB``, the repository's copy, the cache,
   else a download): for model directories that carry no background.

``imdb`` only says where the archive is; it never replaces a model's own background.

Each source gives its first ``n`` texts (all of them when it holds fewer), and
:attr:`Background.source` says which, so reports and the web page can show it.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from . import atomic, safe_files
from .data.imdb import DownloadError, Split
from .data.tabular import DataFileError
from .store import BACKGROUND, MAX_BACKGROUND_CHARS, MAX_BACKGROUND_TEXTS, MAX_TEXT_CHARS, SeqshapModel, read_background
from .store import MAX_BACKGROUND_BYTES as MAX_WHOLE_JSON_BYTES

DEFAULT_SIZE = 100  # the seed notebook explains against the first 100 training reviews
MAX_BACKGROUND_BYTES = 64 * 2**20  # a --background-file; read a line at a time, and only its first N texts
MAX_LINE_BYTES = 4 * MAX_TEXT_CHARS + 4096  # a text of MAX_TEXT_CHARS characters (UTF-8), and a CSV's other fields
JSON_LINES = (".jsonl", ".ndjson")


@dataclass(frozen=True)
class Background:
    """Background texts and a short phrase saying where they came from (shown in reports)."""

    texts: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return len(self.texts)


def choose_background(
    n: int = DEFAULT_SIZE,
    *,
    file: str | Path | None = None,
    model: SeqshapModel | str | Path | None = None,
    imdb: str | Path | None = None,
    text_column: str = "text",
) -> Background:
    """The background for a run: ``file``, else ``model``'s ``background.json`` (a model or its
    directory), else the IMDB training reviews (from the archive ``imdb``); the first ``n``
    texts of it. See the module docstring."""
    if n < 1:
        raise ValueError(f"the background needs at least 1 text, got {n}")
    if file is not None:
        return read_background_file(file, n, text_column)
    if (own := model_background(model, n)) is not None:
        return own
    try:
        return imdb_background(n, imdb)
    except DownloadError as e:
        directory = _directory(model)
        if directory is None:
            raise
        raise DownloadError(
            f"{directory} has no {BACKGROUND}, so the background is the first {n} IMDB training reviews; {e}. "
            "Or give the background texts yourself: --background-file FILE"
        ) from None


def default_background(
    n: int = DEFAULT_SIZE, imdb: str | Path | None = None, model: SeqshapModel | str | Path | None = None
) -> Background:
    """``model``'s own background (``background.json``), else the first ``n`` IMDB training
    reviews (from ``imdb``); :func:`choose_background` without a file."""
    return choose_background(n, model=model, imdb=imdb)


def imdb_background(n: int = DEFAULT_SIZE, imdb: str | Path | None = None) -> Background:
    """The first ``n`` IMDB training reviews (after Keras' shuffle), as the seed notebook uses."""
    if n < 1:
        raise ValueError(f"the background needs at least 1 text, got {n}")
    from .data import load_imdb

    texts = load_imdb(imdb)["train"].texts[:n]
    return Background(tuple(texts), f"the first {len(texts)} IMDB training reviews")


def model_background(model: SeqshapModel | str | Path | None, n: int = DEFAULT_SIZE) -> Background | None:
    """The first ``n`` texts of the model directory's ``background.json``; None without one."""
    directory = _directory(model)
    if directory is None:
        return None
    found = read_background(directory)
    if found is None:
        return None
    texts, source = found
    where = f"{directory.name}/{BACKGROUND}"
    if n < len(texts):
        return Background(tuple(texts[:n]), f"the first {n} of {source} ({where})")
    return Background(tuple(texts), f"{source} ({where})")


def _directory(model: SeqshapModel | str | Path | None) -> Path | None:
    directory = model.path if isinstance(model, SeqshapModel) else model
    return None if directory is None else Path(directory)


def resolve_background(
    given: Background | Sequence[str] | None,
    n: int = DEFAULT_SIZE,
    imdb: str | Path | None = None,
    model: SeqshapModel | str | Path | None = None,
) -> Background:
    """``given`` as a :class:`Background` (texts a caller chose), or :func:`default_background` when ``None``."""
    if given is None:
        return default_background(n, imdb, model)
    if isinstance(given, Background):
        return given
    if isinstance(given, str):  # one text would silently become a background of single characters
        raise TypeError("the background is a list of texts, not one string")
    texts = tuple(str(t) for t in given)
    if not texts:
        raise ValueError("the background needs at least 1 text, got none")
    return Background(texts, f"{len(texts)} given background text{'s' if len(texts) != 1 else ''}")


# ------------------------------------------------------------------ a model's background.json
def save_background(
    directory: str | Path,
    background: Background,
    ids: Sequence[str] | None = None,
    labels: Sequence[int | Sequence[int]] | None = None,
) -> Path:
    """Write ``directory/background.json`` atomically: ``{"source", "texts"}`` plus, where
    known, each text's ``ids`` and ``labels`` in the data it came from (provenance only)."""
    record: dict[str, Any] = {"source": background.source, "n": len(background), "texts": list(background.texts)}
    if ids is not None:
        record["ids"] = [str(i) for i in ids][: len(background)]
    if labels is not None:  # a class index, or a multi-label row's 0/1 per label
        record["labels"] = [_label(v) for v in labels][: len(background)]
    return atomic.write_json(Path(directory) / BACKGROUND, record, indent=1)


def _label(v: int | Sequence[int]) -> int | list[int]:
    return int(v) if isinstance(v, (int, np.integer)) else [int(u) for u in v]


def save_training_background(directory: str | Path, split: Split, trained_on: dict, n: int = DEFAULT_SIZE) -> Path:
    """The first ``n`` training texts of ``split`` (a :class:`~seqshap.data.Split`) as the model
    directory's default background; ``trained_on`` is the run's record of its data (metrics.json's
    ``trained_on``), whose ``["train"]["source"]`` says where they came from."""
    k = min(n, len(split.texts))
    source = f"the first {k} training text{'s' if k != 1 else ''}: {trained_on['train']['source']}"
    labels = split.labels[:k].tolist()
    return save_background(directory, Background(tuple(split.texts[:k]), source), split.ids[:k], labels)


# ------------------------------------------------------------------ --background-file
def read_background_file(path: str | Path, n: int | None = None, text_column: str = "text") -> Background:
    """The first ``n`` (default all) texts of a file: ``.csv`` with a ``text_column`` column;
    ``.jsonl``/``.ndjson`` with one JSON object (``{text_column: ...}``) or string per line;
    ``.json``: a list of strings or objects, an object with ``"texts"`` (a model's
    ``background.json``), or JSON lines; anything else: one text per line, blank lines skipped.
    Errors are :class:`~seqshap.data.DataFileError` naming the file and line.

    Bounded whatever the file holds: a regular file of at most :data:`MAX_BACKGROUND_BYTES`, read
    a line at a time (at most :data:`MAX_LINE_BYTES` each) and only until ``n`` texts are in; a
    ``.json`` file is read whole, so at most :data:`MAX_WHOLE_JSON_BYTES`. A text over
    :data:`MAX_TEXT_CHARS` characters, more than :data:`MAX_BACKGROUND_TEXTS` texts or more than
    :data:`MAX_BACKGROUND_CHARS` characters in all are refused, never cut short (a shortened
    reference would silently be another background)."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise DataFileError(f"{path}: no such file")
    info = safe_files.check_regular_file(path, None, "a background file", error=DataFileError)
    if info.st_size > MAX_BACKGROUND_BYTES:
        raise DataFileError(
            f"{path}: {info.st_size:,} bytes; a background file may hold at most {MAX_BACKGROUND_BYTES:,} "
            "(a background needs tens to hundreds of texts)"
        )
    # One text more than needed says whether the file holds more ("the first k texts" or "the k texts").
    want = MAX_BACKGROUND_TEXTS + 1 if n is None else min(n + 1, MAX_BACKGROUND_TEXTS + 1)
    suffix = path.suffix.lower()
    if suffix == ".json":
        found = _json_texts(path, text_column, want)
    else:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO swapped in after the check cannot block
        with os.fdopen(fd, "rb") as f:
            lines = _lines(path, f)
            if suffix == ".csv":
                found = _csv_texts(path, lines, text_column, want)
            elif suffix in JSON_LINES:
                found = _json_lines_texts(path, lines, text_column, want)
            else:
                found = _plain_texts(path, lines, want)
    if not found:
        raise DataFileError(f"{path}: no texts in it")
    k = len(found) if n is None else min(n, len(found))
    if k > MAX_BACKGROUND_TEXTS:
        asked = "all of them" if n is None else f"--background {n:,}"
        raise DataFileError(
            f"{path}: more than {MAX_BACKGROUND_TEXTS:,} texts ({asked}); a background holds at most "
            f"{MAX_BACKGROUND_TEXTS:,} (each one costs a model run per explanation): --background N"
        )
    texts = [_bounded(path, where, text) for where, text in found[:k]]
    if (total := sum(map(len, texts))) > MAX_BACKGROUND_CHARS:
        raise DataFileError(
            f"{path}: its first {k:,} texts hold {total:,} characters; a background holds at most "
            f"{MAX_BACKGROUND_CHARS:,} in all (take fewer: --background N)"
        )
    what = f"text{'s' if k != 1 else ''} of {path}"
    source = f"the first {k} {what}" if k < len(found) else f"the {k} {what}"
    return Background(tuple(texts), source)


def _bounded(path: Path, where: str, text: str) -> str:
    if len(text) > MAX_TEXT_CHARS:
        raise DataFileError(
            f"{path}, {where}: a text of {len(text):,} characters; a background text may hold at most "
            f"{MAX_TEXT_CHARS:,} (the model reads only its first or last words)"
        )
    return text


def _lines(path: Path, f: BinaryIO) -> Iterator[tuple[int, str]]:
    """(line number, the line decoded with its line break), read at most :data:`MAX_LINE_BYTES`
    a line: a file of one enormous line is refused after reading that much, never loaded whole."""
    number = 0
    while line := f.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(line) > MAX_LINE_BYTES:
            raise DataFileError(
                f"{path}, line {number}: longer than {MAX_LINE_BYTES:,} bytes; a background text may hold at "
                f"most {MAX_TEXT_CHARS:,} characters"
            )
        if number == 1 and line.startswith(codecs.BOM_UTF8):
            line = line[len(codecs.BOM_UTF8) :]
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise DataFileError(f"{path}, line {number}: not UTF-8 text; re-save the file as UTF-8") from None
        yield number, text


Found = list[tuple[str, str]]  # (where in the file, the text)


def _plain_texts(path: Path, lines: Iterable[tuple[int, str]], want: int) -> Found:
    found: Found = []
    for number, line in lines:
        if line.strip():
            found.append((f"line {number}", line.rstrip("\n").rstrip("\r")))
            if len(found) >= want:
                break
    return found


def _text(path: Path, where: str, value: Any, text_column: str) -> tuple[str, str]:
    """``(where, the text)`` of one record: a string, or an object's ``text_column`` field."""
    if isinstance(value, dict):
        if text_column not in value:
            raise DataFileError(f"{path}, {where}: no field {text_column!r} (fields: {', '.join(map(str, value))})")
        value = value[text_column]
    if not isinstance(value, str):
        raise DataFileError(f"{path}, {where}: the text must be a string, got {type(value).__name__}")
    if not value.strip():
        raise DataFileError(f"{path}, {where}: empty text")
    return where, value


def _csv_texts(path: Path, lines: Iterable[tuple[int, str]], text_column: str, want: int) -> Found:
    reader = csv.DictReader(line for _, line in lines)
    found: Found = []
    try:
        if reader.fieldnames is None:
            return []
        if text_column not in reader.fieldnames:
            raise DataFileError(f"{path}: no column {text_column!r} (columns: {', '.join(reader.fieldnames)})")
        for row in reader:  # line_num: the line a record ends on (a quoted text may span lines)
            found.append(_text(path, f"line {reader.line_num}", row.get(text_column) or "", text_column))
            if len(found) >= want:
                break
    except csv.Error as e:
        raise DataFileError(f"{path}, line {reader.line_num}: not valid CSV ({e})") from None
    return found


def _check_depth(path: Path, where: str, text: str) -> None:
    # Python's JSON parser recurses once per level: a deep file would end in RecursionError.
    if safe_files.json_depth(text) > safe_files.MAX_JSON_DEPTH:
        raise DataFileError(
            f"{path}{where}: JSON nested more than {safe_files.MAX_JSON_DEPTH} levels deep; not reading it"
        )


def _json_lines_texts(path: Path, lines: Iterable[tuple[int, str]], text_column: str, want: int) -> Found:
    found: Found = []
    for number, line in lines:
        if not line.strip():
            continue
        _check_depth(path, f", line {number}", line)
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataFileError(f"{path}, line {number}: not valid JSON ({e.msg})") from None
        found.append(_text(path, f"line {number}", value, text_column))
        if len(found) >= want:
            break
    return found


def _json_texts(path: Path, text_column: str, want: int) -> Found:
    """A ``.json`` file, read whole (at most :data:`MAX_WHOLE_JSON_BYTES`): a list, a
    ``background.json``, or JSON lines."""
    size = path.stat().st_size
    if size > MAX_WHOLE_JSON_BYTES:
        raise DataFileError(
            f"{path}: {size:,} bytes; a .json background file is read whole and may hold at most "
            f"{MAX_WHOLE_JSON_BYTES:,} (for more, one text per line: .jsonl, .csv or .txt)"
        )
    data = safe_files.read_bytes(path, MAX_WHOLE_JSON_BYTES, "a .json background file", error=DataFileError)
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        raw = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataFileError(f"{path}, line {line}: not UTF-8 text; re-save the file as UTF-8") from None
    _check_depth(path, "", raw)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as e:
        if raw.lstrip().startswith("["):
            raise DataFileError(f"{path}, line {e.lineno}: not valid JSON ({e.msg})") from None
        numbered = ((i, line) for i, line in enumerate(raw.split("\n"), 1))  # JSON lines in a .json file
        return _json_lines_texts(path, numbered, text_column, want)
    if isinstance(value, dict) and "texts" in value:  # a model's background.json
        value = value["texts"]
    if not isinstance(value, list):
        raise DataFileError(f'{path}: expected a JSON list of texts or an object with "texts"')
    return [_text(path, f"item {i}", v, text_column) for i, v in enumerate(value[:want], 1)]
