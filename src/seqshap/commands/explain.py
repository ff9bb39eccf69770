"""``seqshap explain``: explain one text in the terminal, as JSON, and as pictures."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .._validation import POSITIVE
from .common import (
    UsageError,
    add_background_option,
    add_command,
    add_model_option,
    add_output_option,
    background_for,
    check_target,
    load_model,
    resolve_output,
)

PICTURES = ("html", "svg", "png", "waterfall")


def read_text(text: str | None, file: str | None, stdin=None) -> str:
    """The text to explain: an argument, ``--file PATH``, or ``-`` (stdin)."""
    if text is not None and file is not None:
        raise UsageError("give the text either as an argument or with --file, not both")
    if file is not None:
        path = Path(file)
        if not path.is_file():
            raise UsageError(f"--file {file}: no such file")
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise UsageError(f"--file {file}: not UTF-8 text") from None
    elif text == "-":
        stream = stdin or sys.stdin
        if stream is None or stream.closed:  # started with stdin closed (`<&-`)
            raise UsageError(
                '"-" reads the text from stdin, but stdin is closed; pipe the text in or give it as an argument'
            )
        try:
            text = stream.read()
            text.encode("utf-8")  # a C locale reads undecodable bytes as lone surrogates
        except (UnicodeDecodeError, UnicodeEncodeError):
            raise UsageError("stdin is not UTF-8 text") from None
    elif text is None:
        raise UsageError('no text: give it as an argument, with --file PATH, or "-" to read stdin')
    if not text.strip():
        raise UsageError("the text is empty")
    return text


def _check_out(path: str | None, suffixes: tuple[str, ...], flag: str) -> None:
    if path is not None and Path(path).suffix.lower() not in suffixes:
        raise UsageError(f"{flag} {path}: expected a file ending in {' or '.join(suffixes)}")


def run(args) -> int:
    text = read_text(args.text, args.file)
    _check_out(args.html, (".html", ".htm"), "--html")
    _check_out(args.svg, (".svg",), "--svg")
    _check_out(args.png, (".png", ".svg"), "--png")
    _check_out(args.waterfall, (".png", ".svg"), "--waterfall")
    from ..attribution import DeepExplainer, NoWordsError

    model = load_model(args)
    if args.pair is not None and not getattr(model.vocab, "reads_pairs", False):
        raise UsageError(f"--pair: {model.name} reads one text (pairs are for Hugging Face models trained on them)")
    args.output = resolve_output(args, model)
    background = background_for(args, model)
    explainer = DeepExplainer(model, list(background.texts), output=args.output)
    check_target(explainer, args.target)
    try:
        pairs = None if args.pair is None else [args.pair]
        exp = explainer.explain([text], target=args.target, pairs=pairs)[0]
    except NoWordsError as e:  # the explainer's one check of texts, as the web API's 422
        raise UsageError(str(e)) from None
    written = []
    if args.html:
        from .. import atomic
        from ..viz.html import explanation_page

        atomic.write_text(Path(args.html), explanation_page(exp))
        written.append(args.html)
    if args.svg:
        from .. import atomic
        from ..viz.html import force_plot_svg

        atomic.write_text(Path(args.svg), force_plot_svg(exp) + "\n")
        written.append(args.svg)
    if args.png:
        from ..viz.plots import force_plot_png

        force_plot_png(exp, args.png)
        written.append(args.png)
    if args.waterfall:
        from ..viz.plots import waterfall

        waterfall(exp, args.waterfall, k=args.top)
        written.append(args.waterfall)
    if args.json:
        # the one JSON form, as the web API answers it; NaN would not be JSON, so it is refused
        print(json.dumps(exp.to_dict(top=args.top), allow_nan=False))
    else:
        from ..viz.terminal import render, supports_colour

        colour = {"always": True, "never": False}.get(args.color)
        print(render(exp, colour_on=supports_colour() if colour is None else colour, k=args.top))
    for w in written:
        print(f"wrote {w}", file=sys.stderr)
    # stderr, after success: stdout stays the one JSON form, the same as POST /api/explain answers
    print(f"background: {background.source}", file=sys.stderr)
    return 0


def register(sub) -> None:
    p = add_command(
        sub,
        "explain",
        "explain one prediction word by word (exact DeepSHAP)",
        'seqshap explain "the acting was great but the plot was awful" --html out.html --png out.png\n'
        "  seqshap explain --file review.txt --json\n"
        "  echo 'a dull, lifeless film' | seqshap explain -\n"
        '  seqshap explain --model runs/rating "a solid 8/10, great cast" --target 9   # why 9 stars?',
        run,
    )
    p.add_argument("text", nargs="?", help='the text to explain ("-" reads stdin)')
    p.add_argument("--file", metavar="PATH", help="read the text from a UTF-8 file")
    p.add_argument(
        "--pair",
        metavar="TEXT",
        help="the second text of a sentence pair (a Hugging Face model trained on pairs: NLI, paraphrase, "
        "question + passage); words of both texts are explained",
    )
    add_model_option(p)
    p.add_argument(
        "--json",
        action="store_true",
        help='print the explanation as JSON, the form POST /api/explain answers: {"tokens", '
        '"values", "base_value", "prediction", "completeness_error", "label", "top", ...}',
    )
    p.add_argument(
        "--html", metavar="FILE.html", help="write a self-contained HTML page (force plot, highlighted text, top words)"
    )
    p.add_argument("--svg", metavar="FILE.svg", help="write the force plot as SVG")
    p.add_argument("--png", metavar="FILE.png", help="write the force plot as PNG (matplotlib)")
    p.add_argument("--waterfall", metavar="FILE.png|svg", help="write a waterfall of the top words")
    p.add_argument(
        "--target",
        metavar="CLASS",
        default=None,
        help="the class to explain, by name (e.g. 9 for an imdb-rating model) or index (default: the positive "
        "class of a two-class model, the predicted class for more classes)",
    )
    p.add_argument("--top", type=POSITIVE, default=10, help="how many words to list (default 10)")
    add_background_option(p)
    add_output_option(p)
    p.add_argument(
        "--color",
        choices=["auto", "always", "never"],
        default="auto",
        help="colour the terminal output (auto: when stdout is a terminal and NO_COLOR is unset)",
    )
    p.add_argument("--imdb", metavar="PATH", help="IMDB archive for the background of a model without background.json")
