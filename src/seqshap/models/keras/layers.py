"""Keras layers other than the recurrent ones, channels-last (``[B, T, C]``) as in Keras.

Each class takes its spec dict (see :mod:`seqshap.models.keras.graph`), computes what the Keras
layer computes at inference, and loads the Keras weight arrays with ``load_keras``. Masks are
bool ``[B, T]`` tensors, True at real tokens, passed as ``mask=``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .activations import activate, check_activation
from .weights import count, tensor

MAX_REPEAT = 100_000  # as many steps as a model may read (store.MAX_MAXLEN)


class Dense(nn.Module):
    """Keras Dense (on the last axis; also ``TimeDistributed(Dense)``) + its activation."""

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        self.linear = nn.Linear(int(spec["in_features"]), int(spec["units"]), bias=bool(spec.get("use_bias", True)))
        self.activation = check_activation(spec.get("activation", "linear"), "Dense")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return activate(self.activation, self.linear(x))

    @torch.no_grad()
    def load_keras(self, arrays: list[np.ndarray], what: str) -> None:
        lin = self.linear
        count(arrays, 2 if lin.bias is not None else 1, what)
        lin.weight.copy_(tensor(arrays[0], (lin.in_features, lin.out_features), what).T)
        if lin.bias is not None:
            lin.bias.copy_(tensor(arrays[1], (lin.out_features,), what))


class Embedding(nn.Module):
    """A Keras Embedding other than the token embedding (positions, a second table)."""

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        self.embedding = nn.Embedding(int(spec["input_dim"]), int(spec["output_dim"]))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embedding(ids.long())

    @torch.no_grad()
    def load_keras(self, arrays: list[np.ndarray], what: str) -> None:
        count(arrays, 1, what)
        self.embedding.weight.copy_(tensor(arrays[0], tuple(self.embedding.weight.shape), what))


class Activation(nn.Module):
    """Keras ``Activation`` layer, and ``ReLU``/``LeakyReLU``/``ELU``/``Softmax`` layers.

    ``Softmax`` takes Keras' mask: masked scores become -1e9 first, as Keras does."""

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        self.activation = spec.get("activation", "linear")
        if self.activation not in ("relu_layer", "elu_layer", "leaky_relu_layer", "softmax_layer"):
            check_activation(self.activation, "Activation")
        self.params = {k: spec[k] for k in ("max_value", "negative_slope", "threshold", "alpha", "axis") if k in spec}

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        p, a = self.params, self.activation
        if a == "relu_layer":
            slope, th, top = float(p.get("negative_slope", 0.0)), float(p.get("threshold", 0.0)), p.get("max_value")
            y = torch.where(x >= th, x, slope * (x - th)) if slope or th else torch.relu(x)
            return torch.clamp(y, max=float(top)) if top is not None else y
        if a == "leaky_relu_layer":
            return F.leaky_relu(x, float(p.get("negative_slope", 0.3)))
        if a == "elu_layer":
            return F.elu(x, float(p.get("alpha", 1.0)))
        if a == "softmax_layer":
            axis = int(p.get("axis", -1))
            if mask is not None:  # Keras broadcasts the mask against the scores
                x = x.masked_fill(~mask, -1e9)
            return torch.softmax(x, dim=axis)
        return activate(a, x)


class Identity(nn.Module):
    """Layers that do nothing at inference (Dropout and its kin, Identity, ActivityRegularization)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Conv1D(nn.Module):
    """Keras Conv1D on channels-last ``[B, T, C]`` -> ``[B, T', filters]``; padding valid, same
    (stride 1) or causal (left zeros, any dilation)."""

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        padding = spec.get("padding", "valid")
        strides = int(spec.get("strides", 1))
        if padding not in ("valid", "same", "causal"):
            raise ValueError(f"Conv1D padding {padding!r} is not supported (valid, same or causal)")
        if padding == "same" and strides != 1:
            raise ValueError("Conv1D with padding='same' and strides > 1 is not supported")
        k, d = int(spec["kernel_size"]), int(spec.get("dilation_rate", 1))
        self.left = d * (k - 1) if padding == "causal" else 0
        # PyTorch's 'same' pads the extra element of an even kernel on the right, as Keras does.
        self.conv = nn.Conv1d(
            int(spec["in_channels"]),
            int(spec["filters"]),
            k,
            stride=strides,
            dilation=d,
            padding="same" if padding == "same" else 0,
            bias=bool(spec.get("use_bias", True)),
        )
        self.activation = check_activation(spec.get("activation", "linear"), "Conv1D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.transpose(1, 2)
        if self.left:
            h = F.pad(h, (self.left, 0))
        return activate(self.activation, self.conv(h).transpose(1, 2))

    @torch.no_grad()
    def load_keras(self, arrays: list[np.ndarray], what: str) -> None:
        c = self.conv
        count(arrays, 2 if c.bias is not None else 1, what)
        k = tensor(arrays[0], (c.kernel_size[0], c.in_channels, c.out_channels), what)
        c.weight.copy_(k.permute(2, 1, 0))  # Keras [k, in, out] -> PyTorch [out, in, k]
        if c.bias is not None:
            c.bias.copy_(tensor(arrays[1], (c.out_channels,), what))


class Pool1D(nn.Module):
    """Keras (Global)Max/AveragePooling1D on ``[B, T, C]`` (channels-last).

    GlobalAveragePooling1D with a mask averages the real steps only (Keras: ``sum(where(mask, x,
    0)) / sum(mask)``); GlobalMaxPooling1D ignores masks in Keras 3, and so does this."""

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        kind = spec["type"]
        self.kind = kind
        self.is_global = kind.startswith("global")
        self.keepdims = bool(spec.get("keepdims", False))
        self.pool: nn.Module
        if kind == "global_max_pool":
            self.pool = nn.AdaptiveMaxPool1d(1)
        elif kind == "global_avg_pool":
            self.pool = nn.AdaptiveAvgPool1d(1)
        else:
            size = int(spec["pool_size"])
            stride = int(spec.get("strides") or size)
            self.pool = (nn.MaxPool1d if kind == "max_pool1d" else nn.AvgPool1d)(size, stride)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is not None and self.kind == "global_avg_pool":
            keep = mask.unsqueeze(-1)
            y = torch.where(keep, x, 0.0).sum(1, keepdim=True) / keep.sum(1, keepdim=True).to(x.dtype)
            return y if self.keepdims else y.squeeze(1)
        y = self.pool(x.transpose(1, 2))  # [B, C, T']
        if self.is_global and not self.keepdims:
            return y.squeeze(-1)  # [B, C]
        return y.transpose(1, 2)  # [B, T', C]


class LayerNorm(nn.Module):
    """Keras LayerNormalization over the last axis (``rms_scaling`` too: ``x / sqrt(var + eps) * gamma``)."""

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        dim = int(spec["dim"])
        self.eps = float(spec.get("epsilon", 1e-3))
        self.rms = bool(spec.get("rms_scaling", False))
        self.center = bool(spec.get("center", True)) and not self.rms
        self.scale = bool(spec.get("scale", True))
        self.norm = nn.LayerNorm(dim, eps=self.eps, elementwise_affine=False)
        self.weight = nn.Parameter(torch.ones(dim)) if self.scale else None
        self.bias = nn.Parameter(torch.zeros(dim)) if self.center else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rms:  # Keras' rms_scaling divides by the standard deviation (a variance, not a mean square)
            var = torch.square(x - x.mean(-1, keepdim=True)).mean(-1, keepdim=True)
            y = x * torch.rsqrt(var + self.eps)
        else:
            y = self.norm(x)
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y

    @torch.no_grad()
    def load_keras(self, arrays: list[np.ndarray], what: str) -> None:
        params = [p for p in (self.weight, self.bias) if p is not None]
        # Keras stores gamma, then beta (each only if scale / center).
        count(arrays, len(params), what)
        for p, a in zip(params, arrays, strict=True):
            p.copy_(tensor(a, tuple(p.shape), what))


class BatchNorm(nn.Module):
    """Keras BatchNormalization at inference, on the last axis: ``(x - mean) / sqrt(var + eps) * gamma + beta``
    with the moving statistics (a fixed affine map per channel)."""

    running_mean: torch.Tensor
    running_var: torch.Tensor

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        dim = int(spec["dim"])
        self.eps = float(spec.get("epsilon", 1e-3))
        self.scale, self.center = bool(spec.get("scale", True)), bool(spec.get("center", True))
        self.weight = nn.Parameter(torch.ones(dim)) if self.scale else None
        self.bias = nn.Parameter(torch.zeros(dim)) if self.center else None
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = (x - self.running_mean) * torch.rsqrt(self.running_var + self.eps)
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y

    @torch.no_grad()
    def load_keras(self, arrays: list[np.ndarray], what: str) -> None:
        # Keras order: gamma (if scale), beta (if center), moving_mean, moving_variance.
        targets: list[torch.Tensor] = [p for p in (self.weight, self.bias) if p is not None]
        targets += [self.running_mean, self.running_var]
        count(arrays, len(targets), what)
        for p, a in zip(targets, arrays, strict=True):
            p.copy_(tensor(a, tuple(p.shape), what))


class GroupNorm(nn.Module):
    """Keras GroupNormalization, channels last: statistics per example and group of channels,
    over every step and channel of the group (``[B, T, C]`` -> groups of ``C / groups``)."""

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        dim = int(spec["dim"])
        self.groups = int(spec["groups"])
        self.eps = float(spec.get("epsilon", 1e-3))
        self.weight = nn.Parameter(torch.ones(dim)) if spec.get("scale", True) else None
        self.bias = nn.Parameter(torch.zeros(dim)) if spec.get("center", True) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        g = x.reshape(*shape[:-1], self.groups, shape[-1] // self.groups)
        axes = [d for d in range(1, g.dim()) if d != g.dim() - 2]  # all but batch and group
        mean = g.mean(dim=axes, keepdim=True)
        centered = g - mean
        var = torch.square(centered).mean(dim=axes, keepdim=True)
        y = (centered * torch.rsqrt(var + self.eps)).reshape(shape)
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y

    @torch.no_grad()
    def load_keras(self, arrays: list[np.ndarray], what: str) -> None:
        params = [p for p in (self.weight, self.bias) if p is not None]
        count(arrays, len(params), what)
        for p, a in zip(params, arrays, strict=True):
            p.copy_(tensor(a, tuple(p.shape), what))


class Masking(nn.Module):
    """Keras Masking: steps whose features all equal ``mask_value`` become zeros (the graph derives
    the mask itself from the same comparison)."""

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        self.mask_value = float(spec.get("mask_value", 0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = (x.detach() != self.mask_value).any(-1, keepdim=True)  # a comparison carries no gradient
        return torch.where(keep, x, 0.0)


class Merge(nn.Module):
    """Keras Add, Subtract, Multiply, Average, Maximum, Minimum and Concatenate.

    Lower-rank inputs get size-1 axes after the batch axis first, as Keras' merge layers do.
    ``max(a, b)`` is written ``a + relu(b - a)`` (the same number, and a ReLU has an exact rule)."""

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        self.mode = spec["mode"]
        self.axis = int(spec.get("axis", -1))

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        if self.mode == "concatenate":
            return torch.cat(xs, dim=self.axis)
        rank = max(x.dim() for x in xs)
        xs = tuple(x.reshape(x.shape[0], *([1] * (rank - x.dim())), *x.shape[1:]) for x in xs)
        y = xs[0]
        if self.mode == "subtract":
            return xs[0] - xs[1]
        for x in xs[1:]:
            if self.mode in ("add", "average"):
                y = y + x
            elif self.mode == "multiply":
                y = y * x
            elif self.mode == "maximum":
                y = y + torch.relu(x - y)
            elif self.mode == "minimum":
                y = y - torch.relu(y - x)
        return y / len(xs) if self.mode == "average" else y


class Reshape(nn.Module):
    """Keras Flatten, Reshape, Permute and RepeatVector (the batch axis is never touched)."""

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        self.kind = spec["type"]
        self.target = [int(v) for v in spec.get("target_shape", [])]
        self.dims = [int(v) for v in spec.get("dims", [])]
        self.n = int(spec.get("n", 1))
        if not 1 <= self.n <= MAX_REPEAT:  # a crafted config must not make a sequence of any length
            raise ValueError(f"RepeatVector n must be from 1 to {MAX_REPEAT:,}, got {self.n}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "flatten":
            return x.flatten(1)
        if self.kind == "reshape":
            return x.reshape(x.shape[0], *self.target)
        if self.kind == "permute":
            return x.permute(0, *self.dims)
        return x.unsqueeze(1).expand(x.shape[0], self.n, *x.shape[1:])  # repeat_vector


class MultiHeadAttention(nn.Module):
    """Keras MultiHeadAttention written out: per-head projections (``nn.Linear`` over ``D -> H*dk``),
    ``softmax(q kᵀ / sqrt(dk))`` with masked scores filled with -1e9 (a fully masked row attends
    uniformly, as in Keras), weights times values, and the output projection.

    ``query [B, T, Dq]``, ``value [B, S, Dv]`` (``key`` defaults to ``value``); bool masks: ``query_mask``
    ``[B, T]``, ``value_mask``/``key_mask`` ``[B, S]``, ``attention_mask`` ``[B, T, S]``."""

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        H, dk, dv = int(spec["num_heads"]), int(spec["key_dim"]), int(spec["value_dim"])
        self.heads, self.key_dim, self.value_dim = H, dk, dv
        bias = bool(spec.get("use_bias", True))
        self.query = nn.Linear(int(spec["query_dim"]), H * dk, bias=bias)
        self.key = nn.Linear(int(spec["key_in"]), H * dk, bias=bias)
        self.value = nn.Linear(int(spec["value_in"]), H * dv, bias=bias)
        self.output = nn.Linear(H * dv, int(spec["output_dim"]), bias=bias)
        self.causal = bool(spec.get("causal", False))
        self.window = spec.get("sliding_window")
        self.scale = 1.0 / math.sqrt(dk)

    def forward(
        self,
        query: torch.Tensor,
        value: torch.Tensor,
        key: torch.Tensor | None = None,
        query_mask: torch.Tensor | None = None,
        value_mask: torch.Tensor | None = None,
        key_mask: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        key = value if key is None else key
        B, T, S, H = query.shape[0], query.shape[1], value.shape[1], self.heads
        q = self.query(query).view(B, T, H, self.key_dim).transpose(1, 2)  # [B, H, T, dk]
        k = self.key(key).view(B, S, H, self.key_dim).transpose(1, 2)
        v = self.value(value).view(B, S, H, self.value_dim).transpose(1, 2)
        scores = (q * self.scale) @ k.transpose(-2, -1)  # [B, H, T, S]
        keep = self._keep(query, T, S, query_mask, value_mask, key_mask, attention_mask)
        if keep is not None:
            scores = scores.masked_fill(~keep.unsqueeze(1), -1e9)
        weights = torch.softmax(scores, dim=-1)
        out = (weights @ v).transpose(1, 2).reshape(B, T, H * self.value_dim)
        return self.output(out)

    def _keep(self, query, T, S, query_mask, value_mask, key_mask, attention_mask) -> torch.Tensor | None:
        """Keras' ``_compute_attention_mask``: every mask given, ANDed, as bool ``[B|1, T, S]``."""
        keep = None
        for m in (
            query_mask.unsqueeze(-1) if query_mask is not None else None,
            value_mask.unsqueeze(-2) if value_mask is not None else None,
            key_mask.unsqueeze(-2) if key_mask is not None else None,
            torch.ones(1, T, S, dtype=torch.bool, device=query.device).tril() if self.causal else None,
            self._band(T, S, query.device),
            attention_mask.bool() if attention_mask is not None else None,
        ):
            if m is not None:
                keep = m if keep is None else keep & m
        return keep

    def _band(self, T: int, S: int, device) -> torch.Tensor | None:
        if self.window is None:
            return None
        rows = torch.arange(T, device=device).view(1, T, 1)
        cols = torch.arange(S, device=device).view(1, 1, S)
        return (rows - cols).abs() < int(self.window)

    @torch.no_grad()
    def load_keras(self, arrays: list[np.ndarray], what: str) -> None:
        """Keras kernels ``[D, H, dk]`` (query/key/value) and ``[H, dv, D_out]`` (output), biases
        ``[H, dk]`` and ``[D_out]``: flattened to ``nn.Linear``'s ``[out, in]`` head-major."""
        H, dk, dv = self.heads, self.key_dim, self.value_dim
        bias = self.query.bias is not None
        count(arrays, 8 if bias else 4, what)
        per = 2 if bias else 1
        for i, (lin, width) in enumerate(((self.query, dk), (self.key, dk), (self.value, dv))):
            w = tensor(arrays[i * per], (lin.in_features, H, width), what)
            lin.weight.copy_(w.reshape(lin.in_features, H * width).T)
            if bias:
                lin.bias.copy_(tensor(arrays[i * per + 1], (H, width), what).reshape(-1))
        w = tensor(arrays[3 * per], (H, dv, self.output.out_features), what)
        self.output.weight.copy_(w.reshape(H * dv, -1).T)
        if bias:
            self.output.bias.copy_(tensor(arrays[3 * per + 1], (self.output.out_features,), what))
