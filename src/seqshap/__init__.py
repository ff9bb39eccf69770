"""seqshap: exact DeepSHAP attributions for recurrent text classifiers."""
__version__ = "0.1.0"

from .store import SeqshapModel, load  # noqa: E402

__all__ = ["__version__", "load", "SeqshapModel"]
