"""How good are the explanations? Attribution methods side by side, scored for faithfulness.

``methods``: DeepSHAP, DeepLIFT, gradient x input, Integrated Gradients, occlusion, exact and
sampling Shapley, random, all returning the same :class:`~seqshap.attribution.Explanation`.
``metrics``: deletion AOPC, ERASER comprehensiveness/sufficiency, agreement with exact
Shapley, planted words. ``evaluate`` runs them; ``report`` writes CSV, Markdown and a plot.
"""
from .evaluate import FaithfulnessResult, MethodScores, evaluate, neutral_hosts, planted_word_ids, short_texts
from .methods import (METHODS, DeepLiftMethod, DeepShapMethod, ExactShapley, GradXInput, IntegratedGradients,
                      Method, Occlusion, RandomBaseline, SamplingShapley, TooManyPlayersError, make_method,
                      parse_methods, visible_mask)
from .metrics import BINS, agreement, kendall_tau, pearson, removal_scores, top_overlap
from .report import to_markdown, write_outputs

__all__ = ["BINS", "METHODS", "DeepLiftMethod", "DeepShapMethod", "ExactShapley", "FaithfulnessResult",
           "GradXInput", "IntegratedGradients", "Method", "MethodScores", "Occlusion", "RandomBaseline",
           "SamplingShapley", "TooManyPlayersError", "agreement", "evaluate", "kendall_tau", "make_method",
           "neutral_hosts", "parse_methods", "pearson", "planted_word_ids", "removal_scores", "short_texts",
           "to_markdown", "top_overlap", "visible_mask", "write_outputs"]
