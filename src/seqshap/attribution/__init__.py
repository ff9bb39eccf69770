"""Exact DeepSHAP / DeepLIFT for recurrent text models."""
from .explainer import AdditivityError, DeepExplainer, DeepLift, summarize_background
from .explanation import Explanation
from .rules import ProductRule
from .tracer import MODULE_RULES, UnsupportedLayerError, supported_layers

__all__ = ["AdditivityError", "DeepExplainer", "DeepLift", "Explanation", "MODULE_RULES", "ProductRule",
           "UnsupportedLayerError", "summarize_background", "supported_layers"]
