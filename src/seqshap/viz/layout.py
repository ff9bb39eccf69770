"""What every picture shares: the words a person sees, colours, and the force-plot layout.

The HTML, SVG, PNG and terminal renderers all read these, so the same word gets the
same value, colour and place in every picture.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from ..attribution.explanation import Explanation
from ..data.tokenize import KERAS_FILTERS, words

# shap's own palette: red pushes the output up, blue pushes it down.
RED = (255, 0, 81)
BLUE = (0, 139, 251)
RED_HEX, BLUE_HEX = "#ff0051", "#008bfb"
OOV_TOKEN = "<oov>"


@dataclass(frozen=True)
class Piece:
    """One run of review text. ``pos`` is the token position it was read as (``None`` for
    text the model never saw: punctuation, spaces, words cut off by ``maxlen``)."""
    text: str
    pos: int | None = None
    oov: bool = False
    truncated: bool = False


def word_spans(text: str) -> list[tuple[int, int]] | None:
    """``(start, end)`` of each word of ``words(text)`` in ``text``, or ``None`` when the
    original text cannot be mapped back exactly (exotic Unicode case mappings)."""
    norm = text
    for tag in ("<br />", "<br/>", "<br>"):  # same order as words(); same length keeps offsets
        norm = norm.replace(tag, " " * len(tag))
    spans, start = [], None
    for i, c in enumerate(norm):
        sep = c in KERAS_FILTERS or c.isspace()
        if sep and start is not None:
            spans.append((start, i))
            start = None
        elif not sep and start is None:
            start = i
    if start is not None:
        spans.append((start, len(norm)))
    if [text[a:b].lower() for a, b in spans] != words(text):
        return None
    return spans


def pieces(exp: Explanation) -> list[Piece]:
    """The review as written, split into pieces aligned with the explained token positions.

    The encoder keeps the *last* ``maxlen`` words (front truncation) with ``<start>`` in
    front when it fits, so the visible positions line up with the last words of the text.
    Without a text (or when it does not match the tokens) the tokens themselves are shown.
    """
    vis = np.flatnonzero(exp.visible)
    fallback = [Piece(exp.tokens[p], int(p), exp.tokens[p] == OOV_TOKEN) for p in vis]
    if not exp.text:
        return _spaced(fallback)
    spans = word_spans(exp.text)
    if spans is None or len(spans) < len(vis):
        return _spaced(fallback)
    text = exp.text
    first = len(spans) - len(vis)  # index of the first word the model read
    for k, p in enumerate(vis):
        a, b = spans[first + k]
        tok = exp.tokens[p]
        if tok != OOV_TOKEN and tok != text[a:b].lower():
            return _spaced(fallback)  # text and tokens disagree: trust the tokens
    out: list[Piece] = []
    cursor = 0
    if first > 0:  # words the model never read, shown greyed out
        cut = spans[first][0]
        out.append(Piece(text[:cut], None, truncated=True))
        cursor = cut
    for k, p in enumerate(vis):
        a, b = spans[first + k]
        if a > cursor:
            out.append(Piece(text[cursor:a]))
        out.append(Piece(text[a:b], int(p), exp.tokens[p] == OOV_TOKEN))
        cursor = b
    if cursor < len(text):
        out.append(Piece(text[cursor:]))
    return out


def _spaced(ps: list[Piece]) -> list[Piece]:
    out: list[Piece] = []
    for i, p in enumerate(ps):
        if i:
            out.append(Piece(" "))
        out.append(p)
    return out


def display_words(exp: Explanation) -> dict[int, str]:
    """Token position -> the word as a person reads it (OOV positions get the real word
    when the text is known)."""
    return {p.pos: p.text for p in pieces(exp) if p.pos is not None}


def scale(exp: Explanation) -> float:
    """Colour scale: the largest visible |value| (never 0, so colours stay defined)."""
    vis = exp.values[exp.visible]
    m = float(np.max(np.abs(vis))) if vis.size else 0.0
    return m if m > 0 and math.isfinite(m) else 1.0


def colour(value: float, vmax: float) -> tuple[int, int, int]:
    """Diverging scale white -> red (positive) / blue (negative), linear in |value|/vmax."""
    t = max(0.0, min(1.0, abs(value) / vmax)) if vmax > 0 else 0.0
    base = RED if value > 0 else BLUE
    return tuple(round(255 + (c - 255) * t) for c in base)


def text_colour(value: float, vmax: float) -> str:
    """Black or white text, whichever reads better on :func:`colour`."""
    r, g, b = colour(value, vmax)
    return "#ffffff" if 0.299 * r + 0.587 * g + 0.114 * b < 140 else "#111111"


def fmt(v: float) -> str:
    """Signed value with enough digits for small attributions."""
    if v == 0:
        return "0"
    if abs(v) >= 0.001:
        return f"{v:+.4f}"
    return f"{v:+.2e}"


def fmt_out(v: float) -> str:
    return f"{v:.4f}"


def describe_prediction(exp: Explanation) -> str:
    """``"0.9123 (positive)"`` in the output space of the explanation."""
    lab = exp.predicted_label
    name = {1: "positive", 0: "negative"}.get(lab) if lab is not None else None
    return f"{fmt_out(exp.output_value)} ({name})" if name else fmt_out(exp.output_value)


_CTRL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")


def clean(s: str) -> str:
    """Drop characters XML and terminals must not see (control characters)."""
    return _CTRL.sub("\N{REPLACEMENT CHARACTER}", s)


# ---------------------------------------------------------------- force plot layout
@dataclass(frozen=True)
class Segment:
    pos: int          # token position
    word: str         # as displayed
    value: float
    x0: float         # in output units; x0 < x1
    x1: float


def force_layout(exp: Explanation) -> tuple[list[Segment], float, float]:
    """shap's force-plot geometry over visible positions, in output units.

    Red (positive) segments are stacked left of the output value f(x), blue (negative)
    ones right of it, the biggest next to f(x). Returns ``(segments, lo, hi)`` with the
    span ``[lo, hi]`` covered by all segments. Hidden positions (pad/start) are drawn
    as one "padding" segment only if they carry attribution, so the bar still ends at f(x).
    """
    shown = display_words(exp)
    f = float(exp.output_value)
    items = [(p, shown.get(p, exp.tokens[p]), float(exp.values[p])) for p in range(len(exp.tokens))
             if exp.visible[p]]
    hidden = float(np.sum(exp.values[~exp.visible])) if (~exp.visible).any() else 0.0
    if hidden != 0.0:
        items.append((-1, "padding/start", hidden))
    pos = sorted([it for it in items if it[2] > 0], key=lambda it: -it[2])
    neg = sorted([it for it in items if it[2] < 0], key=lambda it: it[2])
    segs: list[Segment] = []
    x = f
    for p, w, v in pos:  # leftwards from f(x)
        segs.append(Segment(p, w, v, x - v, x))
        x -= v
    lo = x
    x = f
    for p, w, v in neg:  # rightwards from f(x)
        segs.append(Segment(p, w, v, x, x - v))
        x -= v
    hi = x
    return segs, lo, hi


def nice_ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    """About ``n`` round tick values covering ``[lo, hi]``."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    out, t = [], first
    while t <= hi + 1e-12 * step:
        out.append(round(t, 12))
        t += step
    return out
