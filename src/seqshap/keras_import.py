"""Convert a trained Keras text classifier (``.keras`` or legacy ``.h5``) into a seqshap model directory.

Reads the files with ``zipfile``/``json``/``h5py`` only: TensorFlow and Keras are not needed.
The result is an ``arch: "keras"`` model (``seqshap.models.keras_layers.KerasSequential``)
that computes what the Keras model computed, so every seqshap command can explain it.

    from seqshap.keras_import import import_keras
    model = import_keras("model.keras", "runs/from_keras", word_index="word_index.json")
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import safe_files
from .data.tokenize import FIRST_WORD_ID, KERAS_FILTERS, OOV, PAD, START
from .data.vocab import Vocab
from .errors import KerasImportError
from .models.keras_layers import ACTIVATIONS, KerasSequential
from .store import SeqshapModel, load, save_model

SUPPORTED_LAYERS = (
    "InputLayer",
    "Embedding",
    "LSTM",
    "GRU",
    "Bidirectional",
    "Dense",
    "Dropout",
    "SpatialDropout1D",
    "Conv1D",
    "MaxPooling1D",
    "AveragePooling1D",
    "GlobalMaxPooling1D",
    "GlobalAveragePooling1D",
    "Flatten",
    "Activation",
)
# Other names Keras has used for the same classes in saved configs.
_ALIASES = {
    "Convolution1D": "Conv1D",
    "MaxPool1D": "MaxPooling1D",
    "AvgPool1D": "AveragePooling1D",
    "AveragePool1D": "AveragePooling1D",
    "GlobalMaxPool1D": "GlobalMaxPooling1D",
    "GlobalAvgPool1D": "GlobalAveragePooling1D",
    "GlobalAveragePool1D": "GlobalAveragePooling1D",
}
_INFERENCE_IDENTITY = ("Dropout", "SpatialDropout1D")  # do nothing outside training
IMDB_INDEX_FROM = 3  # keras.datasets.imdb.load_data(index_from=3)
ID_TOKEN = "id{}"  # word of id i when no vocabulary is given; typeable, so `seqshap explain "id14 id9"` works


@dataclass
class KerasLayer:
    """One layer of the saved model: Keras class, name, config and weight arrays (file order)."""

    cls: str
    name: str
    config: dict[str, Any]
    weights: list[np.ndarray] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"layer {self.name!r} ({self.cls})"


@dataclass
class KerasFile:
    """What a ``.keras``/``.h5`` file holds: the model's layers (in order), its top-level config
    and the Keras version that wrote it."""

    path: Path
    format: str  # "keras" or "h5"
    keras_version: str
    model_config: dict[str, Any]
    layers: list[KerasLayer]


# --------------------------------------------------------------------------- reading files

_ZIP_MAGIC, _HDF5_MAGIC = b"PK\x03\x04", b"\x89HDF\r\n\x1a\n"
# Sizes are checked before anything is read into memory. Trained weights barely compress (about
# 1.1x; a mostly-zero model perhaps 10x), a zip or HDF5 compression bomb inflates ~1000x: past a
# small size, a member or dataset that declares more than MAX_RATIO times what it stores is refused.
MAX_JSON_BYTES = 64 << 20  # config.json / metadata.json in a .keras archive
MAX_WORD_INDEX_BYTES = 16 << 20  # --word-index: Keras' IMDB index (88,584 words) is 1.6 MB
MAX_WEIGHTS_BYTES = 4 << 30  # model.weights.h5 in a .keras archive, and any one weight array
MAX_RATIO = 50
RATIO_FREE_BYTES = 16 << 20  # below this, any compression is fine


def read_keras_file(path: str | Path) -> KerasFile:
    """Parse a Keras 3 ``.keras`` zip or a Keras 2/3 ``.h5`` full-model file (by content, not suffix)."""
    path = Path(path)
    if not path.is_file():
        raise KerasImportError(f"{path}: no such file")
    with path.open("rb") as f:
        head = f.read(8)
    if head.startswith(_ZIP_MAGIC):
        return _read_dot_keras(path)
    if head == _HDF5_MAGIC:
        return _read_h5(path)
    raise KerasImportError(
        f"{path}: not a Keras model file (neither a .keras zip archive nor an HDF5 "
        f".h5 file); the file may be corrupt or truncated"
    )


def _read_dot_keras(path: Path) -> KerasFile:
    import h5py

    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if "config.json" not in names or "model.weights.h5" not in names:
                raise KerasImportError(
                    f"{path}: corrupt .keras file: the archive lacks "
                    f"{'config.json' if 'config.json' not in names else 'model.weights.h5'}"
                )
            config = json.loads(_read_member(path, z, "config.json", MAX_JSON_BYTES))
            meta = (
                json.loads(_read_member(path, z, "metadata.json", MAX_JSON_BYTES)) if "metadata.json" in names else {}
            )
            weights_bytes = _read_member(path, z, "model.weights.h5", MAX_WEIGHTS_BYTES)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as e:
        raise KerasImportError(f"{path}: corrupt or truncated .keras archive ({e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise KerasImportError(f"{path}: corrupt .keras file: config.json is not valid JSON ({e})") from None
    layers = _layers_from_config(path, config)
    try:
        with h5py.File(io.BytesIO(weights_bytes), "r") as h5:
            _attach_keras3_weights(path, h5, layers)
    except OSError as e:
        raise KerasImportError(
            f"{path}: corrupt .keras file: model.weights.h5 is not a readable HDF5 file ({e})"
        ) from None
    return KerasFile(path, "keras", str(meta.get("keras_version", "3")), config, layers)


def _too_big(declared: int, stored: int, limit: int) -> bool:
    return declared > limit or (declared > RATIO_FREE_BYTES and declared > MAX_RATIO * max(stored, 1))


def _read_member(path: Path, z: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """One archive member, its declared size checked first (zipfile never inflates past it)."""
    info = z.getinfo(name)
    if _too_big(info.file_size, info.compress_size, limit):
        raise KerasImportError(
            f"{path}: {name} would inflate from {info.compress_size:,} to {info.file_size:,} bytes "
            f"(at most {limit:,}, and {MAX_RATIO}x its stored size past {RATIO_FREE_BYTES:,}); "
            "not reading it (a corrupt or malicious archive)"
        )
    return z.read(info)


def _array(path: Path, ds) -> np.ndarray:
    """One HDF5 dataset as an array, its size checked against what the file stores first
    (HDF5 compresses datasets too)."""
    declared, stored = int(ds.size) * ds.dtype.itemsize, int(ds.id.get_storage_size())
    if _too_big(declared, stored, MAX_WEIGHTS_BYTES):
        raise KerasImportError(
            f"{path}: weight {ds.name} declares shape {ds.shape} ({declared:,} bytes) but stores {stored:,} "
            f"bytes (at most {MAX_WEIGHTS_BYTES:,}, and {MAX_RATIO}x its stored size); not reading it "
            "(a corrupt or malicious file)"
        )
    return np.asarray(ds)


def _snake(name: str) -> str:
    """Keras' ``naming.to_snake_case``: how ``.keras`` weight files name a layer's group."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _vars(path: Path, group) -> list[np.ndarray]:
    """Datasets ``vars/0``, ``vars/1``, ... of a ``.keras`` weights group, in index order."""
    if group is None or "vars" not in group:
        return []
    v = group["vars"]
    return [_array(path, v[k]) for k in sorted(v, key=int)]


def _attach_keras3_weights(path: Path, h5, layers: list[KerasLayer]) -> None:
    """``.keras`` weights live at ``layers/<snake_case(class)>[_n]/...`` in ``model.layers`` order,
    (the n-th layer of a class gets the suffix ``_n``), not under the layers' own names."""
    if "layers" not in h5:
        raise KerasImportError(f"{path}: corrupt .keras file: model.weights.h5 has no 'layers' group")
    seen: dict[str, int] = {}
    for layer in layers:
        key = _snake(layer.cls)  # the Python class name, which Keras 3 configs record as class_name
        seen[key] = seen.get(key, -1) + 1
        key = f"{key}_{seen[key]}" if seen[key] else key
        g = h5["layers"].get(key)
        if g is None:
            continue
        if layer.cls == "Bidirectional":
            layer.weights = _vars(path, g.get("forward_layer/cell")) + _vars(path, g.get("backward_layer/cell"))
        elif layer.cls in ("LSTM", "GRU"):
            layer.weights = _vars(path, g.get("cell"))
        else:
            layer.weights = _vars(path, g)


def _read_h5(path: Path) -> KerasFile:
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            raw = h5.attrs.get("model_config")
            if raw is None:
                raise KerasImportError(
                    f"{path}: this HDF5 file has no model config (a weights-only file "
                    f"from save_weights?); save the whole model with model.save()"
                )
            config = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else str(raw))
            version = h5.attrs.get("keras_version", b"2")
            version = version.decode() if isinstance(version, bytes) else str(version)
            layers = _layers_from_config(path, config)
            root = h5.get("model_weights", h5)
            for layer in layers:
                g = root.get(layer.name)
                if g is None:
                    continue
                names = [n.decode() if isinstance(n, bytes) else str(n) for n in g.attrs.get("weight_names", [])]
                try:
                    layer.weights = [_array(path, g[n]) for n in names]
                except KeyError as e:
                    raise KerasImportError(
                        f"{path}: corrupt .h5 file: {layer.label} lists weight {e} that is not in the file"
                    ) from None
    except (OSError, RuntimeError) as e:
        raise KerasImportError(f"{path}: corrupt or truncated .h5 file ({e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise KerasImportError(f"{path}: corrupt .h5 file: its model_config is not valid JSON ({e})") from None
    return KerasFile(path, "h5", version, config, layers)


def _inbound_names(nodes: Any) -> list[str]:
    """Names of the layers feeding a layer, from Keras 2 (``[[["name", 0, 0, {}]]]``) or
    Keras 3 (``[{"args": [{"config": {"keras_history": ["name", 0, 0]}}]}]``) inbound nodes."""
    found: list[str] = []

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            hist = x.get("config", {}).get("keras_history") if isinstance(x.get("config"), dict) else None
            if hist:
                found.append(hist[0])
                return
            for k, v in x.items():
                if k != "kwargs":  # kwargs hold `training`/`mask` flags, not inputs
                    walk(v)
        elif isinstance(x, list):
            if len(x) >= 3 and isinstance(x[0], str) and isinstance(x[1], int):
                found.append(x[0])
            else:
                for v in x:
                    walk(v)

    walk(nodes)
    return found


def _layers_from_config(path: Path, config: Any) -> list[KerasLayer]:
    """Top-level model config -> its layers in order. Functional models must be one chain."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise KerasImportError(f"{path}: corrupt model config (no class_name)")
    cls, cfg = config["class_name"], config.get("config")
    if cls == "Sequential":
        raw = cfg if isinstance(cfg, list) else (cfg or {}).get("layers")  # Keras <= 2.2 used a bare list
    elif cls in ("Functional", "Model"):
        raw = (cfg or {}).get("layers")
    else:
        raise KerasImportError(
            f"{path}: the model is a {cls!r}; only Sequential models and Functional "
            f"models that are a single chain of layers can be imported "
            f"(subclassed models are not saved with a layer config)"
        )
    if not isinstance(raw, list) or not raw:
        raise KerasImportError(f"{path}: corrupt model config (no layer list)")
    layers = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or "class_name" not in item:
            raise KerasImportError(f"{path}: corrupt model config (layer {i} has no class_name)")
        lcfg = item.get("config") or {}
        name = str(item.get("name") or lcfg.get("name") or f"layer_{i}")
        layers.append(KerasLayer(str(_ALIASES.get(item["class_name"], item["class_name"])), name, lcfg))
    for layer in layers:  # before the graph check, so e.g. an Attention layer is named as such
        if layer.cls not in SUPPORTED_LAYERS:
            raise _unsupported(layer)
    if cls in ("Functional", "Model"):
        _check_chain(path, cfg or {}, raw)
    return layers


def _check_chain(path: Path, cfg: dict, raw: list[dict]) -> None:
    """Refuse Functional graphs that are not ``input -> layer -> layer -> ... -> output``."""
    prev = None
    for item in raw:
        name = item.get("name") or item.get("config", {}).get("name")
        inbound = _inbound_names(item.get("inbound_nodes", []))
        if prev is None:
            if inbound:
                raise KerasImportError(f"{path}: the functional model does not start with an Input layer")
        elif inbound != [prev]:
            raise KerasImportError(
                f"{path}: the functional model is not a single chain: layer {name!r} "
                f"takes {inbound or 'no input'} instead of just {prev!r} (branches, "
                f"multiple inputs and shared layers are not supported)"
            )
        prev = name
    outputs = _inbound_names(cfg.get("output_layers", []))
    if outputs != [prev]:
        raise KerasImportError(f"{path}: the functional model's outputs {outputs} are not its last layer {prev!r}")


# --------------------------------------------------------------------------- converting layers


def _unsupported(layer: KerasLayer, why: str = "") -> KerasImportError:
    return KerasImportError(
        f"unsupported {layer.label}{': ' + why if why else ''}; supported layers: {', '.join(SUPPORTED_LAYERS)}"
    )


def _activation(layer: KerasLayer, key: str, keras2: bool, default: str = "linear") -> str:
    act = layer.config.get(key, default)
    if isinstance(act, dict):  # Keras 3 may serialize a built-in as {"class_name": "function", "config": "relu"}
        act = act.get("config") if isinstance(act.get("config"), str) else act.get("class_name")
    act = "linear" if act in (None, "None") else str(act)
    if act == "hard_sigmoid" and keras2:
        act = "hard_sigmoid_keras2"  # Keras 2: clip(0.2x + 0.5); Keras 3: relu6(x + 3) / 6
    if act not in ACTIVATIONS or (act == "softmax" and key == "recurrent_activation"):
        raise KerasImportError(
            f"{layer.label}: unsupported {key} {act!r}; supported: linear, sigmoid, tanh, relu, softmax, hard_sigmoid"
        )
    return act


def _int(v: Any) -> int:
    """Keras stores 1-D sizes as ``[k]`` or ``k``."""
    return int(v[0] if isinstance(v, (list, tuple)) else v)


def _check_channels_last(layer: KerasLayer) -> None:
    if layer.config.get("data_format", "channels_last") not in ("channels_last", None):
        raise _unsupported(layer, "only data_format='channels_last' is supported")


def _recurrent_spec(
    layer: KerasLayer, cell: str, cfg: dict, input_size: int, bidirectional: bool, keras2: bool
) -> dict[str, Any]:
    """Spec of an LSTM/GRU (``cell``) with config ``cfg`` (the wrapped layer's, for Bidirectional)."""
    inner = KerasLayer(cell, layer.name, cfg)
    if cfg.get("return_state"):
        raise _unsupported(layer, "return_state=True")
    if cfg.get("go_backwards") and not bidirectional:
        raise _unsupported(layer, "go_backwards=True outside Bidirectional")
    if cfg.get("time_major"):
        raise _unsupported(layer, "time_major=True")
    kind = "lstm" if cell == "LSTM" else "gru"
    spec = {
        "type": kind,
        "input_size": input_size,
        "units": int(cfg["units"]),
        "bidirectional": bidirectional,
        "return_sequences": bool(cfg.get("return_sequences", False)),
        "activation": _activation(inner, "activation", keras2, "tanh"),
        "recurrent_activation": _activation(inner, "recurrent_activation", keras2, "sigmoid"),
        "use_bias": bool(cfg.get("use_bias", True)),
    }
    if kind == "gru":
        spec["reset_after"] = bool(cfg.get("reset_after", False))  # Keras <= 2.2 files omit it: default False
    return spec


def _layer_spec(layer: KerasLayer, shape: tuple[int, ...], keras2: bool) -> tuple[dict | None, tuple[int, ...]]:
    """One Keras layer -> (spec or None for an inference no-op, output shape without batch)."""
    cls, cfg = layer.cls, layer.config
    seq = len(shape) == 2  # (T, C) vs (C,)
    if cls in _INFERENCE_IDENTITY:
        return None, shape
    if cls in ("LSTM", "GRU", "Bidirectional"):
        if not seq:
            raise _unsupported(layer, f"it needs a sequence input [batch, time, features], got {list(shape)}")
        bidirectional = cls == "Bidirectional"
        cell, rcfg = cls, cfg
        if bidirectional:
            inner = cfg.get("layer") or {}
            inner_cls = _ALIASES.get(str(inner.get("class_name")), inner.get("class_name"))
            if inner_cls not in ("LSTM", "GRU"):
                raise _unsupported(layer, f"it wraps a {inner_cls!r} (only LSTM and GRU can be wrapped)")
            if cfg.get("merge_mode", "concat") != "concat":
                raise _unsupported(layer, f"merge_mode={cfg.get('merge_mode')!r} (only 'concat' is supported)")
            cell, rcfg = inner_cls, inner.get("config") or {}
            back = (cfg.get("backward_layer") or {}).get("config")
            keys = ("units", "activation", "recurrent_activation", "use_bias", "return_sequences", "reset_after")
            if back and any(back.get(k) != rcfg.get(k) for k in keys):
                raise _unsupported(layer, "its backward layer differs from its forward layer")
        spec = _recurrent_spec(layer, cell, rcfg, shape[1], bidirectional, keras2)
        width = spec["units"] * (2 if bidirectional else 1)
        return spec, ((shape[0], width) if spec["return_sequences"] else (width,))
    if cls == "Dense":
        if cfg.get("lora_rank") or cfg.get("quantization_config"):
            raise _unsupported(layer, "LoRA or quantized Dense layers")
        spec = {
            "type": "dense",
            "in_features": shape[-1],
            "units": int(cfg["units"]),
            "activation": _activation(layer, "activation", keras2),
            "use_bias": bool(cfg.get("use_bias", True)),
        }
        return spec, (*shape[:-1], spec["units"])
    if cls == "Activation":
        return {"type": "activation", "activation": _activation(layer, "activation", keras2)}, shape
    if cls == "Flatten":
        _check_channels_last(layer)
        return (None, shape) if not seq else ({"type": "flatten"}, (shape[0] * shape[1],))
    if cls in ("GlobalMaxPooling1D", "GlobalAveragePooling1D"):
        _check_channels_last(layer)
        if not seq:
            raise _unsupported(layer, f"it needs a sequence input, got {list(shape)}")
        keep = bool(cfg.get("keepdims", False))
        kind = "global_max_pool" if cls == "GlobalMaxPooling1D" else "global_avg_pool"
        return {"type": kind, "keepdims": keep}, ((1, shape[1]) if keep else (shape[1],))
    if cls in ("MaxPooling1D", "AveragePooling1D"):
        _check_channels_last(layer)
        if cfg.get("padding", "valid") != "valid":
            raise _unsupported(layer, "only padding='valid' is supported")
        size = _int(cfg.get("pool_size", 2))
        stride = _int(cfg.get("strides") or size)
        steps = (shape[0] - size) // stride + 1
        if not seq or steps < 1:
            raise _unsupported(layer, f"pool_size {size} does not fit the input {list(shape)}")
        kind = "max_pool1d" if cls == "MaxPooling1D" else "avg_pool1d"
        return {"type": kind, "pool_size": size, "strides": stride}, (steps, shape[1])
    if cls == "Conv1D":
        _check_channels_last(layer)
        if not seq:
            raise _unsupported(layer, f"it needs a sequence input, got {list(shape)}")
        if int(cfg.get("groups", 1)) != 1:
            raise _unsupported(layer, "groups > 1")
        padding = cfg.get("padding", "valid")
        k, s, d = _int(cfg["kernel_size"]), _int(cfg.get("strides", 1)), _int(cfg.get("dilation_rate", 1))
        if padding not in ("valid", "same") or (padding == "same" and s != 1):
            raise _unsupported(
                layer, f"padding={padding!r} with strides={s} (supported: 'valid', or 'same' with strides=1)"
            )
        steps = shape[0] if padding == "same" else (shape[0] - d * (k - 1) - 1) // s + 1
        if steps < 1:
            raise _unsupported(layer, f"kernel_size {k} does not fit the input length {shape[0]}")
        spec = {
            "type": "conv1d",
            "in_channels": shape[1],
            "filters": int(cfg["filters"]),
            "kernel_size": k,
            "strides": s,
            "dilation_rate": d,
            "padding": padding,
            "activation": _activation(layer, "activation", keras2),
            "use_bias": bool(cfg.get("use_bias", True)),
        }
        return spec, (steps, spec["filters"])
    raise _unsupported(layer)


def _fixed_length(kf: KerasFile) -> int | None:
    """The model's input length if the file fixes it (Input shape, build shape, input_length)."""
    cfg = kf.model_config.get("config")
    candidates = []
    if isinstance(cfg, dict):
        candidates.append(cfg.get("build_input_shape"))
    for layer in kf.layers[:2]:
        c = layer.config
        candidates += [
            c.get("batch_shape"),
            c.get("batch_input_shape"),
            (c.get("build_config") or {}).get("input_shape"),
        ]
        if c.get("input_length"):
            candidates.append([None, c["input_length"]])
    for shape in candidates:
        if isinstance(shape, list) and len(shape) >= 2 and isinstance(shape[1], int):
            return shape[1]
    return None


# --------------------------------------------------------------------------- vocabulary


def _read_json_arg(obj: str | Path | dict, what: str) -> Any:
    if isinstance(obj, dict):
        return obj
    if not Path(obj).exists():
        raise KerasImportError(f"{obj}: no such {what} file")
    # a regular file, size-capped before it is read, depth-bounded (seqshap.safe_files)
    return safe_files.read_json(obj, MAX_WORD_INDEX_BYTES, f"a {what} file", error=KerasImportError)


def _tokenizer_config(obj: Any) -> dict | None:
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


def _check_word_index(wi: Any, source: str) -> dict[str, int]:
    if not isinstance(wi, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in wi.items()
    ):
        raise KerasImportError(
            f'{source}: not a word index: expected a JSON object {{"word": rank, ...}} '
            f"(keras.datasets.imdb.get_word_index()) or a Tokenizer.to_json() object"
        )
    return wi


def _imdb_vocab(wi: dict[str, int], num_words: int) -> Vocab:
    """Keras imdb scheme (``index_from=3``): the word of rank r (from 1) has id r + 3 (id 3 is
    unused); ids past the embedding's rows were out-of-vocabulary (``num_words``) in training."""
    return Vocab(
        {w: r + IMDB_INDEX_FROM for w, r in wi.items() if r >= 1 and r + IMDB_INDEX_FROM < num_words}, num_words
    )


def _tokenizer_vocab(cfg: dict, source: str, emb: np.ndarray) -> tuple[Vocab, np.ndarray, str]:
    """Keras ``Tokenizer`` ids (0 pad, words from 1, optional oov_token) -> seqshap's scheme
    (0 pad, 1 start, 2 OOV, words from 3) by moving embedding rows: Tokenizer id j -> j + 2.

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
    wi = _check_word_index(_maybe_json(cfg.get("word_index"), source), source)
    rows = emb.shape[0]
    limit = min(rows, int(cfg["num_words"])) if cfg.get("num_words") else rows
    new = np.zeros((limit + FIRST_WORD_ID - 1, emb.shape[1]), dtype=emb.dtype)
    new[PAD] = new[START] = emb[0]
    oov = cfg.get("oov_token")
    # Unknown words: the oov_token's row; without one Keras drops them, padding is the closest.
    new[OOV] = emb[wi[oov]] if oov is not None and oov in wi and wi[oov] < limit else emb[0]
    new[FIRST_WORD_ID:] = emb[1:limit]
    vocab = Vocab({w: j + FIRST_WORD_ID - 1 for w, j in wi.items() if 1 <= j < limit}, len(new))
    note = (
        f"Keras Tokenizer ({len(vocab.word_to_id)} words); its ids j became j + 2 (seqshap: 0 pad, "
        f"1 start, 2 out-of-vocabulary)"
    )
    return vocab, new, note


# --------------------------------------------------------------------------- the conversion


def convert(kf: KerasFile, maxlen: int | None = None) -> tuple[KerasSequential, dict[str, Any]]:
    """Build the PyTorch twin of a parsed Keras file; returns ``(net, model kwargs)``."""
    keras2 = kf.keras_version.startswith(("1.", "2."))
    layers = [layer for layer in kf.layers if layer.cls != "InputLayer"]
    if not layers or layers[0].cls != "Embedding":
        first = layers[0].label if layers else "nothing"
        raise KerasImportError(
            f"{kf.path}: the model must start with an Embedding layer (seqshap explains "
            f"token ids), but its first layer is {first}"
        )
    emb = layers[0]
    if emb.config.get("mask_zero"):
        raise KerasImportError(
            f"{emb.label} has mask_zero=True: masked models are not supported (DeepSHAP "
            f"works on embeddings, where the padding mask is undefined); retrain with "
            f"mask_zero=False"
        )
    fixed = _fixed_length(kf)
    if maxlen is not None and fixed is not None and int(maxlen) != fixed:
        raise KerasImportError(f"{kf.path}: the model's input length is {fixed}, but maxlen={maxlen} was given")
    T = int(maxlen) if maxlen is not None else fixed
    if T is None:
        raise KerasImportError(
            f"{kf.path}: the model's input length is not fixed in the file; pass maxlen "
            f"(--maxlen), the length the texts were padded to (80 in the seed notebook)"
        )
    if T < 1:
        raise KerasImportError(f"maxlen must be >= 1, got {T}")
    rows, dim = int(emb.config["input_dim"]), int(emb.config["output_dim"])
    shape: tuple[int, ...] = (T, dim)
    specs = []
    for layer in layers[1:]:
        spec, shape = _layer_spec(layer, shape, keras2)
        if spec is not None:
            specs.append(dict(spec, keras_name=layer.name, keras_class=layer.cls))
    if len(shape) != 1:
        raise KerasImportError(
            f"{kf.path}: the model's output has shape [batch, {', '.join(map(str, shape))}]; "
            f"a classifier must end in [batch, outputs] (add pooling, Flatten or "
            f"return_sequences=False)"
        )
    kwargs = {"vocab_size": rows, "embed_dim": dim, "layers": specs}
    try:
        net = KerasSequential(vocab_size=rows, embed_dim=dim, layers=specs)
    except ValueError as e:
        raise KerasImportError(f"{kf.path}: {e}") from None
    # Load the weights, layer by layer, with Keras' layouts converted by each module.
    with torch.no_grad():
        if len(emb.weights) != 1:
            raise KerasImportError(
                f"{kf.path}: {emb.label} should have 1 weight array, the file has {len(emb.weights)}"
            )
        if tuple(emb.weights[0].shape) != (rows, dim):
            raise KerasImportError(
                f"{kf.path}: {emb.label} weights have shape {emb.weights[0].shape}, its config says {(rows, dim)}"
            )
        net.embedding.weight.copy_(torch.from_numpy(np.asarray(emb.weights[0], dtype=np.float32)))
        by_name = {layer.name: layer for layer in layers}
        for spec, module in zip(specs, net.layers, strict=True):
            layer = by_name[spec["keras_name"]]
            load = getattr(module, "load_keras", None)
            if callable(load):
                try:
                    load(layer.weights, f"{kf.path}: {layer.label}")
                except ValueError as e:
                    raise KerasImportError(str(e)) from None
            elif layer.weights:
                raise KerasImportError(f"{kf.path}: {layer.label} has weights the converter does not expect")
    net.eval()
    return net, kwargs


def output_space(specs: list[dict]) -> str:
    """ "probability" if the model ends in a sigmoid/softmax, else "raw"."""
    acts = [s["activation"] for s in specs if s["type"] in ("dense", "activation")]
    return "probability" if acts and acts[-1] in ("sigmoid", "softmax") else "raw"


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


def _class_names(net: KerasSequential, T: int, classes: Sequence[str] | None) -> list[str] | None:
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


def import_keras(
    path: str | Path,
    out_dir: str | Path,
    word_index: str | Path | dict | None = None,
    maxlen: int | None = None,
    name: str | None = None,
    classes: str | Path | Sequence[str] | None = None,
) -> SeqshapModel:
    """Convert a Keras ``.keras``/``.h5`` model into a seqshap model directory and load it.

    ``word_index``: a path to (or the dict of) the Keras imdb word index ``{"word": rank}``
    (``keras.datasets.imdb.get_word_index()``; ids = rank + 3) or a ``Tokenizer.to_json()``;
    None gives a vocabulary of placeholder words ``id3``, ``id4``, ... (the model explains ids).
    ``maxlen``: required only when the file does not fix the input length.
    ``classes``: the class names of the outputs (:func:`read_classes`); a softmax head keeps all
    its columns, named ``class_0, class_1, ...`` when not given (``negative, positive`` for two).
    """
    names = read_classes(classes) if classes is not None else None
    kf = read_keras_file(path)
    net, kwargs = convert(kf, maxlen)
    T = int(maxlen) if maxlen is not None else _fixed_length(kf)
    rows = kwargs["vocab_size"]
    if word_index is None:
        vocab = Vocab({ID_TOKEN.format(i): i for i in range(FIRST_WORD_ID, rows)}, rows)
        note = (
            f"none given: the model explains word ids, shown as '{ID_TOKEN.format(42)}' for id 42 "
            f"(pass the Keras word index or Tokenizer JSON to see words)"
        )
    else:
        source = "word index" if isinstance(word_index, dict) else str(word_index)
        obj = _read_json_arg(word_index, "word index")
        tok = _tokenizer_config(obj)
        if tok is not None:
            vocab, new_emb, note = _tokenizer_vocab(tok, source, net.embedding.weight.detach().numpy())
            kwargs["vocab_size"] = len(new_emb)
            old = net
            net = KerasSequential(**kwargs)
            net.load_state_dict({**old.state_dict(), "embedding.weight": torch.from_numpy(new_emb)})
            net.eval()
        else:
            vocab = _imdb_vocab(_check_word_index(obj, source), rows)
            note = (
                f"Keras imdb word index ({len(vocab.word_to_id)} words within the embedding's {rows} rows; "
                f"id = rank + 3, 1 start, 2 out-of-vocabulary)"
            )
    assert T is not None  # convert() refused a model without a length
    class_names = _class_names(net, T, names)
    config = {
        "name": name or Path(path).stem,
        "arch": "keras",
        "maxlen": T,
        "model": kwargs,
        **({"classes": class_names} if class_names is not None else {}),
        "output_space": output_space(kwargs["layers"]),
        "imported_from": {
            "file": Path(path).name,
            "format": kf.format,
            "keras_version": kf.keras_version,
            "layers": [f"{layer.name} ({layer.cls})" for layer in kf.layers if layer.cls != "InputLayer"],
            "vocabulary": note,
        },
    }
    metrics = {"source": f"imported from Keras file {Path(path).name}", "vocabulary": note}
    save_model(out_dir, net, vocab, config, metrics)
    return load(out_dir)
