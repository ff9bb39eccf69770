"""Pictures and files of a word-importance table: the report's HTML fragment, the bar plot,
and the folder of CSV/JSON/PNG/SVG that ``seqshap importance`` and the report write.

The numbers themselves (pooling, merging, the table) live in :mod:`seqshap.importance`.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib import rc_context

from ..importance import ImportanceTable, WordStat
from .html import esc
from .layout import BLUE_HEX, RED_HEX, clean, fmt, quantity
from .plots import RC, new_figure, picture_format, save_figure


def importance_html(table: ImportanceTable, k: int = 20) -> str:
    """Two side-by-side tables (top positive / top negative words) as an HTML fragment."""

    def block(title: str, rows: list[WordStat], col: str) -> str:
        vmax = max((abs(r.mean) for r in rows), default=0.0) or 1.0
        body = "".join(
            f'<tr data-word="{esc(r.word)}" data-mean="{r.mean!r}"><td class="word">{esc(r.word)}</td>'
            f'<td class="num">{fmt(r.mean)}</td><td class="num">{fmt(r.mean_abs).lstrip("+")}</td>'
            f'<td class="num">{r.count}</td><td class="num">{r.n_reviews}</td>'
            f'<td style="width:110px"><div style="height:9px;background:{col};width:'
            f'{100 * abs(r.mean) / vmax:.1f}%"></div></td></tr>'
            for r in rows
        )
        return (
            f'<div style="flex:1;min-width:420px"><h3>{title}</h3><table class="data importance">'
            f"<thead><tr><th>word</th><th>mean</th><th>mean |·|</th><th>count</th><th>reviews</th>"
            f"<th></th></tr></thead><tbody>{body or '<tr><td colspan=6>none</td></tr>'}</tbody>"
            f"</table></div>"
        )

    up, down, target = "Top positive words", "Top negative words", ""
    if table.target is not None:  # name the class: "words pushing P(9) up"
        pushed = esc(quantity(table.output_space, table.target))
        up, down = f"Words pushing {pushed} up", f"Words pushing {pushed} down"
        target = f' data-target="{esc(table.target)}"'
    return (
        f'<div class="seqshap-importance"{target} style="display:flex;gap:24px;flex-wrap:wrap">'
        f"{block(up, table.top_positive(k), RED_HEX)}"
        f"{block(down, table.top_negative(k), BLUE_HEX)}</div>"
    )


DISAGREE_HEX = "#b35900"  # a word the model and people disagree on in sign: its label, and its bar's hatching


def importance_plot(table: ImportanceTable, path: str | Path, k: int = 20) -> Path:
    """Horizontal bars of the ``k`` most positive and ``k`` most negative words by mean
    signed attribution (occurrence counts beside the bars). PNG or SVG by suffix.

    A table with human ratings (:meth:`ImportanceTable.with_ratings`) shows each rated word's rating
    in brackets beside it, and marks the words where the model and people disagree in sign
    (:meth:`ImportanceTable.disagrees`): hatched bar, label in orange and bold."""
    picture_format(path)
    pos, neg = table.top_positive(k), table.top_negative(k)
    rows = [*list(reversed(neg)), None, *list(reversed(pos))] if pos and neg else list(reversed(neg or pos))
    if not any(r is not None for r in rows):
        raise ValueError("no words to plot (too few explanations for the minimum count?)")
    with rc_context(RC):
        rated = table.ratings is not None
        fig = new_figure(8, 0.26 * len(rows) + 1.5 + (0.3 if rated else 0))
        ax = fig.add_subplot()
        labels = []
        odd: list[int] = []  # rows where model and people disagree in sign
        for i, r in enumerate(rows):
            if r is None:
                labels.append("")
                continue
            col = RED_HEX if r.mean > 0 else BLUE_HEX
            if rated and table.disagrees(r):
                odd.append(i)
                ax.barh(i, r.mean, color=col, height=0.7, hatch="////", edgecolor=DISAGREE_HEX, linewidth=0)
            else:
                ax.barh(i, r.mean, color=col, height=0.7)
            ax.text(
                r.mean,
                i,
                f" n={r.count} ",
                ha="left" if r.mean >= 0 else "right",
                va="center",
                fontsize=7,
                color="#666666",
            )
            rating = table.rating(r.word) if rated else None
            labels.append(clean(r.word) + ("" if rating is None else f" [{rating:+.1f}]"))
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels(labels)
        for i, lab in enumerate(ax.get_yticklabels()):
            lab.set_parse_math(False)
            if i in odd:
                lab.set_color(DISAGREE_HEX)
                lab.set_fontweight("bold")
        ax.axvline(0, color="#444444", lw=0.8)
        lim = max(abs(r.mean) for r in rows if r is not None) * 1.25
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-0.7, len(rows) - 0.3)
        pushed = table.output_space if table.target is None else quantity(table.output_space, table.target)
        ax.set_xlabel(clean(f"mean attribution per occurrence ({pushed})"), fontsize=9, parse_math=False)
        ax.set_title(
            clean(
                ("word importance" if table.target is None else f"why {table.target}: word importance")
                + f" over {table.n_explanations} reviews (words seen at least {table.min_count} times)"
            ),
            fontsize=10,
            parse_math=False,
        )
        ax.tick_params(labelsize=8)
        if rated:
            marks = (
                "orange, hatched: the model and people disagree in sign"
                if table.rating_sign is not None
                else "no sign compared (this class is neither end of the ratings)"
            )
            fig.text(
                0.01,
                0.005,
                clean(f"[ ]: human rating, -4 to +4 ({_short_source(table.ratings_source)}); {marks}"),
                fontsize=7,
                color="#444444",
                ha="left",
                va="bottom",
                parse_math=False,
            )
        return save_figure(fig, path)


def _short_source(source: str) -> str:
    """The ratings' source, short enough for a plot's footnote."""
    if "VADER" in source:
        return "VADER lexicon, Hutto & Gilbert 2014"
    return source if len(source) <= 60 else source[:57] + "..."


def write_outputs(
    table: ImportanceTable, out_dir: str | Path, k: int = 20, stem: str = "word_importance"
) -> dict[str, Path]:
    """Write ``{stem}.csv``, ``{stem}.json``, ``{stem}.png`` and ``{stem}.svg`` into ``out_dir``
    (the plots only when some word has a non-zero mean)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": table.write_csv(out / f"{stem}.csv"), "json": table.write_json(out / f"{stem}.json", k)}
    if table.top_positive(1) or table.top_negative(1):
        paths["png"] = importance_plot(table, out / f"{stem}.png", k)
        paths["svg"] = importance_plot(table, out / f"{stem}.svg", k)
    return paths
