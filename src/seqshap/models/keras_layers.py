"""``KerasSequential``: a PyTorch twin of a Keras text classifier, described by a JSON layer list.

``seqshap import-keras`` writes that list into ``config.json`` (``"arch": "keras"``), so a
converted model is rebuilt like any other: ``build_model("keras", vocab_size=..., embed_dim=...,
layers=[...])``. Tensors stay channels-last (``[batch, time, channels]``) between layers, as
in Keras, so ``Flatten`` and ``Dense`` see the same element order Keras did.

Everything is written with standard layers (``nn.Embedding``, ``nn.LSTM``, ``nn.GRU``,
``nn.Conv1d``, ``nn.Linear``, pooling) or plain elementwise torch ops and products, which
is what the DeepSHAP engine explains. ``nn.LSTM``/``nn.GRU`` are used whenever they compute
exactly what Keras does (tanh activation, sigmoid recurrent activation, GRU ``reset_after=True``);
anything else (``reset_after=False``, ``hard_sigmoid``, ...) runs an explicit cell.

Layer specs (``type`` and its keys):

- ``lstm`` / ``gru``: ``input_size, units, bidirectional, return_sequences, activation,
  recurrent_activation, use_bias`` (+ ``reset_after`` for ``gru``)
- ``conv1d``: ``in_channels, filters, kernel_size, strides, dilation_rate, padding
  ("valid"|"same"), activation, use_bias``
- ``max_pool1d`` / ``avg_pool1d``: ``pool_size, strides``
- ``global_max_pool`` / ``global_avg_pool``: ``keepdims``
- ``dense``: ``in_features, units, activation, use_bias``
- ``flatten``, ``activation`` (``activation``)

Each spec may carry ``keras_name``/``keras_class`` (the source layer), only for messages.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = ("linear", "sigmoid", "tanh", "relu", "softmax", "hard_sigmoid", "hard_sigmoid_keras2")


def activate(name: str, x: torch.Tensor) -> torch.Tensor:
    """Keras activation by name, as plain torch ops.

    ``hard_sigmoid`` is Keras 3's ``relu6(x + 3) / 6`` (= ``F.hardsigmoid``); Keras 2 defined it
    as ``clip(0.2 x + 0.5, 0, 1)``, which is ``hardsigmoid(1.2 x)`` (``hard_sigmoid_keras2``).
    """
    if name == "linear":
        return x
    if name == "sigmoid":
        return torch.sigmoid(x)
    if name == "tanh":
        return torch.tanh(x)
    if name == "relu":
        return torch.relu(x)
    if name == "softmax":
        return torch.softmax(x, dim=-1)
    if name == "hard_sigmoid":
        return F.hardsigmoid(x)
    if name == "hard_sigmoid_keras2":
        return F.hardsigmoid(1.2 * x)
    raise ValueError(f"unknown activation {name!r}; supported: {', '.join(ACTIVATIONS)}")


def _check_activation(name: str, where: str) -> str:
    if name not in ACTIVATIONS:
        raise ValueError(f"{where}: unsupported activation {name!r}; supported: {', '.join(ACTIVATIONS)}")
    return name


def _tensor(a: np.ndarray, shape: tuple[int, ...], what: str) -> torch.Tensor:
    """float32 tensor from a Keras array, with a clear error if its shape is not ``shape``."""
    a = np.asarray(a)
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"{what}: weight has shape {tuple(a.shape)}, expected {tuple(shape)}")
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def _split_weights(arrays: list[np.ndarray], use_bias: bool, what: str, bidirectional: bool):
    """Keras recurrent weights -> one ``(kernel, recurrent_kernel, bias|None)`` per direction
    (Bidirectional stores the forward layer's three arrays, then the backward layer's)."""
    per = 3 if use_bias else 2
    dirs = 2 if bidirectional else 1
    if len(arrays) != per * dirs:
        raise ValueError(f"{what}: expected {per * dirs} weight arrays, the file has {len(arrays)}")
    out = []
    for d in range(dirs):
        k, rk, *b = arrays[d * per : (d + 1) * per]
        out.append((k, rk, b[0] if b else None))
    return out


class TorchRecurrent(nn.Module):
    """Keras LSTM/GRU (tanh, sigmoid gates; GRU with ``reset_after=True``) via ``nn.LSTM``/``nn.GRU``.

    ``[B, T, input_size]`` -> ``[B, T, D*units]`` (``return_sequences``) or ``[B, D*units]``.
    """

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        self.cell = spec["type"]
        self.units = int(spec["units"])
        self.return_sequences = bool(spec["return_sequences"])
        self.bidirectional = bool(spec["bidirectional"])
        self.use_bias = bool(spec.get("use_bias", True))
        rnn = nn.LSTM if self.cell == "lstm" else nn.GRU
        self.rnn = rnn(
            int(spec["input_size"]), self.units, batch_first=True, bidirectional=self.bidirectional, bias=self.use_bias
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq, state = self.rnn(x)
        if self.return_sequences:
            return seq  # PyTorch already aligns the backward outputs in time, as Keras does
        h_n = state[0] if isinstance(state, tuple) else state
        return torch.cat([h_n[-2], h_n[-1]], dim=1) if self.bidirectional else h_n[-1]

    @torch.no_grad()
    def load_keras(self, arrays: list[np.ndarray], what: str) -> None:
        """Keras kernel ``[in, G*H]`` / recurrent kernel ``[H, G*H]`` -> PyTorch ``[G*H, in]``.

        LSTM gates i,f,c,o are PyTorch's i,f,g,o; Keras has one bias (PyTorch's b_hh = 0).
        GRU gates z,r,h become PyTorch's r,z,n; ``reset_after=True`` keeps an input bias
        (Keras ``bias[0]`` = b_ih) and a recurrent bias (``bias[1]`` = b_hh).
        """
        H, In = self.units, self.rnn.input_size
        gates = 4 if self.cell == "lstm" else 3
        for d, (k, rk, b) in enumerate(_split_weights(arrays, self.use_bias, what, self.bidirectional)):
            sfx = "_l0" + ("_reverse" if d else "")
            k = _tensor(k, (In, gates * H), what).T
            rk = _tensor(rk, (H, gates * H), what).T
            if self.cell == "gru":
                k, rk = _zrh_to_rzn(k, H), _zrh_to_rzn(rk, H)
            getattr(self.rnn, "weight_ih" + sfx).copy_(k)
            getattr(self.rnn, "weight_hh" + sfx).copy_(rk)
            if not self.use_bias:
                continue
            if self.cell == "lstm":
                b_ih, b_hh = _tensor(b, (gates * H,), what), torch.zeros(gates * H)
            else:
                b = _tensor(b, (2, gates * H), what)
                b_ih, b_hh = _zrh_to_rzn(b[0], H), _zrh_to_rzn(b[1], H)
            getattr(self.rnn, "bias_ih" + sfx).copy_(b_ih)
            getattr(self.rnn, "bias_hh" + sfx).copy_(b_hh)


def _zrh_to_rzn(w: torch.Tensor, H: int) -> torch.Tensor:
    """Reorder the gate blocks along dim 0 from Keras' z,r,h to PyTorch's r,z,n."""
    return torch.cat([w[H : 2 * H], w[:H], w[2 * H :]], dim=0)


class KerasCell(nn.Module):
    """One direction of a Keras LSTM or GRU, written as plain torch ops (Keras gate order).

    ``x_proj`` (``nn.Linear``, Keras ``kernel`` + input bias) and ``h_proj`` (``nn.Linear``,
    Keras ``recurrent_kernel``; bias only for GRU ``reset_after=True``) keep Keras' column order:
    LSTM i,f,c,o and GRU z,r,h.
    """

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        self.cell = spec["type"]
        self.units = H = int(spec["units"])
        self.activation = spec.get("activation", "tanh")
        self.recurrent_activation = spec.get("recurrent_activation", "sigmoid")
        self.reset_after = bool(spec.get("reset_after", True)) if self.cell == "gru" else False
        use_bias = bool(spec.get("use_bias", True))
        gates = 4 if self.cell == "lstm" else 3
        self.x_proj = nn.Linear(int(spec["input_size"]), gates * H, bias=use_bias)
        if self.cell == "gru" and not self.reset_after:
            # reset_after=False multiplies h by r *before* the candidate's recurrent matmul,
            # so the z,r part and the h part of the recurrent kernel are applied separately.
            self.h_proj = nn.Linear(H, 2 * H, bias=False)
            self.h_proj_cand = nn.Linear(H, H, bias=False)
        else:
            self.h_proj = nn.Linear(H, gates * H, bias=use_bias and self.reset_after)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, in]`` -> all hidden states ``[B, T, H]``."""
        B, T, _ = x.shape
        H, ra, act = self.units, self.recurrent_activation, self.activation
        xs = self.x_proj(x)  # [B, T, G*H], input bias included
        h = x.new_zeros(B, H)
        c = x.new_zeros(B, H)
        out = []
        for t in range(T):
            xt = xs[:, t]
            if self.cell == "lstm":
                z = xt + self.h_proj(h)
                i, f, g, o = z[:, :H], z[:, H : 2 * H], z[:, 2 * H : 3 * H], z[:, 3 * H :]
                c = activate(ra, f) * c + activate(ra, i) * activate(act, g)
                h = activate(ra, o) * activate(act, c)
            elif self.reset_after:
                rec = self.h_proj(h)  # recurrent bias included
                z = activate(ra, xt[:, :H] + rec[:, :H])
                r = activate(ra, xt[:, H : 2 * H] + rec[:, H : 2 * H])
                cand = activate(act, xt[:, 2 * H :] + r * rec[:, 2 * H :])
                h = z * h + (1 - z) * cand
            else:
                rec = self.h_proj(h)
                z = activate(ra, xt[:, :H] + rec[:, :H])
                r = activate(ra, xt[:, H : 2 * H] + rec[:, H:])
                cand = activate(act, xt[:, 2 * H :] + self.h_proj_cand(r * h))
                h = z * h + (1 - z) * cand
            out.append(h)
        return torch.stack(out, dim=1) if out else x.new_zeros(B, 0, H)

    @torch.no_grad()
    def load_keras(self, k: np.ndarray, rk: np.ndarray, b: np.ndarray | None, what: str) -> None:
        H, In = self.units, self.x_proj.in_features
        G = 4 if self.cell == "lstm" else 3
        kt = _tensor(k, (In, G * H), what)
        rkt = _tensor(rk, (H, G * H), what)
        self.x_proj.weight.copy_(kt.T)
        if self.cell == "gru" and not self.reset_after:
            self.h_proj.weight.copy_(rkt[:, : 2 * H].T)
            self.h_proj_cand.weight.copy_(rkt[:, 2 * H :].T)
        else:
            self.h_proj.weight.copy_(rkt.T)
        if b is None:
            return
        if self.cell == "gru" and self.reset_after:
            bt = _tensor(b, (2, G * H), what)
            self.x_proj.bias.copy_(bt[0])
            self.h_proj.bias.copy_(bt[1])
        else:
            self.x_proj.bias.copy_(_tensor(b, (G * H,), what))


class ExplicitRecurrent(nn.Module):
    """Keras LSTM/GRU (optionally Bidirectional, merge_mode concat) from ``KerasCell``s.

    ``[B, T, in]`` -> ``[B, T, D*H]`` (``return_sequences``) or ``[B, D*H]`` (last state).
    """

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        self.return_sequences = bool(spec["return_sequences"])
        self.bidirectional = bool(spec["bidirectional"])
        self.use_bias = bool(spec.get("use_bias", True))
        self.forward_cell = KerasCell(spec)
        self.backward_cell = KerasCell(spec) if self.bidirectional else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fw = self.forward_cell(x)
        if self.backward_cell is None:
            return fw if self.return_sequences else fw[:, -1]
        # The backward layer reads the sequence reversed; Keras flips its outputs back in time,
        # and its final state is the one after reading position 0.
        bw = torch.flip(self.backward_cell(torch.flip(x, dims=[1])), dims=[1])
        if self.return_sequences:
            return torch.cat([fw, bw], dim=-1)
        return torch.cat([fw[:, -1], bw[:, 0]], dim=-1)

    def load_keras(self, arrays: list[np.ndarray], what: str) -> None:
        cells = [self.forward_cell] + ([self.backward_cell] if self.backward_cell is not None else [])
        for cell, (k, rk, b) in zip(
            cells, _split_weights(arrays, self.use_bias, what, self.bidirectional), strict=True
        ):
            cell.load_keras(k, rk, b, what)


def _uses_torch_rnn(spec: dict[str, Any]) -> bool:
    """``nn.LSTM``/``nn.GRU`` compute exactly Keras' cell only with these settings."""
    return (
        spec.get("activation", "tanh") == "tanh"
        and spec.get("recurrent_activation", "sigmoid") == "sigmoid"
        and (spec["type"] == "lstm" or bool(spec.get("reset_after", True)))
    )


class Conv1D(nn.Module):
    """Keras Conv1D on channels-last ``[B, T, C]`` -> ``[B, T', filters]``."""

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        padding = spec.get("padding", "valid")
        strides = int(spec.get("strides", 1))
        if padding not in ("valid", "same"):
            raise ValueError(f"Conv1D padding {padding!r} is not supported (use 'valid' or 'same')")
        if padding == "same" and strides != 1:
            raise ValueError("Conv1D with padding='same' and strides > 1 is not supported")
        # PyTorch's 'same' pads the extra element of an even kernel on the right, as Keras does.
        self.conv = nn.Conv1d(
            int(spec["in_channels"]),
            int(spec["filters"]),
            int(spec["kernel_size"]),
            stride=strides,
            dilation=int(spec.get("dilation_rate", 1)),
            padding=padding,
            bias=bool(spec.get("use_bias", True)),
        )
        self.activation = _check_activation(spec.get("activation", "linear"), "Conv1D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return activate(self.activation, self.conv(x.transpose(1, 2)).transpose(1, 2))

    @torch.no_grad()
    def load_keras(self, arrays: list[np.ndarray], what: str) -> None:
        c = self.conv
        want = 2 if c.bias is not None else 1
        if len(arrays) != want:
            raise ValueError(f"{what}: expected {want} weight arrays, the file has {len(arrays)}")
        k = _tensor(arrays[0], (c.kernel_size[0], c.in_channels, c.out_channels), what)
        c.weight.copy_(k.permute(2, 1, 0))  # Keras [k, in, out] -> PyTorch [out, in, k]
        if c.bias is not None:
            c.bias.copy_(_tensor(arrays[1], (c.out_channels,), what))


class Pool1D(nn.Module):
    """Keras (Global)Max/AveragePooling1D on ``[B, T, C]`` (channels-last)."""

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        kind = spec["type"]
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool(x.transpose(1, 2))  # [B, C, T']
        if self.is_global and not self.keepdims:
            return y.squeeze(-1)  # [B, C]
        return y.transpose(1, 2)  # [B, T', C]


class Dense(nn.Module):
    """Keras Dense (on the last axis) + its activation."""

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        self.linear = nn.Linear(int(spec["in_features"]), int(spec["units"]), bias=bool(spec.get("use_bias", True)))
        self.activation = _check_activation(spec.get("activation", "linear"), "Dense")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return activate(self.activation, self.linear(x))

    @torch.no_grad()
    def load_keras(self, arrays: list[np.ndarray], what: str) -> None:
        lin = self.linear
        want = 2 if lin.bias is not None else 1
        if len(arrays) != want:
            raise ValueError(f"{what}: expected {want} weight arrays, the file has {len(arrays)}")
        lin.weight.copy_(_tensor(arrays[0], (lin.in_features, lin.out_features), what).T)
        if lin.bias is not None:
            lin.bias.copy_(_tensor(arrays[1], (lin.out_features,), what))


class Activation(nn.Module):
    """Keras ``Activation`` layer."""

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        self.activation = _check_activation(spec["activation"], "Activation")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return activate(self.activation, x)


def build_layer(spec: dict[str, Any]) -> nn.Module:
    """One spec dict -> its module."""
    kind = spec.get("type")
    if kind in ("lstm", "gru"):
        return TorchRecurrent(spec) if _uses_torch_rnn(spec) else ExplicitRecurrent(spec)
    if kind == "conv1d":
        return Conv1D(spec)
    if kind in ("max_pool1d", "avg_pool1d", "global_max_pool", "global_avg_pool"):
        return Pool1D(spec)
    if kind == "dense":
        return Dense(spec)
    if kind == "flatten":
        return nn.Flatten(1)
    if kind == "activation":
        return Activation(spec)
    raise ValueError(f"unknown layer type {kind!r} in the keras layer list")


class KerasSequential(nn.Module):
    """Embedding -> ``layers`` (a JSON list of specs), channels-last throughout.

    ids ``[B, T]`` (or embeddings ``[B, T, embed_dim]``) -> ``[B, outputs]``: a probability
    after a sigmoid/softmax Dense, raw scores after a linear one.
    """

    def __init__(self, vocab_size: int, embed_dim: int, layers: list[dict[str, Any]]):
        super().__init__()
        self.embedding = nn.Embedding(int(vocab_size), int(embed_dim))
        self.specs = [dict(s) for s in layers]
        self.layers = nn.ModuleList(build_layer(s) for s in self.specs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if x.is_floating_point() else self.embedding(x)
        for layer in self.layers:
            h = layer(h)
        return h
