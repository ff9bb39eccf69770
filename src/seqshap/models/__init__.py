"""Model registry: architecture name -> constructor."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn

from .classifiers import CNNClassifier, RecurrentClassifier
from .keras_layers import KerasSequential
from .transformer import TransformerClassifier

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "lstm": partial(RecurrentClassifier, "lstm"),
    "gru": partial(RecurrentClassifier, "gru"),
    "bilstm": partial(RecurrentClassifier, "lstm", bidirectional=True),
    "lstm2": partial(RecurrentClassifier, "lstm", num_layers=2),
    "cnn": CNNClassifier,
    "transformer": TransformerClassifier,
    "keras": KerasSequential,  # imported Keras models (seqshap import-keras)
}


# The architectures `seqshap train` can build from scratch ("keras" needs an imported layer list).
TRAINABLE = ("lstm", "gru", "bilstm", "lstm2", "cnn", "transformer")

# The one size each architecture's `--hidden` sets: the recurrent state, the CNN's filters, the
# Transformer's feed-forward layer (its width embed_dim must divide by the heads, so it is left alone).
SIZE_PARAMETER = {
    "lstm": "hidden",
    "gru": "hidden",
    "bilstm": "hidden",
    "lstm2": "hidden",
    "cnn": "filters",
    "transformer": "ff_dim",
}


def build_model(arch: str, **kwargs) -> nn.Module:
    """Build an architecture by name; ``kwargs`` go to its constructor (vocab_size, ...)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch](**kwargs)


__all__ = [
    "ARCHITECTURES",
    "SIZE_PARAMETER",
    "TRAINABLE",
    "CNNClassifier",
    "RecurrentClassifier",
    "TransformerClassifier",
    "build_model",
]
