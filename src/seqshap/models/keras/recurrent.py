"""Keras LSTM, GRU and SimpleRNN (optionally Bidirectional), with Keras' padding masks.

Spec keys: ``type`` ("lstm" | "gru" | "simple_rnn"), ``input_size, units, bidirectional,
merge_mode`` ("concat" | "sum" | "ave" | "mul"), ``return_sequences, activation,
recurrent_activation, use_bias, reset_after`` (GRU), ``masked`` (a mask is passed in).

Without a mask, ``nn.LSTM``/``nn.GRU``/``nn.RNN`` run whenever they compute exactly Keras' cell
(tanh, sigmoid gates, GRU ``reset_after=True``; SimpleRNN tanh or relu); anything else runs an
explicit cell. With a mask (``Embedding(mask_zero=True)`` or ``Masking`` upstream) the explicit
cell runs and does what Keras' RNN loop does: at a masked step the state is carried over
(``torch.where(mask, new, old)``), the output repeats the last one (zeros inside a
``Bidirectional`` that returns sequences, Keras' ``zero_output_for_mask``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from .activations import activate
from .weights import tensor

GATES = {"lstm": 4, "gru": 3, "simple_rnn": 1}


def split_weights(arrays: list[np.ndarray], use_bias: bool, what: str, bidirectional: bool):
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


def merge(mode: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Bidirectional's ``merge_mode`` of the forward and backward outputs."""
    if mode == "concat":
        return torch.cat([a, b], dim=-1)
    if mode == "sum":
        return a + b
    if mode == "ave":
        return (a + b) / 2
    if mode == "mul":
        return a * b
    raise ValueError(f"Bidirectional merge_mode {mode!r} is not supported (concat, sum, ave, mul)")


def uses_torch_rnn(spec: dict[str, Any]) -> bool:
    """``nn.LSTM``/``nn.GRU``/``nn.RNN`` compute exactly Keras' cell only with these settings."""
    if spec.get("masked"):
        return False
    if spec["type"] == "simple_rnn":
        return spec.get("activation", "tanh") in ("tanh", "relu")
    return (
        spec.get("activation", "tanh") == "tanh"
        and spec.get("recurrent_activation", "sigmoid") == "sigmoid"
        and (spec["type"] == "lstm" or bool(spec.get("reset_after", True)))
    )


class TorchRecurrent(nn.Module):
    """Keras LSTM/GRU/SimpleRNN via ``nn.LSTM``/``nn.GRU``/``nn.RNN`` (no mask).

    ``[B, T, input_size]`` -> ``[B, T, D*units]`` (``return_sequences``, concat) or ``[B, D*units]``.
    """

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        self.cell = spec["type"]
        self.units = int(spec["units"])
        self.return_sequences = bool(spec["return_sequences"])
        self.bidirectional = bool(spec["bidirectional"])
        self.merge_mode = str(spec.get("merge_mode", "concat"))
        self.use_bias = bool(spec.get("use_bias", True))
        kw = {"batch_first": True, "bidirectional": self.bidirectional, "bias": self.use_bias}
        size = int(spec["input_size"])
        self.rnn: nn.RNNBase
        if self.cell == "lstm":
            self.rnn = nn.LSTM(size, self.units, **kw)
        elif self.cell == "gru":
            self.rnn = nn.GRU(size, self.units, **kw)
        else:
            self.rnn = nn.RNN(size, self.units, nonlinearity=spec.get("activation", "tanh"), **kw)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        seq, state = self.rnn(x)
        H = self.units
        if self.return_sequences:
            # PyTorch already aligns the backward outputs in time, as Keras does
            return merge(self.merge_mode, seq[..., :H], seq[..., H:]) if self.bidirectional else seq
        h_n = state[0] if isinstance(state, tuple) else state
        return merge(self.merge_mode, h_n[-2], h_n[-1]) if self.bidirectional else h_n[-1]

    @torch.no_grad()
    def load_keras(self, arrays: list[np.ndarray], what: str) -> None:
        """Keras kernel ``[in, G*H]`` / recurrent kernel ``[H, G*H]`` -> PyTorch ``[G*H, in]``.

        LSTM gates i,f,c,o are PyTorch's i,f,g,o; Keras has one bias (PyTorch's b_hh = 0).
        GRU gates z,r,h become PyTorch's r,z,n; ``reset_after=True`` keeps an input bias
        (Keras ``bias[0]`` = b_ih) and a recurrent bias (``bias[1]`` = b_hh).
        """
        H, In = self.units, self.rnn.input_size
        gates = GATES[self.cell]
        for d, (k, rk, b) in enumerate(split_weights(arrays, self.use_bias, what, self.bidirectional)):
            sfx = "_l0" + ("_reverse" if d else "")
            k = tensor(k, (In, gates * H), what).T
            rk = tensor(rk, (H, gates * H), what).T
            if self.cell == "gru":
                k, rk = _zrh_to_rzn(k, H), _zrh_to_rzn(rk, H)
            getattr(self.rnn, "weight_ih" + sfx).copy_(k)
            getattr(self.rnn, "weight_hh" + sfx).copy_(rk)
            if not self.use_bias:
                continue
            if self.cell == "gru":
                bb = tensor(b, (2, gates * H), what)
                b_ih, b_hh = _zrh_to_rzn(bb[0], H), _zrh_to_rzn(bb[1], H)
            else:
                b_ih, b_hh = tensor(b, (gates * H,), what), torch.zeros(gates * H)
            getattr(self.rnn, "bias_ih" + sfx).copy_(b_ih)
            getattr(self.rnn, "bias_hh" + sfx).copy_(b_hh)


def _zrh_to_rzn(w: torch.Tensor, H: int) -> torch.Tensor:
    """Reorder the gate blocks along dim 0 from Keras' z,r,h to PyTorch's r,z,n."""
    return torch.cat([w[H : 2 * H], w[:H], w[2 * H :]], dim=0)


class KerasCell(nn.Module):
    """One direction of a Keras LSTM, GRU or SimpleRNN, written as plain torch ops (Keras gate order).

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
        gates = GATES[self.cell]
        self.x_proj = nn.Linear(int(spec["input_size"]), gates * H, bias=use_bias)
        if self.cell == "gru" and not self.reset_after:
            # reset_after=False multiplies h by r *before* the candidate's recurrent matmul,
            # so the z,r part and the h part of the recurrent kernel are applied separately.
            self.h_proj = nn.Linear(H, 2 * H, bias=False)
            self.h_proj_cand = nn.Linear(H, H, bias=False)
        else:
            self.h_proj = nn.Linear(H, gates * H, bias=use_bias and self.reset_after)

    def step(self, xt: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        H, ra, act = self.units, self.recurrent_activation, self.activation
        if self.cell == "simple_rnn":
            return activate(act, xt + self.h_proj(h)), c
        if self.cell == "lstm":
            z = xt + self.h_proj(h)
            i, f, g, o = z[:, :H], z[:, H : 2 * H], z[:, 2 * H : 3 * H], z[:, 3 * H :]
            c = activate(ra, f) * c + activate(ra, i) * activate(act, g)
            return activate(ra, o) * activate(act, c), c
        rec = self.h_proj(h)  # the recurrent bias is included for reset_after=True
        z = activate(ra, xt[:, :H] + rec[:, :H])
        r = activate(ra, xt[:, H : 2 * H] + rec[:, H : 2 * H])
        if self.reset_after:
            cand = activate(act, xt[:, 2 * H :] + r * rec[:, 2 * H :])
        else:
            cand = activate(act, xt[:, 2 * H :] + self.h_proj_cand(r * h))
        return z * h + (1 - z) * cand, c

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, zero_masked: bool = False) -> torch.Tensor:
        """``[B, T, in]`` (and a bool ``mask`` ``[B, T]``) -> outputs ``[B, T, H]`` in reading order."""
        B, T, _ = x.shape
        xs = self.x_proj(x)  # [B, T, G*H], input bias included
        h = x.new_zeros(B, self.units)
        c = x.new_zeros(B, self.units)
        out = []
        for t in range(T):
            h_new, c_new = self.step(xs[:, t], h, c)
            if mask is None:
                h, c = h_new, c_new
                out.append(h)
                continue
            keep = mask[:, t, None]
            h = torch.where(keep, h_new, h)
            c = torch.where(keep, c_new, c) if self.cell == "lstm" else c
            out.append(torch.where(keep, h, 0.0) if zero_masked else h)
        return torch.stack(out, dim=1) if out else x.new_zeros(B, 0, self.units)

    @torch.no_grad()
    def load_keras(self, k: np.ndarray, rk: np.ndarray, b: np.ndarray | None, what: str) -> None:
        H, In = self.units, self.x_proj.in_features
        G = GATES[self.cell]
        kt = tensor(k, (In, G * H), what)
        rkt = tensor(rk, (H, G * H), what)
        self.x_proj.weight.copy_(kt.T)
        if self.cell == "gru" and not self.reset_after:
            self.h_proj.weight.copy_(rkt[:, : 2 * H].T)
            self.h_proj_cand.weight.copy_(rkt[:, 2 * H :].T)
        else:
            self.h_proj.weight.copy_(rkt.T)
        if b is None:
            return
        if self.cell == "gru" and self.reset_after:
            bt = tensor(b, (2, G * H), what)
            self.x_proj.bias.copy_(bt[0])
            self.h_proj.bias.copy_(bt[1])
        else:
            self.x_proj.bias.copy_(tensor(b, (G * H,), what))


class ExplicitRecurrent(nn.Module):
    """Keras LSTM/GRU/SimpleRNN (optionally Bidirectional) from ``KerasCell``s, masks included.

    ``[B, T, in]`` (+ bool ``mask`` ``[B, T]``) -> ``[B, T, D*H]`` (``return_sequences``) or
    ``[B, D*H]`` (the output after the last step read; ``merge_mode`` other than concat: ``H``).
    """

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        self.return_sequences = bool(spec["return_sequences"])
        self.bidirectional = bool(spec["bidirectional"])
        self.merge_mode = str(spec.get("merge_mode", "concat"))
        self.use_bias = bool(spec.get("use_bias", True))
        self.forward_cell = KerasCell(spec)
        self.backward_cell = KerasCell(spec) if self.bidirectional else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        # Keras' Bidirectional zeroes the outputs of masked steps when it returns sequences.
        zero = self.bidirectional and self.return_sequences
        fw = self.forward_cell(x, mask, zero)
        if self.backward_cell is None:
            return fw if self.return_sequences else fw[:, -1]
        # The backward layer reads the sequence (and mask) reversed; Keras flips its outputs
        # back in time, and its last output is the one after reading position 0.
        flipped = torch.flip(mask, dims=[1]) if mask is not None else None
        bw = self.backward_cell(torch.flip(x, dims=[1]), flipped, zero)
        if self.return_sequences:
            return merge(self.merge_mode, fw, torch.flip(bw, dims=[1]))
        return merge(self.merge_mode, fw[:, -1], bw[:, -1])

    def load_keras(self, arrays: list[np.ndarray], what: str) -> None:
        cells = [self.forward_cell] + ([self.backward_cell] if self.backward_cell is not None else [])
        for cell, (k, rk, b) in zip(cells, split_weights(arrays, self.use_bias, what, self.bidirectional), strict=True):
            cell.load_keras(k, rk, b, what)


def build_recurrent(spec: dict[str, Any]) -> nn.Module:
    return TorchRecurrent(spec) if uses_torch_rnn(spec) else ExplicitRecurrent(spec)
