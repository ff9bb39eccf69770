"""``seqshap report``: the self-contained HTML report (the main job's output)."""

from __future__ import annotations

import json
from pathlib import Path

from .._validation import POSITIVE
from .common import (
    UsageError,
    add_background_option,
    add_command,
    add_model_option,
    add_output_option,
    background_for,
    data_hint,
    load_model,
)


def run(args) -> int:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    from ..data import load_task
    from ..report import write_report

    if args.data and args.imdb:
        raise UsageError("give either --data or --imdb, not both")
    model = load_model(args)
    if model.multi_label:
        raise UsageError(
            f"{model.name} is a multi-label model: seqshap report does not cover multi-label models yet; use "
            "seqshap explain --target LABEL, seqshap importance --data and seqshap evaluate --data"
        )
    # the background every command uses (seqshap.background): --background-file, else the model's
    # background.json, else the IMDB training reviews; with --data, the rows after the explained ones
    with data_hint(args):
        own = background_for(args, model) if args.background_file or not args.data else None
    reviews = background = data = None
    if args.data:  # labels read as the model's classes
        reviews, background = _own_data(args.data, args.text_column, args.label_column, args.n, model.classes)
    else:  # the IMDB reviews labelled as the model learned them (sentiment, or star ratings)
        with data_hint(args):
            data = load_task(model.config.get("task") or "imdb", args.imdb)
    index = write_report(
        model,
        out,
        n_explain=args.n,
        n_background=args.background,
        importance_n=args.importance_n,
        min_count=args.min_count,
        output=args.output,
        data=data,
        reviews=reviews,
        background=own if own is not None else background,
        progress=not args.quiet,
    )
    if args.json:
        print(
            json.dumps(
                {"index": str(index), "files": sorted(p.name for p in out.iterdir() if not p.name.startswith("."))},
                allow_nan=False,
            )
        )
    else:
        print(f"report written to {index}")
    return 0


def _own_data(path: str, text_column: str, label_column: str, n: int, classes=None):
    """(reviews, background) from a CSV/JSONL file: its first ``n`` rows are explained, the
    rows after them are the background (all rows when there are no more)."""
    from ..data import read_labeled

    split = read_labeled(path, text_column, label_column, classes=classes)
    if len(split) <= n:
        return split, split
    return split, split.rows(slice(n, None))


def register(sub) -> None:
    p = add_command(
        sub,
        "report",
        "write a self-contained HTML report: model, data, training curves, "
        "explanations of the first test reviews, global word importance",
        "seqshap report --out report/\n  seqshap report --model runs/lstm --n 10 --importance-n 1000 --out report/\n"
        "  seqshap report --model my-distilbert --data reviews.csv --out report/",
        run,
    )
    add_model_option(p)
    p.add_argument("--out", default="report", metavar="DIR", help="output folder (default: report/)")
    p.add_argument("--n", type=POSITIVE, default=10, help="explain the first N test reviews (default 10)")
    add_background_option(p)
    p.add_argument(
        "--importance-n",
        type=POSITIVE,
        default=None,
        metavar="N",
        help="pool word importance over the first N test reviews (default: the explained ones)",
    )
    p.add_argument(
        "--min-count", type=POSITIVE, default=3, help="importance table: words seen at least this often (default 3)"
    )
    add_output_option(p)
    p.add_argument("--json", action="store_true", help='print {"index": ..., "files": [...]}')
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--imdb", metavar="PATH", help="IMDB archive (default: the shipped copy)")
    p.add_argument(
        "--data",
        metavar="FILE",
        help="your own labeled texts (CSV or JSONL) instead of IMDB: the first --n rows are explained, "
        "the next --background rows are the background (all rows when there are no more)",
    )
    p.add_argument("--text-column", default="text", help="--data: the text column (default text)")
    p.add_argument("--label-column", default="label", help="--data: the label column (default label)")
