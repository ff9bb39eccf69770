"""seqshap: exact DeepSHAP attributions for text classifiers (recurrent, convolutional, Transformer)."""

__version__ = "0.1.0"

from .attribution import (
    AdditivityError,
    DeepExplainer,
    DeepLift,
    Explanation,
    NonFiniteError,
    NoWordsError,
    UnsupportedLayerError,
)
from .data.pairs import pair
from .errors import SeqshapError
from .interop import to_shap
from .store import ModelLoadError, SeqshapModel, load

__all__ = [
    "AdditivityError",
    "DeepExplainer",
    "DeepLift",
    "Explanation",
    "ModelLoadError",
    "NoWordsError",
    "NonFiniteError",
    "SeqshapError",
    "SeqshapModel",
    "UnsupportedLayerError",
    "__version__",
    "load",
    "pair",
    "to_shap",
]
