"""Helpers shared by the subcommands."""

from __future__ import annotations

import argparse


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
        help="explain against the first N IMDB training reviews, the DeepSHAP background "
        "(default 100, as the seed notebook)",
    )


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
