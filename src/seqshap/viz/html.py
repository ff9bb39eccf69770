"""Self-contained HTML/SVG pictures of an :class:`Explanation` (no JavaScript, no network).

Every string that comes from a review or a user goes through :func:`esc` (``html.escape``
plus removal of control characters), so a review containing ``<script>`` shows as text.
Each drawn word carries ``data-pos`` (token position) and ``data-value`` (the exact
float, ``repr``) so tests and tools can check the picture against the explanation.
"""
from __future__ import annotations

import html as _html
import math

import numpy as np

from ..attribution.explanation import Explanation
from .layout import (BLUE_HEX, RED_HEX, Segment, clean, colour, describe_prediction, display_words,
                     fmt, fmt_out, force_layout, nice_ticks, pieces, scale, text_colour)

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', Arial, sans-serif"
# Pages never need scripts: if escaping ever failed, the browser still would not run one.
DEFAULT_CSP = "script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'"


def esc(s: object) -> str:
    """Escape for HTML/SVG text and attributes (quotes included)."""
    return _html.escape(clean(str(s)), quote=True)


def _num(v: float) -> str:
    """Exact float for ``data-value`` attributes."""
    return repr(float(v))


def _check(exp: Explanation) -> None:
    if not isinstance(exp, Explanation):
        raise TypeError(f"expected an Explanation, got {type(exp).__name__}")
    if not (np.all(np.isfinite(exp.values)) and math.isfinite(exp.base_value)
            and math.isfinite(exp.output_value)):
        raise ValueError("explanation has non-finite values (NaN or inf); nothing sensible to draw")


def _rgb(c: tuple[int, int, int]) -> str:
    return f"rgb({c[0]},{c[1]},{c[2]})"


# ------------------------------------------------------------------------ force plot
def _label_width(word: str, value: str) -> float:
    # No text metrics without a browser: ~7 px per character at 12 px is safe for labels.
    return max(len(word), len(value)) * 7.0 + 8


def force_plot_svg(exp: Explanation, width: int = 960, max_labels: int = 12) -> str:
    """shap-style force plot as an ``<svg>`` element string.

    The axis spans the base value (mean output over the background) and the output
    f(x); red segments push the output up, blue push it down, the biggest next to f(x).
    The ``max_labels`` largest contributors that fit get their word and value below
    the bar; every segment shows word and value on hover (``<title>``).
    """
    _check(exp)
    if width < 200:
        raise ValueError(f"width must be at least 200 px, got {width}")
    segs, lo, hi = force_layout(exp)
    base, f = float(exp.base_value), float(exp.output_value)
    dlo, dhi = min(lo, base, f), max(hi, base, f)
    pad = (dhi - dlo) * 0.08 or 0.05
    dlo, dhi = dlo - pad, dhi + pad
    ml, mr = 30.0, 30.0

    def X(v: float) -> float:
        return ml + (v - dlo) / (dhi - dlo) * (width - ml - mr)

    y_axis, bar_top, bar_h = 70.0, 92.0, 24.0
    bar_bot, mid = bar_top + bar_h, bar_top + bar_h / 2
    label_top, row_h, max_rows = bar_bot + 22, 32.0, 3

    # Labels: biggest first, each into the first row where it does not overlap.
    rows: list[list[tuple[float, float]]] = [[] for _ in range(max_rows)]
    placed: dict[int, tuple[int, float]] = {}
    ranked = sorted(range(len(segs)), key=lambda i: -abs(segs[i].value))[:max(0, max_labels)]
    for i in ranked:
        s = segs[i]
        cx = (X(s.x0) + X(s.x1)) / 2
        w = _label_width(s.word, fmt(s.value))
        a, b = max(0.0, cx - w / 2), min(float(width), cx + w / 2)
        for r in range(max_rows):
            if all(b + 4 <= a2 or a >= b2 + 4 for a2, b2 in rows[r]):
                rows[r].append((a, b))
                placed[i] = (r, cx)
                break
    n_rows = 1 + max((r for r, _ in placed.values()), default=0)
    height = int(label_top + n_rows * row_h + 8)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="seqshap-force" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
           f'style="max-width:100%;height:auto;background:#fff" font-family="{esc(FONT)}" '
           f'data-base-value="{_num(base)}" data-output-value="{_num(f)}" '
           f'aria-label="force plot: base value {fmt_out(base)}, output {fmt_out(f)}">',
           f'<title>Force plot: base value {fmt_out(base)} to f(x) = {esc(describe_prediction(exp))}'
           f'{" for " + esc(exp.model_name) if exp.model_name else ""}</title>']
    # Legend
    out.append(f'<g class="legend" font-size="12"><rect x="{ml}" y="8" width="12" height="12" '
               f'fill="{RED_HEX}"/><text x="{ml + 17}" y="18" fill="{RED_HEX}">pushes higher</text>'
               f'<rect x="{ml + 120}" y="8" width="12" height="12" fill="{BLUE_HEX}"/>'
               f'<text x="{ml + 137}" y="18" fill="{BLUE_HEX}">pushes lower</text>'
               f'<text x="{width - mr}" y="18" text-anchor="end" fill="#666">'
               f'{esc(exp.output_space)} · {esc(exp.method)}</text></g>')
    # Axis with ticks
    out.append(f'<g class="axis" font-size="11" fill="#666"><line x1="{ml}" x2="{width - mr}" '
               f'y1="{y_axis}" y2="{y_axis}" stroke="#bbb"/>')
    for t in nice_ticks(dlo, dhi):
        xt = X(t)
        out.append(f'<line x1="{xt:.2f}" x2="{xt:.2f}" y1="{y_axis - 4}" y2="{y_axis}" stroke="#bbb"/>'
                   f'<text x="{xt:.2f}" y="{y_axis - 7}" text-anchor="middle">{t:g}</text>')
    out.append('</g>')
    # Segments
    out.append(f'<g class="segments" stroke="#fff" stroke-width="1">')
    for i, s in enumerate(segs):
        out.append(_segment_svg(s, X, bar_top, bar_bot, mid, i in placed))
    out.append('</g>')
    # Base value and f(x) markers (f(x) above, base value below the bar so they never collide)
    xb, xf = X(base), X(f)
    out.append(f'<g class="base-value" data-value="{_num(base)}"><line x1="{xb:.2f}" x2="{xb:.2f}" '
               f'y1="{bar_top - 4}" y2="{bar_bot + 4}" stroke="#555" stroke-width="1.5" '
               f'stroke-dasharray="3,2"/><text x="{xb:.2f}" y="{bar_top - 8}" font-size="11" '
               f'text-anchor="{_anchor(xb, width)}" fill="#555">base value {fmt_out(base)}</text></g>')
    out.append(f'<g class="output-value" data-value="{_num(f)}"><line x1="{xf:.2f}" x2="{xf:.2f}" '
               f'y1="{y_axis - 22}" y2="{bar_bot + 4}" stroke="#111" stroke-width="2"/>'
               f'<text x="{xf:.2f}" y="{y_axis - 26 + 2}" font-size="14" font-weight="bold" '
               f'text-anchor="{_anchor(xf, width)}" fill="#111">f(x) = {fmt_out(f)}</text></g>')
    # Labels
    out.append('<g class="labels">')
    for i, (r, cx) in placed.items():
        s = segs[i]
        col = RED_HEX if s.value > 0 else BLUE_HEX
        ty = label_top + r * row_h + 11
        sx = (X(s.x0) + X(s.x1)) / 2
        out.append(f'<g class="label" data-pos="{s.pos}" data-value="{_num(s.value)}">'
                   f'<line x1="{sx:.2f}" x2="{cx:.2f}" y1="{bar_bot + 1}" y2="{ty - 11}" stroke="{col}" '
                   f'stroke-width="1" opacity="0.6"/>'
                   f'<text x="{cx:.2f}" y="{ty:.2f}" text-anchor="middle" font-size="12" '
                   f'fill="#222" class="word">{esc(s.word)}</text>'
                   f'<text x="{cx:.2f}" y="{ty + 13:.2f}" text-anchor="middle" font-size="11" '
                   f'fill="{col}" class="value">{fmt(s.value)}</text></g>')
    out.append('</g></svg>')
    return "".join(out)


def _anchor(x: float, width: int) -> str:
    return "start" if x < 90 else ("end" if x > width - 90 else "middle")


def _segment_svg(s: Segment, X, top: float, bot: float, mid: float, labelled: bool) -> str:
    a, b = X(s.x0), X(s.x1)
    c = min(6.0, (b - a) / 2)
    if s.value > 0:  # chevron pointing right, towards f(x)
        pts = [(a, top), (b - c, top), (b, mid), (b - c, bot), (a, bot), (a + c, mid)]
        col = RED_HEX
    else:            # chevron pointing left, towards f(x)
        pts = [(b, top), (a + c, top), (a, mid), (a + c, bot), (b, bot), (b - c, mid)]
        col = BLUE_HEX
    p = " ".join(f"{x:.2f},{y:.2f}" for x, y in pts)
    cls = "seg pos" if s.value > 0 else "seg neg"
    return (f'<g class="{cls}{" labelled" if labelled else ""}" data-pos="{s.pos}" '
            f'data-word="{esc(s.word)}" data-value="{_num(s.value)}"><title>{esc(s.word)}: '
            f'{fmt(s.value)}</title><polygon points="{p}" fill="{col}"/></g>')


# ------------------------------------------------------------------------- highlight
def _legend_html(vmax: float, exp: Explanation, has_oov: bool) -> str:
    lo, hi = _rgb(colour(-vmax, vmax)), _rgb(colour(vmax, vmax))
    oov = ('<span style="margin-left:14px"><span style="border:1px dashed #333;padding:0 3px">word'
           '</span> not in the vocabulary (read as '
           '&lt;oov&gt;)</span>') if has_oov else ""
    return (f'<div class="legend" style="display:flex;align-items:center;flex-wrap:wrap;gap:6px;'
            f'font-size:12px;color:#444;margin-top:8px">'
            f'<span>{fmt(-vmax)}</span><span style="display:inline-block;width:160px;height:10px;'
            f'border:1px solid #ccc;background:linear-gradient(to right,{lo},#ffffff,{hi})"></span>'
            f'<span>{fmt(vmax)}</span><span style="margin-left:6px">blue pushes {esc(exp.output_space)} '
            f'down, red pushes it up; hover a word for its value</span>{oov}</div>')


def _prose(s: str) -> str:
    """Text between words as written; the reviews' ``<br />`` tags become line breaks."""
    for tag in ("<br />", "<br/>", "<br>"):
        s = s.replace(tag, "\n")
    return esc(s)


def highlight_html(exp: Explanation) -> str:
    """The review as written, each word's background coloured by its attribution.

    Diverging scale (blue negative, white 0, red positive) normalised by the largest
    visible |value|, a legend, the value on hover (``title``). Padding/start are hidden;
    out-of-vocabulary words show as written inside a dashed box; words cut off by
    ``maxlen`` are folded away in a ``<details>`` block.
    """
    _check(exp)
    vmax = scale(exp)
    parts: list[str] = []
    cut = ""
    has_oov = False
    n_read = int(exp.visible.sum())
    for p in pieces(exp):
        if p.truncated:
            n_cut = len(p.text.split())
            cut = (f'<details class="cut" style="color:#888;margin-bottom:6px"><summary style="cursor:'
                   f'pointer;font-size:12px">{n_cut} earlier word(s) not read by the model (it reads '
                   f'the last {n_read})</summary><div style="white-space:pre-wrap">{_prose(p.text)}'
                   f'</div></details>')
        elif p.pos is None:
            parts.append(_prose(p.text))
        else:
            v = float(exp.values[p.pos])
            bg, fg = _rgb(colour(v, vmax)), text_colour(v, vmax)
            tip = f"{p.text}: {fmt(v)}"
            extra = ""
            if p.oov:
                has_oov = True
                tip += " (not in the vocabulary; read as <oov>)"
                extra = "outline:1px dashed #333;"
            parts.append(f'<span class="w{" oov" if p.oov else ""}" data-pos="{p.pos}" '
                         f'data-value="{_num(v)}" title="{esc(tip)}" style="background:{bg};color:{fg};'
                         f'{extra}border-radius:3px;padding:1px 1px">{esc(p.text)}</span>')
    return (f'<div class="seqshap-highlight" style="font-family:{esc(FONT)};font-size:15px;'
            f'line-height:1.9;color:#111">{cut}<div class="text" style="white-space:pre-wrap">'
            f'{"".join(parts)}</div>{_legend_html(vmax, exp, has_oov)}</div>')


# ------------------------------------------------------------------------- top words
def top_words(exp: Explanation, k: int = 10) -> list[tuple[int, str, float]]:
    """``(position, displayed word, value)`` of the ``k`` largest |values|, visible only."""
    shown = display_words(exp)
    items = [(p, shown.get(p, exp.tokens[p]), float(exp.values[p])) for p in np.flatnonzero(exp.visible)]
    return sorted(items, key=lambda t: -abs(t[2]))[:max(0, k)]


def top_words_html(exp: Explanation, k: int = 10) -> str:
    """Table of the ``k`` words with the largest |attribution|, with bars."""
    _check(exp)
    rows = top_words(exp, k)
    vmax = max((abs(v) for _, _, v in rows), default=0.0) or 1.0
    body = []
    for rank, (pos, word, v) in enumerate(rows, 1):
        col = RED_HEX if v > 0 else BLUE_HEX
        w = 100 * abs(v) / vmax
        body.append(f'<tr data-pos="{pos}" data-value="{_num(v)}"><td style="color:#888;text-align:right;'
                    f'padding:1px 6px">{rank}</td><td class="word" style="padding:1px 8px">{esc(word)}</td>'
                    f'<td class="value" style="text-align:right;font-variant-numeric:tabular-nums;'
                    f'color:{col};padding:1px 8px">{fmt(v)}</td><td style="width:160px;padding:1px 6px">'
                    f'<div style="height:10px;width:{w:.1f}%;background:{col}"></div></td></tr>')
    return (f'<table class="seqshap-top" style="border-collapse:collapse;font-family:{esc(FONT)};'
            f'font-size:13px;margin-top:8px"><thead><tr style="color:#555;text-align:left">'
            f'<th></th><th style="padding:1px 8px">word</th><th style="padding:1px 8px">value</th><th></th>'
            f'</tr></thead><tbody>{"".join(body)}</tbody></table>')


# ----------------------------------------------------------------------- composition
def prediction_html(exp: Explanation) -> str:
    """One line: prediction, base value, sum of attributions, completeness error, label."""
    bits = [f'prediction <b>{esc(describe_prediction(exp))}</b>',
            f'base value {fmt_out(exp.base_value)}',
            f'sum of attributions {fmt(float(exp.values.sum()))}',
            f'completeness error {exp.completeness_error:.1e}']
    if exp.label is not None:
        name = {1: "positive", 0: "negative"}.get(int(exp.label), str(exp.label))
        ok = exp.predicted_label
        mark = "" if ok is None else (" ✓" if ok == int(exp.label) else " ✗")
        bits.append(f'true label <b>{esc(name)}</b>{mark}')
    bits.append(f'{esc(exp.model_name)} · {esc(exp.method)} · {esc(exp.output_space)}')
    return (f'<div class="prediction" style="font-size:14px;color:#222;margin:4px 0 6px">'
            f'{" · ".join(bits)}</div>')


def explanation_html(exp: Explanation) -> str:
    """Fragment: prediction line, force plot, highlighted text and top words (Jupyter, web, report)."""
    _check(exp)
    return (f'<div class="seqshap-explanation" style="font-family:{esc(FONT)};max-width:980px">'
            f'{prediction_html(exp)}{force_plot_svg(exp)}{highlight_html(exp)}{top_words_html(exp)}</div>')


PAGE_CSS = """
:root { color-scheme: light; }
body { font-family: %s; margin: 0; background: #f6f7f9; color: #1a1a1a; }
main { max-width: 1040px; margin: 0 auto; padding: 24px 28px 60px; background: #fff; min-height: 100vh; }
h1 { font-size: 26px; margin: 8px 0 4px; } h2 { font-size: 20px; margin: 32px 0 8px;
  border-bottom: 1px solid #e3e3e3; padding-bottom: 4px; } h3 { font-size: 16px; margin: 22px 0 4px; }
table.data { border-collapse: collapse; font-size: 13px; }
table.data th, table.data td { padding: 3px 10px; border-bottom: 1px solid #eee; text-align: left; }
table.data td.num { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: #777; font-size: 13px; } img { max-width: 100%%; height: auto; }
section.review { border-top: 1px solid #eee; margin-top: 18px; padding-top: 6px; }
a { color: #0b62c4; }
""" % FONT


def standalone_page(title: str, body_html: str, csp: str | None = DEFAULT_CSP) -> str:
    """A complete self-contained HTML document (inline CSS, no network) around ``body_html``.

    ``title`` is escaped; ``body_html`` is trusted markup (build it from the functions
    here). By default a Content-Security-Policy forbids scripts; pass ``csp=None`` for
    a page that needs its own JavaScript.
    """
    meta = (f'<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">\n' if csp else "")
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n{meta}'
            f'<link rel="icon" href="data:,">\n'
            f'<title>{esc(title)}</title>\n<style>{PAGE_CSS}</style>\n</head>\n<body>\n<main>\n'
            f'{body_html}\n</main>\n</body>\n</html>\n')


def explanation_page(exp: Explanation, title: str | None = None) -> str:
    """A standalone page for one explanation (what ``seqshap explain --html`` writes)."""
    title = title or f"seqshap explanation — {exp.model_name}"
    return standalone_page(title, f"<h1>{esc(title)}</h1>{explanation_html(exp)}")
