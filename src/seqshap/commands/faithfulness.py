"""``seqshap faithfulness``: attribution methods side by side, scored for faithfulness."""

from __future__ import annotations

import sys

from .._validation import NON_NEGATIVE, PAIRS, POSITIVE, between
from .common import (
    UsageError,
    add_background_option,
    add_command,
    add_model_option,
    background_for,
    data_hint,
    load_model,
)

DEFAULT_METHODS = "deepshap,ig,gradxinput,occlusion,random"
SHORT_WORDS = between(1, 14, " (exact Shapley enumerates 2^words coalitions)")


def run(args) -> int:
    from ..attribution import parse_methods

    try:
        names = parse_methods(args.methods)
    except ValueError as e:
        raise UsageError(str(e)) from None
    import torch

    from ..data import load_imdb, read_labeled
    from ..faithfulness.evaluate import check_empty_row, run_on_imdb, whole_texts
    from ..faithfulness.report import to_markdown, write_outputs

    if args.lexicon and not args.plausibility:
        raise UsageError("--lexicon gives the ratings for --plausibility; add --plausibility")
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args)
    try:
        check_empty_row(model, names, args.whole_reviews)
    except ValueError as e:
        raise UsageError(str(e)) from None
    plausibility = plausibility_for(model, args.lexicon) if args.plausibility else None
    background = background_for(args, model)
    if args.data:
        texts = list(read_labeled(args.data, args.text_column, args.label_column).texts)
    else:
        with data_hint(args):
            texts = list(load_imdb(args.imdb)["test"].texts)
    n_all = len(texts)
    if args.whole_reviews:
        texts = whole_texts(model, texts)
        print(f"--whole-reviews: {len(texts)} of {n_all} texts fit in {model.maxlen} positions", file=sys.stderr)
    if args.n > len(texts):
        raise UsageError(f"--n {args.n} is more than the {len(texts)} texts available")
    result = run_on_imdb(
        model,
        texts,
        list(background.texts),
        names,
        n=args.n,
        n_short=min(args.short, args.n),
        short_words=args.short_words,
        n_planted=args.planted,
        seed=args.seed,
        ig_steps=args.ig_steps,
        n_permutations=args.permutations,
        progress=not args.quiet,
        plausibility=plausibility or False,
    )
    result.meta["whole_reviews"] = {"kept": len(texts), "of": n_all} if args.whole_reviews else None
    paths = write_outputs(result, args.out)
    print(to_markdown(result))
    for p in paths.values():
        print(f"wrote {p}", file=sys.stderr)
    return 0


LEXICON_LIMIT = 16 * 2**20  # bytes of a --lexicon file (VADER's is 0.4 MB)


def plausibility_for(model, lexicon_path: str | None, flag: str = "--plausibility"):
    """The :class:`~seqshap.faithfulness.plausibility.Plausibility` of ``flag``: VADER's ratings, or
    those of the ``--lexicon`` file, toward ``model``'s positive sentiment. A usage error, before any
    work, when the model's classes are not sentiment, the lexicon is not installed or the file is no
    lexicon."""
    from ..errors import UntrustedFileError
    from ..faithfulness.plausibility import LexiconMissingError, NotApplicableError, Plausibility, direction_of
    from ..safe_files import read_json

    lexicon = None
    if lexicon_path:
        try:
            lexicon = read_json(lexicon_path, LEXICON_LIMIT, "--lexicon")
        except (UntrustedFileError, OSError) as e:
            raise UsageError(f"--lexicon {e}") from None
        if not isinstance(lexicon, dict):
            raise UsageError(f"--lexicon {lexicon_path}: expected a JSON object {{word: rating}}")
    try:
        direction = direction_of(model)
        if lexicon is None:
            return Plausibility.vader(direction)
        return Plausibility(lexicon, direction, source=f"the lexicon in {lexicon_path}")
    except (NotApplicableError, LexiconMissingError) as e:
        raise UsageError(f"{flag}: {e}") from None
    except ValueError as e:
        raise UsageError(f"--lexicon {lexicon_path}: {e}") from None


def register(sub) -> None:
    from ..attribution import METHODS

    p = add_command(
        sub,
        "faithfulness",
        "compare attribution methods on the same reviews: deletion AOPC, "
        "ERASER comprehensiveness/sufficiency, agreement with exact Shapley, planted words, cost "
        "and, with --plausibility, agreement with human word ratings (CSV + Markdown + PNG)",
        f"seqshap faithfulness --n 500 --methods {DEFAULT_METHODS} --out faith/\n"
        "  seqshap faithfulness --n 50 --methods deepshap,deeplift,sampling-shapley,random --out /tmp/f\n"
        "  seqshap faithfulness --n 200 --methods deepshap,gradxinput,occlusion,random --plausibility --out /tmp/p",
        run,
    )
    add_model_option(p)
    p.add_argument("--n", type=POSITIVE, default=500, help="test reviews to score (a seeded sample; default 500)")
    p.add_argument(
        "--methods",
        default=DEFAULT_METHODS,
        help=f"comma-separated, from: {', '.join(METHODS)} (default: {DEFAULT_METHODS})",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="folder for faithfulness.{csv,md,json,png}")
    add_background_option(p)
    p.add_argument(
        "--short",
        type=NON_NEGATIVE,
        default=100,
        metavar="N",
        help="short texts for the agreement with exact Shapley (0: skip; default 100)",
    )
    p.add_argument(
        "--short-words",
        type=SHORT_WORDS,
        default=10,
        metavar="W",
        help="words per short text (the first W of a review, at most 14; default 10)",
    )
    p.add_argument(
        "--planted",
        type=NON_NEGATIVE,
        default=100,
        metavar="N",
        help="reviews for the planted-word check (0: skip; default 100)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for the sample, planting, random and sampling methods")
    p.add_argument("--ig-steps", type=POSITIVE, default=32, help="Integrated Gradients quadrature points (default 32)")
    p.add_argument("--permutations", type=PAIRS, default=16, help="sampling-shapley permutations (default 16)")
    p.add_argument("--threads", type=POSITIVE, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--data", help="CSV/JSONL file whose texts are scored instead of the IMDB test split")
    p.add_argument("--text-column", default="text")
    p.add_argument("--label-column", default="label")
    p.add_argument("--imdb", metavar="PATH", help="IMDB archive (default: the shipped copy)")
    p.add_argument(
        "--whole-reviews",
        action="store_true",
        help="score only the texts the model reads whole, with padding to spare (needed for ig, "
        "sampling-shapley and exact Shapley on a model with no output for a row of padding only; "
        "every seqshap model has one)",
    )
    p.add_argument(
        "--plausibility",
        action="store_true",
        help="also score every method against human word ratings (the VADER lexicon, Hutto & Gilbert 2014, "
        "from the vaderSentiment package: pip install 'seqshap[plausibility]'): sign agreement on strongly "
        "rated words, rank correlation of words' mean attributions with their ratings, share of strongly "
        "rated words among each explanation's top 5. Negative/positive models (the positive class) and "
        "IMDB star-rating models (P(10) - P(1)) only: for other classes it stops before any work",
    )
    p.add_argument(
        "--lexicon",
        metavar="FILE",
        help="with --plausibility: a JSON object {word: rating} (-4 to +4, as VADER's) to use instead of VADER",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
