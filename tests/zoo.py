"""A zoo of text classifiers written the way PyTorch tutorials, papers and Kaggle kernels write
them: plain ``torch.nn`` layers and tensor operations, no seqshap class anywhere. Each takes ids
``[batch, T]`` (padding id 0) and returns probabilities. ``ZOO`` maps a name to
``(factory, padding side)``; tests/test_zoo.py explains every one of them exactly and
benchmarks/zoo_speed.py times them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

PAD = 0


class EmbeddingBagClassifier(nn.Module):
    """PyTorch's text classification tutorial (``TextClassificationModel``), batched as rows with
    ``padding_idx``: EmbeddingBag(mean) -> Linear."""

    def __init__(self, vocab_size=50, embed_dim=8, num_class=2, mode="mean"):
        super().__init__()
        self.embedding = nn.EmbeddingBag(vocab_size, embed_dim, mode=mode, padding_idx=PAD)
        self.fc = nn.Linear(embed_dim, num_class)
        initrange = 0.5
        self.embedding.weight.data.uniform_(-initrange, initrange)
        self.fc.weight.data.uniform_(-initrange, initrange)
        self.fc.bias.data.zero_()

    def forward(self, text):
        return F.softmax(self.fc(self.embedding(text)), dim=1)


class FlatBagClassifier(nn.Module):
    """The tutorial's exact forward, ``embedding(text, offsets)`` on a flat 1-D input, fed every row
    as one bag (padding positions are ``padding_idx`` and drop out of the mean)."""

    def __init__(self, vocab_size=50, embed_dim=8):
        super().__init__()
        self.embedding = nn.EmbeddingBag(vocab_size, embed_dim, mode="sum", padding_idx=PAD)
        self.fc = nn.Linear(embed_dim, 1)

    def forward(self, ids):
        text = ids.reshape(-1)
        offsets = torch.arange(0, ids.numel(), ids.shape[1])
        return torch.sigmoid(self.fc(torch.tanh(self.embedding(text, offsets))))


class WeightedBag(nn.Module):
    """EmbeddingBag(sum) with per-sample weights computed from the ids (a crude IDF), and a max bag."""

    def __init__(self, vocab_size=50, embed_dim=8):
        super().__init__()
        self.sum_bag = nn.EmbeddingBag(vocab_size, embed_dim, mode="sum")
        self.max_bag = nn.EmbeddingBag(vocab_size, embed_dim, mode="max", padding_idx=PAD)
        self.fc = nn.Linear(2 * embed_dim, 1)

    def forward(self, ids):
        dtype = self.fc.weight.dtype
        weights = (ids != PAD).to(dtype) / (1.0 + ids.to(dtype) / 10.0)
        s = self.sum_bag(ids, per_sample_weights=weights)
        return torch.sigmoid(self.fc(torch.cat([s, self.max_bag(ids)], 1)))


class BiLSTMAttention(nn.Module):
    """Zhou et al. 2016: BiLSTM, attention pooling over the real tokens (``masked_fill(-inf)``)."""

    def __init__(self, vocab_size=50, embed_dim=8, hidden=6):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        self.lstm = nn.LSTM(embed_dim, hidden, batch_first=True, bidirectional=True)
        self.w = nn.Linear(2 * hidden, 1, bias=False)
        self.fc = nn.Linear(2 * hidden, 2)

    def forward(self, ids):
        mask = ids == PAD
        h, _ = self.lstm(self.embedding(ids))
        scores = self.w(torch.tanh(h)).squeeze(-1).masked_fill(mask, float("-inf"))
        alpha = torch.softmax(scores, dim=1)
        context = torch.bmm(alpha.unsqueeze(1), h).squeeze(1)
        return torch.softmax(self.fc(context), dim=-1)


class GRULastToken(nn.Module):
    """GRU over right-padded text; the state at the last real token (``out[arange, lengths - 1]``)."""

    def __init__(self, vocab_size=50, embed_dim=8, hidden=6):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.gru = nn.GRU(embed_dim, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, 1)

    def forward(self, ids):
        lengths = (ids != PAD).sum(dim=1)
        out, _ = self.gru(self.embedding(ids))
        last = out[torch.arange(ids.shape[0]), (lengths - 1).clamp(min=0)]
        return torch.sigmoid(self.fc(last))


class ElmanRNN(nn.Module):
    """``nn.RNN`` (tanh or relu, two layers), final hidden state."""

    def __init__(self, vocab_size=50, embed_dim=8, hidden=6, nonlinearity="tanh"):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.rnn = nn.RNN(embed_dim, hidden, num_layers=2, nonlinearity=nonlinearity, batch_first=True)
        self.fc = nn.Linear(hidden, 1)

    def forward(self, ids):
        _, h = self.rnn(self.embedding(ids))
        return torch.sigmoid(self.fc(h[-1]))


class LSTMCellLoop(nn.Module):
    """An LSTM unrolled by hand with ``nn.LSTMCell``; padding steps keep the state (masked update)."""

    def __init__(self, vocab_size=50, embed_dim=8, hidden=6):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.cell = nn.LSTMCell(embed_dim, hidden)
        self.hidden = hidden
        self.fc = nn.Linear(hidden, 1)

    def forward(self, ids):
        x = self.embedding(ids)
        mask = (ids != PAD).float()
        h = x.new_zeros(ids.shape[0], self.hidden)
        c = x.new_zeros(ids.shape[0], self.hidden)
        for t in range(ids.shape[1]):
            h2, c2 = self.cell(x[:, t], (h, c))
            m = mask[:, t].unsqueeze(1)
            h = m * h2 + (1 - m) * h
            c = m * c2 + (1 - m) * c
        return torch.sigmoid(self.fc(h))


class GRUCellLoop(nn.Module):
    """``nn.GRUCell`` and ``nn.RNNCell`` unrolled in a loop (a two-level stack), mean of the states."""

    def __init__(self, vocab_size=50, embed_dim=8, hidden=6):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.gru = nn.GRUCell(embed_dim, hidden)
        self.rnn = nn.RNNCell(hidden, hidden, nonlinearity="relu")
        self.fc = nn.Linear(hidden, 1)

    def forward(self, ids):
        x = self.embedding(ids)
        h1 = h2 = None
        states = []
        for t in range(x.shape[1]):
            h1 = self.gru(x[:, t], h1)
            h2 = self.rnn(h1, h2)
            states.append(h2)
        return torch.sigmoid(self.fc(torch.stack(states, 1).mean(1)))


class KimCNN(nn.Module):
    """Kim 2014: convolutions of several widths, ReLU, max over time, concatenated; BatchNorm."""

    def __init__(self, vocab_size=50, embed_dim=8, filters=4, widths=(2, 3, 4)):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, filters, w) for w in widths)
        self.norm = nn.BatchNorm1d(filters * len(widths))
        self.dropout = nn.Dropout(0.5)
        self.fc = nn.Linear(filters * len(widths), 3)

    def forward(self, ids):
        x = self.embedding(ids).permute(0, 2, 1)
        pooled = [F.relu(conv(x)).max(dim=2)[0] for conv in self.convs]
        return F.softmax(self.fc(self.dropout(self.norm(torch.cat(pooled, 1)))), dim=1)


class GatedCNN(nn.Module):
    """Dauphin et al. 2017 style gated convolutions (``F.glu``), GroupNorm, masked mean over time."""

    def __init__(self, vocab_size=50, embed_dim=8, channels=6):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.conv = nn.Conv1d(embed_dim, 2 * channels, 3, padding=1)
        self.norm = nn.GroupNorm(2, channels)
        self.fc = nn.Linear(channels, 1)

    def forward(self, ids):
        mask = (ids != PAD).unsqueeze(1).float()  # [B, 1, T]
        h = self.norm(F.glu(self.conv(self.embedding(ids).transpose(1, 2)), dim=1))
        pooled = (h * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)
        return torch.sigmoid(self.fc(pooled))


class TransformerMeanPool(nn.Module):
    """``nn.TransformerEncoder`` (batch_first, post-norm, ReLU) with ``src_key_padding_mask`` from
    the ids, learned positions, mean over the real tokens."""

    def __init__(self, vocab_size=50, d_model=8, nhead=2, layers=2, max_len=32):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=PAD)
        self.pos = nn.Embedding(max_len, d_model)
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward=2 * d_model, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers)  # enable_nested_tensor=True by default
        self.fc = nn.Linear(d_model, 1)

    def forward(self, ids):
        pad = ids == PAD
        x = self.embedding(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))
        h = self.encoder(x, src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(-1).float()
        return torch.sigmoid(self.fc((h * keep).sum(1) / keep.sum(1)))


class PositionalEncoding(nn.Module):
    """The PyTorch tutorial's sinusoidal encoding, for ``[T, batch, d]`` input."""

    def __init__(self, d_model, max_len=512):
        super().__init__()
        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, 1, d_model)
        pe[:, 0, 0::2] = torch.sin(position * div_term)
        pe[:, 0, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)

    def forward(self, x):
        return x + self.pe[: x.size(0)]


class TransformerSeqFirst(nn.Module):
    """The tutorial's layout: ``[T, batch, d]`` (``batch_first=False``), pre-norm, GELU, final
    norm, a [CLS]-style first token."""

    def __init__(self, vocab_size=50, d_model=8, nhead=2, layers=2):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.pos = PositionalEncoding(d_model)
        layer = nn.TransformerEncoderLayer(d_model, nhead, 2 * d_model, dropout=0.0, activation="gelu", norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False)
        self.fc = nn.Linear(d_model, 2)

    def forward(self, ids):
        x = self.pos(self.embedding(ids).transpose(0, 1) * math.sqrt(self.fc.in_features))
        h = self.encoder(x, src_key_padding_mask=ids == PAD)
        return torch.softmax(self.fc(h[0]), dim=-1)


class LearnedQueryPooling(nn.Module):
    """``nn.MultiheadAttention`` as a pooling layer: one learned query attends over the tokens
    (cross-attention, ``key_padding_mask``, ``need_weights=True``)."""

    def __init__(self, vocab_size=50, d=8, heads=2):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d)
        self.query = nn.Parameter(torch.randn(1, 1, d))
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.fc = nn.Linear(d, 1)

    def forward(self, ids):
        x = self.embedding(ids)
        q = self.query.expand(ids.shape[0], -1, -1)
        pooled, _ = self.attn(q, x, x, key_padding_mask=ids == PAD)
        return torch.sigmoid(self.fc(pooled.squeeze(1)))


class CausalMHA(nn.Module):
    """``nn.MultiheadAttention`` self-attention with a causal ``attn_mask`` (bool) and a key
    padding mask, seq-first; the state at the last position (left padding)."""

    def __init__(self, vocab_size=50, d=8, heads=2):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d)
        self.attn = nn.MultiheadAttention(d, heads, bias=True, add_bias_kv=True)
        self.norm = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 1)

    def forward(self, ids):
        T = ids.shape[1]
        x = self.embedding(ids).transpose(0, 1)
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        h, _ = self.attn(x, x, x, attn_mask=causal, key_padding_mask=ids == PAD, need_weights=False)
        return torch.sigmoid(self.fc(self.norm(h + x)[-1]))


class HandWrittenAttention(nn.Module):
    """minGPT/annotated-transformer style multi-head self-attention by hand: ``masked_fill(mask == 0,
    -1e9)``, softmax, residual, LayerNorm, a tanh-gated feed-forward; [CLS] pooling."""

    def __init__(self, vocab_size=50, d=8, heads=2):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.gate, self.up, self.down = nn.Linear(d, 2 * d), nn.Linear(d, 2 * d), nn.Linear(2 * d, d)
        self.heads = heads
        self.fc = nn.Linear(d, 1)

    def forward(self, ids):
        B, T = ids.shape
        mask = (ids != PAD).unsqueeze(1).unsqueeze(2)  # [B, 1, 1, T]
        x = self.embedding(ids)
        q, k, v = self.qkv(x).split(x.shape[-1], dim=2)
        q, k, v = (t.view(B, T, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))
        att = F.softmax(att.masked_fill(mask == 0, -1e9), dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, -1)
        x = self.ln1(x + self.proj(y))
        x = self.ln2(x + self.down(torch.tanh(self.gate(x)) * self.up(x)))
        return torch.sigmoid(self.fc(x[:, 0]))


class DeepAveraging(nn.Module):
    """Iyyer et al. 2015 (DAN): mean of the real tokens' embeddings (sum / length), ReLU MLP with
    LayerNorm and a highway gate."""

    def __init__(self, vocab_size=50, embed_dim=8, hidden=8):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        self.l1, self.norm = nn.Linear(embed_dim, hidden), nn.LayerNorm(hidden)
        self.transform, self.gate = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
        self.fc = nn.Linear(hidden, 1)

    def forward(self, ids):
        lengths = (ids != PAD).sum(1, keepdim=True).float()
        avg = self.embedding(ids).sum(1) / lengths
        h = self.norm(F.relu(self.l1(avg)))
        g = torch.sigmoid(self.gate(h))
        h = g * F.relu(self.transform(h)) + (1 - g) * h
        return torch.sigmoid(self.fc(h))


class PrototypeCosine(nn.Module):
    """Cosine similarity to learned prototypes (``F.normalize``), a temperature, softmax over classes."""

    def __init__(self, vocab_size=50, embed_dim=8, classes=3):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.encoder = nn.Sequential(nn.Linear(embed_dim, embed_dim), nn.SiLU())
        self.prototypes = nn.Parameter(torch.randn(classes, embed_dim))

    def forward(self, ids):
        h = self.encoder(self.embedding(ids)).amax(1)
        sim = F.normalize(h, dim=-1) @ F.normalize(self.prototypes, dim=-1).t()
        return torch.softmax(sim * 5.0, dim=-1)


class ConcatPooling(nn.Module):
    """ULMFiT-style concat pooling over a GRU: last state, masked max and masked mean over time."""

    def __init__(self, vocab_size=50, embed_dim=8, hidden=6):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.gru = nn.GRU(embed_dim, hidden, batch_first=True)
        self.fc = nn.Linear(3 * hidden, 1)

    def forward(self, ids):
        real = (ids != PAD).unsqueeze(-1)
        out, h = self.gru(self.embedding(ids))
        mx = out.masked_fill(~real, float("-inf")).max(dim=1).values
        mean = torch.where(real, out, torch.zeros_like(out)).sum(1) / real.sum(1)
        return torch.sigmoid(self.fc(torch.cat([h[-1], mx, mean], dim=-1)))


class SmoothMaxPool(nn.Module):
    """Log-sum-exp pooling (a smooth max) of a conv's features and a ``min`` branch."""

    def __init__(self, vocab_size=50, embed_dim=8, filters=5):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.conv = nn.Conv1d(embed_dim, filters, 3, padding=1)
        self.fc = nn.Linear(2 * filters, 1)

    def forward(self, ids):
        h = torch.tanh(self.conv(self.embedding(ids).transpose(1, 2)))
        pooled = torch.cat([torch.logsumexp(3 * h, dim=2) / 3, h.min(dim=2).values], 1)
        return torch.sigmoid(self.fc(pooled))


class FrozenPretrained(nn.Module):
    """``nn.Embedding.from_pretrained`` (frozen vectors) + a trainable projection, RMSNorm, max pool."""

    def __init__(self, vocab_size=50, embed_dim=8):
        super().__init__()
        self.embedding = nn.Embedding.from_pretrained(torch.randn(vocab_size, embed_dim), freeze=True, padding_idx=PAD)
        self.proj = nn.Linear(embed_dim, embed_dim)
        self.norm = nn.RMSNorm(embed_dim)
        self.fc = nn.Linear(embed_dim, 1)

    def forward(self, ids):
        h = self.norm(F.gelu(self.proj(self.embedding(ids))))
        return torch.sigmoid(self.fc(F.adaptive_max_pool1d(h.transpose(1, 2), 1).squeeze(-1)))


# name -> (factory, padding side of its inputs)
ZOO = {
    "embeddingbag_tutorial": (EmbeddingBagClassifier, "right"),
    "embeddingbag_flat_offsets": (FlatBagClassifier, "right"),
    "embeddingbag_weighted_max": (WeightedBag, "left"),
    "bilstm_attention": (BiLSTMAttention, "right"),
    "gru_last_token": (GRULastToken, "right"),
    "rnn_tanh": (ElmanRNN, "left"),
    "rnn_relu": (lambda: ElmanRNN(nonlinearity="relu"), "left"),
    "lstmcell_loop": (LSTMCellLoop, "right"),
    "grucell_rnncell_loop": (GRUCellLoop, "left"),
    "kim_cnn_batchnorm": (KimCNN, "right"),
    "gated_cnn_groupnorm": (GatedCNN, "right"),
    "transformer_encoder": (TransformerMeanPool, "right"),
    "transformer_seq_first_prenorm": (TransformerSeqFirst, "right"),
    "mha_learned_query": (LearnedQueryPooling, "right"),
    "mha_causal_bias_kv": (CausalMHA, "left"),
    "handwritten_attention": (HandWrittenAttention, "right"),
    "deep_averaging": (DeepAveraging, "right"),
    "prototype_cosine": (PrototypeCosine, "left"),
    "concat_pooling": (ConcatPooling, "right"),
    "smooth_max_pool": (SmoothMaxPool, "left"),
    "frozen_pretrained": (FrozenPretrained, "right"),
}


def make(name: str, seed: int = 0, scale: float = 1.0) -> nn.Module:
    """The zoo model ``name`` with seeded random weights, every parameter times ``scale`` (> 1
    saturates the nonlinearities), in eval mode."""
    torch.manual_seed(seed)
    net = ZOO[name][0]()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(scale)
    return net.eval()


def texts(n: int, T: int, side: str, lengths, seed: int, vocab: int = 50) -> torch.Tensor:
    """``n`` rows of ids: a first token, then words, then padding (``side="right"``) or the other
    way round; row i has ``lengths[i % len(lengths)]`` real tokens."""
    g = torch.Generator().manual_seed(seed)
    rows = torch.zeros(n, T, dtype=torch.long)
    for i in range(n):
        L = lengths[i % len(lengths)]
        words = torch.randint(2, vocab, (L,), generator=g)
        if side == "right":
            rows[i, :L] = words
        else:
            rows[i, T - L :] = words
    return rows


# Sizes of the seed job (vocabulary 20,000, 80 tokens) for benchmarks/zoo_speed.py.
BENCH_SIZES = {
    "embeddingbag_tutorial": {"vocab_size": 20000, "embed_dim": 64},
    "embeddingbag_flat_offsets": {"vocab_size": 20000, "embed_dim": 64},
    "embeddingbag_weighted_max": {"vocab_size": 20000, "embed_dim": 64},
    "bilstm_attention": {"vocab_size": 20000, "embed_dim": 128, "hidden": 64},
    "gru_last_token": {"vocab_size": 20000, "embed_dim": 128, "hidden": 128},
    "rnn_tanh": {"vocab_size": 20000, "embed_dim": 128, "hidden": 128},
    "rnn_relu": {"vocab_size": 20000, "embed_dim": 128, "hidden": 128, "nonlinearity": "relu"},
    "lstmcell_loop": {"vocab_size": 20000, "embed_dim": 128, "hidden": 128},
    "grucell_rnncell_loop": {"vocab_size": 20000, "embed_dim": 128, "hidden": 128},
    "kim_cnn_batchnorm": {"vocab_size": 20000, "embed_dim": 128, "filters": 100},
    "gated_cnn_groupnorm": {"vocab_size": 20000, "embed_dim": 128, "channels": 128},
    "transformer_encoder": {"vocab_size": 20000, "d_model": 64, "nhead": 2, "layers": 1, "max_len": 80},
    "transformer_seq_first_prenorm": {"vocab_size": 20000, "d_model": 64, "nhead": 2, "layers": 1},
    "mha_learned_query": {"vocab_size": 20000, "d": 128, "heads": 4},
    "mha_causal_bias_kv": {"vocab_size": 20000, "d": 64, "heads": 2},
    "handwritten_attention": {"vocab_size": 20000, "d": 64, "heads": 2},
    "deep_averaging": {"vocab_size": 20000, "embed_dim": 128, "hidden": 128},
    "prototype_cosine": {"vocab_size": 20000, "embed_dim": 128},
    "concat_pooling": {"vocab_size": 20000, "embed_dim": 128, "hidden": 128},
    "smooth_max_pool": {"vocab_size": 20000, "embed_dim": 128, "filters": 100},
    "frozen_pretrained": {"vocab_size": 20000, "embed_dim": 128},
}


def make_sized(name: str, seed: int = 0) -> nn.Module:
    """The zoo model ``name`` at the seed job's size (:data:`BENCH_SIZES`), in eval mode."""
    torch.manual_seed(seed)
    kwargs = dict(BENCH_SIZES[name])
    if name == "rnn_relu":
        return ElmanRNN(**kwargs).eval()
    return ZOO[name][0](**kwargs).eval()
