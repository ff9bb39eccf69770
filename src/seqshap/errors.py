"""Every error seqshap raises on purpose, in one place.

Each derives from :class:`SeqshapError` (``except seqshap.SeqshapError`` catches them all) and
also keeps the built-in base callers already expect (``ValueError`` for bad input, ``TypeError``
for an unsupported layer, ...). This module imports nothing from seqshap: any layer may use it.
"""

from __future__ import annotations


class SeqshapError(Exception):
    """Base of every error seqshap raises on purpose; the message says what and what to do."""


# ---- explaining ------------------------------------------------------------------------------
class AdditivityError(SeqshapError, AssertionError):
    """The attributions do not add up to f(x) - E[f(background)]."""


class NonFiniteError(AdditivityError):
    """The model's output, the base value or the attributions hold NaN or infinity.

    Raised by every method's ``explain``/``attribute`` and by ``shap_values`` (whether or not
    additivity is checked): a NaN is a wrong number, never an answer. ``row`` is the input
    (or background row) concerned, ``None`` for the base value; ``reason`` says what was not
    finite without naming the row (``"its output is nan"``), for callers that name it their way.
    """

    def __init__(self, message: str, row: int | None = None, reason: str = ""):
        super().__init__(message)
        self.row, self.reason = row, reason or message

    def __reduce__(self):  # crosses process boundaries (seqshap.distributed) whole
        return type(self), (str(self), self.row, self.reason)


class NoWordsError(SeqshapError, ValueError):
    """A text to explain has no word the model reads (only punctuation, symbols or ``<br />``).
    ``index`` is its position in the list given."""

    def __init__(self, index: int, n: int):
        which = "the text" if n == 1 else f"text {index}"
        super().__init__(f"{which} has no words (only punctuation or symbols); nothing to explain")
        self.index, self.n = index, n

    def __reduce__(self):
        return type(self), (self.index, self.n)


class UnsupportedLayerError(SeqshapError, TypeError):
    """The model holds a layer or calls an operation without an exact DeepLIFT rule."""


class TooManyPlayersError(SeqshapError, ValueError):
    """An input has more visible words than exact enumeration allows."""


# ---- models and files -------------------------------------------------------------------------
class ModelLoadError(SeqshapError, RuntimeError):
    """A model directory is missing, corrupt or inconsistent."""


class HFLoadError(SeqshapError, ValueError):
    """A Hugging Face directory seqshap cannot load; the message says why and what to do."""


class UntrustedFileError(SeqshapError, ValueError):
    """A file from a user (a model directory's JSON, a background file) is not one seqshap reads:
    not a regular file, a link out of its directory, over its size cap, nested too deep, not JSON."""


class KerasImportError(SeqshapError, ValueError):
    """The Keras file cannot be converted (unsupported, inconsistent or corrupt); one-line message."""


class DataFileError(SeqshapError, ValueError):
    """A user data file is malformed; the message names the file and row."""


class ChecksumError(SeqshapError, RuntimeError):
    """A data file does not have the bytes it should."""


class DownloadError(SeqshapError, RuntimeError):
    """A download failed (no network, a proxy or server error); the message says what was being
    fetched, from where, and how to point seqshap at a local copy instead."""


# ---- training and running ---------------------------------------------------------------------
class OutputExistsError(SeqshapError, FileExistsError):
    """The output directory already holds a model or a checkpoint that a new run would overwrite."""


class TrainingDivergedError(SeqshapError, ArithmeticError):
    """The model's outputs became NaN or infinite during training."""


class DistributedError(SeqshapError, RuntimeError):
    """A distributed run could not start or a chunk failed."""


class LexiconMissingError(SeqshapError, ImportError):
    """The human word ratings are not installed (the ``vaderSentiment`` package, extra ``plausibility``)."""


class NotApplicableError(SeqshapError, ValueError):
    """The model's outputs are not sentiment: word ratings from negative to positive say nothing about them."""


class UsageError(SeqshapError):
    """Bad command-line arguments found after parsing (exit code 2)."""
