"""seqshap: exact DeepSHAP attributions for recurrent text classifiers."""

__version__ = "0.1.0"

from .attribution import AdditivityError, DeepExplainer, DeepLift, Explanation, UnsupportedLayerError
from .interop import to_shap
from .store import ModelLoadError, SeqshapModel, load

__all__ = [
    "AdditivityError",
    "DeepExplainer",
    "DeepLift",
    "Explanation",
    "ModelLoadError",
    "SeqshapModel",
    "UnsupportedLayerError",
    "__version__",
    "load",
    "to_shap",
]
