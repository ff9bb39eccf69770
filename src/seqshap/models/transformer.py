"""A Transformer encoder text classifier: ids ``[batch, time]`` -> positive-class probability ``[batch, 1]``
(or every class's probability ``[batch, outputs]`` with a softmax head, every label's with ``multi_label``).

token embedding + learned position embedding -> N encoder blocks (multi-head self-attention,
residual, LayerNorm, feed-forward with GELU) -> mean over the real tokens -> Linear -> sigmoid/softmax.

Padding never matters: padded keys get no attention (a multiplicative mask on the softmax,
so a key is in or out, never "almost"), padded positions are left out of the pooling, and
positions count back from the *end* of the text, which front padding never moves. So a
review's prediction does not depend on how much padding it has.

A row of padding only (a text whose every word was taken out, as Integrated Gradients' baseline,
occlusion of a one-word text or the Shapley games' empty coalition make it) has no real token
to pool over: the mean over nothing is the zero vector, so the model's output there is its head's
bias through the sigmoid/softmax, the answer it gives on no evidence at all. Inside, such a row
attends over its padding instead of over nothing (a softmax over no keys is 0/0); that pass is
finite and read by nothing. For a row with a real token both changes add exactly 0: its numbers
are those of the model without them, bit for bit.

The padding mask comes from :class:`PaddingMask`, a module of its own: the explainer reads
its output as an input feature (like an embedding), which is how the mask's share of the
difference between a review and a reference of another length is attributed to positions.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..data.tokenize import PAD
from .classifiers import TextClassifier


def encoder_layer_spec(linears, ln1, ln2, heads: int, activation: str, norm_first: bool = False, scale=None) -> dict:
    """The fields of the explainer's explicit encoder layer from the layer's modules: the q, k, v,
    output and two feed-forward ``nn.Linear``s (weights by reference) and the two LayerNorms."""
    names = ("q", "k", "v", "o", "1", "2")
    spec: dict = {}
    for n, lin in zip(names, linears, strict=True):
        spec[f"w{n}"], spec[f"b{n}"] = lin.weight, lin.bias
    spec["ln1"] = (ln1.weight, ln1.bias, float(ln1.eps))
    spec["ln2"] = (ln2.weight, ln2.bias, float(ln2.eps))
    spec.update(heads=int(heads), activation=activation, norm_first=bool(norm_first), scale=scale)
    return spec


class PaddingMask(nn.Module):
    """ids ``[B, T]`` -> float ``[B, T]``: 1 at real tokens, 0 at padding (id ``pad_id``). For
    embeddings ``[B, T, E]``, 0 where a row is exactly the padding embedding ``pad_row`` ``[E]``."""

    def __init__(self, pad_id: int = PAD):
        super().__init__()
        self.pad_id = int(pad_id)

    def extra_repr(self) -> str:
        return f"pad_id={self.pad_id}"

    def forward(self, x: torch.Tensor, pad_row: torch.Tensor | None = None) -> torch.Tensor:
        with torch.no_grad():  # a comparison: nothing to differentiate, nothing to rule
            if x.is_floating_point():
                real = ~(x == pad_row).all(-1) if pad_row is not None else torch.ones(x.shape[:2], dtype=torch.bool)
                return real.to(x.dtype)
            return (x != self.pad_id).to(pad_row.dtype if pad_row is not None else torch.get_default_dtype())


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim of ``scores`` among keys whose ``mask`` (broadcastable, 0/1) is 1."""
    z = scores.masked_fill(mask <= 0.5, float("-inf"))
    return torch.softmax(z, dim=-1)


def masked_mean(h: torch.Tensor, mask: torch.Tensor, empty: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of ``h`` ``[B, T, D]`` over positions with ``mask`` ``[B, T]`` = 1 -> ``[B, D]``; with
    ``empty`` ``[B, 1]`` (1 for a row with no such position, see :func:`empty_rows`) the mean over
    nothing is the zero vector."""
    count = mask.sum(1, keepdim=True)
    return (h * mask.unsqueeze(-1)).sum(1) / (count if empty is None else count + empty)


def empty_rows(mask: torch.Tensor) -> torch.Tensor:
    """``[B, 1]``: 1 for a row whose ``mask`` ``[B, T]`` has no real token, else exactly 0.

    Computed from the mask by a max and a subtraction, both with exact DeepLIFT rules: the
    explainer treats it as it treats the mask (a function of which positions are real)."""
    return 1.0 - mask.amax(1, keepdim=True)


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention over the unmasked keys."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"embed_dim {dim} is not divisible by heads {heads}")
        self.heads, self.head_dim = heads, dim // heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.drop = nn.Dropout(dropout)

    def split(self, t: torch.Tensor) -> torch.Tensor:
        """``[B, T, D]`` -> ``[B, heads, T, head_dim]``."""
        B, T, _ = t.shape
        return t.view(B, T, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q, k, v = self.split(self.q(h)), self.split(self.k(h)), self.split(self.v(h))
        scores = q @ k.transpose(-1, -2) * (1.0 / math.sqrt(self.head_dim))
        att = self.drop(masked_softmax(scores, mask[:, None, None, :]))
        ctx = (att @ v).transpose(1, 2).reshape(h.shape)
        return self.o(ctx)


class EncoderBlock(nn.Module):
    """Self-attention and a GELU feed-forward, each with a residual and LayerNorm: after the
    residual (BERT's order, ``norm_first=False``) or before the sublayer (``norm_first=True``)."""

    def __init__(self, dim: int, heads: int, ff_dim: int, dropout: float = 0.1, norm_first: bool = False):
        super().__init__()
        self.attn = SelfAttention(dim, heads, dropout)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ff1, self.ff2 = nn.Linear(dim, ff_dim), nn.Linear(ff_dim, dim)
        self.act = nn.GELU()
        self.drop = nn.Dropout(dropout)
        self.norm_first = bool(norm_first)

    def feed_forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.ff2(self.drop(self.act(self.ff1(h))))

    def seqshap_encoder_layer(self) -> dict:
        """This block's weights (by reference) and settings in the explainer's explicit encoder
        layer's terms (``seqshap.attribution.attention.EncoderLayerParams``): how the explainer
        runs it exactly, with its forward on the unique rows."""
        return encoder_layer_spec(
            (self.attn.q, self.attn.k, self.attn.v, self.attn.o, self.ff1, self.ff2),
            self.norm1,
            self.norm2,
            heads=self.attn.heads,
            activation="gelu_tanh" if self.act.approximate == "tanh" else "gelu",
            norm_first=self.norm_first,
        )

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.norm_first:
            h = h + self.drop(self.attn(self.norm1(h), mask))
            return h + self.drop(self.feed_forward(self.norm2(h)))
        h = self.norm1(h + self.drop(self.attn(h, mask)))
        return self.norm2(h + self.drop(self.feed_forward(h)))


class TransformerClassifier(TextClassifier):
    """Embedding (+ position) -> ``layers`` encoder blocks -> masked mean -> Linear -> sigmoid (softmax)."""

    # Defaults: trains in minutes on 2 CPU cores at maxlen 80, and explaining costs less than a plain
    # forward+backward pass (attention's per-pair cost grows with heads x T^2, so 2 wide heads).
    def __init__(
        self,
        vocab_size: int = 20000,
        embed_dim: int = 64,
        heads: int = 2,
        layers: int = 1,
        ff_dim: int = 128,
        max_positions: int = 512,
        dropout: float = 0.2,
        norm_first: bool = False,
        outputs: int = 1,
        multi_label: bool = False,
    ):
        super().__init__(vocab_size, embed_dim, dropout, outputs, multi_label)
        self.position = nn.Embedding(max_positions, embed_dim)
        nn.init.normal_(self.position.weight, std=0.02)
        self.mask = PaddingMask()
        self.blocks = nn.ModuleList(EncoderBlock(embed_dim, heads, ff_dim, dropout, norm_first) for _ in range(layers))
        self.final_norm = nn.LayerNorm(embed_dim) if norm_first else nn.Identity()
        self.head(embed_dim)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[1]
        if self.position.num_embeddings < T:
            raise ValueError(
                f"input has {T} positions; this model has position embeddings for {self.position.num_embeddings}"
            )
        mask = self.mask(x, self.embedding.weight[PAD])
        # A row of padding only attends over its padding (finite, never pooled) and pools to the
        # zero vector; for every other row `empty` is 0 and `keys` is `mask` (see the module doc).
        empty = empty_rows(mask)
        keys = mask + empty
        # Counting back from the end: the last token is position 0 however much padding precedes it.
        pos = self.position(torch.arange(T - 1, -1, -1, device=x.device))
        h = self.embed(x) + pos
        for block in self.blocks:
            h = block(h, keys)
        return self.fc(masked_mean(self.final_norm(h), mask, empty))
