"""Data: the IMDB archive, users' CSV/JSONL files, tokenizer and vocabulary."""

from .imdb import ChecksumError, Split, load_imdb
from .tabular import DataFileError, read_labeled
from .tokenize import words
from .vocab import Vocab

__all__ = ["ChecksumError", "DataFileError", "Split", "Vocab", "load_imdb", "read_labeled", "words"]
