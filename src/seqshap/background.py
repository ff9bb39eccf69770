"""The one place that picks the DeepSHAP background (the reference texts) for a run."""
from __future__ import annotations

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
