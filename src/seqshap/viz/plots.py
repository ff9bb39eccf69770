"""matplotlib pictures (PNG or SVG, chosen by the file suffix), written atomically.

Uses ``matplotlib.figure.Figure`` directly (Agg canvas), never ``pyplot``: no global
backend switch, no figure registry to leak, safe inside Jupyter and web servers.
Text from reviews is drawn with ``parse_math=False`` so a ``$`` stays a dollar sign.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Polygon, Rectangle

from .. import atomic
from ..attribution.explanation import Explanation
from .layout import (
    BLUE_HEX,
    RED_HEX,
    check,
    clean,
    describe_prediction,
    fmt,
    fmt_out,
    force_layout,
    output_of,
    ranked_words,
    why,
)

FORMATS = {".png": "png", ".svg": "svg"}
# svg.fonttype "none" keeps words as <text> in SVG files (searchable, selectable, testable).
RC: dict = {
    "svg.fonttype": "none",
    "font.family": "DejaVu Sans",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.hashsalt": "seqshap",
}


def picture_format(path: str | Path) -> str:
    fmt_ = FORMATS.get(Path(path).suffix.lower())
    if fmt_ is None:
        raise ValueError(f"{path}: unsupported picture format {Path(path).suffix or '(none)'!r}; use .png or .svg")
    return fmt_


def new_figure(w: float, h: float) -> Figure:
    fig = Figure(figsize=(w, h), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path, tight: bool = True) -> Path:
    path = Path(path)
    kind = picture_format(path)
    buf = io.BytesIO()
    # metadata Date=None keeps SVGs byte-stable between runs; tight=False skips the extra
    # draw pass "tight" needs (half the time) for figures laid out by hand.
    fig.savefig(
        buf,
        format=kind,
        bbox_inches="tight" if tight else None,
        facecolor="white",
        metadata={"Date": None} if kind == "svg" else None,
    )
    atomic.write_bytes(path, buf.getvalue())
    return path


FORCE_SIZE, FORCE_AXES = (12, 3.6), (0.03, 0.05, 0.94, 0.80)  # inches; the axis in figure fractions


def force_plot_png(exp: Explanation, path: str | Path, max_labels: int = 12) -> Path:
    """The force plot of :func:`seqshap.viz.html.force_plot_svg`, drawn with matplotlib from
    the same :func:`seqshap.viz.layout.force_layout` geometry. PNG or SVG by suffix."""
    check(exp)
    picture_format(path)
    lay = force_layout(exp, max_labels)  # label sizes fit this figure's 12 inches at 9 pt
    base, f = lay.base, lay.output
    with rc_context(RC):
        fig = new_figure(*FORCE_SIZE)
        ax = fig.add_axes(FORCE_AXES)
        ax.set_xlim(*lay.domain)
        ax.set_ylim(-3.4, 2.3)
        ax.set_yticks([])
        for side in ("left", "right", "bottom"):
            ax.spines[side].set_visible(False)
        ax.spines["top"].set_visible(True)
        ax.spines["top"].set_color("#bbbbbb")
        ax.spines["top"].set_position(("data", 1.25))
        ax.xaxis.tick_top()
        ax.set_xticks(lay.ticks, [f"{t:g}" for t in lay.ticks])
        ax.tick_params(axis="x", colors="#666666", labelsize=8, length=3)
        for s in lay.segments:  # the bar spans y 0..1, the chevrons' own units
            ax.add_patch(
                Polygon(
                    s.chevron,
                    closed=True,
                    facecolor=RED_HEX if s.value > 0 else BLUE_HEX,
                    edgecolor="white",
                    linewidth=0.8,
                )
            )
        ax.plot([base, base], [-0.1, 1.1], color="#555555", lw=1.2, ls=(0, (3, 2)))
        ax.text(base, -0.22, f"base value {fmt_out(base)}", ha="center", va="top", fontsize=8, color="#555555")
        ax.plot([f, f], [-0.1, 1.95], color="#111111", lw=2)
        fx = "f(x)" if exp.explained_class is None else output_of(exp, exp.explained_class)
        ax.text(
            f,
            2.0,
            clean(f"{fx} = {fmt_out(f)}"),
            ha="center",
            va="bottom",
            fontsize=11,
            fontweight="bold",
            color="#111111",
            parse_math=False,
        )
        for lab in lay.labels:
            s = lay.segments[lab.segment]
            y = -0.7 - lab.row * 0.95
            col = RED_HEX if s.value > 0 else BLUE_HEX
            ax.plot([lab.x, lab.x], [0, y + 0.05], color=col, lw=0.6, alpha=0.6)
            ax.text(lab.x, y, clean(s.word), ha="center", va="top", fontsize=9, color="#222222", parse_math=False)
            ax.text(lab.x, y - 0.38, fmt(s.value), ha="center", va="top", fontsize=8, color=col)
        fig.text(0.03, 0.97, "pushes higher", color=RED_HEX, fontsize=9, va="top")
        fig.text(0.13, 0.97, "pushes lower", color=BLUE_HEX, fontsize=9, va="top")
        fig.text(
            0.97,
            0.97,
            clean(
                (f"{why(exp)} · " if why(exp) else "")
                + f"{exp.model_name} · {exp.output_space} · prediction {describe_prediction(exp)}"
            ),
            ha="right",
            va="top",
            fontsize=9,
            color="#555555",
            parse_math=False,
        )
        return save_figure(fig, path, tight=False)


def waterfall(exp: Explanation, path: str | Path, k: int = 10) -> Path:
    """shap-style waterfall: from the base value (bottom) through the ``k`` largest words
    (the rest summed into one bar) up to f(x) (top). PNG or SVG by suffix."""
    check(exp)
    picture_format(path)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    top = ranked_words(exp, k)
    rest = float(exp.values.sum()) - sum(w.value for w in top)
    n_rest = len(exp.tokens) - sum(len(w.positions) for w in top)
    rows = [(f"{n_rest} other positions", rest)] if n_rest else []
    rows += [(clean(w.text), w.value) for w in reversed(top)]  # smallest of the top k at the bottom
    base = float(exp.base_value)
    with rc_context(RC):
        h = 0.42 * len(rows) + 1.6
        fig = new_figure(8, h)
        longest = max(len(name) for name, _ in rows)
        # margins by hand (no "tight" pass): room for the longest word on the left
        left = min(0.45, (0.25 + 0.075 * longest) / 8)
        ax = fig.add_axes((left, 0.75 / h, 0.96 - left, 1 - 1.2 / h))
        cum = base
        ends = [base]
        for i, (_, v) in enumerate(rows):
            col = RED_HEX if v > 0 else BLUE_HEX
            ax.add_patch(Rectangle((min(cum, cum + v), i - 0.32), abs(v), 0.64, facecolor=col, edgecolor="none"))
            ax.text(cum + v, i, f" {fmt(v)} ", ha="left" if v >= 0 else "right", va="center", fontsize=8, color=col)
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
        ax.set_xlabel(
            f"base value {fmt_out(base)}  →  f(x) = {fmt_out(exp.output_value)}  ({exp.output_space})", fontsize=9
        )
        ax.set_title(
            clean((f"{why(exp)}: " if why(exp) else "") + f"{exp.model_name}: prediction {describe_prediction(exp)}"),
            fontsize=10,
            parse_math=False,
        )
        ax.tick_params(labelsize=9)
        return save_figure(fig, path, tight=False)


def training_curves(metrics: dict[str, Any], path: str | Path) -> Path:
    """Loss and accuracy per epoch (train and validation) from ``metrics.json``, the
    selected epoch marked and the test accuracy noted. PNG or SVG by suffix."""
    picture_format(path)
    hist = metrics.get("history") if isinstance(metrics, dict) else None
    if not hist:
        raise ValueError("metrics have no training history (metrics.json 'history' is empty or missing)")
    ep = [h["epoch"] for h in hist]
    with rc_context(RC):
        fig = new_figure(10, 3.4)
        ax1, ax2 = fig.subplots(1, 2)
        from matplotlib.ticker import MaxNLocator

        for ax in (ax1, ax2):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        for ax, key, title in ((ax1, "loss", "loss"), (ax2, "accuracy", "accuracy")):
            for split, style in (("train", "-o"), ("val", "-s")):
                ys = [h.get(f"{split}_{key}") for h in hist]
                if any(y is not None for y in ys):
                    ax.plot(
                        ep,
                        [np.nan if y is None else y for y in ys],
                        style,
                        ms=4,
                        lw=1.5,
                        label="train" if split == "train" else "validation",
                    )
            if metrics.get("best_epoch") is not None:
                ax.axvline(
                    metrics["best_epoch"],
                    color="#999999",
                    ls=(0, (3, 2)),
                    lw=1,
                    label=f"selected epoch {metrics['best_epoch']}",
                )
            ax.set_xlabel("epoch")
            ax.set_title(title, fontsize=10)
            ax.grid(alpha=0.25)
        if metrics.get("test_accuracy") is not None:
            ax2.axhline(
                metrics["test_accuracy"], color="#2a9d3a", lw=1, label=f"test accuracy {metrics['test_accuracy']:.4f}"
            )
        ax1.legend(fontsize=8)
        ax2.legend(fontsize=8)
        fig.tight_layout()
        return save_figure(fig, path)
