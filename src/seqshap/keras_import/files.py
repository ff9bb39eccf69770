"""Reading ``.keras`` (Keras 3 zip) and ``.h5`` (Keras 2 or 3) model files with ``zipfile``/``json``/``h5py``
only: TensorFlow and Keras are not needed. Every size is checked before anything is read into memory.

The result is a :class:`KerasFile`: the model's config, its layers (each with its config and weight
arrays, in the file's order) and, for a ``.keras`` file, the assets a layer saved (the vocabulary of a
``TextVectorization``)."""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import KerasImportError

_ZIP_MAGIC, _HDF5_MAGIC = b"PK\x03\x04", b"\x89HDF\r\n\x1a\n"
# Trained weights barely compress (about 1.1x; a mostly-zero model perhaps 10x), a zip or HDF5
# compression bomb inflates ~1000x: past a small size, a member or dataset that declares more than
# MAX_RATIO times what it stores is refused.
MAX_JSON_BYTES = 64 << 20  # config.json / metadata.json in a .keras archive
MAX_WEIGHTS_BYTES = 4 << 30  # model.weights.h5 in a .keras archive, and any one weight array
MAX_ASSET_BYTES = 256 << 20  # one asset (a TextVectorization vocabulary.txt)
MAX_RATIO = 50
RATIO_FREE_BYTES = 16 << 20  # below this, any compression is fine

OPS_MODULE = "keras.src.ops"  # Keras 3 records keras.ops calls of a functional model as nodes from here
# keras.ops classes a functional graph may record (position ids, the masks Keras derives), by op name.
OPS = {
    "NotEqual": "not_equal",
    "Equal": "equal",
    "LogicalOr": "logical_or",
    "LogicalAnd": "logical_and",
    "LogicalNot": "logical_not",
    "Any": "any",
    "All": "all",
    "ExpandDims": "expand_dims",
    "Squeeze": "squeeze",
    "OnesLike": "ones_like",
    "ZerosLike": "zeros_like",
    "Cumsum": "cumsum",
    "Cast": "cast",
    "Add": "add",
    "Subtract": "subtract",
    "Multiply": "multiply",
    "Concatenate": "concatenate",
}


@dataclass
class KerasLayer:
    """One layer (or ``keras.ops`` call) of the saved model: Keras class, name, config, weight arrays
    (file order), inbound nodes as saved, and the module Keras 3 names (None in Keras 2 files)."""

    cls: str
    name: str
    config: dict[str, Any]
    inbound: Any = None
    module: str | None = None
    registered_name: str | None = None
    weights: list[np.ndarray] = field(default_factory=list)
    assets: dict[str, bytes] = field(default_factory=dict)
    # a whole model used as a layer: its own config and layers (named "<this layer>/<its name>")
    submodel: dict[str, Any] | None = None
    sublayers: list[KerasLayer] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"layer {self.name!r} ({self.cls})"

    @property
    def is_op(self) -> bool:
        """A ``keras.ops`` call, not a layer. A Keras 3 ``.h5`` file does not say the module: a call's
        config then holds no ``trainable`` flag, which every layer's has."""
        if self.module:
            return self.module.startswith(OPS_MODULE)
        return self.cls in OPS and "trainable" not in self.config


@dataclass
class KerasFile:
    """What a ``.keras``/``.h5`` file holds: the model's layers (in order), its top-level config
    and the Keras version that wrote it."""

    path: Path
    format: str  # "keras" or "h5"
    keras_version: str
    model_config: dict[str, Any]
    layers: list[KerasLayer]

    @property
    def keras2(self) -> bool:
        return self.keras_version.startswith(("1.", "2."))


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
            layers = layers_from_config(path, config)
            _attach_assets(path, z, names, layers)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as e:
        raise KerasImportError(f"{path}: corrupt or truncated .keras archive ({e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise KerasImportError(f"{path}: corrupt .keras file: config.json is not valid JSON ({e})") from None
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


def snake(name: str) -> str:
    """Keras' ``naming.to_snake_case``: how ``.keras`` files name a layer's weights and assets."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _vars(path: Path, group) -> list[np.ndarray]:
    """Datasets ``vars/0``, ``vars/1``, ... of a ``.keras`` weights group, in index order."""
    if group is None or "vars" not in group:
        return []
    v = group["vars"]
    return [_array(path, v[k]) for k in sorted(v, key=int)]


# Where a layer's weights live inside its group of a .keras weights file (sub-layers in Keras' order).
_SUBGROUPS = {
    "LSTM": ("cell",),
    "GRU": ("cell",),
    "SimpleRNN": ("cell",),
    "Bidirectional": ("forward_layer/cell", "backward_layer/cell"),
    "MultiHeadAttention": ("query_dense", "key_dense", "value_dense", "output_dense"),
    "TimeDistributed": ("layer",),
}


def _layer_keys(layers: list[KerasLayer]):
    """``(layer, key)`` for every layer (not ``keras.ops`` calls): ``layers/<snake_case(class)>[_n]``,
    the n-th layer of a class getting the suffix ``_n``, in ``model.layers`` order."""
    seen: dict[str, int] = {}
    for layer in layers:
        if layer.is_op:
            continue
        key = snake(layer.cls)  # the Python class name, which Keras 3 configs record as class_name
        seen[key] = seen.get(key, -1) + 1
        yield layer, (f"{key}_{seen[key]}" if seen[key] else key)


def _attach_keras3_weights(path: Path, h5, layers: list[KerasLayer]) -> None:
    """Weights of ``layers`` from ``h5["layers"]`` (a model used as a layer keeps its own ``layers``)."""
    if "layers" not in h5:
        raise KerasImportError(f"{path}: corrupt .keras file: model.weights.h5 has no 'layers' group")
    for layer, key in _layer_keys(layers):
        g = h5["layers"].get(key)
        if g is None:
            continue
        if layer.sublayers:
            _attach_keras3_weights(path, g, layer.sublayers)
            continue
        subs = _SUBGROUPS.get(layer.cls)
        layer.weights = [w for s in subs for w in _vars(path, g.get(s))] if subs else _vars(path, g)


def _attach_assets(
    path: Path, z: zipfile.ZipFile, names: set[str], layers: list[KerasLayer], where: str = "assets/layers/"
) -> None:
    """A ``.keras`` layer's saved assets (``assets/layers/<key>/...``), e.g. a vocabulary."""
    for layer, key in _layer_keys(layers):
        prefix = f"{where}{key}/"
        if layer.sublayers:
            _attach_assets(path, z, names, layer.sublayers, f"{prefix}layers/")
            continue
        for name in names:
            if name.startswith(prefix) and not name.endswith("/"):
                layer.assets[name[len(prefix) :]] = _read_member(path, z, name, MAX_ASSET_BYTES)


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
            layers = layers_from_config(path, config)
            root = h5.get("model_weights", h5)
            for layer in layers:
                g = root.get(layer.name)
                if g is None:
                    continue
                names = [n.decode() if isinstance(n, bytes) else str(n) for n in g.attrs.get("weight_names", [])]
                try:
                    if not layer.sublayers:
                        layer.weights = [_array(path, g[n]) for n in names]
                    for sub in leaves(layer.sublayers):  # a model used as a layer lists "<its layer>/<weight>"
                        rel = sub.name[len(layer.name) + 1 :] + "/"
                        sub.weights = [_array(path, g[n]) for n in names if n.startswith(rel)]
                except KeyError as e:
                    raise KerasImportError(
                        f"{path}: corrupt .h5 file: {layer.label} lists weight {e} that is not in the file"
                    ) from None
    except (OSError, RuntimeError) as e:
        raise KerasImportError(f"{path}: corrupt or truncated .h5 file ({e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise KerasImportError(f"{path}: corrupt .h5 file: its model_config is not valid JSON ({e})") from None
    return KerasFile(path, "h5", version, config, layers)


# Other names Keras has used for the same classes in saved configs.
ALIASES = {
    "Convolution1D": "Conv1D",
    "MaxPool1D": "MaxPooling1D",
    "AvgPool1D": "AveragePooling1D",
    "AveragePool1D": "AveragePooling1D",
    "GlobalMaxPool1D": "GlobalMaxPooling1D",
    "GlobalAvgPool1D": "GlobalAveragePooling1D",
    "GlobalAveragePool1D": "GlobalAveragePooling1D",
}


NESTED = ("Functional", "Sequential", "Model")


def leaves(layers: list[KerasLayer]) -> list[KerasLayer]:
    """The layers, with every model used as a layer replaced by its own layers (at any depth)."""
    return [leaf for layer in layers for leaf in (leaves(layer.sublayers) if layer.sublayers else [layer])]


def layers_from_config(path: Path, config: Any, prefix: str = "") -> list[KerasLayer]:
    """Model config -> its layers (and ``keras.ops`` calls) in order; a model used as a layer brings its
    own layers along, named ``prefix + name``."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise KerasImportError(f"{path}: corrupt model config (no class_name)")
    cls, cfg = config["class_name"], config.get("config")
    if cls == "Sequential":
        raw = cfg if isinstance(cfg, list) else (cfg or {}).get("layers")  # Keras <= 2.2 used a bare list
    elif cls in ("Functional", "Model"):
        raw = (cfg or {}).get("layers")
    else:
        raise KerasImportError(
            f"{path}: the model is a {cls!r}; only Sequential and Functional models can be imported "
            f"(a subclassed model is not saved with a layer config: rebuild it with keras.Model(inputs, outputs))"
        )
    if not isinstance(raw, list) or not raw:
        raise KerasImportError(f"{path}: corrupt model config (no layer list)")
    layers = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or "class_name" not in item:
            raise KerasImportError(f"{path}: corrupt model config (layer {i} has no class_name)")
        lcfg = item.get("config") or {}
        if not isinstance(lcfg, dict):
            raise KerasImportError(f"{path}: corrupt model config (layer {i}'s config is not an object)")
        name = str(item.get("name") or lcfg.get("name") or f"layer_{i}")
        layer = KerasLayer(
            str(ALIASES.get(item["class_name"], item["class_name"])),
            prefix + name,
            lcfg,
            item.get("inbound_nodes"),
            item.get("module"),
            item.get("registered_name"),
        )
        if layer.cls in NESTED:
            layer.submodel = {"class_name": layer.cls, "config": lcfg}
            layer.sublayers = layers_from_config(path, layer.submodel, prefix + name + "/")
        layers.append(layer)
    return layers
