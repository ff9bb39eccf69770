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
from .explainer import DeepExplainer, DeepLift, summarize_background
from .explanation import Explanation
from .gradients import GradXInput, IntegratedGradients
from .perturbation import Occlusion, RandomBaseline
from .registry import METHODS, make_method, parse_methods
from .rules import ProductRule
from .shapley import ExactShapley, SamplingShapley
from .tracer import MODULE_RULES, supported_layers

__all__ = [
    "METHODS",
    "MODULE_RULES",
    "OUTPUT_SPACES",
    "AdditivityError",
    "Attribution",
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
    "UnsupportedLayerError",
    "check_finite",
    "make_method",
    "parse_methods",
    "resolve_target",
    "summarize_background",
    "supported_layers",
    "visible_mask",
]
