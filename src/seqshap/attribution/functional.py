"""Fused functional layers written out as the steps they compute, each step then ruled.

PyTorch runs ``nn.MultiheadAttention``, the recurrent cells and ``nn.EmbeddingBag`` as single
calls whose insides the tracer cannot see. Each function here replaces one such call by its
explicit form (linear maps, products, a masked softmax ...) and runs it under the tracing mode,
so every step gets its exact rule; the tests check each form against PyTorch's own output.
Each takes ``(mode, func, args, kwargs)`` like an :class:`~.op_rules.OpRule`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .rules import MaskedScoresSoftmax
from .signals import LARGE_NEGATIVE, _bind, op_name, refuse


def glu(mode, func, args, kwargs):
    """``glu(x, dim) = a · sigmoid(b)`` with ``a, b = x.chunk(2, dim)``."""
    bound = _bind(("input", "dim"), args, kwargs)
    x, dim = bound["input"], int(bound.get("dim", -1))

    def body():
        a, b = x.chunk(2, dim)
        return a * torch.sigmoid(b)

    return mode.run(body)


def normalize(mode, func, args, kwargs):
    """``F.normalize(x, p, dim, eps) = x / max(‖x‖_p, eps)``: the norm's composition, the clamp
    by the rescale rule, the quotient of two signals by the Shapley split."""
    bound = _bind(("input", "p", "dim", "eps"), args, kwargs)
    x, p, dim, eps = bound["input"], bound.get("p", 2.0), bound.get("dim", 1), float(bound.get("eps", 1e-12))
    return mode.run(lambda: x / torch.linalg.vector_norm(x, p, dim, keepdim=True).clamp_min(eps))


# ---- attention ----------------------------------------------------------------------------------
def keep_mask(mode, mask, keep_where_true: bool, dtype) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(keep, bias)`` for an attention mask: a boolean mask (``keep_where_true`` says which value
    takes part) or an additive float one (-inf or a large negative number masks a key, finite
    values shift its score). ``keep`` is a float 0/1 tensor, a signal where it differs between an
    input and its reference (its share then goes to the positions of the keys); ``None`` for no mask."""
    if mask is None:
        return None, None
    if mask.dtype == torch.bool:
        m = mode.mask_signal(mask, "attention mask")
        if m is None:
            with torch._C.DisableTorchFunction():
                m = mask.to(dtype)
        return (m if keep_where_true else mode.run(lambda: 1 - m)), None
    return mode.additive_keep(mask)


def _attend(mode, q, k, v, keep, bias, scale: float):
    """``softmax(q kᵀ · scale + bias)`` over the keys where ``keep``, and that times ``v``;
    ``[B, H, T, d]`` with the batch first. Called from a rule (the mode is off here)."""
    s = mode.run(lambda: (q @ k.transpose(-2, -1)) * scale)
    if bias is not None:
        s = mode.run(lambda: s + bias)
    if mode.ledger.bdim(s) != 0:
        raise refuse("attention scores must have the batch first here")
    kp = keep if keep is not None else torch.ones((), dtype=s.dtype)
    kp = kp.reshape((1,) * (s.dim() - kp.dim()) + tuple(kp.shape))
    p = MaskedScoresSoftmax.apply(s, kp, float("-inf"))
    mode.record_signal(p, 0)
    return p, mode.run(lambda: p @ v)


def _and(mode, a, b):
    if a is None:
        return b
    if b is None:
        return a
    return mode.run(lambda: a * b)


def _add(mode, a, b):
    if a is None:
        return b
    if b is None:
        return a
    return mode.run(lambda: a + b)


SDPA_PARAMS = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")


def scaled_dot_product_attention(mode, func, args, kwargs):
    """``F.scaled_dot_product_attention`` as ``softmax(q kᵀ · scale + mask) v``: both products of
    signals by :class:`~.rules.Bilinear`, the softmax by :class:`~.rules.MaskedScoresSoftmax`
    (a mask computed from the ids that differs between an input and its reference is a player
    whose share goes to the keys' positions)."""
    a = _bind(SDPA_PARAMS, args, kwargs)
    q, k, v, mask = a["query"], a["key"], a["value"], a.get("attn_mask")
    if a.get("dropout_p", 0.0):
        raise refuse(
            "scaled_dot_product_attention with dropout_p > 0 is random; pass dropout_p=0.0 outside training "
            "(model.eval() does not change a functional call's argument)"
        )
    if mode.ledger.bdim(q) != 0:
        raise refuse("scaled_dot_product_attention needs the batch first ([batch, heads, T, d])")
    if a.get("enable_gqa") and k.shape[-3] != q.shape[-3]:
        rep = q.shape[-3] // k.shape[-3]
        k, v = mode.run(lambda: (k.repeat_interleave(rep, -3), v.repeat_interleave(rep, -3)))
    keep, bias = keep_mask(mode, mask, keep_where_true=True, dtype=q.dtype)
    if a.get("is_causal"):
        with torch._C.DisableTorchFunction():
            causal = torch.ones(q.shape[-2], k.shape[-2], dtype=q.dtype, device=q.device).tril()
        keep = _and(mode, keep, causal)
    scale = a.get("scale")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    return _attend(mode, q, k, v, keep, bias, scale)[1]


MHA_PARAMS = (
    "query", "key", "value", "embed_dim_to_check", "num_heads", "in_proj_weight", "in_proj_bias", "bias_k",
    "bias_v", "add_zero_attn", "dropout_p", "out_proj_weight", "out_proj_bias", "training", "key_padding_mask",
    "need_weights", "attn_mask", "use_separate_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight",
    "static_k", "static_v", "average_attn_weights", "is_causal",
)  # fmt: skip


def multi_head_attention_forward(mode, func, args, kwargs):
    """``F.multi_head_attention_forward`` (what ``nn.MultiheadAttention`` runs): the projections,
    ``softmax(q kᵀ/√d + masks) v`` per head and the output projection, written out. Inputs are
    ``[T, batch, E]`` (``nn.MultiheadAttention`` moves a batch-first input there first).
    ``key_padding_mask`` (True: ignore) and ``attn_mask`` (True: not allowed) may be boolean or
    additive, computed from the ids or not; ``bias_k``/``bias_v`` append a learned key."""
    a = _bind(MHA_PARAMS, args, kwargs)
    query, key, value = a["query"], a["key"], a["value"]
    if a.get("training", True) and a.get("dropout_p", 0.0):
        raise refuse("MultiheadAttention with dropout in training mode is random; explain the model in eval mode")
    if a.get("add_zero_attn"):
        raise refuse("MultiheadAttention(add_zero_attn=True) is not supported")
    if a.get("static_k") is not None or a.get("static_v") is not None:
        raise refuse("MultiheadAttention with static_k/static_v is not supported")
    if query.dim() != 3:
        raise refuse("MultiheadAttention on an unbatched input is not supported")
    H, E = int(a["num_heads"]), int(a["embed_dim_to_check"])
    if a.get("use_separate_proj_weight"):
        wq, wk, wv = a["q_proj_weight"], a["k_proj_weight"], a["v_proj_weight"]
    else:
        wq, wk, wv = a["in_proj_weight"].chunk(3)
    b = a.get("in_proj_bias")
    bq, bk, bv = b.chunk(3) if b is not None else (None, None, None)
    kpm, attn_mask = a.get("key_padding_mask"), a.get("attn_mask")
    dt = query.dtype
    keep_k, bias_k = keep_mask(mode, kpm, keep_where_true=False, dtype=dt)
    keep_a, bias_a = keep_mask(mode, attn_mask, keep_where_true=False, dtype=dt)
    if a.get("is_causal") and attn_mask is None:
        with torch._C.DisableTorchFunction():
            keep_a = torch.ones(query.shape[0], key.shape[0], dtype=dt, device=query.device).tril()

    def project():
        q = F.linear(query.transpose(0, 1), wq, bq)  # [B, Tq, E]
        k = F.linear(key.transpose(0, 1), wk, bk)
        v = F.linear(value.transpose(0, 1), wv, bv)
        B, Tq = q.shape[0], q.shape[1]
        extra = a.get("bias_k") is not None
        if extra:
            k = torch.cat([k, a["bias_k"].reshape(1, 1, E).expand(B, 1, E)], 1)
            v = torch.cat([v, a["bias_v"].reshape(1, 1, E).expand(B, 1, E)], 1)
        d = E // H
        split = lambda t: t.reshape(B, t.shape[1], H, d).transpose(1, 2)
        return split(q), split(k), split(v), B, Tq, extra

    q, k, v, B, Tq, extra = mode.run(project)
    keep = _and(mode, _mask4(mode, keep_k, B, H, Tq, "key"), _mask4(mode, keep_a, B, H, Tq, "attn"))
    bias = _add(mode, _mask4(mode, bias_k, B, H, Tq, "key"), _mask4(mode, bias_a, B, H, Tq, "attn"))
    if extra:  # the appended learned key takes part everywhere
        keep = None if keep is None else mode.run(lambda: F.pad(keep, (0, 1), value=1.0))
        bias = None if bias is None else mode.run(lambda: F.pad(bias, (0, 1), value=0.0))
    p, o = _attend(mode, q, k, v, keep, bias, 1.0 / math.sqrt(E // H))

    def output():
        out = F.linear(o.transpose(1, 2).reshape(B, Tq, E), a["out_proj_weight"], a.get("out_proj_bias"))
        weights = None
        if a.get("need_weights", True):
            weights = p.mean(1) if a.get("average_attn_weights", True) else p
        return out.transpose(0, 1), weights

    return mode.run(output)


def _mask4(mode, m, B: int, H: int, Tq: int, kind: str):
    """A key padding mask ``[B, S]`` or attention mask ``[Tq, S]`` / ``[B*H, Tq, S]`` -> 4-D."""
    if m is None:
        return None
    if kind == "key":
        return mode.run(lambda: m.reshape(m.shape[0], 1, 1, m.shape[-1]))
    if m.dim() == 2:
        return mode.run(lambda: m.reshape(1, 1, *m.shape))
    return mode.run(lambda: m.reshape(B, H, Tq, m.shape[-1]))


# ---- recurrent cells ----------------------------------------------------------------------------------
def recurrent_cell(mode, func, args, kwargs):
    """``lstm_cell``/``gru_cell``/``rnn_tanh_cell``/``rnn_relu_cell`` (what ``nn.LSTMCell`` & co.
    run) as PyTorch's equations: linear maps, sigmoid/tanh by the rescale rule, every gate ×
    signal product by the Shapley split."""
    name = op_name(func)
    x, hx, w_ih, w_hh = args[:4]
    b_ih, b_hh = [*args[4:6], None, None][:2]

    def lstm():
        h, c = hx
        i, f, g, o = (F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)).chunk(4, -1)
        c2 = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c2), c2

    def gru():
        gi, gh = F.linear(x, w_ih, b_ih), F.linear(hx, w_hh, b_hh)
        ir, iz, in_ = gi.chunk(3, -1)
        hr, hz, hn = gh.chunk(3, -1)
        r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
        n = torch.tanh(in_ + r * hn)
        return (1 - z) * n + z * hx

    def elman():
        pre = F.linear(x, w_ih, b_ih) + F.linear(hx, w_hh, b_hh)
        return torch.relu(pre) if name == "rnn_relu_cell" else torch.tanh(pre)

    body = {"lstm_cell": lstm, "gru_cell": gru}.get(name, elman)
    return mode.run(body)


# ---- EmbeddingBag -------------------------------------------------------------------------------
EMBEDDING_BAG_PARAMS = (
    "input", "weight", "offsets", "max_norm", "norm_type", "scale_grad_by_freq", "mode", "sparse",
    "per_sample_weights", "include_last_offset", "padding_idx",
)  # fmt: skip


def embedding_bag(mode, func, args, kwargs):
    """``F.embedding_bag`` as a lookup of every position (the input feature) pooled over the bag:
    sum, mean over the entries that are not ``padding_idx`` (their count is a sum of per-position
    indicators, so the mean is a quotient of two signals), or max (a masked max). A 1-D input with
    offsets that cut it into equal bags is read as those rows."""
    a = _bind(EMBEDDING_BAG_PARAMS, args, kwargs)
    ids, weight, offsets = a["input"], a["weight"], a.get("offsets")
    how, psw, pad = a.get("mode", "mean"), a.get("per_sample_weights"), a.get("padding_idx")
    if a.get("max_norm") is not None:
        raise refuse("EmbeddingBag(max_norm=...) rewrites its weights while it runs; not supported")
    L = mode.ledger
    if ids.dim() == 1:
        if offsets is None:
            raise refuse("embedding_bag with a 1-D input needs offsets")
        with torch._C.DisableTorchFunction():
            starts = offsets[:-1] if a.get("include_last_offset") else offsets
            n = starts.shape[0]
            width = ids.shape[0] // max(n, 1)
            even = n * width == ids.shape[0] and bool((starts == torch.arange(n, device=ids.device) * width).all())
        if not even:
            raise refuse(
                "embedding_bag with bags of different lengths (1-D input + offsets): seqshap explains a batch of "
                "rows of ids [batch, T]; give the bags as a 2-D input with padding_idx set to the padding id"
            )
        ids = mode.run(lambda: ids.reshape(n, width))
        if psw is not None:
            psw = mode.run(lambda: psw.reshape(n, width))
    elif offsets is not None:
        raise refuse("embedding_bag with a 2-D input takes no offsets")
    if L.bdim(ids) != 0:
        raise refuse("embedding_bag needs the batch first")

    def body():
        e = F.embedding(ids, weight)  # [B, T, E]: the input feature
        keep = (ids != pad) if pad is not None else None
        if how == "max":
            if psw is not None:
                raise refuse("embedding_bag mode='max' takes no per_sample_weights")
            if keep is None:
                return e.amax(1)
            return e.masked_fill(~keep.unsqueeze(-1), float("-inf")).amax(1)
        w = psw
        if keep is not None:
            w = keep.to(e.dtype) if w is None else w * keep.to(e.dtype)
        total = (e * w.unsqueeze(-1)).sum(1) if w is not None else e.sum(1)
        if how == "sum":
            return total
        if psw is not None:
            raise refuse("embedding_bag mode='mean' takes no per_sample_weights")
        if keep is None:
            return total / e.shape[1]
        return total / keep.to(e.dtype).sum(1, keepdim=True).clamp_min(1.0)

    return mode.run(body)


__all__ = [
    "LARGE_NEGATIVE",
    "embedding_bag",
    "glu",
    "keep_mask",
    "multi_head_attention_forward",
    "recurrent_cell",
    "scaled_dot_product_attention",
]
