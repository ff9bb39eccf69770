"""Explanations as terminal text: the review with coloured word backgrounds plus a top-words table.

Colour is 24-bit ANSI and only used when asked (the CLI asks when stdout is a TTY and
``NO_COLOR`` is unset). Control characters from reviews are replaced, so a review cannot
send escape sequences to the user's terminal.
"""
from __future__ import annotations

import os
import sys
import textwrap

from ..attribution.explanation import Explanation
from .html import top_words
from .layout import clean, colour, describe_prediction, fmt, fmt_out, pieces, scale

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
    r, g, b = colour(value, vmax)
    fg = "30" if 0.299 * r + 0.587 * g + 0.114 * b >= 140 else "97"
    return f"\x1b[48;2;{r};{g};{b}m\x1b[{fg}m{s}{RESET}"


def render(exp: Explanation, colour_on: bool = False, k: int = 10, width: int = 88) -> str:
    """Prediction line, the text (coloured words if ``colour_on``, else ``word[+0.0123]``
    for the top words), and a table of the ``k`` largest attributions."""
    vmax = scale(exp)
    top = top_words(exp, k)
    top_pos = {p for p, _, _ in top}
    lines = [f"prediction {describe_prediction(exp)}   base value {fmt_out(exp.base_value)}   "
             f"completeness error {exp.completeness_error:.1e}   ({exp.model_name}, {exp.output_space})"]
    if exp.label is not None:
        lines.append(f"true label {'positive' if int(exp.label) == 1 else 'negative'}")
    text = []
    for p in pieces(exp):
        if p.truncated:
            text.append(f"[... {len(p.text.split())} earlier words not read by the model ...] ")
        elif p.pos is None:
            text.append(" ".join(_safe(p.text).split()) if p.text.strip() else " ")
        else:
            word = _safe(p.text) + ("?" if p.oov else "")
            v = float(exp.values[p.pos])
            if colour_on:
                text.append(_paint(word, v, vmax))
            elif p.pos in top_pos:
                text.append(f"{word}[{fmt(v)}]")
            else:
                text.append(word)
    body = "".join(text)
    if colour_on:
        lines.append(body)  # wrapping would count escape codes as width
    else:
        lines.extend(textwrap.wrap(body, width=width) or [""])
    lines.append("")
    lines.append(f"top {len(top)} words (value = push on the {exp.output_space}):")
    wmax = max((len(_safe(w)) for _, w, _ in top), default=4)
    bar_max = max((abs(v) for _, _, v in top), default=0.0) or 1.0
    for _, w, v in top:
        bar = "█" * (max(1, round(20 * abs(v) / bar_max)) if v else 0)
        if colour_on:
            bar = f"\x1b[38;2;{255 if v > 0 else 0};{0 if v > 0 else 139};{81 if v > 0 else 251}m{bar}{RESET}"
        lines.append(f"  {_safe(w):<{wmax}}  {fmt(v):>10}  {bar}")
    return "\n".join(lines)
