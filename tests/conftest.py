"""Shared fixtures: the real IMDB data, a small model trained on it, Debian's chromium."""

from __future__ import annotations

import shutil

import pytest

from seqshap.data import load_imdb
from seqshap.train import TrainConfig, train


@pytest.fixture(scope="session")
def imdb():
    """The shipped IMDB archive, both splits (25,000 reviews each)."""
    return load_imdb(download_missing=False)


@pytest.fixture(scope="session")
def tiny_model(imdb, tmp_path_factory):
    """A small LSTM trained for one epoch on 2,000 real reviews (a few seconds on a CPU).

    Small enough for fast tests, real enough that its words mean something.
    """
    out = tmp_path_factory.mktemp("models") / "tiny-lstm"
    cfg = TrainConfig(arch="lstm", epochs=1, maxlen=40, num_words=2000, seed=0, model={"embed_dim": 16, "hidden": 16})
    return train(imdb["train"].head(2000), out, cfg, test_split=imdb["test"].head(500), progress=False)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of Debian's chromium binary (``make test`` installs it)."""
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is not installed: run `make test` (it apt-get installs Debian's chromium)")
    return path


def pytest_collection_modifyitems(items):
    """A test that drives chromium carries the ``browser`` marker (so ``make test-fast`` leaves it out)."""
    unmarked = [
        i.nodeid for i in items if "chromium" in getattr(i, "fixturenames", ()) and not i.get_closest_marker("browser")
    ]
    if unmarked:
        raise pytest.UsageError("tests using chromium without @pytest.mark.browser: " + ", ".join(unmarked))
