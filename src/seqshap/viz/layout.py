"""What every picture shares: the text as shown, colours, and the force-plot geometry.

The HTML, SVG, PNG and terminal renderers all read these, so the same word gets the
same text, value, colour and place in every picture. Words and where they stand in the
review come from the :class:`Explanation` (its spans and word ids, filled by the
tokenizer); nothing here reads the review a second time to guess which text was which token.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from ..attribution.explanation import Explanation, Word
from ..data.pairs import PAIR_SEP
from ..data.tokenize import tokenize

# Between the two texts of a sentence pair, every picture shows this where the separator is.
PAIR_SHOWN = " ‖ "

# shap's own palette: red pushes the output up, blue pushes it down.
RED = (255, 0, 81)
BLUE = (0, 139, 251)
RED_HEX, BLUE_HEX = "#ff0051", "#008bfb"


def check(exp: Explanation) -> None:
    """Refuse what no picture can show: not an Explanation, or non-finite numbers."""
    if not isinstance(exp, Explanation):
        raise TypeError(f"expected an Explanation, got {type(exp).__name__}")
    if not (np.all(np.isfinite(exp.values)) and math.isfinite(exp.base_value) and math.isfinite(exp.output_value)):
        raise ValueError("explanation has non-finite values (NaN or inf); nothing sensible to draw")


# ------------------------------------------------------------------------ the text as shown
@dataclass(frozen=True)
class Run:
    """A stretch of the shown text: a word the model read (``word`` set), or the text
    between words (``word`` is ``None``: spaces, punctuation, ``<br />`` tags)."""

    text: str
    word: Word | None = None


@dataclass(frozen=True)
class Passage:
    """The review as the pictures show it.

    ``unread`` is the text before the first word the model read (the encoder keeps the
    *last* ``maxlen`` positions), ``n_unread`` the number of words in it; ``runs`` is the
    rest, in order. ``unread`` plus the runs' text is the review exactly as written (a sentence
    pair's separator shown as :data:`PAIR_SHOWN`).
    Without spans (an explanation made from ids) the runs are the visible tokens, spaced.
    """

    unread: str
    n_unread: int
    runs: tuple[Run, ...]

    @property
    def words(self) -> list[Word]:
        return [r.word for r in self.runs if r.word is not None]


def passage(exp: Explanation) -> Passage:
    """Cut the review into words (from the explanation's spans) and the text between them."""
    words = exp.word_list()
    if exp.spans is None:
        runs: list[Run] = []
        for i, w in enumerate(words):
            runs += [Run(" "), Run(w.text, w)] if i else [Run(w.text, w)]
        return Passage("", 0, tuple(runs))
    text = exp.text or ""  # an explanation with spans always has its text
    spanned = sorted((w.span, w) for w in words if w.span is not None)
    first = spanned[0][0][0] if spanned else len(text)
    # Only the count needs the tokenizer: text before the first read word is "unread" when
    # it holds words (front truncation), and plain text between words otherwise.
    n_unread = len(tokenize(text[:first]))
    cursor = first if n_unread else 0
    runs = []
    for (start, end), w in spanned:
        if start > cursor:
            runs.append(Run(text[cursor:start].replace(PAIR_SEP, PAIR_SHOWN)))
        runs.append(Run(w.text, w))
        cursor = max(cursor, end)
    if cursor < len(text):
        runs.append(Run(text[cursor:].replace(PAIR_SEP, PAIR_SHOWN)))
    return Passage(text[:first] if n_unread else "", n_unread, tuple(runs))


def ranked_words(exp: Explanation, k: int = 10) -> list[Word]:
    """The ``k`` visible words with the largest |value| (a word's positions summed)."""
    return sorted(exp.word_list(), key=lambda w: -abs(w.value))[: max(0, k)]


# --------------------------------------------------------------------------------- colours
def scale(exp: Explanation) -> float:
    """Colour scale: the largest |value| of a visible word (never 0, so colours stay defined)."""
    m = max((abs(w.value) for w in exp.word_list()), default=0.0)
    return m if m > 0 and math.isfinite(m) else 1.0


def colour(value: float, vmax: float) -> tuple[int, int, int]:
    """Diverging scale white -> red (positive) / blue (negative), linear in |value|/vmax."""
    t = max(0.0, min(1.0, abs(value) / vmax)) if vmax > 0 else 0.0
    base = RED if value > 0 else BLUE
    r, g, b = (round(255 + (c - 255) * t) for c in base)
    return r, g, b


def dark(rgb: tuple[int, int, int]) -> bool:
    """True when white text reads better than black on ``rgb``."""
    r, g, b = rgb
    return 0.299 * r + 0.587 * g + 0.114 * b < 140


def text_colour(value: float, vmax: float) -> str:
    """Black or white text, whichever reads better on :func:`colour`."""
    return "#ffffff" if dark(colour(value, vmax)) else "#111111"


# ----------------------------------------------------------------------------------- words
def fmt(v: float) -> str:
    """Signed value with enough digits for small attributions."""
    if v == 0:
        return "0"
    if abs(v) >= 0.001:
        return f"{v:+.4f}"
    return f"{v:+.2e}"


def fmt_out(v: float) -> str:
    return f"{v:.4f}"


def predicted_name(exp: Explanation) -> str | None:
    """The predicted class's name, else its index; ``None`` when there is no class (raw outputs)."""
    name = exp.predicted_name
    if name is None and exp.predicted_label is not None:
        name = str(exp.predicted_label)
    return name


def quantity(output_space: str, name: str) -> str:
    """What an explained number is for class ``name``: ``P(9)``, ``logit(9)`` or ``output(9)``."""
    return {"probability": "P", "logit": "logit"}.get(output_space, "output") + f"({name})"


def output_of(exp: Explanation, name: str) -> str:
    """:func:`quantity` of ``exp``'s output space."""
    return quantity(exp.output_space, name)


def describe_prediction(exp: Explanation) -> str:
    """``"0.9123 (positive)"`` in the output space of the explanation; for a named class
    (:attr:`Explanation.explained_class`) ``"P(9) = 0.4123 (predicted 8)"``; for a multi-label
    model ``"P(toxic) = 0.7310 (labels: toxic, insult)"``."""
    name = predicted_name(exp)
    target = exp.explained_class
    if exp.multi_label and target is not None:  # each label its own yes/no: say which are on
        return f"{output_of(exp, target)} = {fmt_out(exp.output_value)} (labels: {exp.predicted or 'none'})"
    if target is not None:
        return f"{output_of(exp, target)} = {fmt_out(exp.output_value)}" + (f" (predicted {name})" if name else "")
    return f"{fmt_out(exp.output_value)} ({name})" if name else fmt_out(exp.output_value)


def why(exp: Explanation) -> str | None:
    """``"why 9"`` for an explanation of a named class; ``None`` keeps the two-class wording."""
    return None if exp.explained_class is None else f"why {exp.explained_class}"


_CTRL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")


def clean(s: str) -> str:
    """Drop characters XML and terminals must not see (control characters)."""
    return _CTRL.sub("\N{REPLACEMENT CHARACTER}", s)


# -------------------------------------------------------------------------- force plot
LABEL_ROWS = 3
# Label characters that fit across the axis of the default pictures (the 960 px SVG at about
# 7 px a character, the 12-inch PNG at 9 pt), so both place the same labels.
LABEL_CHARS = 128.0
CHEVRON = 0.006  # depth of a segment's arrow tip, as a fraction of the axis
PADDING = 0.08  # room left and right of the segments, as a fraction of their span


@dataclass(frozen=True)
class Segment:
    """One word's piece of the force-plot bar, ``x0 < x1`` in output units.

    ``pos`` is the word's first token position (``-1`` for the padding/start segment),
    ``positions`` all of them. ``chevron`` is the polygon to draw: x in output units,
    y from 0 (bottom of the bar) to 1 (top), the tip pointing towards f(x).
    """

    pos: int
    positions: tuple[int, ...]
    word: str
    value: float
    x0: float
    x1: float
    chevron: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Label:
    """A segment's word and value drawn below the bar, in ``row`` (0 nearest the bar),
    centred at ``x`` (output units)."""

    segment: int  # index into ForceLayout.segments
    row: int
    x: float


@dataclass(frozen=True)
class ForceLayout:
    """shap's force-plot geometry, in output units, for every renderer to draw as it is."""

    segments: tuple[Segment, ...]
    lo: float  # the span [lo, hi] covered by the segments
    hi: float
    base: float  # base value (mean output over the background)
    output: float  # f(x)
    domain: tuple[float, float]  # the axis: segments, base value and f(x), padded
    ticks: tuple[float, ...]
    labels: tuple[Label, ...]  # biggest |value| first

    @property
    def n_rows(self) -> int:
        return 1 + max((lab.row for lab in self.labels), default=0)

    @property
    def labelled(self) -> set[int]:
        return {lab.segment for lab in self.labels}


def _chevron(value: float, a: float, b: float, depth: float) -> tuple[tuple[float, float], ...]:
    c = min(depth, (b - a) / 2)
    if value > 0:  # pointing right, towards f(x)
        return ((a, 1.0), (b - c, 1.0), (b, 0.5), (b - c, 0.0), (a, 0.0), (a + c, 0.5))
    return ((b, 1.0), (a + c, 1.0), (a, 0.5), (a + c, 0.0), (b, 0.0), (b - c, 0.5))


def force_layout(exp: Explanation, max_labels: int = 12, label_chars: float = LABEL_CHARS) -> ForceLayout:
    """Segments, axis, ticks and label rows of the force plot of ``exp``.

    Red (positive) words are stacked left of the output value f(x), blue (negative) ones
    right of it, the biggest next to f(x). Padding/start positions are drawn as one
    "padding/start" segment only if they carry attribution, so the bar still ends at f(x).
    The ``max_labels`` biggest segments get a label in the first of three rows where it
    does not overlap another; ``label_chars`` is how many label characters fit across the
    axis in the renderer's font (label widths are estimated from their length).
    """
    f = float(exp.output_value)
    items = [(w.positions[0], w.positions, w.text, w.value) for w in exp.word_list()]
    hidden = tuple(int(p) for p in (~exp.visible).nonzero()[0])
    hidden_value = exp.hidden_value
    if hidden_value != 0.0:
        items.append((-1, hidden, "padding/start", hidden_value))
    pos = sorted([it for it in items if it[3] > 0], key=lambda it: -it[3])
    neg = sorted([it for it in items if it[3] < 0], key=lambda it: it[3])
    spans: list[tuple[tuple, float, float]] = []
    x = f
    for it in pos:  # leftwards from f(x)
        spans.append((it, x - it[3], x))
        x -= it[3]
    lo = x
    x = f
    for it in neg:  # rightwards from f(x)
        spans.append((it, x, x - it[3]))
        x -= it[3]
    hi = x

    base = float(exp.base_value)
    dlo, dhi = min(lo, base, f), max(hi, base, f)
    pad = (dhi - dlo) * PADDING or 0.05
    dlo, dhi = dlo - pad, dhi + pad
    depth = (dhi - dlo) * CHEVRON
    segs = tuple(Segment(p, tuple(ps), word, v, a, b, _chevron(v, a, b, depth)) for (p, ps, word, v), a, b in spans)

    char = (dhi - dlo) / label_chars
    rows: list[list[tuple[float, float]]] = [[] for _ in range(LABEL_ROWS)]
    labels = []
    for i in sorted(range(len(segs)), key=lambda i: -abs(segs[i].value))[: max(0, max_labels)]:
        s = segs[i]
        cx = (s.x0 + s.x1) / 2
        half = (max(len(s.word), len(fmt(s.value))) + 1) * char / 2
        a, b = max(dlo, cx - half), min(dhi, cx + half)
        for r, row in enumerate(rows):
            if all(b + char / 2 <= a2 or a >= b2 + char / 2 for a2, b2 in row):
                row.append((a, b))
                labels.append(Label(i, r, cx))
                break
    return ForceLayout(segs, lo, hi, base, f, (dlo, dhi), tuple(nice_ticks(dlo, dhi)), tuple(labels))


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
