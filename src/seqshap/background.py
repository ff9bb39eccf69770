"""The one place that picks the DeepSHAP background (the reference texts) for a run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SIZE = 100  # the seed notebook explains against the first 100 training reviews


@dataclass(frozen=True)
class Background:
    """Background texts and a short phrase saying where they came from (shown in reports)."""

    texts: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return len(self.texts)


def default_background(n: int = DEFAULT_SIZE, imdb: str | Path | None = None) -> Background:
    """The first ``n`` IMDB training reviews (after Keras' shuffle), as the seed notebook uses."""
    if n < 1:
        raise ValueError(f"the background needs at least 1 text, got {n}")
    from .data import load_imdb

    texts = load_imdb(imdb)["train"].texts[:n]
    return Background(tuple(texts), f"the first {len(texts)} IMDB training reviews")


def resolve_background(
    given: Background | Sequence[str] | None, n: int = DEFAULT_SIZE, imdb: str | Path | None = None
) -> Background:
    """``given`` as a :class:`Background` (texts a caller chose), or :func:`default_background` when ``None``."""
    if given is None:
        return default_background(n, imdb)
    if isinstance(given, Background):
        return given
    if isinstance(given, str):  # one text would silently become a background of single characters
        raise TypeError("the background is a list of texts, not one string")
    texts = tuple(str(t) for t in given)
    if not texts:
        raise ValueError("the background needs at least 1 text, got none")
    return Background(texts, f"{len(texts)} given background text{'s' if len(texts) != 1 else ''}")
