"""``seqshap report``: one self-contained HTML page about a model and its explanations.

``out_dir/index.html`` embeds the force plots as inline SVG and links the PNGs beside it
with relative paths, so the folder works offline, copied anywhere. Every picture in the
page is also its own file in ``out_dir``. ``index.html`` is written last: when it exists,
the report is complete.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import numpy as np

from . import __version__, atomic
from .attribution.explanation import Explanation
from .importance import WordImportance, explain_batches, importance_over
from .store import SeqshapModel, load
from .viz.html import (
    esc,
    explanation_page,
    force_plot_svg,
    highlight_html,
    prediction_html,
    standalone_page,
    top_words_html,
)
from .viz.importance import importance_html, write_outputs
from .viz.plots import force_plot_png, training_curves, waterfall


def _model_table(model: SeqshapModel) -> str:
    cfg = model.config
    n_params = sum(p.numel() for p in model.net.parameters())
    m = model.metrics or {}
    rows = [
        ("name", model.name),
        ("architecture", cfg.get("arch")),
        ("directory", model.path),
        ("words kept per review (maxlen)", model.maxlen),
        ("vocabulary size (num_words)", model.vocab.num_words),
        ("layer sizes", ", ".join(f"{k}={v}" for k, v in sorted((cfg.get("model") or {}).items())) or "defaults"),
        ("parameters", f"{n_params:,}"),
        ("epochs run", len(m.get("history") or []) or "—"),
        ("selected epoch", m.get("best_epoch", "—")),
        ("seconds per epoch", f"{m['seconds_per_epoch']:.1f}" if m.get("seconds_per_epoch") else "—"),
    ]
    return _kv_table(rows)


def _kv_table(rows) -> str:
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    return f'<table class="data">{body}</table>'


def _history_table(metrics: dict) -> str:
    hist = metrics.get("history") or []
    if not hist:
        return ""
    cols = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds"]
    head = "".join(f"<th>{c.replace('_', ' ')}</th>" for c in cols)
    body = ""
    for h in hist:
        best = ' style="font-weight:bold"' if h.get("epoch") == metrics.get("best_epoch") else ""
        cells = "".join(f'<td class="num">{_cell(h.get(c))}</td>' for c in cols)
        body += f"<tr{best}>{cells}</tr>"
    return f'<table class="data history"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _count(n) -> str:
    return f"{n:,}" if isinstance(n, int) else "the"


def _cell(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4f}"
    return esc(v)


def _label_counts(labels, classes: tuple[str, ...]) -> str:
    labels = np.asarray(labels)
    if len(classes) > 2:  # "1: 5,022; 2: 2,302; ..." reads for numbered classes too
        per_class = "; ".join(f"{c}: {int((labels == i).sum()):,}" for i, c in enumerate(classes))
        return f"{len(labels):,} reviews ({per_class})"
    counts = [f"{int((labels == i).sum()):,} {name}" for i, name in enumerate(classes)]
    return f"{len(labels):,} reviews ({', '.join(reversed(counts))})"  # the explained (last) class first


def write_report(
    model: SeqshapModel | str | Path | None,
    out_dir: str | Path,
    n_explain: int = 10,
    n_background: int = 100,
    importance_n: int | None = None,
    min_count: int = 3,
    top_k: int = 20,
    output: str | None = None,
    data: dict | None = None,
    reviews=None,
    background=None,
    progress: bool = False,
    batch_size: int = 25,
) -> Path:
    """Explain the first ``n_explain`` test reviews against the first ``n_background`` texts of
    the model's background (its directory's ``background.json``, else the training reviews) and
    write ``out_dir/index.html`` plus every picture beside it.

    ``importance_n`` (default ``n_explain``) test reviews are pooled for the global word
    importance (words seen at least ``min_count`` times). ``reviews``/``background`` (a
    ``Split``) replace the IMDB test/train heads, e.g. for your own data; ``background`` may
    also be a :class:`~seqshap.background.Background` (``--background-file``). Returns the
    path of ``index.html``.
    """
    from .attribution import DeepExplainer
    from .background import Background, model_background
    from .data import load_task

    if n_explain < 1 or n_background < 1:
        raise ValueError("n_explain and n_background must be at least 1")
    importance_n = n_explain if importance_n is None else int(importance_n)
    if importance_n < 1:
        raise ValueError("importance_n must be at least 1")
    if not isinstance(model, SeqshapModel):
        model = load(model)
    output = output or model.config.get("output_space", "probability")  # imported heads may be raw
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    chosen, background = (background, None) if isinstance(background, Background) else (None, background)
    if chosen is None and background is None and reviews is None:
        # as every command chooses (seqshap.background): the model directory's own background.json
        # first, else the IMDB training reviews of `data`
        chosen = model_background(model, n_background)
    if data is None and (reviews is None or (background is None and chosen is None)):
        data = load_task(model.config.get("task") or "imdb")  # sentiment, or star ratings
    splits = data or {}
    test = reviews if reviews is not None else splits["test"]
    train = background if background is not None else splits.get("train")  # None: --data and --background-file
    shown = test.head(n_explain)
    if chosen is None:
        bg = (background if background is not None else splits["train"]).head(n_background)
        bg_texts, bg_set = list(bg.texts), (f"first {len(bg)} training reviews: ", bg)
    else:
        bg_texts, bg_set = list(chosen.texts[:n_background]), (chosen.source, None)
    if len(shown) == 0 or len(bg_texts) == 0:
        raise ValueError("no reviews to explain or no background reviews")

    explainer = DeepExplainer(model, bg_texts, output=output)
    exps, acc = _explain(explainer, shown, test.head(importance_n), batch_size, progress)

    # The page, section by section; each writes its pictures beside it and names them.
    files: list[str] = []
    parts = [
        f"<h1>seqshap report — {esc(model.name)}</h1>",
        f'<p class="muted">seqshap {esc(__version__)} · exact DeepSHAP ({esc(output)} space) · '
        f"written {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}</p>",
        '<h2 id="model">Model</h2>' + _model_table(model),
        _data_section(
            model.classes,
            [
                ("test set" if reviews is None else "reviews", "", test),
                *(
                    [("training set" if background is None else "background source", "", train)]
                    if train is not None
                    else []
                ),
                ("background (reference) for DeepSHAP", *bg_set),
                ("explained", f"first {len(shown)} test reviews: ", shown),
            ],
            exps,
            acc,
            _base_values(explainer, model.classes, exps[0]),
        ),
        _training_section(model.metrics or {}, out, files),
        _reviews_section(exps, shown, out, files),
        _importance_section(acc, min_count, top_k, out, files),
    ]
    parts.append(
        '<h2 id="files">Files</h2><p class="muted">'
        + " · ".join(f'<a href="{esc(f)}">{esc(f)}</a>' for f in files)
        + "</p>"
    )
    index = out / "index.html"
    atomic.write_text(index, standalone_page(f"seqshap report — {model.name}", "\n".join(parts)))
    return index


def _explain(explainer, shown, pooled, batch_size: int, progress: bool) -> tuple[list[Explanation], WordImportance]:
    """The numbers: ``shown`` explained (kept), pooled by word with the rest of ``pooled``
    (explained batch by batch, not kept)."""
    exps = explain_batches(explainer, list(shown.texts), shown.labels, batch_size, progress, desc="explain reviews")
    acc = WordImportance(explainer.output).update(exps)
    if len(pooled) > len(shown):
        acc.merge(
            importance_over(
                explainer,
                list(pooled.texts[len(shown) :]),
                pooled.labels[len(shown) :],
                batch_size,
                progress,
                desc="word importance",
            )
        )
    return exps, acc


def _base_values(explainer, classes: tuple[str, ...], first: Explanation) -> str:
    """The base value of the explained output; for one output per class of more than two, each class's."""
    base = explainer.expected_value
    if first.explained_class is None or len(base) != len(classes):
        return f"{float(base[first.output_index]):.4f}"
    return ", ".join(f"{c}: {float(v):.4f}" for c, v in zip(classes, base, strict=True))


def _data_section(
    classes: tuple[str, ...], sets: list, exps: list[Explanation], acc: WordImportance, base_value: str
) -> str:
    """What was read: ``sets`` is ``(name, prefix, Split or None)`` per row, then the explanations' facts."""
    # by class name: a softmax model's logit says nothing about the class on its own
    expl_acc = np.mean([e.predicted_name == e.class_name(e.label) for e in exps]) if exps else float("nan")
    return '<h2 id="data">Data</h2>' + _kv_table(
        [
            (name, prefix + (_label_counts(split.labels, classes) if split is not None else ""))
            for name, prefix, split in sets
        ]
        + [
            ("word importance pooled over", f"first {acc.n_explanations} test reviews"),
            ("base value (mean output over the background)", base_value),
            ("largest completeness error", f"{max(e.completeness_error for e in exps):.2e}"),
            ("accuracy on the explained reviews", f"{expl_acc:.2f}"),
        ]
    )


def _training_section(m: dict, out: Path, files: list[str]) -> str:
    """Test accuracy, the training curves (PNG and SVG beside the page) and the per-epoch table."""
    test_acc = m.get("test_accuracy")
    parts = [
        '<h2 id="training">Training</h2>',
        f'<p style="font-size:18px">test accuracy: <b class="test-accuracy">'
        f"{test_acc:.4f}</b> on {_count(m.get('n_test'))} test reviews</p>"
        if test_acc is not None
        else '<p class="muted">no test accuracy recorded in metrics.json</p>',
    ]
    if not m.get("history"):
        return "".join([*parts, '<p class="muted">no training history in metrics.json</p>'])
    training_curves(m, out / "training_curves.png")
    training_curves(m, out / "training_curves.svg")
    files += ["training_curves.png", "training_curves.svg"]
    parts += ['<img src="training_curves.png" alt="training curves: loss and accuracy per epoch">', _history_table(m)]
    return "".join(parts)


def _reviews_section(exps: list[Explanation], shown, out: Path, files: list[str]) -> str:
    """One section per explained review, its pictures as files beside the page, and
    ``explanations.json`` (the explanations' one JSON form)."""
    named = any(e.explained_class is not None for e in exps)
    parts = [
        f'<h2 id="explanations">Explanations of the first {len(exps)} test reviews</h2>'
        + (
            '<p class="muted">Each review is explained for the class the model predicts (its "why" line): red '
            "words push that class's probability up, blue down. Hover a word for its value.</p>"
            if named
            else '<p class="muted">Red words push the prediction towards positive, blue towards '
            "negative. Hover a word for its value.</p>"
        )
    ]
    width = max(2, len(str(len(exps))))
    for i, e in enumerate(exps, 1):
        n = f"{i:0{width}d}"
        svg, pred, text = force_plot_svg(e), prediction_html(e), highlight_html(e)
        atomic.write_text(out / f"force_{n}.svg", svg + "\n")
        force_plot_png(e, out / f"force_{n}.png")
        waterfall(e, out / f"waterfall_{n}.png")
        atomic.write_text(
            out / f"highlight_{n}.html",
            standalone_page(f"Test review {i} — highlight", f"<h1>Test review {i}</h1>{pred}{text}"),
        )
        atomic.write_text(out / f"explanation_{n}.html", explanation_page(e, f"Test review {i}"))
        mine = [
            f"force_{n}.svg",
            f"force_{n}.png",
            f"waterfall_{n}.png",
            f"highlight_{n}.html",
            f"explanation_{n}.html",
        ]
        files += mine
        rid = shown.ids[i - 1] if getattr(shown, "ids", None) else ""
        links = " · ".join(f'<a href="{f}">{f}</a>' for f in mine[:4])
        parts.append(
            f'<section class="review" id="review-{i}" data-index="{i}"><h3>Test review {i}'
            f"{' <span class=muted>(' + esc(rid) + ')</span>' if rid else ''}</h3>"
            f"{pred}{svg}{text}"
            f'<details><summary class="muted">top words and waterfall</summary>{top_words_html(e)}'
            f'<img src="waterfall_{n}.png" alt="waterfall of review {i}"></details>'
            f'<p class="muted">files: {links}</p></section>'
        )
    atomic.write_json(out / "explanations.json", [e.to_dict() for e in exps])
    files.append("explanations.json")
    return "".join(parts)


def _importance_section(acc: WordImportance, min_count: int, top_k: int, out: Path, files: list[str]) -> str:
    """The pooled word importance: tables, plot and its CSV/JSON/PNG/SVG beside the page."""
    table = acc.table(min_count)
    paths = write_outputs(table, out, k=top_k)
    files += [p.name for p in paths.values()]
    return (
        f'<h2 id="importance">Global word importance</h2><p class="muted">Attributions pooled '
        f"by word over {acc.n_explanations} test reviews; words seen at least {min_count} times "
        f"({len(table)} words; {acc.n_skipped} out-of-vocabulary positions left out). "
        f"mean = average push per occurrence.</p>{importance_html(table, k=top_k)}"
        + ('<img src="word_importance.png" alt="word importance plot">' if "png" in paths else "")
    )


__all__ = ["write_report"]
