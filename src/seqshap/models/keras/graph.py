"""``KerasModel``: a PyTorch twin of a Keras text classifier, its graph described in JSON.

``seqshap import-keras`` writes the description into ``config.json`` (``"arch": "keras"``), so a
converted model is rebuilt like any other: ``build_model("keras", vocab_size=..., embed_dim=...,
layers=[...], calls=[...], output=...)``. Tensors stay channels-last (``[batch, time, channels]``)
as in Keras, so ``Flatten`` and ``Dense`` see the same element order Keras did.

- ``layers``: one spec per Keras layer (a shared layer once), built by :func:`build_layer`;
  its module is ``layers.<i>``. The token embedding (the Embedding that reads the ids) is
  ``embedding``.
- ``calls``: the graph's nodes in the order Keras runs them: ``{"name": tensor, "layer": i |
  "embedding", "inputs": [tensor, ...], "masks": {"mask": tensor, ...}}`` for a layer,
  ``{"name": tensor, "op": name, "inputs": [tensor | {"value": constant}], "params": {...}}``
  for a ``keras.ops`` call (position ids, and the padding masks Keras derives from the ids).
  ``"ids"`` names the model's input.
- ``output``: the tensor the model returns.

Without ``calls`` (directories converted before graphs were supported) the layers form a chain
after the embedding. Padding masks are computed the way a PyTorch user writes them (``ids != 0``)
and applied with ``torch.where``/``masked_fill``; which mask reaches which layer was decided at
conversion time, exactly as Keras passes them (:mod:`seqshap.keras_import.masks`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .layers import (
    Activation,
    BatchNorm,
    Conv1D,
    Dense,
    Embedding,
    GroupNorm,
    Identity,
    LayerNorm,
    Masking,
    Merge,
    MultiHeadAttention,
    Pool1D,
    Reshape,
)
from .recurrent import build_recurrent

INPUT = "ids"

_BUILDERS = {
    "lstm": build_recurrent,
    "gru": build_recurrent,
    "simple_rnn": build_recurrent,
    "conv1d": Conv1D,
    "max_pool1d": Pool1D,
    "avg_pool1d": Pool1D,
    "global_max_pool": Pool1D,
    "global_avg_pool": Pool1D,
    "dense": Dense,
    "embedding": Embedding,
    "activation": Activation,
    "identity": lambda spec: Identity(),
    "flatten": Reshape,
    "reshape": Reshape,
    "permute": Reshape,
    "repeat_vector": Reshape,
    "layer_norm": LayerNorm,
    "batch_norm": BatchNorm,
    "group_norm": GroupNorm,
    "masking": Masking,
    "merge": Merge,
    "multi_head_attention": MultiHeadAttention,
}


def build_layer(spec: dict[str, Any]) -> nn.Module:
    """One spec dict -> its module."""
    make = _BUILDERS.get(spec.get("type"))  # type: ignore[arg-type]
    if make is None:
        raise ValueError(f"unknown layer type {spec.get('type')!r} in the keras layer list")
    return make(spec)


_DTYPES = {"int32": torch.long, "int64": torch.long, "bool": torch.bool, "float32": None, "float64": None}


def _dtype(name: Any, like: torch.Tensor) -> torch.dtype:
    if name is None:
        return like.dtype
    if name in ("float16", "float32", "float64", "bfloat16"):
        return like.dtype if like.is_floating_point() else torch.get_default_dtype()
    if name not in _DTYPES or _DTYPES[name] is None:
        raise ValueError(f"unsupported dtype {name!r}")
    return _DTYPES[name]  # type: ignore[return-value]


def _plain(t: Any) -> Any:
    """A tensor compared to make a mask, detached: a comparison carries no gradient."""
    return t.detach() if isinstance(t, torch.Tensor) else t


def _op(name: str, a: list, p: dict[str, Any]) -> torch.Tensor:
    """One ``keras.ops`` function (``name`` in snake case) on tensors/constants ``a``."""
    if name == "not_equal":
        return _plain(a[0]) != a[1]
    if name == "equal":
        return _plain(a[0]) == a[1]
    if name == "logical_or":
        return torch.logical_or(a[0], a[1])
    if name == "logical_and":
        return torch.logical_and(a[0], a[1])
    if name == "logical_not":
        return torch.logical_not(a[0])
    if name in ("any", "all"):
        fn = torch.any if name == "any" else torch.all
        axis, keep = p.get("axis"), bool(p.get("keepdims", False))
        return fn(a[0]) if axis is None else fn(a[0], dim=int(axis), keepdim=keep)
    if name == "expand_dims":
        return a[0].unsqueeze(int(p["axis"]))
    if name == "squeeze":
        return a[0].squeeze(int(p["axis"])) if p.get("axis") is not None else a[0].squeeze()
    if name == "ones_like":
        return torch.ones_like(a[0], dtype=_dtype(p.get("dtype"), a[0]))
    if name == "zeros_like":
        return torch.zeros_like(a[0], dtype=_dtype(p.get("dtype"), a[0]))
    if name == "cumsum":
        return torch.cumsum(a[0], dim=int(p["axis"]), dtype=_dtype(p.get("dtype"), a[0]))
    if name == "cast":
        return a[0].to(_dtype(p.get("dtype"), a[0]))
    if name == "add":
        return a[0] + a[1]
    if name == "subtract":
        return a[0] - a[1]
    if name == "multiply":
        return a[0] * a[1]
    if name == "concatenate":
        return torch.cat(list(a), dim=int(p.get("axis", 0)))
    if name == "concat_mask":
        return _concat_mask(a, int(p["axis"]))
    raise ValueError(f"unknown op {name!r} in the keras graph")


def _concat_mask(a: list, axis: int) -> torch.Tensor:
    """Keras' Concatenate.compute_mask: inputs ``a = [x1, m1|None, x2, m2|None, ...]``; each mask
    broadcast to its input's shape (all True where an input has none), concatenated along ``axis``,
    then ``any`` over the last axis."""
    parts = []
    for x, m in zip(a[0::2], a[1::2], strict=True):
        if m is None:
            parts.append(torch.ones(x.shape, dtype=torch.bool, device=x.device))
        elif m.dim() < x.dim():
            parts.append(m.unsqueeze(-1).expand(x.shape))
        else:
            parts.append(m)
    return torch.cat(parts, dim=axis).any(-1)


class KerasModel(nn.Module):
    """ids ``[B, T]`` (or embeddings ``[B, T, embed_dim]``) -> the Keras model's output ``[B, outputs]``."""

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int,
        layers: list[dict[str, Any]],
        calls: list[dict[str, Any]] | None = None,
        output: str | None = None,
    ):
        super().__init__()
        self.embedding = nn.Embedding(int(vocab_size), int(embed_dim))
        self.specs = [dict(s) for s in layers]
        self.layers = nn.ModuleList(build_layer(s) for s in self.specs)
        self.calls = [dict(c) for c in calls] if calls is not None else None
        self.output = output
        if self.calls is not None:
            self._check_graph()

    def _check_graph(self) -> None:
        assert self.calls is not None
        known = {INPUT}
        for i, c in enumerate(self.calls):
            refs = [r for r in c.get("inputs", []) if isinstance(r, str)] + [
                r for r in (c.get("masks") or {}).values() if r is not None
            ]
            missing = [r for r in refs if r not in known]
            if missing:
                raise ValueError(f"call {i} ({c.get('name')!r}) reads {missing[0]!r} before it is computed")
            layer = c.get("layer")
            if (
                layer is not None
                and layer != "embedding"
                and not (isinstance(layer, int) and 0 <= layer < len(self.layers))
            ):
                raise ValueError(f"call {i} ({c.get('name')!r}) names layer {layer!r}, which does not exist")
            if layer is None and not isinstance(c.get("op"), str):
                raise ValueError(f"call {i} ({c.get('name')!r}) has neither a layer nor an op")
            known.add(str(c["name"]))
        if self.output not in known:
            raise ValueError(f"the output {self.output!r} is not computed by any call")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        floats = x.is_floating_point()
        if self.calls is None:  # a chain after the token embedding
            h = x if floats else self.embedding(x)
            for layer in self.layers:
                h = layer(h)
            return h
        env: dict[str, Any] = {INPUT: x}
        for c in self.calls:
            env[c["name"]] = self._run(c, env, floats)
        return env[self.output]  # type: ignore[index]

    def _run(self, c: dict[str, Any], env: dict[str, Any], floats: bool) -> Any:
        args = [env[a] if isinstance(a, str) else a.get("value") for a in c.get("inputs", [])]
        reads_ids = INPUT in c.get("inputs", [])
        layer = c.get("layer")
        if layer == "embedding":
            return args[0] if floats else self.embedding(args[0])
        if floats and reads_ids:
            return self._from_embeddings(c, args)
        if layer is not None:
            masks = {k: env[v] for k, v in (c.get("masks") or {}).items() if v is not None}
            return self.layers[layer](*args, **masks)
        return _op(c["op"], args, c.get("params") or {})

    def _from_embeddings(self, c: dict[str, Any], args: list) -> torch.Tensor:
        """An op on the ids when the model is given embeddings ``[B, T, E]``: the padding mask is
        where a row is not the padding embedding (row 0), the shape is the ids' shape."""
        x = args[0]
        op, other = c.get("op"), args[1] if len(args) > 1 else None
        pad = (x == self.embedding.weight[0]).all(-1)
        if op in ("not_equal", "equal") and other == 0:
            return ~pad if op == "not_equal" else pad
        if op in ("ones_like", "zeros_like"):
            fill = torch.ones_like if op == "ones_like" else torch.zeros_like
            return fill(pad, dtype=torch.long)
        what = "layer" if c.get("layer") is not None else f"op {op!r}"
        raise ValueError(
            f"this model's {what} {c.get('name')!r} reads the token ids themselves; give it ids, not embeddings"
        )
