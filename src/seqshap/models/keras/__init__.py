"""PyTorch twins of Keras text classifiers (``seqshap import-keras``): the graph runner
(:class:`KerasModel`), the layers, and the tokenizer of a model that starts from raw text
(:class:`~seqshap.models.keras.text.TextVectorizer`)."""

from __future__ import annotations

from .activations import ACTIVATIONS, activate
from .graph import INPUT, KerasModel, build_layer

__all__ = ["ACTIVATIONS", "INPUT", "KerasModel", "activate", "build_layer"]
