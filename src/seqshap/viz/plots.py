"""matplotlib pictures (PNG or SVG, chosen by the file suffix), written atomically.

Uses ``matplotlib.figure.Figure`` directly (Agg canvas), never ``pyplot``: no global
backend switch, no figure registry to leak, safe inside Jupyter and web servers.
Text from reviews is drawn with ``parse_math=False`` so a ``$`` stays a dollar sign.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Polygon, Rectangle

from ..attribution.explanation import Explanation
from .. import atomic
from .layout import BLUE_HEX, RED_HEX, clean, describe_prediction, fmt, fmt_out, force_layout
from .html import _check, top_words

if TYPE_CHECKING:
    from ..importance import ImportanceTable

FORMATS = {".png": "png", ".svg": "svg"}
# svg.fonttype "none" keeps words as <text> in SVG files (searchable, selectable, testable).
RC = {"svg.fonttype": "none", "font.family": "DejaVu Sans", "axes.spines.top": False,
      "axes.spines.right": False, "svg.hashsalt": "seqshap"}


def _format(path: Path) -> str:
    fmt_ = FORMATS.get(Path(path).suffix.lower())
    if fmt_ is None:
        raise ValueError(f"{path}: unsupported picture format {Path(path).suffix or '(none)'!r}; "
                         f"use .png or .svg")
    return fmt_


def _new(w: float, h: float) -> Figure:
    fig = Figure(figsize=(w, h), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path, tight: bool = True) -> Path:
    path = Path(path)
    kind = _format(path)
    buf = io.BytesIO()
    # metadata Date=None keeps SVGs byte-stable between runs; tight=False skips the extra
    # draw pass "tight" needs (half the time) for figures laid out by hand.
    fig.savefig(buf, format=kind, bbox_inches="tight" if tight else None, facecolor="white",
                metadata={"Date": None} if kind == "svg" else None)
    atomic.write_bytes(path, buf.getvalue())
    return path


def _t(s: str) -> str:
    return clean(str(s))


def force_plot_png(exp: Explanation, path: str | Path, max_labels: int = 12) -> Path:
    """The force plot of :func:`seqshap.viz.html.force_plot_svg`, drawn with matplotlib."""
    _check(exp)
    _format(path)
    segs, lo, hi = force_layout(exp)
    base, f = float(exp.base_value), float(exp.output_value)
    dlo, dhi = min(lo, base, f), max(hi, base, f)
    pad = (dhi - dlo) * 0.08 or 0.05
    dlo, dhi = dlo - pad, dhi + pad
    with rc_context(RC):
        fig = _new(12, 3.6)
        ax = fig.add_axes((0.03, 0.05, 0.94, 0.80))
        ax.set_xlim(dlo, dhi)
        ax.set_ylim(-3.4, 2.3)
        ax.set_yticks([])
        for side in ("left", "right", "bottom"):
            ax.spines[side].set_visible(False)
        ax.spines["top"].set_visible(True)
        ax.spines["top"].set_color("#bbbbbb")
        ax.spines["top"].set_position(("data", 1.25))
        ax.xaxis.tick_top()
        ax.tick_params(axis="x", colors="#666666", labelsize=8, length=3)
        span = dhi - dlo
        chev = span * 0.006
        for s in segs:
            a, b = s.x0, s.x1
            c = min(chev, (b - a) / 2)
            if s.value > 0:
                pts = [(a, 1), (b - c, 1), (b, 0.5), (b - c, 0), (a, 0), (a + c, 0.5)]
            else:
                pts = [(b, 1), (a + c, 1), (a, 0.5), (a + c, 0), (b, 0), (b - c, 0.5)]
            ax.add_patch(Polygon(pts, closed=True, facecolor=RED_HEX if s.value > 0 else BLUE_HEX,
                                 edgecolor="white", linewidth=0.8))
        ax.plot([base, base], [-0.1, 1.1], color="#555555", lw=1.2, ls=(0, (3, 2)))
        ax.text(base, -0.22, f"base value {fmt_out(base)}", ha="center", va="top", fontsize=8,
                color="#555555")
        ax.plot([f, f], [-0.1, 1.95], color="#111111", lw=2)
        ax.text(f, 2.0, f"f(x) = {fmt_out(f)}", ha="center", va="bottom", fontsize=11,
                fontweight="bold", color="#111111")
        # labels: biggest first, first row without overlap (width estimated from characters)
        char = span * 6.0 / (12 * 72 * 0.94)  # ~6 pt per character at 8-9 pt
        rows: list[list[tuple[float, float]]] = [[], [], []]
        for s in sorted(segs, key=lambda s: -abs(s.value))[:max(0, max_labels)]:
            cx = (s.x0 + s.x1) / 2
            w = (max(len(s.word), len(fmt(s.value))) + 1) * char
            for r, row in enumerate(rows):
                if all(cx + w / 2 <= a or cx - w / 2 >= b for a, b in row):
                    row.append((cx - w / 2, cx + w / 2))
                    y = -0.7 - r * 0.95
                    col = RED_HEX if s.value > 0 else BLUE_HEX
                    ax.plot([cx, cx], [0, y + 0.05], color=col, lw=0.6, alpha=0.6)
                    ax.text(cx, y, _t(s.word), ha="center", va="top", fontsize=9, color="#222222",
                            parse_math=False)
                    ax.text(cx, y - 0.38, fmt(s.value), ha="center", va="top", fontsize=8, color=col)
                    break
        fig.text(0.03, 0.97, "pushes higher", color=RED_HEX, fontsize=9, va="top")
        fig.text(0.13, 0.97, "pushes lower", color=BLUE_HEX, fontsize=9, va="top")
        fig.text(0.97, 0.97, _t(f"{exp.model_name} · {exp.output_space} · prediction "
                                f"{describe_prediction(exp)}"), ha="right", va="top", fontsize=9,
                 color="#555555", parse_math=False)
        return _save(fig, path, tight=False)


def waterfall(exp: Explanation, path: str | Path, k: int = 10) -> Path:
    """shap-style waterfall: from the base value (bottom) through the ``k`` largest words
    (the rest summed into one bar) up to f(x) (top). PNG or SVG by suffix."""
    _check(exp)
    _format(path)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    top = top_words(exp, k)
    rest = float(exp.values.sum()) - sum(v for _, _, v in top)
    n_rest = len(exp.tokens) - len(top)
    rows = [(f"{n_rest} other positions", rest)] if n_rest else []
    rows += [(_t(w), v) for _, w, v in reversed(top)]  # smallest of the top k at the bottom
    base = float(exp.base_value)
    with rc_context(RC):
        h = 0.42 * len(rows) + 1.6
        fig = _new(8, h)
        longest = max(len(name) for name, _ in rows)
        # margins by hand (no "tight" pass): room for the longest word on the left
        left = min(0.45, (0.25 + 0.075 * longest) / 8)
        ax = fig.add_axes((left, 0.75 / h, 0.96 - left, 1 - 1.2 / h))
        cum = base
        ends = [base]
        for i, (_, v) in enumerate(rows):
            col = RED_HEX if v > 0 else BLUE_HEX
            ax.add_patch(Rectangle((min(cum, cum + v), i - 0.32), abs(v), 0.64, facecolor=col,
                                   edgecolor="none"))
            ax.text(cum + v, i, f" {fmt(v)} ",
                    ha="left" if v >= 0 else "right", va="center", fontsize=8, color=col)
            if i + 1 < len(rows):
                ax.plot([cum + v, cum + v], [i + 0.32, i + 0.68], color="#999999", lw=0.6)
            cum += v
            ends.append(cum)
        lo, hi = min(ends), max(ends)
        pad = (hi - lo) * 0.18 or 0.05
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([name for name, _ in rows])
        for lab in ax.get_yticklabels():
            lab.set_parse_math(False)
        ax.axvline(base, color="#777777", lw=0.8, ls=(0, (3, 2)))
        ax.axvline(float(exp.output_value), color="#111111", lw=1.0)
        ax.set_xlabel(f"base value {fmt_out(base)}  →  f(x) = {fmt_out(exp.output_value)}  "
                      f"({exp.output_space})", fontsize=9)
        ax.set_title(_t(f"{exp.model_name}: prediction {describe_prediction(exp)}"), fontsize=10,
                     parse_math=False)
        ax.tick_params(labelsize=9)
        return _save(fig, path, tight=False)


def importance_plot(table: "ImportanceTable", path: str | Path, k: int = 20) -> Path:
    """Horizontal bars of the ``k`` most positive and ``k`` most negative words by mean
    signed attribution (occurrence counts beside the bars). PNG or SVG by suffix."""
    _format(path)
    pos, neg = table.top_positive(k), table.top_negative(k)
    rows = list(reversed(neg)) + [None] + list(reversed(pos)) if pos and neg else list(reversed(neg or pos))
    if not any(r is not None for r in rows):
        raise ValueError("no words to plot (too few explanations for the minimum count?)")
    with rc_context(RC):
        fig = _new(8, 0.26 * len(rows) + 1.5)
        ax = fig.add_subplot()
        labels = []
        for i, r in enumerate(rows):
            if r is None:
                labels.append("")
                continue
            col = RED_HEX if r.mean > 0 else BLUE_HEX
            ax.barh(i, r.mean, color=col, height=0.7)
            ax.text(r.mean, i, f" n={r.count} ", ha="left" if r.mean >= 0 else "right", va="center",
                    fontsize=7, color="#666666")
            labels.append(_t(r.word))
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels(labels)
        for lab in ax.get_yticklabels():
            lab.set_parse_math(False)
        ax.axvline(0, color="#444444", lw=0.8)
        lim = max(abs(r.mean) for r in rows if r is not None) * 1.25
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.set_xlabel(f"mean attribution per occurrence ({table.output_space})", fontsize=9)
        ax.set_title(f"word importance over {table.n_explanations} reviews "
                     f"(words seen at least {table.min_count} times)", fontsize=10)
        ax.tick_params(labelsize=8)
        return _save(fig, path)


def training_curves(metrics: dict[str, Any], path: str | Path) -> Path:
    """Loss and accuracy per epoch (train and validation) from ``metrics.json``, the
    selected epoch marked and the test accuracy noted. PNG or SVG by suffix."""
    _format(path)
    hist = metrics.get("history") if isinstance(metrics, dict) else None
    if not hist:
        raise ValueError("metrics have no training history (metrics.json 'history' is empty or missing)")
    ep = [h["epoch"] for h in hist]
    with rc_context(RC):
        fig = _new(10, 3.4)
        ax1, ax2 = fig.subplots(1, 2)
        from matplotlib.ticker import MaxNLocator
        for ax in (ax1, ax2):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        for ax, key, title in ((ax1, "loss", "loss"), (ax2, "accuracy", "accuracy")):
            for split, style in (("train", "-o"), ("val", "-s")):
                ys = [h.get(f"{split}_{key}") for h in hist]
                if any(y is not None for y in ys):
                    ax.plot(ep, [np.nan if y is None else y for y in ys], style, ms=4, lw=1.5,
                            label="train" if split == "train" else "validation")
            if metrics.get("best_epoch") is not None:
                ax.axvline(metrics["best_epoch"], color="#999999", ls=(0, (3, 2)), lw=1,
                           label=f"selected epoch {metrics['best_epoch']}")
            ax.set_xlabel("epoch")
            ax.set_title(title, fontsize=10)
            ax.grid(alpha=0.25)
        if metrics.get("test_accuracy") is not None:
            ax2.axhline(metrics["test_accuracy"], color="#2a9d3a", lw=1,
                        label=f"test accuracy {metrics['test_accuracy']:.4f}")
        ax1.legend(fontsize=8)
        ax2.legend(fontsize=8)
        fig.tight_layout()
        return _save(fig, path)
