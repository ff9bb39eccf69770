"""Every error seqshap raises on purpose has one base, and keeps the built-in base callers expect."""

import inspect

import pytest

import seqshap
from seqshap import errors

BUILTIN = {
    "AdditivityError": AssertionError,
    "NonFiniteError": AssertionError,
    "NoWordsError": ValueError,
    "UnsupportedLayerError": TypeError,
    "TooManyPlayersError": ValueError,
    "ModelLoadError": RuntimeError,
    "HFLoadError": ValueError,
    "KerasImportError": ValueError,
    "DataFileError": ValueError,
    "ChecksumError": RuntimeError,
    "DownloadError": RuntimeError,
    "OutputExistsError": FileExistsError,
    "TrainingDivergedError": ArithmeticError,
    "DistributedError": RuntimeError,
    "LexiconMissingError": ImportError,
    "NotApplicableError": ValueError,
}


def declared() -> dict[str, type]:
    return {
        n: c
        for n, c in vars(errors).items()
        if inspect.isclass(c) and c.__module__ == errors.__name__ and n != "SeqshapError"
    }


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_error_has_both_bases(name):
    cls = getattr(errors, name)
    assert issubclass(cls, seqshap.SeqshapError)
    assert issubclass(cls, BUILTIN[name])


def test_every_declared_error_derives_from_the_base():
    found = declared()
    assert set(BUILTIN) <= set(found)
    assert all(issubclass(c, seqshap.SeqshapError) for c in found.values())


def test_errors_are_the_same_objects_where_they_were_imported_from():
    from seqshap.attribution import NonFiniteError, UnsupportedLayerError
    from seqshap.store import ModelLoadError

    assert NonFiniteError is errors.NonFiniteError
    assert UnsupportedLayerError is errors.UnsupportedLayerError
    assert ModelLoadError is errors.ModelLoadError


def test_errors_cross_process_boundaries_whole():
    import pickle

    e = pickle.loads(pickle.dumps(errors.NonFiniteError("bad", row=3, reason="nan")))  # safe: our own object
    assert (str(e), e.row, e.reason) == ("bad", 3, "nan")
    w = pickle.loads(pickle.dumps(errors.NoWordsError(2, 5)))  # safe: our own object
    assert (w.index, w.n) == (2, 5)
