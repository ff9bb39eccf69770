"""A saved Keras model's graph -> the JSON graph of its PyTorch twin (``KerasModel``'s
``layers``/``calls``/``output``), with Keras' implicit padding masks made explicit.

Keras passes masks implicitly: a tensor carries the mask of the layer that made it
(``Embedding(mask_zero=True)``, ``Masking``), layers that support masking hand it on, and a
layer that reads one (LSTM/GRU/SimpleRNN, GlobalAveragePooling1D, MultiHeadAttention, Softmax)
gets it from its input. This module replays that, node by node in the order Keras runs them
(:func:`run_order`, Keras' own ``map_graph``), so each call of the twin names the mask tensor
Keras would have used. Keras 3 quirks are replayed too: a layer without mask support drops the
mask; MultiHeadAttention removes the masks of the tensors it reads (so a residual ``Add`` after
it sees none), and a layer that returns its input itself (Dropout at inference) shares its mask.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import KerasImportError
from ..models.keras.graph import INPUT
from .files import OPS, KerasFile, KerasLayer
from .layers import DROPS_MASK, MERGES, RECURRENT, SUPPORTED, Shape, layer_spec, unsupported

TEXT = "<text>"  # the string input of a model that starts with TextVectorization

_OP_PARAMS = ("axis", "keepdims", "dtype")
_CODE_LAYERS = ("Lambda", "TFOpLambda", "SlicingOpLambda")


@dataclass(frozen=True)
class Ref:
    """A Keras tensor: output ``tensor`` of call ``node`` of layer ``layer``."""

    layer: str
    node: int = 0
    tensor: int = 0

    @property
    def key(self) -> str:
        return self.layer if (self.node, self.tensor) == (0, 0) else f"{self.layer}:{self.node}:{self.tensor}"


@dataclass(frozen=True)
class Const:
    value: Any


@dataclass
class Node:
    """One call of a layer (or op) as saved: its positional and keyword arguments (Refs inside)."""

    layer: KerasLayer
    index: int
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)

    @property
    def out(self) -> Ref:
        return Ref(self.layer.name, self.index, 0)

    def refs(self) -> list[Ref]:
        """Input tensors in Keras' order (``tree.flatten((args, kwargs))``: kwargs by sorted key)."""
        found: list[Ref] = []

        def walk(x: Any) -> None:
            if isinstance(x, Ref):
                found.append(x)
            elif isinstance(x, dict):
                for k in sorted(x):
                    walk(x[k])
            elif isinstance(x, (list, tuple)):
                for v in x:
                    walk(v)

        walk(self.args)
        walk(self.kwargs)
        return found


def _keras3_value(x: Any) -> Any:
    if isinstance(x, dict):
        kind = x.get("class_name")
        if kind == "__keras_tensor__":
            h = (x.get("config") or {}).get("keras_history") or []
            return Ref(str(h[0]), int(h[1]), int(h[2]))
        if kind == "__tensor__":
            return Const((x.get("config") or {}).get("value"))
        return {k: _keras3_value(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_keras3_value(v) for v in x]
    return x


def _is_ref_list(x: Any) -> bool:
    return isinstance(x, list) and len(x) >= 3 and isinstance(x[0], str) and isinstance(x[1], int)


def _keras2_value(x: Any) -> Any:
    if _is_ref_list(x):
        return Ref(x[0], int(x[1]), int(x[2]))
    if isinstance(x, dict):
        return {k: _keras2_value(v) for k, v in x.items()}
    return x


def _parse_node(layer: KerasLayer, index: int, raw: Any) -> Node:
    if isinstance(raw, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
        args = _keras3_value(raw.get("args") or [])
        kwargs = _keras3_value(raw.get("kwargs") or {})
        return Node(layer, index, list(args), dict(kwargs))
    if isinstance(raw, list) and raw and all(_is_ref_list(e) for e in raw):  # Keras 2: [[name, node, tensor, kwargs]]
        refs = [Ref(e[0], int(e[1]), int(e[2])) for e in raw]
        extra: dict[str, Any] = {}
        for e in raw:
            if len(e) > 3 and isinstance(e[3], dict):
                extra.update(_keras2_value(e[3]))
        return Node(layer, index, [refs[0]] if len(refs) == 1 else [refs], extra)
    raise KerasImportError(f"corrupt model config: {layer.label} has an inbound node that cannot be read")


def _refs_of(x: Any) -> list[Ref]:
    """``input_layers``/``output_layers`` of a functional config: one ``[name, node, tensor]``, a list or a dict."""
    if _is_ref_list(x):
        return [Ref(x[0], int(x[1]), int(x[2]))]
    if isinstance(x, dict):
        return [r for v in x.values() for r in _refs_of(v)]
    if isinstance(x, list):
        return [r for v in x for r in _refs_of(v)]
    return []


@dataclass
class Graph:
    nodes: dict[tuple[str, int], Node]
    inputs: list[Ref]
    outputs: list[Ref]


BRIDGE = "<bridge>"  # stands for a model used as a layer: its input and output are the outer tensors


def _renamed(x: Any, prefix: str) -> Any:
    if not prefix:
        return x
    if isinstance(x, Ref):
        return Ref(prefix + x.layer, x.node, x.tensor)
    if isinstance(x, dict):
        return {k: _renamed(v, prefix) for k, v in x.items()}
    if isinstance(x, list):
        return [_renamed(v, prefix) for v in x]
    return x


def parse_graph(kf: KerasFile) -> Graph:
    """The file's layers as call nodes; a Sequential model becomes a chain, and a model used as a
    layer is opened up (its nodes join the graph between two bridges)."""
    return _graph(kf.path, kf.model_config, kf.layers, "")


def _open_up(path: Path, layer: KerasLayer, args: list, nodes: dict[tuple[str, int], Node]) -> Ref:
    """Add the nodes of ``layer`` (a whole model used as a layer, called on ``args``) to ``nodes``;
    returns the tensor it gives."""
    assert layer.submodel is not None
    inner = _graph(path, layer.submodel, layer.sublayers, layer.name + "/")
    if len(inner.inputs) != 1 or len(inner.outputs) != 1 or len(args) != 1 or not isinstance(args[0], Ref):
        raise unsupported(layer, "a model used as a layer must take one input and give one output")
    nodes.update(inner.nodes)
    first = inner.inputs[0]
    nodes[(first.layer, first.node)] = Node(KerasLayer(BRIDGE, first.layer, {}), first.node, [args[0]])
    nodes[(layer.name, 0)] = Node(KerasLayer(BRIDGE, layer.name, {}), 0, [inner.outputs[0]])
    return Ref(layer.name)


def _graph(path: Path, model_config: dict[str, Any], layers: list[KerasLayer], prefix: str) -> Graph:
    cfg = model_config.get("config")
    nodes: dict[tuple[str, int], Node] = {}
    if model_config.get("class_name") == "Sequential" or not any(layer.inbound for layer in layers):
        if layers and layers[0].cls == "InputLayer":
            first, rest = layers[0], layers[1:]
        else:
            first = KerasLayer("InputLayer", prefix + "<input>", {"dtype": "int32"})
            rest = layers
        nodes[(first.name, 0)] = Node(first, 0)
        prev = Ref(first.name)
        for layer in rest:
            if layer.sublayers:
                prev = _open_up(path, layer, [prev], nodes)
            else:
                nodes[(layer.name, 0)] = Node(layer, 0, [prev])
                prev = Ref(layer.name)
        return Graph(nodes, [Ref(first.name)], [prev])
    for layer in layers:
        raw = layer.inbound or []
        if not isinstance(raw, list):
            raise KerasImportError(f"{path}: corrupt model config: {layer.label} has no list of inbound nodes")
        if layer.cls == "InputLayer" or not raw:
            nodes[(layer.name, 0)] = Node(layer, 0)
            continue
        parsed = [_parse_node(layer, i, r) for i, r in enumerate(raw)]
        for node in parsed:
            node.args, node.kwargs = _renamed(node.args, prefix), _renamed(node.kwargs, prefix)
        if layer.sublayers:
            if len(parsed) != 1:
                raise unsupported(layer, "a model used as a layer more than once (call its layers directly)")
            _open_up(path, layer, parsed[0].args, nodes)
            continue
        for node in parsed:
            nodes[(layer.name, node.index)] = node
    # A functional model used as a layer has a first node of its own (input to output), which the
    # model's inputs and outputs count and its layers' inbound nodes do not: Keras takes 1 off.
    functional = {layer.name for layer in layers if layer.cls in ("Functional", "Model")}
    inputs, outputs = (
        [Ref(r.layer, r.node - (r.layer in functional), r.tensor) for r in _renamed(_refs_of(refs), prefix)]
        for refs in ((cfg or {}).get("input_layers"), (cfg or {}).get("output_layers"))
    )
    if not inputs or not outputs:
        raise KerasImportError(f"{path}: corrupt model config: the functional model lists no inputs or outputs")
    for ref in [*inputs, *outputs, *(r for n in nodes.values() for r in n.refs())]:
        if (ref.layer, ref.node) not in nodes:
            raise KerasImportError(f"{path}: corrupt model config: tensor {ref.key!r} comes from no layer")
    return Graph(nodes, inputs, outputs)


def run_order(graph: Graph) -> list[Node]:
    """The nodes in the order Keras runs them (``keras.src.ops.function.map_graph``: a depth-first
    walk from the outputs, then by depth from the inputs, ties in first-seen order)."""
    finished: set[tuple[str, int]] = set()
    progress: set[tuple[str, int]] = set()
    decreasing: list[Node] = []
    nodes = graph.nodes

    def visit(ref: Ref) -> None:
        key = (ref.layer, ref.node)
        node = nodes[key]
        if key in finished:
            return
        if key in progress:
            raise KerasImportError(f"the model's graph has a cycle at {node.layer.label}")
        progress.add(key)
        if node.layer.cls != "InputLayer":
            for r in node.refs():
                visit(r)
        finished.add(key)
        progress.discard(key)
        decreasing.append(node)

    for out in graph.outputs:
        visit(out)
    in_graph = {(n.layer.name, n.index) for n in decreasing}
    depths: dict[tuple[str, int], int] = {}
    layer_depths: dict[str, int] = {}
    for node in reversed(decreasing):
        key = (node.layer.name, node.index)
        depth = max(depths.setdefault(key, 0), layer_depths.get(node.layer.name, 0))
        layer_depths[node.layer.name] = depths[key] = depth
        for r in node.refs():
            parent = (r.layer, r.node)
            if parent in in_graph:
                depths[parent] = max(depth + 1, depths.get(parent, 0))
    by_depth: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for key, d in depths.items():
        by_depth[d].append(key)
    return [nodes[k] for d in sorted(by_depth, reverse=True) for k in by_depth[d]]


@dataclass
class Converted:
    """The twin's graph: module specs, calls, the output tensor, and facts about the model."""

    layers: list[dict[str, Any]]
    calls: list[dict[str, Any]]
    output: str
    embedding: KerasLayer  # the token embedding (``net.embedding``)
    maxlen: int
    output_shape: Shape
    output_space: str
    text: KerasLayer | None  # the TextVectorization the model starts with, if any
    id_readers: list[KerasLayer]  # every Embedding that reads the ids
    uses: list[str]  # "name (Class)" of every layer the output depends on


class _Builder:
    def __init__(self, kf: KerasFile, maxlen: int | None):
        self.kf, self.keras2, self.maxlen = kf, kf.keras2, maxlen
        self.specs: list[dict[str, Any]] = []
        self.module_of: dict[str, int | str] = {}  # Keras layer name -> module index or "embedding"
        self.calls: list[dict[str, Any]] = []
        self.key: dict[Ref, str] = {}  # Keras tensor -> tensor name in the twin
        self.shape: dict[str, Shape] = {}
        self.slot: dict[str, int] = {}  # tensor -> its mask slot (tensors that are one object share one)
        self.mask: dict[int, str | None] = {}
        self.squash: dict[str, str] = {}  # tensor -> activation it came straight out of
        self.embedding: KerasLayer | None = None
        self.text: KerasLayer | None = None
        self.id_readers: list[KerasLayer] = []
        self.sources: dict[str, KerasLayer] = {}  # tensor -> the layer that made it

    # -- tensors and masks ---------------------------------------------------------------------
    def _new(self, name: str, shape: Shape, mask: str | None, layer: KerasLayer | None = None) -> str:
        self.shape[name] = shape
        self.slot[name] = len(self.mask)
        self.mask[self.slot[name]] = mask
        if layer is not None:
            self.sources[name] = layer
        return name

    def _get_mask(self, t: str) -> str | None:
        return self.mask.get(self.slot.get(t, -1))

    def _op(self, name: str, op: str, inputs: list, shape: Shape, **params: Any) -> str:
        self.calls.append({"name": name, "op": op, "inputs": inputs, **({"params": params} if params else {})})
        return self._new(name, shape, None)

    def _or(self, name: str, masks: list[str], op: str = "logical_or") -> str:
        out = masks[0]
        for i, m in enumerate(masks[1:]):
            out = self._op(f"{name}.{op}{i}", op, [out, m], self.shape[m])
        return out

    def _tensor(self, ref: Ref, node: Node) -> str:
        if ref not in self.key:
            raise KerasImportError(f"{node.layer.label} reads tensor {ref.key!r} before it is computed")
        return self.key[ref]

    # -- the walk ---------------------------------------------------------------------------------
    def run(self, graph: Graph) -> None:
        if len(graph.inputs) != 1:
            names = ", ".join(r.layer for r in graph.inputs)
            raise KerasImportError(
                f"{self.kf.path}: the model has {len(graph.inputs)} inputs ({names}); seqshap explains models "
                "with one input, the token ids or the text"
            )
        for node in run_order(graph):
            self._node(node, graph)

    def _node(self, node: Node, graph: Graph) -> None:
        layer, out = node.layer, node.out
        if layer.cls == BRIDGE:  # the same tensor, and mask, on either side
            self.key[out] = self._tensor(node.args[0], node)
            return
        if layer.cls == "InputLayer":
            self._input(node, graph)
            return
        if layer.cls in _CODE_LAYERS:
            raise KerasImportError(
                f"{layer.label} runs Python code that is not saved in the file; seqshap cannot read it. "
                "Write it with built-in layers or keras.ops (e.g. positions as "
                "keras.ops.cumsum(keras.ops.ones_like(ids), axis=1) - 1), retrain, and save again"
            )
        if layer.is_op:
            self._keras_op(node)
            return
        if layer.cls not in SUPPORTED:
            if layer.registered_name or (layer.module and not layer.module.startswith("keras")):
                raise KerasImportError(
                    f"{layer.label} is a custom layer class (module {layer.module or '?'}): its Python code is "
                    "not in the file, so seqshap cannot convert it. Express it with built-in layers "
                    f"({', '.join(SUPPORTED)}) and keras.ops, retrain, and save again"
                )
            raise unsupported(layer)
        if layer.cls == "TextVectorization":
            self._text_vectorization(node)
            return
        args = [self._resolve(a, node) for a in node.args]
        kwargs = {k: self._resolve(v, node) for k, v in node.kwargs.items()}
        if layer.cls == "MultiHeadAttention":
            self._attention(node, args, kwargs)
            return
        first = args[0] if args else None
        given = first if isinstance(first, list) else [first]
        if not given or not all(isinstance(t, str) for t in given):
            raise KerasImportError(f"{layer.label} is called on something other than tensors")
        tensors: list[str] = [str(t) for t in given]
        extra = [k for k, v in kwargs.items() if k != "mask" and isinstance(v, (str, list))]
        if extra:
            raise unsupported(
                layer, f"it is called with tensor argument {extra[0]!r} (only its input and mask are supported)"
            )
        explicit = kwargs.get("mask")
        if explicit is not None and not isinstance(explicit, str):
            raise unsupported(layer, "a mask argument that is not a tensor")
        previous: Any = (
            explicit
            if explicit is not None
            else ([self._get_mask(t) for t in tensors] if isinstance(first, list) else self._get_mask(tensors[0]))
        )
        if layer.cls == "Embedding":
            self._embedding(node, tensors[0])
            return
        shapes = [self.shape[t] for t in tensors]
        masked = previous is not None and not isinstance(previous, list)
        spec, shape = layer_spec(layer, shapes, self.keras2, masked=masked)
        name = out.key
        if spec is None:  # a no-op at inference: the very same tensor (and mask)
            self.key[out] = tensors[0]
            return
        call: dict[str, Any] = {"name": name, "layer": self._module(layer, spec), "inputs": tensors}
        if masked and layer.cls in (*RECURRENT, "GlobalAveragePooling1D", "Softmax"):
            call["masks"] = {"mask": previous}
        self.calls.append(call)
        self.key[out] = name
        self._new(name, shape, self._out_mask(layer, name, tensors, previous, shape), layer)
        act = spec.get("activation")
        if act in ("sigmoid", "softmax", "softmax_layer") and layer.cls not in RECURRENT:
            self.squash[name] = "softmax" if act == "softmax_layer" else act

    def _resolve(self, x: Any, node: Node) -> Any:
        if isinstance(x, Ref):
            return self._tensor(x, node)
        if isinstance(x, Const):
            raise unsupported(
                node.layer,
                "it is called with a constant tensor saved in the config; compute it from the inputs with "
                "layers (an Embedding of positions, say) instead",
            )
        if isinstance(x, list):
            return [self._resolve(v, node) for v in x]
        return x

    def _input(self, node: Node, graph: Graph) -> None:
        layer = node.layer
        if Ref(layer.name) not in graph.inputs:
            raise KerasImportError(f"{layer.label} is not an input of the model")
        dtype = str(layer.config.get("dtype") or "int32")
        if isinstance(layer.config.get("dtype"), dict):
            dtype = str((layer.config["dtype"].get("config") or {}).get("name", "float32"))
        if dtype == "string":
            self.key[node.out] = TEXT
            return
        shape = layer.config.get("batch_shape") or layer.config.get("batch_input_shape")
        if dtype == "bool" or (isinstance(shape, list) and len(shape) > 2):
            # (a float dtype is fine: Keras gives an Input float32 when fit() built the model on ids)
            raise KerasImportError(
                f"{self.kf.path}: the model must start with an Embedding layer (seqshap explains token ids), but "
                f"its input {layer.name!r} is {dtype} of shape {shape}; the input must be token ids [batch, time] "
                "or text (a string input with TextVectorization)"
            )
        self.key[node.out] = INPUT
        self._new(INPUT, (self._length(fixed_length(self.kf, layer)),), None)

    def _length(self, fixed: int | None) -> int:
        if self.maxlen is not None and fixed is not None and int(self.maxlen) != fixed:
            raise KerasImportError(
                f"{self.kf.path}: the model's input length is {fixed}, but maxlen={self.maxlen} was given"
            )
        T = int(self.maxlen) if self.maxlen is not None else fixed
        if T is None:
            raise KerasImportError(
                f"{self.kf.path}: the model's input length is not fixed in the file; pass maxlen "
                f"(--maxlen), the length the texts were padded to (80 in the seed notebook)"
            )
        if T < 1:
            raise KerasImportError(f"maxlen must be >= 1, got {T}")
        return T

    def _text_vectorization(self, node: Node) -> None:
        layer = node.layer
        if self.text is not None or not node.args or self._resolve(node.args[0], node) != TEXT:
            raise unsupported(layer, "a TextVectorization must read the model's text input directly, once")
        self.text = layer
        length = layer.config.get("output_sequence_length")
        if not isinstance(length, int):
            raise unsupported(
                layer,
                "output_sequence_length is not set, so the ids have no fixed length; set it (the length texts "
                "are padded or cut to) and save the model again",
            )
        self.key[node.out] = INPUT
        self._new(INPUT, (self._length(length),), None)

    def _module(self, layer: KerasLayer, spec: dict[str, Any]) -> int | str:
        """The module of a Keras layer: one per layer, however often it is called (shared layers)."""
        if layer.name not in self.module_of:
            self.specs.append(dict(spec, keras_name=layer.name, keras_class=layer.cls))
            self.module_of[layer.name] = len(self.specs) - 1
        else:
            index = self.module_of[layer.name]
            if isinstance(index, int):
                mine = {k: v for k, v in self.specs[index].items() if k not in ("keras_name", "keras_class")}
                if mine != spec:
                    raise unsupported(layer, "a shared layer called on inputs of different shapes or masks")
        return self.module_of[layer.name]

    def _embedding(self, node: Node, ids: str) -> None:
        layer, name = node.layer, node.out.key
        shape = self.shape[ids]
        if len(shape) != 1:
            raise unsupported(layer, f"it needs token ids [batch, time], got [batch, {', '.join(map(str, shape))}]")
        dim = int(layer.config["output_dim"])
        if ids == INPUT:
            self.id_readers.append(layer)
            if self.embedding is None:
                self.embedding = layer
                self.module_of[layer.name] = "embedding"
        if self.module_of.get(layer.name) == "embedding":
            module: int | str = "embedding"
        else:
            spec = {"type": "embedding", "input_dim": int(layer.config["input_dim"]), "output_dim": dim}
            module = self._module(layer, spec)
        self.calls.append({"name": name, "layer": module, "inputs": [ids]})
        self.key[node.out] = name
        mask = None
        if layer.config.get("mask_zero"):
            mask = self._op(f"{name}.mask", "not_equal", [ids, {"value": 0}], shape)
        self._new(name, (shape[0], dim), mask, layer)

    def _out_mask(self, layer: KerasLayer, name: str, tensors: list[str], previous: Any, shape: Shape) -> str | None:
        """The mask Keras attaches to the layer's output."""
        cls = layer.cls
        if cls == "Masking":
            src = tensors[0]
            ne = self._op(
                f"{name}.ne", "not_equal", [src, {"value": float(layer.config.get("mask_value", 0.0))}], self.shape[src]
            )
            return self._op(f"{name}.mask", "any", [ne], self.shape[src][:-1], axis=-1)
        if cls in DROPS_MASK or cls == "GlobalAveragePooling1D":
            return None
        if cls in RECURRENT:
            inner = layer.config.get("layer", {}).get("config", {}) if cls == "Bidirectional" else layer.config
            return previous if inner.get("return_sequences") and not isinstance(previous, list) else None
        if cls in MERGES:
            masks = previous if isinstance(previous, list) else [previous]
            if all(m is None for m in masks):
                return None
            if self.keras2:
                raise unsupported(
                    layer,
                    "a padding mask reaches a merge layer in a Keras 2 file (Keras 2 combined such masks "
                    "differently from Keras 3); save the model with Keras 3",
                )
            if cls == "Concatenate":
                inputs: list = []
                for t, m in zip(tensors, masks, strict=True):
                    inputs += [t, m if m is not None else {"value": None}]
                axis = int(layer.config.get("axis", -1))
                return self._op(f"{name}.mask", "concat_mask", inputs, shape[:-1], axis=axis)
            if any(m is None for m in masks):
                return None
            return self._or(f"{name}.mask", list(masks))
        return previous if not isinstance(previous, list) else None

    def _attention(self, node: Node, args: list, kwargs: dict) -> None:
        layer, name = node.layer, node.out.key
        if len(args) < 2 and "value" not in kwargs:
            raise unsupported(layer, "it needs a query and a value")
        query = args[0] if args else kwargs.get("query")
        value = args[1] if len(args) > 1 else kwargs.get("value")
        key = args[2] if len(args) > 2 else kwargs.get("key")
        if kwargs.get("return_attention_scores"):
            raise unsupported(layer, "return_attention_scores=True (the model must end in one tensor)")
        for what, t in (
            ("query", query),
            ("value", value),
            ("key", key),
            ("attention_mask", kwargs.get("attention_mask")),
        ):
            if t is not None and not isinstance(t, str):
                raise unsupported(layer, f"its {what} is not a tensor")
        if not isinstance(query, str) or not isinstance(value, str):
            raise unsupported(layer, "it needs a query and a value tensor")
        masks = {
            "query_mask": self._get_mask(query),
            "value_mask": kwargs.get("value_mask") or self._get_mask(value),
            "key_mask": (kwargs.get("key_mask") or self._get_mask(key)) if isinstance(key, str) else None,
            "attention_mask": kwargs.get("attention_mask"),
        }
        tensors: list[str] = [query, value, *([key] if isinstance(key, str) else [])]
        spec, shape = layer_spec(
            layer, [self.shape[t] for t in tensors], self.keras2, causal=bool(kwargs.get("use_causal_mask", False))
        )
        assert spec is not None
        call: dict[str, Any] = {"name": name, "layer": self._module(layer, spec), "inputs": tensors}
        used = {k: v for k, v in masks.items() if v is not None}
        if used:
            call["masks"] = used
        self.calls.append(call)
        self.key[node.out] = name
        if not self.keras2:  # Keras 3 takes the masks off the tensors it read
            for t in tensors:
                self.mask[self.slot[t]] = None
        self._new(name, shape, masks["query_mask"], layer)

    def _keras_op(self, node: Node) -> None:
        layer, name = node.layer, node.out.key
        op = OPS.get(layer.cls)
        if op is None:
            raise KerasImportError(
                f"the model calls keras.ops.{layer.cls} ({layer.name!r}), which seqshap does not convert; "
                f"supported ops: {', '.join(OPS)}"
            )
        args = [self._resolve(a, node) for a in node.args]
        params = {k: v for k, v in layer.config.items() if k in _OP_PARAMS and v is not None}
        params.update({k: v for k, v in node.kwargs.items() if k in _OP_PARAMS and v is not None})
        if op == "concatenate":
            args = args[0] if args and isinstance(args[0], list) else args
        inputs = [a if isinstance(a, str) else {"value": a} for a in args]
        tensors = [a for a in args if isinstance(a, str)]
        if not tensors:
            raise unsupported(layer, "a keras.ops call without a tensor input")
        if any(not isinstance(a, (str, int, float, bool)) for a in args):
            raise unsupported(layer, "a keras.ops call with an argument that is neither a tensor nor a number")
        if INPUT in tensors and self.text is not None and op in ("equal", "not_equal"):
            other = [a for a in args if not isinstance(a, str)]
            if other and other[0] != 0:
                raise unsupported(
                    layer, "a comparison of the ids with a number other than 0 in a model that reads text"
                )
        shape = _op_shape(op, [self.shape[t] for t in tensors], params)
        self.calls.append({"name": name, "op": op, "inputs": inputs, **({"params": params} if params else {})})
        self.key[node.out] = name
        self._new(name, shape, None, layer)

    # -- the result ---------------------------------------------------------------------------------
    def result(self, output: Ref) -> Converted:
        if self.embedding is None:
            raise KerasImportError(
                f"{self.kf.path}: the model must read token ids with an Embedding layer (seqshap explains token "
                "ids), but no Embedding reads the model's input"
            )
        for call in self.calls:
            layer = call.get("layer")
            if INPUT in call.get("inputs", []) and layer is not None and layer != "embedding":
                spec = self.specs[layer]
                if spec["type"] != "embedding":
                    raise KerasImportError(
                        f"{spec['keras_class']} {spec['keras_name']!r} reads the token ids themselves; only "
                        "Embedding layers (and keras.ops on positions and padding) may"
                    )
        out = self.key[output]
        calls, specs = _prune(self.calls, self.specs, out)
        uses = []
        for c in calls:
            layer = c.get("layer")
            src = self.sources.get(c["name"])
            if layer is not None and src is not None and f"{src.name} ({src.cls})" not in uses:
                uses.append(f"{src.name} ({src.cls})")
        space = "probability" if self.squash.get(out) in ("sigmoid", "softmax") else "raw"
        assert self.embedding is not None
        return Converted(
            specs,
            calls,
            out,
            self.embedding,
            self.shape[INPUT][0],
            self.shape[out],
            space,
            self.text,
            self.id_readers,
            uses,
        )


def _op_shape(op: str, shapes: list[Shape], p: dict[str, Any]) -> Shape:
    s = shapes[0]
    if op in ("any", "all"):
        axis = p.get("axis")
        if axis is None:
            return ()
        axis = int(axis) % (len(s) + 1) - 1
        return s[:axis] + ((1,) if p.get("keepdims") else ()) + s[axis + 1 :]
    if op == "expand_dims":
        axis = int(p["axis"])
        axis = axis - 1 if axis > 0 else len(s) + 1 + axis
        return (*s[:axis], 1, *s[axis:])
    if op == "squeeze":
        axis = int(p.get("axis", -1))
        axis = axis - 1 if axis > 0 else len(s) + axis
        return s[:axis] + s[axis + 1 :]
    if op == "concatenate":
        axis = int(p.get("axis", 0))
        axis = axis - 1 if axis > 0 else len(s) + axis
        return (*s[:axis], sum(x[axis] for x in shapes), *s[axis + 1 :])
    if len(shapes) > 1:
        rank = max(len(x) for x in shapes)
        padded = [(1,) * (rank - len(x)) + x for x in shapes]
        return tuple(max(d) for d in zip(*padded, strict=True))
    return s


def _prune(calls: list[dict], specs: list[dict], out: str) -> tuple[list[dict], list[dict]]:
    """Only the calls ``out`` depends on (other heads go), with the modules renumbered."""
    need = {out}
    for c in reversed(calls):
        if c["name"] in need:
            need.update(r for r in c.get("inputs", []) if isinstance(r, str))
            need.update(r for r in (c.get("masks") or {}).values() if r is not None)
    kept = [c for c in calls if c["name"] in need]
    used = sorted({c["layer"] for c in kept if isinstance(c.get("layer"), int)})
    renumber = {old: new for new, old in enumerate(used)}
    return [dict(c, layer=renumber[c["layer"]]) if isinstance(c.get("layer"), int) else c for c in kept], [
        specs[i] for i in used
    ]


def fixed_length(kf: KerasFile, first: KerasLayer | None = None) -> int | None:
    """The model's input length if the file fixes it (Input shape, build shape, input_length)."""
    cfg = kf.model_config.get("config")
    candidates = []
    if isinstance(cfg, dict):
        candidates.append(cfg.get("build_input_shape"))
    for layer in ([first] if first is not None else []) + list(kf.layers[:2]):
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


def convert_graph(kf: KerasFile, maxlen: int | None = None, output: str | None = None) -> Converted:
    """The twin's graph for the model's output ``output`` (a layer name; required when it has several)."""
    graph = parse_graph(kf)
    names = [r.layer for r in graph.outputs]
    if output is None:
        if len(graph.outputs) > 1:
            raise KerasImportError(
                f"{kf.path}: the model has {len(names)} outputs ({', '.join(names)}); choose the one to explain "
                "with --output NAME"
            )
        chosen = graph.outputs[0]
    elif output in names:
        chosen = graph.outputs[names.index(output)]
    else:
        raise KerasImportError(f"{kf.path}: the model has no output {output!r}; its outputs are {', '.join(names)}")
    builder = _Builder(kf, maxlen)
    builder.run(graph)
    result = builder.result(chosen)
    if len(result.output_shape) != 1:
        raise KerasImportError(
            f"{Path(kf.path)}: the model's output has shape [batch, {', '.join(map(str, result.output_shape))}]; "
            f"a classifier must end in [batch, outputs] (add pooling, Flatten or return_sequences=False)"
        )
    return result
