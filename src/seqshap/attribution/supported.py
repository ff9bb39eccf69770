"""What the DeepSHAP engine explains exactly, as a page generated from the rule tables.

``python -m seqshap.attribution.supported > docs/supported.md`` writes it; the tests check that
the checked-in page is what the tables say, so the page cannot drift from the code.
"""

from __future__ import annotations

import re

from .canonizers import DEFAULT, Canonize, Composite, Unsupported
from .op_rules import ELEMENTWISE, KINKED, LINEAR_OPS, OP_RULES, OpRule, _Elementwise
from .tracer import METADATA

_INTRO = """# What seqshap explains exactly

*Generated from the engine's rule tables by `python -m seqshap.attribution.supported`; a test
checks that this page matches them.*

Any `nn.Module` text classifier built from the layers and operations below is explained exactly
(the values add up to f(x) − E f(background) to float precision), with no change to its code.
Anything else that touches the signal is refused before a number is shown, naming the layer, or
the operation and the file and line of your code that called it.

Values computed from the token ids (a padding mask `ids == pad`, lengths `mask.sum(1)`,
positions of the last real token) are followed through the forward pass: where they differ
between a text and a reference, their share of the difference goes to the token positions
they came from.
"""


def _markdown(doc: str) -> str:
    """The first paragraph of a docstring in Markdown: ``x`` -> `x`, :class:`~.a.B` -> `B`."""
    text = " ".join(doc.strip().split("\n\n")[0].split())
    text = re.sub(r":(?:class|func|data|meth):`~?(?:[\w.]*\.)?(\w+)`", r"`\1`", text)
    return text.replace("``", "`")


def _doc(obj) -> str:
    return _markdown(type(obj).__doc__ or "")


def _names(names) -> str:
    return ", ".join(f"`{n}`" for n in sorted(names))


def markdown(composite: Composite = DEFAULT) -> str:
    """The page, from ``composite``'s module rules and the op rule tables."""
    lines = [_INTRO, "## Layers", "", "| layer | how it is explained |", "|---|---|"]
    for t, how in sorted(composite.modules.items(), key=lambda kv: kv[0].__name__):
        if isinstance(how, Canonize):
            what = f"canonized: {how.doc}"
        elif isinstance(how, Unsupported):
            what = f"**refused**: {how.hint}" if how.hint else "**refused**"
        else:
            what = "its operations, each by its rule below"
        lines.append(f"| `{t.__module__.replace('torch.nn.modules.', 'nn.').split('.')[0]}.{t.__name__}` | {what} |")
    lines += [
        "",
        "Your own module classes are looked into (their operations are ruled one by one). A module "
        "with a `seqshap_encoder_layer()` method returning the explicit encoder layer's fields is "
        "explained by that layer (how seqshap's own Transformer and Hugging Face layers register).",
        "",
        "## Operations with a rule",
        "",
        "| operations | rule |",
        "|---|---|",
    ]
    groups: dict[str, list[str]] = {}
    for name, rule in OP_RULES.items():
        if isinstance(rule, _Elementwise):
            continue
        groups.setdefault(_describe(rule), []).append(name)
    for what, names in sorted(groups.items(), key=lambda kv: sorted(kv[1])[0]):
        lines.append(f"| {_names(names)} | {what} |")
    smooth = sorted(n for n in ELEMENTWISE if n not in KINKED)
    kinked = sorted(n for n in ELEMENTWISE if n in KINKED)
    lines += [
        "",
        "## One-input elementwise functions",
        "",
        "The rescale rule (the secant slope between input and reference) is exact for any of them:",
        "",
        _names(smooth) + " (and their in-place forms).",
        "",
        "Piecewise ones use the secant however close input and reference are: " + _names(kinked) + ".",
        "",
        "## Linear operations",
        "",
        "Multipliers pass through them unchanged (autograd's own backward is DeepLIFT's):",
        "",
        _names(n for n in LINEAR_OPS if not n.startswith("_") and n not in METADATA),
        "",
    ]
    return "\n".join(lines)


def _describe(rule: OpRule) -> str:
    name = getattr(rule, "name", None)
    if name is not None and type(rule).__name__ == "_Explicit":
        from . import functional

        return "written out: " + _markdown(getattr(functional, name).__doc__ or "")
    return _doc(rule)


if __name__ == "__main__":
    print(markdown(), end="")
