"""``seqshap importance``: global word importance over many explained test reviews."""

from __future__ import annotations

import json
import re
import sys

from .._validation import POSITIVE
from .common import (
    UsageError,
    add_background_option,
    add_command,
    add_data_options,
    add_model_option,
    add_output_option,
    add_task_option,
    background_for,
    check_target,
    load_model,
    model_data,
    resolve_output,
)


def run(args) -> int:
    chunked = bool(args.scheduler or args.resume or args.chunk_size or args.workers)  # seqshap.distributed
    if args.scheduler and args.scheduler not in ("local", "processes") and "://" not in args.scheduler:
        raise UsageError(
            f"--scheduler must be local, processes or a Dask address like tcp://host:8786, not {args.scheduler!r}"
        )
    from ..attribution import DeepExplainer
    from ..importance import importance_over
    from ..viz.importance import write_outputs
    from ..viz.layout import quantity

    if args.lexicon and not args.ratings:
        raise UsageError("--lexicon gives the ratings for --ratings; add --ratings")
    model = load_model(args)
    rate = ratings_for(args, model)  # before any work: refused for a model whose classes are not sentiment
    args.output = resolve_output(args, model)
    test = model_data(args, model).head(args.n)
    background = list(background_for(args, model).texts)
    # One table for a two-class model (its positive class) or the one --target; one per class for more.
    targets: list[str | None] = [args.target] if args.target is not None else [None]
    if args.target is None and (len(model.classes) > 2 or model.multi_label):  # multi-label: one per label
        targets = list(model.classes)
    if chunked and targets != [None]:
        raise UsageError(
            "--scheduler explains each review's default class; word importance per class (--target, or a model "
            "with more than two classes) runs in one process: drop --scheduler and --chunk-size/--workers/--resume"
        )
    summary = None
    if chunked:
        from ..distributed import explain_corpus, format_summary

        acc, summary = explain_corpus(
            args.model,
            list(test.texts),
            test.labels.tolist(),
            args.out,
            scheduler=args.scheduler or "local",
            chunk_size=args.chunk_size or 250,
            n_workers=args.workers,
            resume=args.resume,
            progress=not args.quiet,
            background=background,
            ids=test.ids,
            output=args.output,
            batch_size=args.batch_size,
        )
        print(format_summary(summary), file=sys.stderr)
        accs = [acc]
    else:
        explainer = DeepExplainer(model, background, output=args.output)
        check_target(explainer, args.target)
        accs = [
            importance_over(
                explainer,
                list(test.texts),
                None if model.multi_label else test.labels,  # a multi-hot row is no one class
                batch_size=args.batch_size,
                progress=not args.quiet,
                desc="explaining test reviews" + (f" for {t}" if t is not None and len(targets) > 1 else ""),
                target=t,
            )
            for t in targets
        ]
    tables = [acc.table(args.min_count) for acc in accs]
    if rate is not None:
        tables = [rate(t) for t in tables]
    stems = file_stems([t.target for t in tables])
    written = [write_outputs(table, args.out, k=args.top, stem=stem) for table, stem in zip(tables, stems, strict=True)]
    if args.json:
        rows = [
            {
                **({"target": table.target} if table.target is not None else {}),
                "words": len(table),
                "files": {k: str(v) for k, v in paths.items()},
                "top_positive": [r.word for r in table.top_positive(args.top)],
                "top_negative": [r.word for r in table.top_negative(args.top)],
                **({"disagree": [r.word for r in table.disagreements(args.top)]} if table.ratings is not None else {}),
            }
            for table, paths in zip(tables, written, strict=True)
        ]
        head = {"n_explanations": tables[0].n_explanations, "min_count": tables[0].min_count}
        body = rows[0] if len(rows) == 1 else {"classes": [t.target for t in tables], "tables": rows}
        print(json.dumps({**head, **body, **({"run": summary} if summary else {})}, allow_nan=False))
        return 0
    for table in tables:
        pushed = "" if table.target is None else f" pushing {quantity(table.output_space, table.target)}"
        title = "" if table.target is None else f"why {table.target}: "
        rated = table.ratings is not None
        print(f"{title}{len(table)} words seen at least {args.min_count} times in {table.n_explanations} reviews")
        for name, rows_ in (("up", table.top_positive(args.top)), ("down", table.top_negative(args.top))):
            heading = f"top {'positive' if name == 'up' else 'negative'}" if not pushed else f"words{pushed} {name}"
            human = f" {'human':>6}" if rated else ""
            print(f"\n{heading}:   {'mean':>9} {'mean|.|':>9} {'count':>6} {'reviews':>7}{human}")
            for r in rows_:
                print(f"  {r.word:<14}{r.mean:+9.4f} {r.mean_abs:9.4f} {r.count:6d} {r.n_reviews:7d}{_human(table, r)}")
        if rated:
            print(f"\nhuman: the word's rating, -4 to +4, in {table.ratings_source}; " + _sign_note(table))
        print()
    print("", file=sys.stderr)
    for paths in written:
        for p in paths.values():
            print(f"wrote {p}", file=sys.stderr)
    return 0


def _human(table, row) -> str:
    """`` +1.9`` (the word's human rating), `` +1.9 ≠`` where model and people disagree in sign."""
    if table.ratings is None:
        return ""
    r = table.rating(row.word)
    return f" {'':>6}" if r is None else f" {r:+6.1f}" + (" ≠" if table.disagrees(row) else "")


def _sign_note(table) -> str:
    if table.rating_sign is None:
        return f"{table.target} is neither end of the ratings, so no sign is compared"
    toward = "positive" if table.rating_sign > 0 else "negative"
    return f"≠: the model and people disagree in sign (a positive mean here pushes toward {toward} sentiment)"


def ratings_for(args, model):
    """With ``--ratings``: a function adding the human ratings (VADER's, or ``--lexicon``'s) to a
    table, with the sign of its explained class (:func:`~seqshap.faithfulness.plausibility.class_sign`).
    A usage error, before any work, for a model whose classes are not sentiment or when the ratings
    cannot be read."""
    if not args.ratings:
        return None
    from ..faithfulness.plausibility import class_sign, count_outputs
    from .faithfulness import plausibility_for

    plaus = plausibility_for(model, args.lexicon, "--ratings")
    n_outputs = count_outputs(model)

    def rate(table):
        sign = class_sign(plaus.direction, model.classes, n_outputs, table.target)
        return table.with_ratings(plaus.lexicon, sign, plaus.source)

    return rate


def file_stems(targets: list[str | None]) -> list[str]:
    """``word_importance`` for the two-class table; ``word_importance_<class>`` (the class name made
    safe for a file name, numbered if two come out the same) per named class."""
    stems: list[str] = []
    for t in targets:
        stem = "word_importance" if t is None else "word_importance_" + (re.sub(r"[^A-Za-z0-9._-]+", "_", t) or "_")
        stems.append(stem if stem not in stems else f"{stem}_{len(stems)}")
    return stems


def register(sub) -> None:
    p = add_command(
        sub,
        "importance",
        "global word importance: explain the first N test reviews and "
        "pool the attributions by word (table CSV/JSON + plot PNG/SVG)",
        "seqshap importance --n 1000 --out importance/\n"
        "  seqshap importance --n 200 --min-count 3 --out /tmp/imp --json\n"
        "  seqshap importance --model runs/rating --n 300 --target 10 --out /tmp/imp10   # why 10 stars?",
        run,
    )
    add_model_option(p)
    p.add_argument("--n", type=POSITIVE, default=1000, help="how many test reviews to explain (default 1000)")
    p.add_argument(
        "--target",
        metavar="CLASS",
        default=None,
        help="the class whose word importance to compute, by name or index (default: the positive class of a "
        "two-class model; every class, one table and plot each, for more classes)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="folder for word_importance.{csv,json,png,svg}")
    add_background_option(p)
    p.add_argument("--min-count", type=POSITIVE, default=10, help="keep words seen at least this often (default 10)")
    p.add_argument("--top", type=POSITIVE, default=20, help="how many top positive/negative words (default 20)")
    p.add_argument("--batch-size", type=POSITIVE, default=25, help="reviews explained at once (default 25)")
    add_output_option(p)
    p.add_argument("--json", action="store_true", help="print a JSON summary instead of tables")
    p.add_argument(
        "--ratings",
        action="store_true",
        help="show each word's human rating (the VADER lexicon, Hutto & Gilbert 2014, from the vaderSentiment "
        "package: pip install 'seqshap[plausibility]') beside its mean, and mark the words where the model and "
        "people disagree in sign (in the tables, the CSV/JSON and the plot); sentiment models only",
    )
    p.add_argument(
        "--lexicon",
        metavar="FILE",
        help="with --ratings: a JSON object {word: rating} (-4 to +4, as VADER's) to use instead of VADER",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_data_options(p)
    add_task_option(p)
    p.add_argument(
        "--scheduler",
        metavar="WHERE",
        help="explain in parallel chunks saved in OUT/chunks: 'local' "
        "(this machine's cores), 'processes' (a Dask LocalCluster) or a running Dask scheduler "
        "tcp://HOST:PORT (default: one process, no chunks)",
    )
    p.add_argument("--chunk-size", type=POSITIVE, metavar="N", help="reviews per chunk (default 250)")
    p.add_argument(
        "--workers", type=POSITIVE, metavar="N", help="worker processes for local/processes (default: one per core)"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted chunked run in OUT, skipping the chunks already saved",
    )
