"""Attribution methods behind one interface (:class:`Attribution`), led by exact DeepSHAP / DeepLIFT
for recurrent text models; every method gives the same :class:`Explanation`."""

from ..errors import AdditivityError, NonFiniteError, NoWordsError, TooManyPlayersError, UnsupportedLayerError
from .base import (
    OUTPUT_SPACES,
    Attribution,
    check_finite,
    resolve_target,
    visible_mask,
)
from .canonizers import DEFAULT as DEFAULT_COMPOSITE
from .canonizers import Canonize, Composite, Unsupported
from .explainer import DeepExplainer, DeepLift, summarize_background
from .explanation import Explanation
from .gradients import GradXInput, IntegratedGradients
from .perturbation import Occlusion, RandomBaseline
from .registry import METHODS, make_method, parse_methods
from .rules import ProductRule
from .shapley import ExactShapley, SamplingShapley

__all__ = [
    "DEFAULT_COMPOSITE",
    "METHODS",
    "OUTPUT_SPACES",
    "AdditivityError",
    "Attribution",
    "Canonize",
    "Composite",
    "DeepExplainer",
    "DeepLift",
    "ExactShapley",
    "Explanation",
    "GradXInput",
    "IntegratedGradients",
    "NoWordsError",
    "NonFiniteError",
    "Occlusion",
    "ProductRule",
    "RandomBaseline",
    "SamplingShapley",
    "TooManyPlayersError",
    "Unsupported",
    "UnsupportedLayerError",
    "check_finite",
    "make_method",
    "parse_methods",
    "resolve_target",
    "summarize_background",
    "visible_mask",
]
