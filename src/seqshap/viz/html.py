"""Self-contained HTML/SVG pictures of an :class:`Explanation` (no JavaScript, no network).

Every string that comes from a review or a user goes through :func:`esc` (``html.escape``
plus removal of control characters), so a review containing ``<script>`` shows as text.
Each drawn word carries ``data-pos`` (token position) and ``data-value`` (the exact
float, ``repr``) so tests and tools can check the picture against the explanation.
"""

from __future__ import annotations

import html as _html

from ..attribution.explanation import Explanation, Word
from ..data.tokenize import BR_TAGS, OOV_TOKEN
from .layout import (
    BLUE_HEX,
    LABEL_CHARS,
    RED_HEX,
    Segment,
    check,
    clean,
    colour,
    describe_prediction,
    fmt,
    fmt_out,
    force_layout,
    output_of,
    passage,
    ranked_words,
    scale,
    text_colour,
    why,
)

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', Arial, sans-serif"
# Pages never need scripts: if escaping ever failed, the browser still would not run one.
DEFAULT_CSP = "script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'"


def esc(s: object) -> str:
    """Escape for HTML/SVG text and attributes (quotes included)."""
    return _html.escape(clean(str(s)), quote=True)


def _num(v: float) -> str:
    """Exact float for ``data-value`` attributes."""
    return repr(float(v))


def _positions(ps: tuple[int, ...]) -> str:
    return " ".join(str(p) for p in ps)


def _rgb(c: tuple[int, int, int]) -> str:
    return f"rgb({c[0]},{c[1]},{c[2]})"


# ------------------------------------------------------------------------ force plot
DEFAULT_WIDTH = 960


def force_plot_svg(exp: Explanation, width: int = DEFAULT_WIDTH, max_labels: int = 12) -> str:
    """shap-style force plot as an ``<svg>`` element string.

    The axis spans the base value (mean output over the background) and the output
    f(x); red segments push the output up, blue push it down, the biggest next to f(x).
    The ``max_labels`` largest contributors that fit get their word and value below
    the bar; every segment shows word and value on hover (``<title>``). The geometry is
    :func:`seqshap.viz.layout.force_layout`'s; this only draws it.
    """
    check(exp)
    if width < 200:
        raise ValueError(f"width must be at least 200 px, got {width}")
    ml, mr = 30.0, 30.0
    # No text metrics without a browser: labels are sized in characters, which scale with the width.
    lay = force_layout(exp, max_labels, label_chars=LABEL_CHARS * width / DEFAULT_WIDTH)
    (dlo, dhi), base, f = lay.domain, lay.base, lay.output

    def X(v: float) -> float:
        return ml + (v - dlo) / (dhi - dlo) * (width - ml - mr)

    y_axis, bar_top, bar_h = 70.0, 92.0, 24.0
    bar_bot = bar_top + bar_h
    label_top, row_h = bar_bot + 22, 32.0
    height = int(label_top + lay.n_rows * row_h + 8)

    def Y(u: float) -> float:  # bar units (0 bottom, 1 top) -> px
        return bar_bot - u * bar_h

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="seqshap-force" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'style="max-width:100%;height:auto;background:#fff" font-family="{esc(FONT)}" '
        f'data-base-value="{_num(base)}" data-output-value="{_num(f)}" '
        f'aria-label="force plot: base value {fmt_out(base)}, output {fmt_out(f)}">',
        f"<title>Force plot: base value {fmt_out(base)} to f(x) = {esc(describe_prediction(exp))}"
        f"{' for ' + esc(exp.model_name) if exp.model_name else ''}</title>",
    ]
    # Legend
    named = f"{why(exp)} · " if why(exp) is not None else ""
    out.append(
        f'<g class="legend" font-size="12"><rect x="{ml}" y="8" width="12" height="12" '
        f'fill="{RED_HEX}"/><text x="{ml + 17}" y="18" fill="{RED_HEX}">pushes higher</text>'
        f'<rect x="{ml + 120}" y="8" width="12" height="12" fill="{BLUE_HEX}"/>'
        f'<text x="{ml + 137}" y="18" fill="{BLUE_HEX}">pushes lower</text>'
        f'<text x="{width - mr}" y="18" text-anchor="end" fill="#666">'
        f"{esc(named)}{esc(exp.output_space)} · {esc(exp.method)}</text></g>"
    )
    # Axis with ticks
    out.append(
        f'<g class="axis" font-size="11" fill="#666"><line x1="{ml}" x2="{width - mr}" '
        f'y1="{y_axis}" y2="{y_axis}" stroke="#bbb"/>'
    )
    for t in lay.ticks:
        xt = X(t)
        out.append(
            f'<line x1="{xt:.2f}" x2="{xt:.2f}" y1="{y_axis - 4}" y2="{y_axis}" stroke="#bbb"/>'
            f'<text x="{xt:.2f}" y="{y_axis - 7}" text-anchor="middle">{t:g}</text>'
        )
    out.append("</g>")
    # Segments
    out.append('<g class="segments" stroke="#fff" stroke-width="1">')
    labelled = lay.labelled
    for i, s in enumerate(lay.segments):
        out.append(_segment_svg(s, X, Y, i in labelled))
    out.append("</g>")
    # Base value and f(x) markers (f(x) above, base value below the bar so they never collide)
    xb, xf = X(base), X(f)
    out.append(
        f'<g class="base-value" data-value="{_num(base)}"><line x1="{xb:.2f}" x2="{xb:.2f}" '
        f'y1="{bar_top - 4}" y2="{bar_bot + 4}" stroke="#555" stroke-width="1.5" '
        f'stroke-dasharray="3,2"/><text x="{xb:.2f}" y="{bar_top - 8}" font-size="11" '
        f'text-anchor="{_anchor(xb, width)}" fill="#555">base value {fmt_out(base)}</text></g>'
    )
    out.append(
        f'<g class="output-value" data-value="{_num(f)}"><line x1="{xf:.2f}" x2="{xf:.2f}" '
        f'y1="{y_axis - 22}" y2="{bar_bot + 4}" stroke="#111" stroke-width="2"/>'
        f'<text x="{xf:.2f}" y="{y_axis - 26 + 2}" font-size="14" font-weight="bold" '
        f'text-anchor="{_anchor(xf, width)}" fill="#111">{esc(_fx(exp))} = {fmt_out(f)}</text></g>'
    )
    # Labels
    out.append('<g class="labels">')
    for lab in lay.labels:
        s = lay.segments[lab.segment]
        col = RED_HEX if s.value > 0 else BLUE_HEX
        cx, ty = X(lab.x), label_top + lab.row * row_h + 11
        out.append(
            f'<g class="label" data-pos="{s.pos}" data-positions="{_positions(s.positions)}" '
            f'data-value="{_num(s.value)}">'
            f'<line x1="{cx:.2f}" x2="{cx:.2f}" y1="{bar_bot + 1}" y2="{ty - 11}" stroke="{col}" '
            f'stroke-width="1" opacity="0.6"/>'
            f'<text x="{cx:.2f}" y="{ty:.2f}" text-anchor="middle" font-size="12" '
            f'fill="#222" class="word">{esc(s.word)}</text>'
            f'<text x="{cx:.2f}" y="{ty + 13:.2f}" text-anchor="middle" font-size="11" '
            f'fill="{col}" class="value">{fmt(s.value)}</text></g>'
        )
    out.append("</g></svg>")
    return "".join(out)


def _fx(exp: Explanation) -> str:
    """The output's name on the force plot: ``f(x)``, or ``P(9)`` for a named class."""
    return "f(x)" if exp.explained_class is None else output_of(exp, exp.explained_class)


def _anchor(x: float, width: int) -> str:
    return "start" if x < 90 else ("end" if x > width - 90 else "middle")


def _segment_svg(s: Segment, X, Y, labelled: bool) -> str:
    p = " ".join(f"{X(x):.2f},{Y(u):.2f}" for x, u in s.chevron)
    cls = "seg pos" if s.value > 0 else "seg neg"
    return (
        f'<g class="{cls}{" labelled" if labelled else ""}" data-pos="{s.pos}" '
        f'data-positions="{_positions(s.positions)}" data-word="{esc(s.word)}" '
        f'data-value="{_num(s.value)}"><title>{esc(s.word)}: {fmt(s.value)}</title>'
        f'<polygon points="{p}" fill="{RED_HEX if s.value > 0 else BLUE_HEX}"/></g>'
    )


# ------------------------------------------------------------------------- highlight
def _legend_html(vmax: float, exp: Explanation, has_oov: bool) -> str:
    lo, hi = _rgb(colour(-vmax, vmax)), _rgb(colour(vmax, vmax))
    oov = (
        (
            '<span style="margin-left:14px"><span style="border:1px dashed #333;padding:0 3px">word'
            f"</span> not in the vocabulary (read as {esc(OOV_TOKEN)})</span>"
        )
        if has_oov
        else ""
    )
    return (
        f'<div class="legend" style="display:flex;align-items:center;flex-wrap:wrap;gap:6px;'
        f'font-size:12px;color:#444;margin-top:8px">'
        f'<span>{fmt(-vmax)}</span><span style="display:inline-block;width:160px;height:10px;'
        f'border:1px solid #ccc;background:linear-gradient(to right,{lo},#ffffff,{hi})"></span>'
        f'<span>{fmt(vmax)}</span><span style="margin-left:6px">blue pushes {esc(_pushed(exp))} '
        f"down, red pushes it up; hover a word for its value</span>{oov}</div>"
    )


def _pushed(exp: Explanation) -> str:
    """What the words push: the output space (``probability``), or ``P(9)`` for a named class."""
    return exp.output_space if exp.explained_class is None else output_of(exp, exp.explained_class)


def _prose(s: str) -> str:
    """Text between words as written; the reviews' ``<br />`` tags become line breaks."""
    for tag in BR_TAGS:
        s = s.replace(tag, "\n")
    return esc(s)


def _word_html(w: Word, vmax: float) -> str:
    bg, fg = _rgb(colour(w.value, vmax)), text_colour(w.value, vmax)
    tip = f"{w.text}: {fmt(w.value)}"
    extra = ""
    if w.unknown:
        tip += f" (not in the vocabulary; read as {OOV_TOKEN})"
        extra = "outline:1px dashed #333;"
    return (
        f'<span class="w{" oov" if w.unknown else ""}" data-pos="{w.positions[0]}" '
        f'data-positions="{_positions(w.positions)}" data-value="{_num(w.value)}" title="{esc(tip)}" '
        f'style="background:{bg};color:{fg};{extra}border-radius:3px;padding:1px 1px">{esc(w.text)}</span>'
    )


def highlight_html(exp: Explanation) -> str:
    """The review as written, each word's background coloured by its attribution.

    Diverging scale (blue negative, white 0, red positive) normalised by the largest
    visible |value|, a legend, the value on hover (``title``). Padding/start are hidden;
    out-of-vocabulary words show as written inside a dashed box; words cut off by
    ``maxlen`` are folded away in a ``<details>`` block. A word read as several positions
    is one element with their summed value (``data-pos`` its first position,
    ``data-positions`` all of them).
    """
    check(exp)
    vmax = scale(exp)
    view = passage(exp)
    text = "".join(_prose(r.text) if r.word is None else _word_html(r.word, vmax) for r in view.runs)
    cut = ""
    if view.n_unread:
        cut = (
            f'<details class="cut" style="color:#888;margin-bottom:6px"><summary style="cursor:'
            f'pointer;font-size:12px">{view.n_unread} earlier word(s) not read by the model (it reads '
            f'the last {len(view.words)})</summary><div class="unread" style="white-space:pre-wrap">'
            f"{_prose(view.unread)}</div></details>"
        )
    has_oov = any(w.unknown for w in view.words)
    return (
        f'<div class="seqshap-highlight" style="font-family:{esc(FONT)};font-size:15px;'
        f'line-height:1.9;color:#111">{cut}<div class="text" style="white-space:pre-wrap">'
        f"{text}</div>{_legend_html(vmax, exp, has_oov)}</div>"
    )


# ------------------------------------------------------------------------- top words
def top_words(exp: Explanation, k: int = 10) -> list[tuple[int, str, float]]:
    """``(first position, word as written, value)`` of the ``k`` visible words with the
    largest |value|."""
    return [(w.positions[0], w.text, w.value) for w in ranked_words(exp, k)]


def top_words_html(exp: Explanation, k: int = 10) -> str:
    """Table of the ``k`` words with the largest |attribution|, with bars."""
    check(exp)
    rows = ranked_words(exp, k)
    vmax = max((abs(w.value) for w in rows), default=0.0) or 1.0
    body = []
    for rank, w in enumerate(rows, 1):
        v = w.value
        col = RED_HEX if v > 0 else BLUE_HEX
        body.append(
            f'<tr data-pos="{w.positions[0]}" data-positions="{_positions(w.positions)}" '
            f'data-value="{_num(v)}"><td style="color:#888;text-align:right;'
            f'padding:1px 6px">{rank}</td><td class="word" style="padding:1px 8px">{esc(w.text)}</td>'
            f'<td class="value" style="text-align:right;font-variant-numeric:tabular-nums;'
            f'color:{col};padding:1px 8px">{fmt(v)}</td><td style="width:160px;padding:1px 6px">'
            f'<div style="height:10px;width:{100 * abs(v) / vmax:.1f}%;background:{col}"></div></td></tr>'
        )
    return (
        f'<table class="seqshap-top" style="border-collapse:collapse;font-family:{esc(FONT)};'
        f'font-size:13px;margin-top:8px"><thead><tr style="color:#555;text-align:left">'
        f'<th></th><th style="padding:1px 8px">word</th><th style="padding:1px 8px">value</th><th></th>'
        f"</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


# ----------------------------------------------------------------------- composition
def prediction_html(exp: Explanation) -> str:
    """One line: prediction, base value, sum of attributions, completeness error, label."""
    bits = [f'<span class="why">why <b>{esc(exp.explained_class)}</b></span>'] if why(exp) else []
    bits += [
        f"prediction <b>{esc(describe_prediction(exp))}</b>",
        f"base value {fmt_out(exp.base_value)}",
        f"sum of attributions {fmt(float(exp.values.sum()))}",
        f"completeness error {exp.completeness_error:.1e}",
    ]
    if exp.label is not None:
        name = exp.class_name(int(exp.label))
        ok = exp.predicted_label
        mark = "" if ok is None else (" ✓" if ok == int(exp.label) else " ✗")
        bits.append(f"true label <b>{esc(name)}</b>{mark}")
    bits.append(f"{esc(exp.model_name)} · {esc(exp.method)} · {esc(exp.output_space)}")
    return f'<div class="prediction" style="font-size:14px;color:#222;margin:4px 0 6px">{" · ".join(bits)}</div>'


def explanation_html(exp: Explanation) -> str:
    """Fragment: prediction line, force plot, highlighted text and top words (Jupyter, web, report)."""
    check(exp)
    return (
        f'<div class="seqshap-explanation" style="font-family:{esc(FONT)};max-width:980px">'
        f"{prediction_html(exp)}{force_plot_svg(exp)}{highlight_html(exp)}{top_words_html(exp)}</div>"
    )


PAGE_CSS = f"""
:root {{ color-scheme: light; }}
body {{ font-family: {FONT}; margin: 0; background: #f6f7f9; color: #1a1a1a; }}
main {{ max-width: 1040px; margin: 0 auto; padding: 24px 28px 60px; background: #fff; min-height: 100vh; }}
h1 {{ font-size: 26px; margin: 8px 0 4px; }} h2 {{ font-size: 20px; margin: 32px 0 8px;
  border-bottom: 1px solid #e3e3e3; padding-bottom: 4px; }} h3 {{ font-size: 16px; margin: 22px 0 4px; }}
table.data {{ border-collapse: collapse; font-size: 13px; }}
table.data th, table.data td {{ padding: 3px 10px; border-bottom: 1px solid #eee; text-align: left; }}
table.data td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.muted {{ color: #777; font-size: 13px; }} img {{ max-width: 100%; height: auto; }}
section.review {{ border-top: 1px solid #eee; margin-top: 18px; padding-top: 6px; }}
a {{ color: #0b62c4; }}
"""


def standalone_page(title: str, body_html: str, csp: str | None = DEFAULT_CSP) -> str:
    """A complete self-contained HTML document (inline CSS, no network) around ``body_html``.

    ``title`` is escaped; ``body_html`` is trusted markup (build it from the functions
    here). By default a Content-Security-Policy forbids scripts; pass ``csp=None`` for
    a page that needs its own JavaScript.
    """
    meta = f'<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">\n' if csp else ""
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n{meta}'
        f'<link rel="icon" href="data:,">\n'
        f"<title>{esc(title)}</title>\n<style>{PAGE_CSS}</style>\n</head>\n<body>\n<main>\n"
        f"{body_html}\n</main>\n</body>\n</html>\n"
    )


def explanation_page(exp: Explanation, title: str | None = None) -> str:
    """A standalone page for one explanation (what ``seqshap explain --html`` writes)."""
    title = title or f"seqshap explanation — {exp.model_name}"
    return standalone_page(title, f"<h1>{esc(title)}</h1>{explanation_html(exp)}")
