"""Helpers shared by the subcommands."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..background import Background


class UsageError(Exception):
    """Bad arguments found after parsing (exit code 2)."""


def add_command(sub, name: str, help_: str, example: str, func) -> argparse.ArgumentParser:
    """A subparser whose ``--help`` ends with a runnable example."""
    p = sub.add_parser(
        name,
        help=help_,
        description=help_,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=func)
    return p


def add_model_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="DIR", default=None, help="model directory (default: the shipped model)")


def add_background_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--background",
        type=int,
        default=100,
        metavar="N",
        help="explain against the first N texts of the DeepSHAP background (default 100, as the seed notebook): "
        "those of --background-file, else of the model directory's background.json (the shipped model's: the "
        "first 100 IMDB training reviews), else the IMDB training reviews",
    )
    p.add_argument(
        "--background-file",
        metavar="FILE",
        help="the background texts: one per line, or a CSV/JSONL file with a 'text' column "
        "(or a JSON list, or a model's background.json)",
    )


def background_for(args, model=None) -> Background:
    """The run's :class:`~seqshap.background.Background`, picked by :func:`seqshap.background.choose_background`
    from --background-file, ``model``'s (default: --model's) background.json, IMDB (--imdb)."""
    from ..background import choose_background
    from ..data import DataFileError
    from ..store import DEFAULT_MODEL_DIR

    try:
        return choose_background(
            args.background,
            file=args.background_file,
            model=model if model is not None else (args.model or DEFAULT_MODEL_DIR),
            imdb=getattr(args, "imdb", None),
        )
    except DataFileError as e:  # the message names the file and line
        raise UsageError(f"--background-file {e}") from None


def add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="CSV/JSONL file with your own labeled texts")
    p.add_argument("--text-column", default="text")
    p.add_argument("--label-column", default="label")
    p.add_argument("--imdb", metavar="PATH", help="IMDB archive (default: the shipped copy)")


def add_output_option(p: argparse.ArgumentParser) -> None:
    from ..attribution import OUTPUT_SPACES

    p.add_argument(
        "--output",
        choices=list(OUTPUT_SPACES),
        default=None,
        help="explain the probability, the pre-sigmoid logit, or the raw model output "
        "(default: what the model outputs, e.g. 'raw' for an imported linear Keras head)",
    )


def resolve_output(args, model) -> str:
    """--output if given, else the model directory's own output space (probability by default)."""
    return args.output or model.config.get("output_space", "probability")
