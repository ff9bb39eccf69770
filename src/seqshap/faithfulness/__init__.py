"""How good are the explanations? Attribution methods side by side, scored for faithfulness.

The methods (DeepSHAP, DeepLIFT, gradient x input, Integrated Gradients, occlusion, exact and
sampling Shapley, random) live in :mod:`seqshap.attribution`, one class each behind one
interface, found by name in :data:`seqshap.attribution.METHODS`. Here: ``metrics`` (deletion
AOPC, ERASER comprehensiveness/sufficiency, agreement with exact Shapley, planted words),
``plausibility`` (agreement with human word ratings: the VADER lexicon), ``evaluate`` (runs them)
and ``report`` (CSV, Markdown and a plot).
"""

from .evaluate import FaithfulnessResult, MethodScores, evaluate, neutral_hosts, planted_word_ids, short_texts
from .metrics import BINS, agreement, kendall_tau, pearson, removal_scores, top_overlap
from .plausibility import (
    Direction,
    LexiconMissingError,
    NotApplicableError,
    Plausibility,
    rank_correlation,
    rated_top_k,
    sentiment_direction,
    sign_agreement,
    vader_lexicon,
)
from .report import to_markdown, write_outputs

__all__ = [
    "BINS",
    "Direction",
    "FaithfulnessResult",
    "LexiconMissingError",
    "MethodScores",
    "NotApplicableError",
    "Plausibility",
    "agreement",
    "evaluate",
    "kendall_tau",
    "neutral_hosts",
    "pearson",
    "planted_word_ids",
    "rank_correlation",
    "rated_top_k",
    "removal_scores",
    "sentiment_direction",
    "short_texts",
    "sign_agreement",
    "to_markdown",
    "top_overlap",
    "vader_lexicon",
    "write_outputs",
]
