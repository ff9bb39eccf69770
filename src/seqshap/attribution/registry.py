"""Every attribution method by name: the table the faithfulness comparison and its CLI read.

=================  =========  ==========================================================
name               additive   what it is
=================  =========  ==========================================================
deepshap           yes        :class:`DeepExplainer` over a background (ours)
deeplift           yes        :class:`DeepLift`, single reference: the empty text as the
                              tokenizer writes it (start token alone; ``[CLS] [SEP]``)
gradxinput         no         gradient x embedding, summed over the embedding dim
ig                 yes*       Integrated Gradients over the embeddings (Gauss-Legendre),
                              ``completeness_error`` is its convergence delta
occlusion          no         leave-one-out: ``f(x) - f(x with word t padded)``
exact-shapley      yes        all ``2^p`` coalitions of the ``p <= 14`` visible words
sampling-shapley   yes        permutation sampling (antithetic pairs), seeded
random             no         seeded N(0, 1) on visible words: the floor to beat
=================  =========  ==========================================================

Occlusion, Shapley (exact and sampled) and IG's baseline make a word absent by padding it in
place, special tokens kept (the tokenizer's :class:`~seqshap.data.layout.TokenLayout` says which
positions are words), so their totals all equal ``f(x) - f(x without its words)``; DeepSHAP is
relative to its background, DeepLIFT to the empty text.
"""

from __future__ import annotations

from .base import Attribution
from .explainer import DeepExplainer, DeepLift
from .gradients import GradXInput, IntegratedGradients
from .perturbation import Occlusion, RandomBaseline
from .shapley import ExactShapley, SamplingShapley

METHODS: dict[str, type[Attribution]] = {
    m.name: m
    for m in (
        DeepExplainer,
        DeepLift,
        GradXInput,
        IntegratedGradients,
        Occlusion,
        ExactShapley,
        SamplingShapley,
        RandomBaseline,
    )
}


def make_method(
    name: str,
    model,
    background=None,
    seed: int = 0,
    output: str = "probability",
    ig_steps: int = 32,
    n_permutations: int = 16,
    summarize: int | None = None,
) -> Attribution:
    """Build a method by name (``background`` is needed for ``deepshap``)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    if name == "deepshap":
        if background is None:
            raise ValueError("deepshap needs a background (ids [k, T] or texts)")
        return DeepExplainer(model, background, output=output, summarize=summarize)
    if name == "ig":
        return IntegratedGradients(model, steps=ig_steps, output=output)
    if name == "sampling-shapley":
        return SamplingShapley(model, n_permutations=n_permutations, seed=seed, output=output)
    if name == "random":
        return RandomBaseline(model, seed=seed, output=output)
    return METHODS[name](model, output=output)


def parse_methods(spec: str) -> list[str]:
    """``"deepshap,ig"`` -> ``["deepshap", "ig"]``, checking every name."""
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise ValueError("no methods given")
    bad = [n for n in names if n not in METHODS]
    if bad:
        raise ValueError(f"unknown method(s) {', '.join(bad)}; choose from {', '.join(METHODS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"a method is listed twice in {spec!r}")
    return names
