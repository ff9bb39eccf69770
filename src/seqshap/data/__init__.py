"""Data: the IMDB archive, users' CSV/JSONL files, class labels, tokenizer and vocabulary."""

from .imdb import RATING_CLASSES, TASKS, ChecksumError, Split, load_imdb, load_task
from .labels import DEFAULT_CLASSES
from .tabular import DataFileError, read_labeled
from .tokenize import words
from .vocab import Vocab

__all__ = [
    "DEFAULT_CLASSES",
    "RATING_CLASSES",
    "TASKS",
    "ChecksumError",
    "DataFileError",
    "Split",
    "Vocab",
    "load_imdb",
    "load_task",
    "read_labeled",
    "words",
]
