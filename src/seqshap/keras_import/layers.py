"""One Keras layer's config (and the shapes of its inputs) -> the spec of its PyTorch twin
(:mod:`seqshap.models.keras`), and the shape of its output (without the batch axis)."""

from __future__ import annotations

import math
from typing import Any

from ..errors import KerasImportError
from ..models.keras.activations import ACTIVATIONS, SQUASHES
from .files import ALIASES, KerasLayer

Shape = tuple[int, ...]

# Layers that return their input itself at inference (Keras hands on the very same tensor).
IDENTITY = (
    "Dropout",
    "SpatialDropout1D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
    "Identity",
)
MERGES = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate")
RECURRENT = ("LSTM", "GRU", "SimpleRNN", "Bidirectional")
# Layers Keras 3 gives no mask support: a mask reaching them is dropped (Keras warns).
DROPS_MASK = (
    "Conv1D",
    "MaxPooling1D",
    "AveragePooling1D",
    "GlobalMaxPooling1D",
    "Flatten",
    "Reshape",
    "Permute",
    "RepeatVector",
)
SUPPORTED = (
    "InputLayer",
    "TextVectorization",
    "Embedding",
    *RECURRENT,
    "Dense",
    "TimeDistributed",
    "Conv1D",
    "MaxPooling1D",
    "AveragePooling1D",
    "GlobalMaxPooling1D",
    "GlobalAveragePooling1D",
    "Flatten",
    "Reshape",
    "Permute",
    "RepeatVector",
    "Activation",
    "ReLU",
    "LeakyReLU",
    "ELU",
    "Softmax",
    "LayerNormalization",
    "BatchNormalization",
    "GroupNormalization",
    "Masking",
    "MultiHeadAttention",
    *MERGES,
    *IDENTITY,
)


def unsupported(layer: KerasLayer, why: str = "") -> KerasImportError:
    if why:
        return KerasImportError(f"unsupported {layer.label}: {why}")
    return KerasImportError(f"unsupported {layer.label}; supported layers: {', '.join(SUPPORTED)}")


def activation(layer: KerasLayer, key: str, keras2: bool, default: str = "linear", cfg: dict | None = None) -> str:
    """A layer's activation setting by Keras name (Keras 2's hard_sigmoid kept apart)."""
    act = (cfg if cfg is not None else layer.config).get(key, default)
    if isinstance(act, dict):  # Keras 3 may serialize a built-in as {"class_name": "function", "config": "relu"}
        act = act.get("config") if isinstance(act.get("config"), str) else act.get("class_name")
    act = "linear" if act in (None, "None") else str(act)
    if act == "hard_sigmoid" and keras2:
        act = "hard_sigmoid_keras2"  # Keras 2: clip(0.2x + 0.5); Keras 3: relu6(x + 3) / 6
    allowed = SQUASHES if key == "recurrent_activation" else ACTIVATIONS
    if act not in allowed:
        raise KerasImportError(
            f"{layer.label}: unsupported {key} {act!r} (a custom function cannot be read from the file); "
            f"supported: {', '.join(sorted(a for a in allowed if a != 'hard_sigmoid_keras2'))}"
        )
    return act


def _after(act: str, shape: Shape) -> Shape:
    """The shape after activation ``act`` (GLU halves the last axis)."""
    return (*shape[:-1], shape[-1] // 2) if act == "glu" else shape


def _int(v: Any) -> int:
    """Keras stores 1-D sizes as ``[k]`` or ``k``."""
    return int(v[0] if isinstance(v, (list, tuple)) else v)


def _channels_last(layer: KerasLayer) -> None:
    if layer.config.get("data_format", "channels_last") not in ("channels_last", None):
        raise unsupported(layer, "only data_format='channels_last' is supported")


def _last_axis(layer: KerasLayer, shape: Shape) -> None:
    axis = layer.config.get("axis", -1)
    axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
    if axis not in (-1, len(shape)):
        raise unsupported(layer, f"axis={layer.config.get('axis')!r} (only the last axis, -1, is supported)")


def _sequence(layer: KerasLayer, shape: Shape) -> None:
    if len(shape) != 2:
        raise unsupported(layer, f"it needs a sequence input [batch, time, features], got [batch, {_dims(shape)}]")


def _dims(shape: Shape) -> str:
    return ", ".join(map(str, shape))


def recurrent_spec(layer: KerasLayer, shape: Shape, keras2: bool, masked: bool) -> tuple[dict[str, Any], Shape]:
    """LSTM/GRU/SimpleRNN, or one of them inside Bidirectional."""
    _sequence(layer, shape)
    cls, cfg = layer.cls, layer.config
    bidirectional = cls == "Bidirectional"
    merge_mode = "concat"
    if bidirectional:
        inner = cfg.get("layer") or {}
        inner_cls = ALIASES.get(str(inner.get("class_name")), inner.get("class_name"))
        if inner_cls not in ("LSTM", "GRU", "SimpleRNN"):
            raise unsupported(layer, f"it wraps a {inner_cls!r} (only LSTM, GRU and SimpleRNN can be wrapped)")
        merge_mode = cfg.get("merge_mode", "concat")
        if merge_mode not in ("concat", "sum", "ave", "mul"):
            raise unsupported(layer, f"merge_mode={merge_mode!r} (concat, sum, ave and mul are supported)")
        cls, rcfg = str(inner_cls), inner.get("config") or {}
        back = (cfg.get("backward_layer") or {}).get("config")
        keys = ("units", "activation", "recurrent_activation", "use_bias", "return_sequences", "reset_after")
        if back and any(back.get(k) != rcfg.get(k) for k in keys):
            raise unsupported(layer, "its backward layer differs from its forward layer")
    else:
        rcfg = cfg
    if rcfg.get("return_state"):
        raise unsupported(layer, "return_state=True")
    if rcfg.get("go_backwards") and not bidirectional:
        raise unsupported(layer, "go_backwards=True outside Bidirectional")
    if rcfg.get("time_major") or rcfg.get("stateful"):
        raise unsupported(layer, "time_major or stateful recurrent layers")
    kind = {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "simple_rnn"}[cls]
    spec: dict[str, Any] = {
        "type": kind,
        "input_size": shape[1],
        "units": int(rcfg["units"]),
        "bidirectional": bidirectional,
        "merge_mode": merge_mode,
        "return_sequences": bool(rcfg.get("return_sequences", False)),
        "activation": activation(layer, "activation", keras2, "tanh", rcfg),
        "use_bias": bool(rcfg.get("use_bias", True)),
        "masked": masked,
    }
    if kind != "simple_rnn":
        spec["recurrent_activation"] = activation(layer, "recurrent_activation", keras2, "sigmoid", rcfg)
    if kind == "gru":
        spec["reset_after"] = bool(rcfg.get("reset_after", False))  # Keras <= 2.2 files omit it: default False
    width = spec["units"] * (2 if bidirectional and merge_mode == "concat" else 1)
    return spec, ((shape[0], width) if spec["return_sequences"] else (width,))


def dense_spec(layer: KerasLayer, cfg: dict, shape: Shape, keras2: bool) -> tuple[dict[str, Any], Shape]:
    if cfg.get("lora_rank") or cfg.get("quantization_config"):
        raise unsupported(layer, "LoRA or quantized Dense layers")
    spec: dict[str, Any] = {
        "type": "dense",
        "in_features": shape[-1],
        "units": int(cfg["units"]),
        "activation": activation(layer, "activation", keras2, cfg=cfg),
        "use_bias": bool(cfg.get("use_bias", True)),
    }
    return spec, _after(spec["activation"], (*shape[:-1], spec["units"]))


def merge_shape(layer: KerasLayer, shapes: list[Shape]) -> Shape:
    """Keras' merge layers: lower ranks get size-1 axes after the batch axis, then broadcast."""
    if layer.cls == "Concatenate":
        rank = len(shapes[0])
        axis = int(layer.config.get("axis", -1))
        axis = axis - 1 if axis > 0 else rank + axis
        if any(len(s) != rank for s in shapes) or not 0 <= axis < rank:
            raise unsupported(layer, f"its inputs [batch, {'], ['.join(_dims(s) for s in shapes)}] cannot be joined")
        if any(s[:axis] + s[axis + 1 :] != shapes[0][:axis] + shapes[0][axis + 1 :] for s in shapes):
            raise unsupported(layer, f"its inputs differ outside axis {layer.config.get('axis', -1)}")
        return (*shapes[0][:axis], sum(s[axis] for s in shapes), *shapes[0][axis + 1 :])
    if layer.cls == "Subtract" and len(shapes) != 2:
        raise unsupported(layer, "Subtract takes exactly two inputs")
    rank = max(len(s) for s in shapes)
    padded = [(1,) * (rank - len(s)) + s for s in shapes]
    out = []
    for dims in zip(*padded, strict=True):
        sizes = {d for d in dims if d != 1}
        if len(sizes) > 1:
            raise unsupported(layer, f"its inputs [batch, {'], ['.join(_dims(s) for s in shapes)}] do not broadcast")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def layer_spec(
    layer: KerasLayer, shapes: list[Shape], keras2: bool, masked: bool = False, causal: bool = False
) -> tuple[dict[str, Any] | None, Shape]:
    """One Keras layer -> (spec, or None for an inference no-op; output shape without batch)."""
    cls, cfg = layer.cls, layer.config
    shape = shapes[0]
    if cls in IDENTITY:
        return None, shape
    if cls in RECURRENT:
        return recurrent_spec(layer, shape, keras2, masked)
    if cls == "Embedding":
        if len(shape) != 1:
            raise unsupported(layer, f"it needs token ids [batch, time], got [batch, {_dims(shape)}]")
        spec: dict[str, Any] = {
            "type": "embedding",
            "input_dim": int(cfg["input_dim"]),
            "output_dim": int(cfg["output_dim"]),
        }
        return spec, (shape[0], spec["output_dim"])
    if cls == "Dense":
        return dense_spec(layer, cfg, shape, keras2)
    if cls == "TimeDistributed":
        inner = cfg.get("layer") or {}
        if inner.get("class_name") != "Dense":
            raise unsupported(layer, f"it wraps a {inner.get('class_name')!r} (only Dense can be wrapped)")
        _sequence(layer, shape)
        return dense_spec(layer, inner.get("config") or {}, shape, keras2)
    if cls == "Activation":
        act = activation(layer, "activation", keras2)
        return ({"type": "activation", "activation": act} if act != "linear" else None), _after(act, shape)
    if cls in ("ReLU", "LeakyReLU", "ELU", "Softmax"):
        spec = {
            "type": "activation",
            "activation": f"{cls.lower().replace('leakyrelu', 'leaky_relu')}_layer",
        }
        for key in ("max_value", "negative_slope", "threshold", "alpha", "axis"):
            if cfg.get(key) is not None:
                spec[key] = cfg[key]
        if isinstance(spec.get("axis"), list):
            raise unsupported(layer, "a softmax over several axes")
        return spec, shape
    if cls == "Flatten":
        _channels_last(layer)
        return (None, shape) if len(shape) == 1 else ({"type": "flatten"}, (math.prod(shape),))
    if cls == "Reshape":
        target = [int(v) for v in cfg["target_shape"]]
        if target.count(-1) == 1:
            known = math.prod(v for v in target if v != -1)
            target[target.index(-1)] = math.prod(shape) // max(known, 1)
        if math.prod(target) != math.prod(shape):
            raise unsupported(layer, f"it cannot reshape [batch, {_dims(shape)}] to {cfg['target_shape']}")
        return {"type": "reshape", "target_shape": target}, tuple(target)
    if cls == "Permute":
        dims = [int(d) for d in cfg["dims"]]
        if sorted(dims) != list(range(1, len(shape) + 1)):
            raise unsupported(layer, f"dims {dims} do not permute the axes of [batch, {_dims(shape)}]")
        return {"type": "permute", "dims": dims}, tuple(shape[d - 1] for d in dims)
    if cls == "RepeatVector":
        if len(shape) != 1:
            raise unsupported(layer, f"it repeats vectors [batch, features], got [batch, {_dims(shape)}]")
        return {"type": "repeat_vector", "n": int(cfg["n"])}, (int(cfg["n"]), shape[0])
    if cls in ("GlobalMaxPooling1D", "GlobalAveragePooling1D"):
        _channels_last(layer)
        _sequence(layer, shape)
        keep = bool(cfg.get("keepdims", False))
        kind = "global_max_pool" if cls == "GlobalMaxPooling1D" else "global_avg_pool"
        return {"type": kind, "keepdims": keep}, ((1, shape[1]) if keep else (shape[1],))
    if cls in ("MaxPooling1D", "AveragePooling1D"):
        _channels_last(layer)
        _sequence(layer, shape)
        if cfg.get("padding", "valid") != "valid":
            raise unsupported(layer, "only padding='valid' is supported")
        size = _int(cfg.get("pool_size", 2))
        stride = _int(cfg.get("strides") or size)
        steps = (shape[0] - size) // stride + 1
        if steps < 1:
            raise unsupported(layer, f"pool_size {size} does not fit the input [batch, {_dims(shape)}]")
        kind = "max_pool1d" if cls == "MaxPooling1D" else "avg_pool1d"
        return {"type": kind, "pool_size": size, "strides": stride}, (steps, shape[1])
    if cls == "Conv1D":
        _channels_last(layer)
        _sequence(layer, shape)
        if int(cfg.get("groups", 1)) != 1:
            raise unsupported(layer, "groups > 1")
        padding = cfg.get("padding", "valid")
        k, s, d = _int(cfg["kernel_size"]), _int(cfg.get("strides", 1)), _int(cfg.get("dilation_rate", 1))
        if padding not in ("valid", "same", "causal") or (padding == "same" and s != 1):
            raise unsupported(
                layer, f"padding={padding!r} with strides={s} (supported: 'valid', 'causal', or 'same' with strides=1)"
            )
        length = shape[0] + (d * (k - 1) if padding == "causal" else 0)
        steps = shape[0] if padding == "same" else (length - d * (k - 1) - 1) // s + 1
        if steps < 1:
            raise unsupported(layer, f"kernel_size {k} does not fit the input length {shape[0]}")
        spec = {
            "type": "conv1d",
            "in_channels": shape[1],
            "filters": int(cfg["filters"]),
            "kernel_size": k,
            "strides": s,
            "dilation_rate": d,
            "padding": padding,
            "activation": activation(layer, "activation", keras2),
            "use_bias": bool(cfg.get("use_bias", True)),
        }
        return spec, _after(spec["activation"], (steps, spec["filters"]))
    if cls in ("LayerNormalization", "BatchNormalization", "GroupNormalization"):
        _last_axis(layer, shape)
        spec = {
            "type": {"LayerNormalization": "layer_norm", "BatchNormalization": "batch_norm"}.get(cls, "group_norm"),
            "dim": shape[-1],
            "epsilon": float(cfg.get("epsilon", 1e-3)),
            "center": bool(cfg.get("center", True)),
            "scale": bool(cfg.get("scale", True)),
        }
        if cls == "LayerNormalization":
            spec["rms_scaling"] = bool(cfg.get("rms_scaling", False))
        if cls == "BatchNormalization" and cfg.get("renorm"):
            raise unsupported(layer, "renorm=True")
        if cls == "GroupNormalization":
            spec["groups"] = int(cfg.get("groups", 32))
            if spec["groups"] < 1 or shape[-1] % spec["groups"]:
                raise unsupported(layer, f"{shape[-1]} channels do not split into {spec['groups']} groups")
        return spec, shape
    if cls == "Masking":
        mv = cfg.get("mask_value", 0.0)
        if not isinstance(mv, (int, float)):
            raise unsupported(layer, f"mask_value {mv!r} (a number is supported)")
        return {"type": "masking", "mask_value": float(mv)}, shape
    if cls in MERGES:
        if len(shapes) < 2:
            raise unsupported(layer, "a merge layer needs at least two inputs")
        mode = cls.lower()
        return {"type": "merge", "mode": mode, "axis": _concat_axis(cfg, shape)}, merge_shape(layer, shapes)
    if cls == "MultiHeadAttention":
        return attention_spec(layer, shapes, causal)
    raise unsupported(layer)


def _concat_axis(cfg: dict, shape: Shape) -> int:
    axis = int(cfg.get("axis", -1))
    return axis if axis >= 0 else len(shape) + 1 + axis


def attention_spec(layer: KerasLayer, shapes: list[Shape], causal: bool) -> tuple[dict[str, Any], Shape]:
    cfg = layer.config
    q, v = shapes[0], shapes[1]
    k = shapes[2] if len(shapes) > 2 else v
    if any(len(s) != 2 for s in (q, v, k)):
        raise unsupported(layer, "query, key and value must be sequences [batch, time, features]")
    if cfg.get("attention_axes") not in (None, [1], (1,)):
        raise unsupported(layer, f"attention_axes={cfg.get('attention_axes')!r} (only the time axis is supported)")
    if cfg.get("use_gate"):
        raise unsupported(layer, "use_gate=True")
    if k[0] != v[0]:
        raise unsupported(layer, "key and value have different lengths")
    out = cfg.get("output_shape")
    if isinstance(out, (list, tuple)):
        if len(out) != 1:
            raise unsupported(layer, f"output_shape={out!r} (one size is supported)")
        out = out[0]
    key_dim = int(cfg["key_dim"])
    spec: dict[str, Any] = {
        "type": "multi_head_attention",
        "num_heads": int(cfg["num_heads"]),
        "key_dim": key_dim,
        "value_dim": int(cfg.get("value_dim") or key_dim),
        "query_dim": q[1],
        "key_in": k[1],
        "value_in": v[1],
        "output_dim": int(out) if out else q[1],
        "use_bias": bool(cfg.get("use_bias", True)),
        "causal": causal,
        "sliding_window": cfg.get("sliding_window"),
    }
    return spec, (q[0], spec["output_dim"])
