"""Explanations as terminal text: the review with coloured word backgrounds plus a top-words table.

Colour is 24-bit ANSI and only used when asked (the CLI asks when stdout is a TTY and
``NO_COLOR`` is unset). Control characters from reviews are replaced, so a review cannot
send escape sequences to the user's terminal.
"""

from __future__ import annotations

import os
import re
import sys
import textwrap

from ..attribution.explanation import Explanation
from ..data.tokenize import BR_TAGS
from .layout import (
    clean,
    colour,
    dark,
    describe_prediction,
    fmt,
    fmt_out,
    output_of,
    passage,
    ranked_words,
    scale,
    why,
)

RESET = "\x1b[0m"


def supports_colour(stream=None) -> bool:
    """True when ``stream`` (default stdout) is a TTY and ``NO_COLOR`` is not set."""
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR"):
        return False
    return bool(getattr(stream, "isatty", lambda: False)()) and os.environ.get("TERM") != "dumb"


def _safe(s: str) -> str:
    return clean(s).replace("\x1b", "\N{REPLACEMENT CHARACTER}")


def _paint(s: str, value: float, vmax: float) -> str:
    r, g, b = rgb = colour(value, vmax)
    return f"\x1b[48;2;{r};{g};{b}m\x1b[{'97' if dark(rgb) else '30'}m{s}{RESET}"


def _between(s: str) -> str:
    """Text between words: ``<br />`` tags and newlines as line breaks, other spacing as one space."""
    s = _safe(s)
    for tag in BR_TAGS:
        s = s.replace(tag, "\n")
    s = re.sub(r" *\n *", "\n", re.sub(r"[^\S\n]+", " ", s))
    return s or " "


def render(exp: Explanation, colour_on: bool = False, k: int = 10, width: int = 88) -> str:
    """Prediction line, the text (coloured words if ``colour_on``, else ``word[+0.0123]``
    for the top words), and a table of the ``k`` largest attributions."""
    vmax = scale(exp)
    top = ranked_words(exp, k)
    top_pos = {w.positions for w in top}
    lines = [
        (f"{_safe(why(exp) or '')}: " if why(exp) else "")
        + f"prediction {_safe(describe_prediction(exp))}   base value {fmt_out(exp.base_value)}   "
        f"completeness error {exp.completeness_error:.1e}   ({_safe(exp.model_name)}, {exp.output_space})"
    ]
    if exp.label is not None:
        lines.append(f"true label {exp.class_name(int(exp.label))}")
    view = passage(exp)
    text = [f"[... {view.n_unread} earlier words not read by the model ...] "] if view.n_unread else []
    for run in view.runs:
        w = run.word
        if w is None:
            text.append(_between(run.text))
            continue
        word = _safe(w.text) + ("?" if w.unknown else "")
        if colour_on:
            text.append(_paint(word, w.value, vmax))
        elif w.positions in top_pos:
            text.append(f"{word}[{fmt(w.value)}]")
        else:
            text.append(word)
    body = "".join(text)
    if colour_on:
        lines.append(body)  # wrapping would count escape codes as width
    else:
        for para in body.split("\n"):
            lines.extend(textwrap.wrap(para, width=width) or [""])
    lines.append("")
    pushed = f"the {exp.output_space}" if exp.explained_class is None else output_of(exp, exp.explained_class)
    lines.append(f"top {len(top)} words (value = push on {_safe(pushed)}):")
    wmax = max((len(_safe(w.text)) for w in top), default=4)
    bar_max = max((abs(w.value) for w in top), default=0.0) or 1.0
    for w in top:
        v = w.value
        bar = "█" * (max(1, round(20 * abs(v) / bar_max)) if v else 0)
        if colour_on:
            bar = f"\x1b[38;2;{255 if v > 0 else 0};{0 if v > 0 else 139};{81 if v > 0 else 251}m{bar}{RESET}"
        lines.append(f"  {_safe(w.text):<{wmax}}  {fmt(v):>10}  {bar}")
    hidden = exp.hidden_value
    if hidden != 0.0:
        # Without this line a reader adding up the words would miss the share of the
        # positions that are not words (a shorter text than the background's, the start token).
        lines.append(
            f"padding/start {fmt(hidden)}  (not words; all words + padding/start = prediction - base value "
            f"= {fmt(float(exp.output_value) - float(exp.base_value))})"
        )
    return "\n".join(lines)
