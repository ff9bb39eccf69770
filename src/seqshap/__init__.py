"""seqshap: exact DeepSHAP attributions for recurrent text classifiers."""
__version__ = "0.1.0"

from .attribution import AdditivityError, DeepExplainer, DeepLift, Explanation, UnsupportedLayerError  # noqa: E402
from .store import ModelLoadError, SeqshapModel, load  # noqa: E402

__all__ = ["__version__", "AdditivityError", "DeepExplainer", "DeepLift", "Explanation", "ModelLoadError",
           "SeqshapModel", "UnsupportedLayerError", "load"]
