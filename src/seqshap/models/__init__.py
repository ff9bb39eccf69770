"""Model registry: architecture name -> constructor."""
from __future__ import annotations

from functools import partial

from torch import nn

from .classifiers import CNNClassifier, RecurrentClassifier

ARCHITECTURES = {
    "lstm": partial(RecurrentClassifier, "lstm"),
    "gru": partial(RecurrentClassifier, "gru"),
    "bilstm": partial(RecurrentClassifier, "lstm", bidirectional=True),
    "lstm2": partial(RecurrentClassifier, "lstm", num_layers=2),
    "cnn": CNNClassifier,
}


def build_model(arch: str, **kwargs) -> nn.Module:
    """Build an architecture by name; ``kwargs`` go to its constructor (vocab_size, ...)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch](**kwargs)


__all__ = ["ARCHITECTURES", "build_model", "RecurrentClassifier", "CNNClassifier"]
