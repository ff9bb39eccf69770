"""The five text classifiers: ids ``[batch, time]`` -> positive-class probability ``[batch, 1]``
(a sigmoid head, ``outputs=1``: two classes) or every class's probability ``[batch, outputs]``
(a softmax head, ``outputs >= 2``), or, ``multi_label``, every label's own probability ``[batch,
outputs]`` (a sigmoid per output: labels are not exclusive).

Only standard PyTorch layers, so the explainer's rule table covers them. Every model
also accepts float embeddings ``[batch, time, embed]`` in place of ids (the embedding
lookup is then skipped), which is what embedding-level explainers feed it. ``logits(x)`` is
the head's input (what the sigmoid/softmax squashes), which training's losses read.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call


def variational_mask(shape: tuple[int, ...], p: float, like: torch.Tensor) -> torch.Tensor:
    """Inverted-dropout mask, 0 or 1/(1-p)."""
    return torch.bernoulli(like.new_full(shape, 1.0 - p)) / (1.0 - p)


class TextClassifier(nn.Module):
    """Shared front (embedding + input dropout) and back (linear + sigmoid, or softmax over
    ``outputs`` classes, or with ``multi_label`` a sigmoid over each of ``outputs`` labels)."""

    def __init__(self, vocab_size: int, embed_dim: int, dropout: float, outputs: int = 1, multi_label: bool = False):
        super().__init__()
        if outputs < 1:
            raise ValueError(f"outputs must be at least 1, got {outputs}")
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.dropout = float(dropout)
        self.outputs = int(outputs)
        self.multi_label = bool(multi_label)
        # Keras' default Embedding init (uniform +-0.05) trains better here than N(0, 1).
        nn.init.uniform_(self.embedding.weight, -0.05, 0.05)

    def head(self, features: int) -> None:
        """The last layer: ``fc`` ``[features -> outputs]`` and the squash ``out``."""
        self.fc = nn.Linear(features, self.outputs)
        self.out = nn.Sigmoid() if self.outputs == 1 or self.multi_label else nn.Softmax(dim=-1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, outputs]``: what :attr:`out` squashes into probabilities."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.logits(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """ids ``[B, T]`` (or embeddings ``[B, T, E]``) -> ``[B, T, E]``, with Keras-style
        input dropout: one mask per sequence, the same at every time step."""
        e = x if x.is_floating_point() else self.embedding(x)
        if self.training and self.dropout > 0:
            e = e * variational_mask((e.shape[0], 1, e.shape[2]), self.dropout, e)
        return e


class RecurrentClassifier(TextClassifier):
    """Embedding -> LSTM/GRU -> last hidden state(s) -> Linear -> sigmoid (softmax).

    ``recurrent_dropout`` drops units of h_{t-1} on their way into the recurrent kernel,
    with one mask per mini-batch that holds for all time steps (variational dropout on
    the columns of ``W_hh``). Keras draws that mask per sequence; a mask per batch keeps
    PyTorch's fused kernel usable, which is ~4x faster on a CPU.
    """

    def __init__(
        self,
        cell: str,
        vocab_size: int = 20000,
        embed_dim: int = 128,
        hidden: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.2,
        recurrent_dropout: float = 0.2,
        outputs: int = 1,
        multi_label: bool = False,
    ):
        super().__init__(vocab_size, embed_dim, dropout, outputs, multi_label)
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = rnn(
            embed_dim,
            hidden,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.recurrent_dropout = float(recurrent_dropout)
        self.head(hidden * (2 if bidirectional else 1))

    def _run_rnn(self, e: torch.Tensor):
        if not (self.training and self.recurrent_dropout > 0):
            return self.rnn(e)
        hidden = self.rnn.hidden_size
        masked = {
            name: w * variational_mask((1, hidden), self.recurrent_dropout, w)
            for name, w in self.rnn.named_parameters()
            if name.startswith("weight_hh")
        }
        return functional_call(self.rnn, masked, (e,))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        _, state = self._run_rnn(self.embed(x))
        h_n = state[0] if isinstance(state, tuple) else state  # LSTM gives (h_n, c_n)
        last = torch.cat([h_n[-2], h_n[-1]], dim=1) if self.rnn.bidirectional else h_n[-1]
        return self.fc(last)


class CNNClassifier(TextClassifier):
    """Embedding -> Conv1d -> ReLU -> global max pool over time -> Linear -> sigmoid (softmax)."""

    def __init__(
        self,
        vocab_size: int = 20000,
        embed_dim: int = 128,
        filters: int = 128,
        kernel_size: int = 5,
        dropout: float = 0.2,
        outputs: int = 1,
        multi_label: bool = False,
    ):
        super().__init__(vocab_size, embed_dim, dropout, outputs, multi_label)
        self.conv = nn.Conv1d(embed_dim, filters, kernel_size, padding=kernel_size // 2)
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveMaxPool1d(1)
        self.head(filters)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        e = self.embed(x).transpose(1, 2)  # [B, E, T]
        pooled = self.pool(self.act(self.conv(e)))  # [B, F, 1]
        return self.fc(pooled.squeeze(-1))
