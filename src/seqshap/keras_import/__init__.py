"""Convert a trained Keras text classifier (``.keras`` or legacy ``.h5``) into a seqshap model directory.

Reads the files with ``zipfile``/``json``/``h5py`` only: TensorFlow and Keras are not needed.
The result is an ``arch: "keras"`` model (:class:`seqshap.models.keras.KerasModel`) that computes
what the Keras model computed, so every seqshap command can explain it: Sequential models and
functional graphs (branches, merges, residuals, shared layers, several outputs), attention,
normalization, Keras' padding masks, and a ``TextVectorization`` the model starts with (its
vocabulary, standardization and split travel into the directory).

    from seqshap.keras_import import import_keras
    model = import_keras("model.keras", "runs/from_keras", word_index="word_index.json")
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.tokenize import FIRST_WORD_ID
from ..data.vocab import Vocab
from ..errors import KerasImportError
from ..models.keras import KerasModel
from ..models.keras.text import MASK_TOKEN, SPLIT, STANDARDIZE, UNK_TOKEN, TextVectorizer
from ..store import SeqshapModel, load, save_model
from .files import KerasFile, KerasLayer, leaves, read_keras_file
from .graph import Converted, convert_graph
from .layers import SUPPORTED
from .vocab import (
    ID_TOKEN,
    check_word_index,
    imdb_vocab,
    move_rows,
    read_json_arg,
    tokenizer_config,
    tokenizer_vocab,
)

__all__ = ["SUPPORTED", "KerasImportError", "import_keras", "read_classes", "read_keras_file"]


def read_classes(spec: str | Path | Sequence[str]) -> tuple[str, ...]:
    """Class names from ``--classes``: names (a list, or ``"a,b,c"``), or a file of them: a JSON
    list, a JSON object ``{"name": index}`` (a label encoder's mapping, indices 0..n-1), or one
    name per line."""
    if not isinstance(spec, (str, Path)):
        names = [str(c) for c in spec]
    elif Path(spec).is_file():
        path = Path(spec)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as e:
            raise KerasImportError(f"{path}: cannot read the class names ({e})") from None
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            obj = [line.strip() for line in text.splitlines() if line.strip()]
        if isinstance(obj, dict):
            if sorted(v for v in obj.values() if isinstance(v, int)) != list(range(len(obj))):
                raise KerasImportError(f"{path}: a class mapping must give the indices 0..{len(obj) - 1}, once each")
            obj = sorted(obj, key=obj.__getitem__)
        if not isinstance(obj, list) or not all(isinstance(c, (str, int)) for c in obj):
            raise KerasImportError(f"{path}: expected a JSON list of class names, a {{name: index}} object or lines")
        names = [str(c) for c in obj]
    else:
        names = [c.strip() for c in str(spec).split(",")]
    if any(not c for c in names) or len(set(names)) != len(names):
        raise KerasImportError(f"class names must be distinct and not empty, got {names}")
    return tuple(names)


def _class_names(net: KerasModel, T: int, classes: Sequence[str] | None) -> list[str] | None:
    """The names saved for the model's outputs: ``classes`` (one per softmax column, or two for one
    sigmoid output), else ``class_0, class_1, ...`` for three or more columns; ``None`` (negative,
    positive) for one or two."""
    with torch.no_grad():
        columns = int(net(torch.zeros(1, T, dtype=torch.long)).shape[-1])
    if classes is None:
        return [f"class_{i}" for i in range(columns)] if columns > 2 else None
    want = 2 if columns == 1 else columns
    if len(classes) != want:
        what = "one output (a sigmoid: two classes)" if columns == 1 else f"{columns} outputs"
        raise KerasImportError(f"the model has {what}, but {len(classes)} class names were given: {', '.join(classes)}")
    return list(classes)


# --------------------------------------------------------------------------- TextVectorization


def _function_name(v: Any) -> str:
    if isinstance(v, dict):
        return str(v.get("config") or v.get("registered_name") or v.get("class_name") or "a function")
    return repr(v)


def text_vectorizer(layer: KerasLayer, path: Path) -> TextVectorizer:
    """The tokenizer of a ``TextVectorization`` layer: its settings, and its vocabulary from the
    config or (adapted) from the ``.keras`` archive's assets."""
    cfg = layer.config
    for key, allowed in (("standardize", STANDARDIZE), ("split", SPLIT)):
        v = cfg.get(key, "lower_and_strip_punctuation" if key == "standardize" else "whitespace")
        if v not in allowed:
            raise KerasImportError(
                f"{path}: {layer.label} uses a custom {key} function ({_function_name(v)}), whose Python code is "
                f"not in the file; seqshap reproduces the built-in ones ({', '.join(map(str, allowed))}): use one of "
                f"them (clean the texts before the model if needed), retrain, and save again"
            )
    problems = {
        "output_mode": (cfg.get("output_mode", "int"), "int"),
        "ngrams": (cfg.get("ngrams"), None),
        "ragged": (bool(cfg.get("ragged")), False),
        "sparse": (bool(cfg.get("sparse")), False),
        "encoding": (str(cfg.get("encoding", "utf-8")).lower().replace("_", "-"), "utf-8"),
    }
    if cfg.get("ngrams") in (1, [1]):
        problems.pop("ngrams")
    for key, (have, want) in problems.items():
        if have != want:
            raise KerasImportError(f"{path}: {layer.label} has {key}={have!r}; seqshap supports {key}={want!r}")
    vocab = cfg.get("vocabulary")
    if isinstance(vocab, list):
        tokens = [str(t) for t in vocab]
        if tokens[:2] != [MASK_TOKEN, UNK_TOKEN]:  # given at construction: Keras puts the two in front
            tokens = [MASK_TOKEN, UNK_TOKEN, *tokens]
    elif vocab is None:
        raw = layer.assets.get("vocabulary.txt") or layer.assets.get("_lookup_layer/vocabulary.txt")
        if raw is None:
            raise KerasImportError(
                f"{path}: the file does not hold the vocabulary of {layer.label} (Keras keeps an adapted "
                "vocabulary only in .keras files, not in .h5); save the model with model.save('model.keras')"
            )
        try:
            lines = raw.decode("utf-8").splitlines()  # as Keras reads it back (text mode, splitlines)
        except UnicodeDecodeError as e:
            raise KerasImportError(f"{path}: {layer.label}'s vocabulary.txt is not UTF-8 ({e})") from None
        while lines and lines[-1] == "":
            lines.pop()
        if MASK_TOKEN in lines[1:]:
            raise KerasImportError(
                f"{path}: {layer.label}'s saved vocabulary.txt holds a token with a line break, so its lines are "
                "not its tokens (Keras cannot load this model back either); adapt the layer on texts without "
                "such tokens (split='character' on texts with newlines) or pass vocabulary= explicitly"
            )
        tokens = lines
    else:
        raise KerasImportError(f"{path}: {layer.label}'s vocabulary is a file path outside the model; save with .keras")
    length = int(cfg.get("output_sequence_length") or 0)
    try:
        return TextVectorizer(
            tokens, cfg.get("standardize", "lower_and_strip_punctuation"), cfg.get("split", "whitespace"), length
        )
    except ValueError as e:
        raise KerasImportError(f"{path}: {layer.label}: {e}") from None


# --------------------------------------------------------------------------- the conversion


def _vocabulary(
    kf: KerasFile, conv: Converted, word_index: str | Path | dict | None
) -> tuple[Vocab, list[int] | None, str]:
    """(vocabulary, the old embedding row of each new one or None, a note)."""
    rows = {int(layer.config["input_dim"]) for layer in conv.id_readers}
    if len(rows) != 1:
        raise KerasImportError(
            f"{kf.path}: several Embeddings read the ids with different vocabulary sizes ({sorted(rows)})"
        )
    n = rows.pop()
    masked = any(layer.config.get("mask_zero") for layer in conv.id_readers)
    if conv.text is not None:
        if word_index is not None:
            raise KerasImportError(
                f"{kf.path}: the model reads text with its own TextVectorization ({conv.text.name!r}); "
                "its vocabulary is in the file, so leave out --word-index"
            )
        tv = text_vectorizer(conv.text, kf.path)
        if len(tv.vocabulary) > n:
            raise KerasImportError(
                f"{kf.path}: the TextVectorization has {len(tv.vocabulary)} tokens but the Embedding only {n} rows"
            )
        order = [0, 0, *range(1, len(tv.vocabulary))]
        note = (
            f"the model's TextVectorization {conv.text.name!r} ({len(tv.vocabulary)} tokens, standardize="
            f"{tv.standardize}, split={tv.split}); Keras id j >= 1 is seqshap id j + 1 (seqshap: 0 pad, 1 start, "
            f"2 out-of-vocabulary)"
        )
        return tv, order, note
    if word_index is None:
        vocab = Vocab({ID_TOKEN.format(i): i for i in range(FIRST_WORD_ID, n)}, n)
        note = (
            f"none given: the model explains word ids, shown as '{ID_TOKEN.format(42)}' for id 42 "
            f"(pass the Keras word index or Tokenizer JSON to see words)"
        )
        return vocab, None, note
    source = "word index" if isinstance(word_index, dict) else str(word_index)
    obj = read_json_arg(word_index, "word index")
    tok = tokenizer_config(obj)
    if tok is not None:
        if masked:
            raise KerasImportError(
                f"{source}: a Tokenizer vocabulary cannot be used with a model that masks padding (mask_zero=True): "
                "seqshap puts a start token before each text, which Keras' Tokenizer never did, and the mask "
                "would see it as a word"
            )
        vocab, order, note = tokenizer_vocab(tok, source, n)
        return vocab, order, note
    vocab = imdb_vocab(check_word_index(obj, source), n)
    note = (
        f"Keras imdb word index ({len(vocab.word_to_id)} words within the embedding's {n} rows; "
        f"id = rank + 3, 1 start, 2 out-of-vocabulary)"
    )
    return vocab, None, note


def _load_weights(net: KerasModel, conv: Converted, kf: KerasFile, order: list[int] | None) -> None:
    """Each module loads its Keras layer's arrays (Keras layouts converted by the module)."""
    by_name = {layer.name: layer for layer in leaves(kf.layers)}
    readers = {layer.name for layer in conv.id_readers}
    emb = conv.embedding
    with torch.no_grad():
        if len(emb.weights) != 1:
            raise KerasImportError(
                f"{kf.path}: {emb.label} should have 1 weight array, the file has {len(emb.weights)}"
            )
        w = np.asarray(emb.weights[0], dtype=np.float32)
        want = (int(emb.config["input_dim"]), int(emb.config["output_dim"]))
        if tuple(w.shape) != want:
            raise KerasImportError(f"{kf.path}: {emb.label} weights have shape {w.shape}, its config says {want}")
        net.embedding.weight.copy_(torch.from_numpy(move_rows(w, order) if order is not None else w))
        for spec, module in zip(net.specs, net.layers, strict=True):
            layer = by_name[spec["keras_name"]]
            arrays = layer.weights
            if order is not None and layer.name in readers:
                arrays = [move_rows(arrays[0], order)] if arrays else arrays
            load = getattr(module, "load_keras", None)
            if callable(load):
                try:
                    load(arrays, f"{kf.path}: {layer.label}")
                except ValueError as e:
                    raise KerasImportError(str(e)) from None
            elif arrays:
                raise KerasImportError(f"{kf.path}: {layer.label} has weights the converter does not expect")


def import_keras(
    path: str | Path,
    out_dir: str | Path,
    word_index: str | Path | dict | None = None,
    maxlen: int | None = None,
    name: str | None = None,
    classes: str | Path | Sequence[str] | None = None,
    output: str | None = None,
) -> SeqshapModel:
    """Convert a Keras ``.keras``/``.h5`` model into a seqshap model directory and load it.

    ``word_index``: a path to (or the dict of) the Keras imdb word index ``{"word": rank}``
    (``keras.datasets.imdb.get_word_index()``; ids = rank + 3) or a ``Tokenizer.to_json()``;
    None gives a vocabulary of placeholder words ``id3``, ``id4``, ... (the model explains ids).
    A model that starts with ``TextVectorization`` brings its own vocabulary.
    ``maxlen``: required only when the file does not fix the input length.
    ``classes``: the class names of the outputs (:func:`read_classes`); a softmax head keeps all
    its columns, named ``class_0, class_1, ...`` when not given (``negative, positive`` for two).
    ``output``: which output to explain (its layer name), for a model with several.
    """
    names = read_classes(classes) if classes is not None else None
    kf = read_keras_file(path)
    conv = convert_graph(kf, maxlen, output)
    vocab, order, note = _vocabulary(kf, conv, word_index)
    kwargs: dict[str, Any] = {
        "vocab_size": vocab.num_words,
        "embed_dim": int(conv.embedding.config["output_dim"]),
        "layers": conv.layers,
        "calls": conv.calls,
        "output": conv.output,
    }
    for spec in kwargs["layers"]:  # the other tables that read the ids are moved the same way
        if spec["type"] == "embedding" and spec["keras_name"] in {la.name for la in conv.id_readers}:
            spec["input_dim"] = vocab.num_words
    try:
        net = KerasModel(**kwargs)
    except ValueError as e:
        raise KerasImportError(f"{kf.path}: {e}") from None
    _load_weights(net, conv, kf, order)
    net.eval()
    class_names = _class_names(net, conv.maxlen, names)
    config = {
        "name": name or Path(path).stem,
        "arch": "keras",
        "maxlen": conv.maxlen,
        "model": kwargs,
        **({"classes": class_names} if class_names is not None else {}),
        "output_space": conv.output_space,
        "imported_from": {
            "file": Path(path).name,
            "format": kf.format,
            "keras_version": kf.keras_version,
            "output": conv.output,
            "layers": [
                f"{conv.embedding.name} (Embedding)",
                *(u for u in conv.uses if not u.startswith(f"{conv.embedding.name} ")),
            ],
            "vocabulary": note,
        },
    }
    metrics = {"source": f"imported from Keras file {Path(path).name}", "vocabulary": note}
    save_model(out_dir, net, vocab, config, metrics)
    return load(out_dir)
