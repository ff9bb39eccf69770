"""Write a :class:`FaithfulnessResult` as CSV, Markdown and a PNG plot (atomic writes)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from .. import atomic
from .evaluate import FaithfulnessResult, MethodScores

# (attribute, header, higher is better)
COLUMNS = (
    ("aopc", "deletion AOPC ↑", True),
    ("comp", "comprehensiveness ↑", True),
    ("suff", "sufficiency ↓", False),
    ("pearson", "Pearson ↑", True),
    ("kendall", "Kendall τ ↑", True),
    ("top3", "top-3 overlap ↑", True),
    ("planted_top5", "planted top-5 ↑", True),
    ("seconds_per_review", "s / review ↓", False),
)
# plausibility (agreement with human word ratings): only when the result has it (meta["plausibility"])
PLAUSIBILITY_COLUMNS = (
    ("sign_agreement", "sign agreement ↑", True),
    ("spearman", "Spearman ρ ↑", True),
    ("rated_topk", "rated top-k ↑", True),
)
REFERENCE = "exact-shapley"  # agreement with itself is 1 by definition: never "best" there
AGREEMENT = ("pearson", "kendall", "top3")


def _pct(b: float) -> str:
    return f"{b:g}"


def csv_rows(result: FaithfulnessResult) -> list[dict]:
    """One flat dict per method (per-bin values as ``deletion@5`` etc.)."""
    out = []
    for r in result.rows:
        d = {
            "model": result.model,
            "method": r.method,
            "n": r.n,
            "deletion_aopc": r.aopc,
            "comprehensiveness": r.comp,
            "sufficiency": r.suff,
        }
        for name, vals in (
            ("deletion", r.deletion),
            ("comprehensiveness", r.comprehensiveness),
            ("sufficiency", r.sufficiency),
        ):
            d.update({f"{name}@{_pct(b)}": v for b, v in zip(r.bins, vals, strict=True)})
        d.update(
            {
                "pearson": r.pearson,
                "kendall": r.kendall,
                "top3": r.top3,
                "n_short": r.n_short,
                "planted_top5": r.planted_top5,
                "n_planted": r.n_planted,
                "seconds_per_review": r.seconds_per_review,
                "completeness_error": r.completeness_error,
            }
        )
        if "plausibility" in result.meta:
            d.update(
                {
                    "sign_agreement": r.sign_agreement,
                    "n_rated": r.n_rated,
                    "spearman": r.spearman,
                    "n_rank_words": r.n_rank_words,
                    "rated_topk": r.rated_topk,
                }
            )
        d["note"] = r.note
        out.append(d)
    return out


def to_csv(result: FaithfulnessResult) -> str:
    rows = csv_rows(result)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


def _best(result: FaithfulnessResult, attr: str, higher: bool) -> set[str]:
    """Methods with the best finite value of ``attr`` (the random floor and the reference aside)."""
    cands = [r for r in result.rows if r.method != "random" and not (attr in AGREEMENT and r.method == REFERENCE)]
    # compare at the printed precision, so two cells that read the same are both bold
    vals = [(float(_fmt(attr, getattr(r, attr))), r.method) for r in cands if math.isfinite(getattr(r, attr))]
    if not vals:
        return set()
    target = max(v for v, _ in vals) if higher else min(v for v, _ in vals)
    return {m for v, m in vals if math.isclose(v, target, rel_tol=1e-9, abs_tol=1e-12)}


def _fmt(attr: str, v: float) -> str:
    if not math.isfinite(v):
        return "n/a"
    if attr == "seconds_per_review":
        return f"{v:.2g}" if v < 0.01 else f"{v:.3f}"
    return f"{v:.3f}"


def paired_difference(result: FaithfulnessResult, a: str, b: str, attr: str) -> tuple[float, float, int] | None:
    """Mean of ``a - b`` over the reviews both were scored on, its standard error and the count."""
    pa, pb = result.per_review.get(a, {}).get(attr), result.per_review.get(b, {}).get(attr)
    if pa is None or pb is None or len(pa) != len(pb):
        return None
    d = np.asarray(pa, dtype=np.float64) - np.asarray(pb, dtype=np.float64)
    d = d[np.isfinite(d)]
    if len(d) < 2:
        return None
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d))), len(d)


def _pair_text(result: FaithfulnessResult, a: str, b: str, attr: str) -> str:
    pd = paired_difference(result, a, b, attr)
    if pd is None:
        return ""
    se = f"{pd[1]:.1g}" if 0 < pd[1] < 0.001 else f"{pd[1]:.3f}"  # never print a real SE as 0.000
    return f", difference {pd[0]:+.3f} ± {se} SE over {pd[2]} paired"


def not_best_sentence(result: FaithfulnessResult, ours: str = "deepshap", columns=COLUMNS) -> str:
    """Plain statement of where ``ours`` is and is not the best (computed from the results).

    Differences are ``winner - ours`` (or ``ours - runner-up``) averaged over the same
    reviews, with the standard error of that paired mean when per-review values exist.
    ``columns``: the table's (:data:`COLUMNS`, with the per-bin detail; or :data:`PLAUSIBILITY_COLUMNS`).
    """
    if ours not in {r.method for r in result.rows}:
        return ""
    mine = result.row(ours)
    lost, won = [], []
    for attr, header, higher in columns:
        name = header.rstrip(" ↑↓")
        best = _best(result, attr, higher)
        if not best or not math.isfinite(getattr(mine, attr)):
            continue
        if ours not in best:
            w = sorted(best)[0]
            lost.append(
                f"{name} (best: {', '.join(sorted(best))} {_fmt(attr, getattr(result.row(w), attr))} vs "
                f"{ours} {_fmt(attr, getattr(mine, attr))}{_pair_text(result, w, ours, attr)})"
            )
            continue
        tied = sorted(best - {ours})
        if tied:
            won.append(
                f"{name} (tied with {', '.join(tied)} at {_fmt(attr, getattr(mine, attr))}"
                f"{_pair_text(result, ours, tied[0], attr)})"
            )
            continue
        others = [
            r
            for r in result.rows
            if r.method not in (ours, "random", REFERENCE if attr in AGREEMENT else "")
            and math.isfinite(getattr(r, attr))
        ]
        if others:
            nxt = (max if higher else min)(others, key=lambda r: getattr(r, attr))
            won.append(
                f"{name} (runner-up {nxt.method} {_fmt(attr, getattr(nxt, attr))}"
                f"{_pair_text(result, ours, nxt.method, attr)})"
            )
    if columns is not COLUMNS and not lost and not won:
        return ""
    out = [
        f"{ours} is not the best on " + "; ".join(lost) + "."
        if lost
        else f"{ours} is the best (or tied) on every column."
    ]
    if won and (lost or columns is not COLUMNS):
        out.append("It is the best on " + "; ".join(won) + ".")
    if columns is not COLUMNS:
        return " ".join(out)
    beaten = []
    for attr, higher in (("deletion", True), ("comprehensiveness", True), ("sufficiency", False)):
        for b, v in enumerate(getattr(mine, attr)):
            rivals = [
                (getattr(r, attr)[b], r.method)
                for r in result.rows
                if r.method not in (ours, "random") and len(getattr(r, attr)) > b and math.isfinite(getattr(r, attr)[b])
            ]
            better = [(x, m) for x, m in rivals if round(x, 3) != round(v, 3) and ((x > v) if higher else (x < v))]
            if better:
                x, m = (max if higher else min)(better)
                beaten.append(f"{attr}@{_pct(result.bins[b])}% ({m} {x:.3f} vs {v:.3f})")
    if beaten:
        out.append("Per bin it is beaten at " + ", ".join(beaten) + ".")
    return " ".join(out)


def to_markdown(result: FaithfulnessResult, title: str | None = None) -> str:
    """Table (best per column in bold) + what was measured, as Markdown."""
    bins = ", ".join(f"{_pct(b)}%" for b in result.bins)
    m = result.meta
    lines = [
        f"### {title or f'Faithfulness on {result.model}'}",
        "",
        f"{result.n} reviews; deletion / comprehensiveness / sufficiency averaged over the top {bins} of words (AOPC).",
        "",
    ]
    lines.append("| method | " + " | ".join(h for _, h, _ in COLUMNS) + " |")
    lines.append("|---|" + "---:|" * len(COLUMNS))
    best = {attr: _best(result, attr, higher) for attr, _, higher in COLUMNS}
    for r in result.rows:
        cells = []
        for attr, _, _ in COLUMNS:
            s = _fmt(attr, getattr(r, attr))
            if attr in AGREEMENT and r.method == REFERENCE and s != "n/a":
                s += " (ref)"
            cells.append(f"**{s}**" if r.method in best[attr] else s)
        lines.append(f"| {r.method} | " + " | ".join(cells) + " |")
    lines.append("")
    if m.get("n_short"):
        lines.append(
            f"Agreement: mean over {m['n_short']} short texts (first {m.get('short_words', '?')} words of "
            f"test reviews, at most {m.get('short_words_max')} words) with exact Shapley values of the "
            f'game "absent words are padding" ({m["reference_seconds_per_text"]:.2f} s per text); '
            "top-3 by |value|."
        )
    if m.get("n_planted"):
        lines.append(
            f"Planted: one sentiment word ({', '.join(m.get('planted_words', [])) or 'given ids'}) "
            f"inserted at a random place in each of {m['n_planted']} reviews the model is unsure about; "
            f"hit = among the top {m.get('top_k', 5)} |values| (mean |Δp| from planting: "
            f"{m['planted_mean_abs_shift']:.3f})."
        )
    lines.append(
        "Bold: best per column, not counting `random` (and not `exact-shapley` on agreement, "
        "its own reference). Cost is attribution time only, on the machine in the notes."
    )
    notes = [f"`{r.method}`: {r.note}" for r in result.rows if r.note]
    if notes:
        lines.append("Notes: " + "; ".join(notes) + ".")
    sentence = not_best_sentence(result)
    if sentence:
        lines += ["", f"**Where DeepSHAP stands:** {sentence}"]
    if "plausibility" in result.meta:
        lines += ["", *plausibility_markdown(result)]
    return "\n".join(lines) + "\n"


def plausibility_markdown(result: FaithfulnessResult) -> list[str]:
    """The plausibility table (same methods, same reviews) and what its columns mean, as lines."""
    p = result.meta["plausibility"]
    k = p.get("k", 5)
    columns = tuple((attr, h.replace("top-k", f"top-{k}"), higher) for attr, h, higher in PLAUSIBILITY_COLUMNS)
    headers = [h for _, h, _ in columns]
    lines = [
        f"#### Plausibility: agreement with human word ratings, toward {p['direction']}",
        "",
        "| method | " + " | ".join(headers) + " | rated occurrences | rated words |",
        "|---|" + "---:|" * (len(PLAUSIBILITY_COLUMNS) + 2),
    ]
    best = {attr: _best(result, attr, higher) for attr, _, higher in PLAUSIBILITY_COLUMNS}
    for r in result.rows:
        cells = []
        for attr, _, _ in PLAUSIBILITY_COLUMNS:
            s = _fmt(attr, getattr(r, attr))
            cells.append(f"**{s}**" if r.method in best[attr] else s)
        lines.append(f"| {r.method} | " + " | ".join(cells) + f" | {r.n_rated} | {r.n_rank_words} |")
    chance = p.get("chance_topk")
    chance_text = f"; words picked at random score {chance:.3f}" if chance is not None and math.isfinite(chance) else ""
    lines += [
        "",
        f"Ratings: {p['source']}; {p['lexicon_words']} rated words, matched case-insensitively to each "
        "word of the explanation (subword pieces summed into their word, as the global word view pools them). "
        f"Strongly rated: |rating| ≥ {p['strong']:g}. "
        f"**sign agreement**: the share of the occurrences of strongly rated words whose attribution toward "
        f"{p['direction']} has the rating's sign (0 counts as no; guessing scores about 0.5). "
        f"**Spearman ρ**: rank correlation between each rated word's mean attribution over these "
        f"{result.n} reviews and its rating, over the rated words seen at least {p['min_count']} times. "
        f"**rated top-{k}**: the share of each explanation's {k} words with the largest |value| that are "
        f"strongly rated, averaged over the reviews{chance_text}. "
        "Plausibility measures agreement with people, not with the model: a faithful explanation of a model "
        "that learned something people would not expect should score lower here.",
    ]
    sentence = not_best_sentence(result, columns=columns)
    if sentence:
        lines += ["", f"**Where DeepSHAP stands on plausibility:** {sentence}"]
    return lines


def plot_png(result: FaithfulnessResult) -> bytes:
    """Deletion, comprehensiveness and sufficiency curves per method, and cost."""
    # A Figure on its own Agg canvas, never pyplot: no global backend switch, no figure registry.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(17, 4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 4)
    for ax, attr, label in (
        (axes[0], "deletion", "drop in p(predicted class)"),
        (axes[1], "comprehensiveness", "drop in p(predicted class)"),
        (axes[2], "sufficiency", "drop when keeping only top words"),
    ):
        for r in result.rows:
            ys = getattr(r, attr)
            if any(math.isfinite(y) for y in ys):
                ax.plot(r.bins, ys, marker="o", label=r.method, linestyle="--" if r.method == "random" else "-")
        ax.set_xscale("log")
        ax.set_xticks(list(result.bins), [f"{_pct(b)}%" for b in result.bins])
        ax.set_title(f"{attr} ({'lower' if attr == 'sufficiency' else 'higher'} is better)")
        ax.set_xlabel("top words (share of the review)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    timed = [r for r in result.rows if math.isfinite(r.seconds_per_review) and r.seconds_per_review > 0]
    axes[3].barh([r.method for r in timed], [r.seconds_per_review for r in timed], color="tab:gray")
    axes[3].set_xscale("log")
    axes[3].set_title("cost (seconds per review)")
    fig.suptitle(f"Faithfulness: {result.model}, {result.n} reviews")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def write_outputs(result: FaithfulnessResult, out: str | Path, title: str | None = None) -> dict[str, Path]:
    """``faithfulness.{csv,md,json,png}`` in ``out``; returns the paths by kind."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "csv": out / "faithfulness.csv",
        "md": out / "faithfulness.md",
        "json": out / "faithfulness.json",
        "png": out / "faithfulness.png",
    }
    atomic.write_text(paths["csv"], to_csv(result))
    atomic.write_text(paths["md"], to_markdown(result, title))
    atomic.write_json(paths["json"], _jsonable(result.to_dict()))
    atomic.write_bytes(paths["png"], plot_png(result))
    return paths


def load_result(path: str | Path) -> FaithfulnessResult:
    """Read back ``faithfulness.json`` (to re-render the table without recomputing)."""
    import json

    d = json.loads(Path(path).read_text(encoding="utf-8"))
    nan = float("nan")
    per_bin = ("deletion", "comprehensiveness", "sufficiency")
    fields: list[dict[str, Any]] = [
        {k: [nan if x is None else x for x in v] if k in per_bin else (nan if v is None else v) for k, v in r.items()}
        for r in d["rows"]
    ]
    rows = [MethodScores(**f) for f in fields]
    for r in rows:
        r.bins = tuple(r.bins)
    per_review = {
        m: {k: [nan if x is None else x for x in v] for k, v in d2.items()} for m, d2 in d.get("per_review", {}).items()
    }
    return FaithfulnessResult(
        model=d["model"], n=d["n"], bins=tuple(d["bins"]), rows=rows, meta=d["meta"], per_review=per_review
    )


def _jsonable(obj):
    """NaN -> None so the JSON is strict."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


__all__ = [
    "COLUMNS",
    "PLAUSIBILITY_COLUMNS",
    "MethodScores",
    "csv_rows",
    "load_result",
    "not_best_sentence",
    "plausibility_markdown",
    "plot_png",
    "to_csv",
    "to_markdown",
    "write_outputs",
]
