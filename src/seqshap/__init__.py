"""seqshap: exact DeepSHAP attributions for recurrent text classifiers."""

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
from .store import ModelLoadError, SeqshapModel, load

__all__ = [
    "AdditivityError",
    "DeepExplainer",
    "DeepLift",
    "Explanation",
    "ModelLoadError",
    "NoWordsError",
    "NonFiniteError",
    "SeqshapModel",
    "UnsupportedLayerError",
    "__version__",
    "load",
]
