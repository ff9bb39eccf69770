"""Exact DeepLIFT for Transformer encoder layers, written out as one explicit layer.

Forward: the layer runs once on the *unique* rows (n inputs + k references), as the
recurrent layers do. Backward: multipliers run per pair through the same steps, each with
its rule from :mod:`.rules`:

==========================  =============================================================
linear maps, residuals       multipliers pass through the transpose
``Q Kᵀ``, ``A V``            :class:`BilinearRule` (Shapley split inside the matrix product)
masked softmax               :class:`SoftmaxRule` (scores and padding mask as two players)
LayerNorm                    :class:`LayerNormRule`
GELU / ReLU                  rescale (secant)
==========================  =============================================================

The padding mask is a signal: where the input and the reference have different real
tokens, its multiplier comes back as the gradient of the ``mask`` input, and the explainer
credits it to the position it belongs to. Per pair and layer the attention backward is
O(T²·d) and the feed-forward O(T·d·d_ff); the pairs go through in chunks so that the
``[pairs, heads, T, T]`` tensors stay within a fixed memory budget.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .pairs import Pairing, _Grid
from .rules import BilinearRule, LayerNormRule, SoftmaxRule, secant_stored

# Elements of the largest per-pair tensor ([pairs, heads, T, T]) per block: 2 MB in float32, so a
# block's temporaries stay in a laptop's cache (measured: 2^19 beat 2^18, 2^20 and 2^22).
CHUNK_ELEMENTS = 1 << 19


def _gelu_tanh(u: torch.Tensor) -> torch.Tensor:
    return F.gelu(u, approximate="tanh")


ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,
    "gelu_tanh": _gelu_tanh,
    "relu": F.relu,
}


@dataclass(frozen=True)
class EncoderLayerParams:
    """One encoder layer's weights (the user's own tensors, by reference) and settings.

    Linear weights are PyTorch's ``[out, in]``; biases may be ``None``. ``ln1``/``ln2`` are
    ``(weight, bias, eps)``: ``ln1`` follows attention (post-LN) or precedes it (pre-LN).
    """

    wq: torch.Tensor
    bq: torch.Tensor | None
    wk: torch.Tensor
    bk: torch.Tensor | None
    wv: torch.Tensor
    bv: torch.Tensor | None
    wo: torch.Tensor
    bo: torch.Tensor | None
    w1: torch.Tensor
    b1: torch.Tensor | None
    w2: torch.Tensor
    b2: torch.Tensor | None
    ln1: tuple[torch.Tensor | None, torch.Tensor | None, float]
    ln2: tuple[torch.Tensor | None, torch.Tensor | None, float]
    heads: int
    activation: str = "gelu"
    norm_first: bool = False
    scale: float | None = None  # default 1/sqrt(head_dim)

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation {self.activation!r} is not supported; use one of {sorted(ACTIVATIONS)}")
        if self.wq.shape[0] % self.heads:
            raise ValueError(f"model dim {self.wq.shape[0]} is not divisible by {self.heads} heads")

    @property
    def head_scale(self) -> float:
        return self.scale if self.scale is not None else 1.0 / math.sqrt(self.wq.shape[0] // self.heads)


def _layer_norm(z: torch.Tensor, ln) -> torch.Tensor:
    w, b, eps = ln
    return F.layer_norm(z, z.shape[-1:], w, b, eps)


def _split(t: torch.Tensor, heads: int) -> torch.Tensor:
    """``[..., T, D]`` -> ``[..., heads, T, D/heads]``."""
    *lead, T, D = t.shape
    return t.reshape(*lead, T, heads, D // heads).transpose(-3, -2)


def _merge(t: torch.Tensor) -> torch.Tensor:
    """``[..., heads, T, dh]`` -> ``[..., T, heads*dh]``."""
    *lead, H, T, dh = t.shape
    return t.transpose(-3, -2).reshape(*lead, T, H * dh)


def encoder_forward(p: EncoderLayerParams, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """The layer on rows ``h`` ``[N, T, D]`` with ``mask`` ``[N, T]`` -> (output ``[N, T, D]``,
    the activations the backward pass reads)."""
    act = ACTIVATIONS[p.activation]
    z1 = h
    x1 = _layer_norm(h, p.ln1) if p.norm_first else h
    q = _split(F.linear(x1, p.wq, p.bq), p.heads)
    k = _split(F.linear(x1, p.wk, p.bk), p.heads)
    v = _split(F.linear(x1, p.wv, p.bv), p.heads)
    s = q @ k.transpose(-1, -2) * p.head_scale
    m4 = mask[:, None, None, :]
    lse = SoftmaxRule.log_sum_exp(s, m4)
    a = torch.exp(s.masked_fill(m4 <= 0.5, float("-inf")) - lse)
    o = F.linear(_merge(a @ v), p.wo, p.bo)
    if p.norm_first:
        h1 = h + o
        z2 = h1
        u = F.linear(_layer_norm(h1, p.ln2), p.w1, p.b1)
        out = h1 + F.linear(act(u), p.w2, p.b2)
    else:
        z1 = h + o
        h1 = _layer_norm(z1, p.ln1)
        u = F.linear(h1, p.w1, p.b1)
        z2 = h1 + F.linear(act(u), p.w2, p.b2)
        out = _layer_norm(z2, p.ln2)
    return out, {
        "z1": z1,
        "z2": z2,
        "q": q,
        "k": k,
        "v": v,
        "s": s,
        "lse": lse,
        "a": a,
        "u": u,
        "g": act(u),
        "hs": 0.5 * _slope(act, u),
        "m": mask,
    }


class _Sides:
    """x and reference sides of the stored activations for one block of pairs: x rows
    ``[a0, a1)`` (and, on the deduplicated grid, references ``[b0, b1)``)."""

    def __init__(self, grid: _Grid, stored: dict, rows: slice, refs: slice):
        self.grid, self.stored, self.rows, self.refs = grid, stored, rows, refs

    def __getitem__(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        x, r = self.grid.sides(self.stored[name], batch_dim=0)
        if self.grid.dedup:
            return x[self.rows], r[:, self.refs]
        return x[self.rows], r[self.rows]


def _backward_chunk(p: EncoderLayerParams, S: _Sides, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Multipliers for one chunk of pairs: ``g`` ``[a, b, T, D]`` -> (m_h ``[a, b, T, D]``,
    m_mask ``[a, b, T]``)."""
    (ux, ur), (gx, gr), (hx, hr) = S["u"], S["g"], S["hs"]

    def feed_forward(m_out):  # through w2, the activation (rescale, fallback slopes from the forward pass) and w1
        return ((m_out @ p.w2).mul_(secant_stored(ux, ur, gx, gr, hx, hr))) @ p.w1

    def layer_norm(m_out, name, ln):
        zx, zr = S[name]
        return LayerNormRule.multipliers(m_out, zx, zr, ln[0], ln[2])

    def attention(m_out):  # returns (m for the attention input, m for the mask)
        m_c = _split(m_out @ p.wo, p.heads)
        (ax, ar), (vx, vr) = S["a"], S["v"]
        m_a, m_v = BilinearRule.multipliers(m_c, ax, ar, vx, vr)
        m_s, m_mask = _softmax_multipliers(m_a, S)
        m_s = m_s.mul_(p.head_scale)
        (qx, qr), (kx, kr) = S["q"], S["k"]
        m_q, m_kt = BilinearRule.multipliers(m_s, qx, qr, kx.transpose(-1, -2), kr.transpose(-1, -2))
        m_in = _merge(m_q) @ p.wq + _merge(m_kt.transpose(-1, -2)) @ p.wk + _merge(m_v) @ p.wv
        return m_in, m_mask

    if p.norm_first:
        m_h1 = g + layer_norm(feed_forward(g), "z2", p.ln2)
        m_x1, m_mask = attention(m_h1)
        return m_h1 + layer_norm(m_x1, "z1", p.ln1), m_mask
    m_z2 = layer_norm(g, "z2", p.ln2)
    m_z1 = layer_norm(m_z2 + feed_forward(m_z2), "z1", p.ln1)
    m_x, m_mask = attention(m_z1)
    return m_z1 + m_x, m_mask


def _softmax_multipliers(g: torch.Tensor, S: _Sides) -> tuple[torch.Tensor, torch.Tensor]:
    """:class:`SoftmaxRule` over the attention rows of a block of pairs ``[a, b, H, T, T]``.
    Returns (m_scores, m_mask summed over heads and queries ``[a, b, T]``).

    The two-mask rule (the pairs whose padding masks differ) costs about three one-mask ones;
    on pairs with equal masks it gives the one-mask answer and 0 for the mask. So a block where
    most pairs differ runs it on every pair, broadcast; a block where few do runs the one-mask
    rule on every pair and the two-mask rule on the few, gathered. Gathering every pair of
    both kinds (copies of six ``[pairs, H, T, T]`` tensors) cost more than either."""
    (sx, sr), (ax, ar), (lx, lr), (mx, mr) = S["s"], S["a"], S["lse"], S["m"]
    a, b = g.shape[:2]
    changed = (mx != mr).any(-1)  # [a, b]
    n_changed = int(changed.sum())
    if 2 * n_changed > a * b:
        m_s, m_mask = SoftmaxRule.multipliers(
            g, sx, sr, ax, ar, mx[:, :, None, None, :], mr[:, :, None, None, :], lx, lr
        )
        return m_s, m_mask.sum((-3, -2)).expand(a, b, -1)
    m_s = SoftmaxRule._one_mask(g, sx, sr, ax, ar, lx, lr)
    m_mask = g.new_zeros(a, b, g.shape[-1])
    if not n_changed:
        return m_s, m_mask

    diff = torch.nonzero(changed.flatten()).flatten()

    def pairs(t: torch.Tensor) -> torch.Tensor:  # the changed pairs of a side
        return t.expand(a, b, *t.shape[2:]).reshape(a * b, *t.shape[2:])[diff]

    ms, mm = SoftmaxRule.multipliers(
        g.reshape(a * b, *g.shape[2:])[diff],
        pairs(sx),
        pairs(sr),
        pairs(ax),
        pairs(ar),
        pairs(mx)[:, None, None, :],
        pairs(mr)[:, None, None, :],
        pairs(lx),
        pairs(lr),
    )
    m_s.view(a * b, *g.shape[2:])[diff] = ms
    m_mask.view(a * b, -1)[diff] = mm.sum((-3, -2))  # over heads (queries are summed already)
    return m_s, m_mask


def _slope(act, z: torch.Tensor) -> torch.Tensor:
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        return torch.autograd.grad(act(z).sum(), z)[0]


class _EncoderLayerFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, mask, params: EncoderLayerParams, pairing: Pairing | None):
        with torch._C.DisableTorchFunction():  # plain tensors inside: skip the op checker
            grid = _Grid(h.shape[0], pairing, h, mask)
            out, stored = encoder_forward(params, grid.unique(h), grid.unique(mask))
            ctx.grid, ctx.params, ctx.stored = grid, params, stored
            return grid.expand(out)

    @staticmethod
    def backward(ctx, g_out):
        with torch._C.DisableTorchFunction():
            grid, p, stored = ctx.grid, ctx.params, ctx.stored
            g = grid.grid(g_out, stored["z1"].shape[1:], stored["z1"])
            T, H = stored["s"].shape[-1], p.heads
            # Blocks of pairs small enough that a block's [pairs, H, T, T] temporaries stay in cache.
            per_pair = H * T * T
            refs = max(1, min(grid.b, CHUNK_ELEMENTS // per_pair))
            rows = max(1, CHUNK_ELEMENTS // (per_pair * refs))
            m_h = g.new_empty(g.shape)
            m_mask = g.new_empty(g.shape[:3])
            for a0 in range(0, grid.a, rows):
                for b0 in range(0, grid.b, refs):
                    blk = (slice(a0, a0 + rows), slice(b0, b0 + refs))
                    mh, mm = _backward_chunk(p, _Sides(grid, stored, *blk), g[blk])
                    m_h[blk], m_mask[blk] = mh, mm
            return grid.flat(m_h), grid.flat(m_mask), None, None


class ExplicitEncoderLayer(nn.Module):
    """Stands in for a user's encoder layer while it is explained: same parameters, same
    outputs (checked by the tests to float precision), exact multipliers."""

    def __init__(self, original: nn.Module, params: EncoderLayerParams, pairing: Pairing | None):
        super().__init__()
        self.original, self.params, self.pairing = original, params, pairing

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["original"], name)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.pairing is not None:
            mask = self.pairing.signal(mask)
        return _EncoderLayerFn.apply(h, mask, self.params, self.pairing)
