"""The model registry's entry for imported Keras models (``"arch": "keras"``): see
:mod:`seqshap.models.keras`. ``KerasSequential`` is the name directories converted before
graphs were supported were built with; it is the same class."""

from __future__ import annotations

from .keras import ACTIVATIONS, KerasModel, activate, build_layer

KerasSequential = KerasModel

__all__ = ["ACTIVATIONS", "KerasModel", "KerasSequential", "activate", "build_layer"]
