"""Helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, NoReturn

from .._validation import POSITIVE
from ..errors import UsageError

if TYPE_CHECKING:
    from ..background import Background


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
    setattr(p, "error", lambda message: _one_line(p, message))  # noqa: B010 (an instance's own error())
    return p


def _one_line(p: argparse.ArgumentParser, message: str) -> NoReturn:
    """A bad option (argparse's own checks and the declared constraints of ``seqshap._validation``
    used as ``type=``) ends as every usage error does: one line on stderr, exit code 2."""
    print(f"{p.prog}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def add_model_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="DIR", default=None, help="model directory (default: the shipped model)")
    p.add_argument(
        "--code",
        metavar="FILE.py",
        default=None,
        help="the Python file of a model made by import-torch (seqshap runs no code from a model directory "
        "unless you name it here; it must be the file the directory was made with)",
    )


def load_model(args):
    """The model of ``--model`` (with ``--code`` for a user's own PyTorch model)."""
    from ..store import load

    return load(args.model, code=getattr(args, "code", None))


def add_background_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--background",
        type=POSITIVE,
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


def check_target(explainer, target: str | None) -> None:
    """``--target`` names one of the explained model's classes (or an index), before any work."""
    if target is None:
        return
    from ..attribution import resolve_target

    try:
        resolve_target(target, explainer.output_classes(explainer.n_outputs), explainer.n_outputs)
    except ValueError as e:
        raise UsageError(f"--target {target}: {e}") from None


def add_task_option(p: argparse.ArgumentParser) -> None:
    from ..data import TASKS

    p.add_argument(
        "--task",
        choices=TASKS,
        default=None,
        help="how to label the IMDB reviews: imdb (sentiment) or imdb-rating (star ratings); "
        "default: the task the model was trained on",
    )


@contextlib.contextmanager
def data_hint(args) -> Iterator[None]:
    """A failed IMDB download in a command that takes ``--data`` also names that way out."""
    from ..data.imdb import DownloadError

    try:
        yield
    except DownloadError as e:
        if not hasattr(args, "data"):
            raise
        raise DownloadError(f"{e}. Or give your own texts: --data FILE (CSV or JSONL)") from None


def model_data(args, model, split: str = "test"):
    """The labelled texts a command scores or explains: ``--data`` read with the model's classes
    (multi-hot labels for a multi-label model), else the IMDB ``split`` labelled for ``--task``
    (default: the model's own task, from its config)."""
    from ..data import DEFAULT_CLASSES, DataFileError, load_task, read_labeled

    multi = bool(getattr(model, "multi_label", False))
    if getattr(args, "data", None):
        if getattr(args, "task", None):
            raise UsageError("give either --data or --task, not both")
        try:
            return read_labeled(
                args.data, args.text_column, args.label_column, classes=model.classes, multi_label=multi
            )
        except DataFileError as e:
            raise UsageError(f"--data: {e}") from None
    if multi:
        raise UsageError(
            f"{model.name} is a multi-label model ({', '.join(model.classes)}): give --data, a CSV/JSONL file whose "
            "label column holds each text's labels separated by |"
        )
    task = getattr(args, "task", None) or model.config.get("task") or "imdb"
    with data_hint(args):
        data = load_task(task, args.imdb)[split]
    have = data.classes or DEFAULT_CLASSES
    if len(have) != len(model.classes):
        raise UsageError(
            f"the {task} task has {len(have)} classes but the model has {len(model.classes)} "
            f"({', '.join(model.classes)}); pass --task or --data with the model's labels"
        )
    return data
