"""The words behind a Keras model's ids: the imdb word index, a ``Tokenizer.to_json()``, or none."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .. import safe_files
from ..data.tokenize import FIRST_WORD_ID, KERAS_FILTERS, OOV, PAD, START
from ..data.vocab import Vocab
from ..errors import KerasImportError

IMDB_INDEX_FROM = 3  # keras.datasets.imdb.load_data(index_from=3)
ID_TOKEN = "id{}"  # word of id i when no vocabulary is given; typeable, so `seqshap explain "id14 id9"` works


MAX_WORD_INDEX_BYTES = 16 << 20  # --word-index: Keras' IMDB index (88,584 words) is 1.6 MB


def read_json_arg(obj: str | Path | dict, what: str) -> Any:
    if isinstance(obj, dict):
        return obj
    if not Path(obj).exists():
        raise KerasImportError(f"{obj}: no such {what} file")
    # a regular file, size-capped before it is read, depth-bounded (seqshap.safe_files)
    return safe_files.read_json(obj, MAX_WORD_INDEX_BYTES, f"a {what} file", error=KerasImportError)


def tokenizer_config(obj: Any) -> dict | None:
    """The config of a ``Tokenizer.to_json()`` dict, or None if ``obj`` is not one."""
    if isinstance(obj, dict) and obj.get("class_name") == "Tokenizer" and isinstance(obj.get("config"), dict):
        return obj["config"]
    return None


def _maybe_json(v: Any, source: str) -> Any:
    """``Tokenizer.to_json()`` stores its dicts as JSON strings inside the JSON."""
    try:
        return json.loads(v) if isinstance(v, str) else v
    except json.JSONDecodeError as e:
        raise KerasImportError(f"{source}: the Tokenizer's word_index is not valid JSON ({e})") from None


def check_word_index(wi: Any, source: str) -> dict[str, int]:
    if not isinstance(wi, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in wi.items()
    ):
        raise KerasImportError(
            f'{source}: not a word index: expected a JSON object {{"word": rank, ...}} '
            f"(keras.datasets.imdb.get_word_index()) or a Tokenizer.to_json() object"
        )
    return wi


def imdb_vocab(wi: dict[str, int], num_words: int) -> Vocab:
    """Keras imdb scheme (``index_from=3``): the word of rank r (from 1) has id r + 3 (id 3 is
    unused); ids past the embedding's rows were out-of-vocabulary (``num_words``) in training."""
    return Vocab(
        {w: r + IMDB_INDEX_FROM for w, r in wi.items() if r >= 1 and r + IMDB_INDEX_FROM < num_words}, num_words
    )


def tokenizer_vocab(cfg: dict, source: str, rows: int) -> tuple[Vocab, list[int], str]:
    """Keras ``Tokenizer`` ids (0 pad, words from 1, optional oov_token) -> seqshap's scheme
    (0 pad, 1 start, 2 OOV, words from 3): Tokenizer id j -> j + 2. Returns the vocabulary, the
    old row of each new embedding row (:func:`move_rows`), and a note.

    The start token gets the padding row, so ``[pad.., start, words]`` equals Keras'
    ``[pad.., pad, words]``; predictions on texts shorter than maxlen are unchanged.
    """
    if cfg.get("char_level"):
        raise KerasImportError(f"{source}: character-level tokenizers are not supported")
    if not cfg.get("lower", True) or cfg.get("split", " ") != " " or cfg.get("filters", KERAS_FILTERS) != KERAS_FILTERS:
        raise KerasImportError(
            f"{source}: the Tokenizer uses non-default lower/split/filters settings, which "
            f"seqshap's tokenizer cannot reproduce (it uses Keras' defaults)"
        )
    wi = check_word_index(_maybe_json(cfg.get("word_index"), source), source)
    limit = min(rows, int(cfg["num_words"])) if cfg.get("num_words") else rows
    oov = cfg.get("oov_token")
    # Unknown words: the oov_token's row; without one Keras drops them, padding is the closest.
    order = [0] * FIRST_WORD_ID + list(range(1, limit))
    order[PAD] = order[START] = 0
    order[OOV] = wi[oov] if oov is not None and oov in wi and wi[oov] < limit else 0
    vocab = Vocab({w: j + FIRST_WORD_ID - 1 for w, j in wi.items() if 1 <= j < limit}, len(order))
    note = (
        f"Keras Tokenizer ({len(vocab.word_to_id)} words); its ids j became j + 2 (seqshap: 0 pad, "
        f"1 start, 2 out-of-vocabulary)"
    )
    return vocab, order, note


def move_rows(weight: np.ndarray, order: list[int]) -> np.ndarray:
    """Embedding rows rearranged: new row ``i`` is old row ``order[i]``."""
    return np.ascontiguousarray(np.asarray(weight)[np.asarray(order, dtype=np.int64)])
