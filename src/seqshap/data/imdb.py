"""The IMDB Large Movie Review Dataset: shipped archive, checksums, download, reading.

Where the archive comes from, first match wins:
1. an explicit ``path``;
2. ``$SEQSHAP_IMDB`` (a path to either archive);
3. the copy shipped with the repository (``data/aclImdb-labeled.tar.gz``), in a checkout;
4. the user cache (``$SEQSHAP_CACHE`` or ``~/.cache/seqshap``), downloading the
   official archive there when ``download=True``.

Without a network the download is a :class:`DownloadError` that names the archive, its
address and the way to a local copy (``$SEQSHAP_IMDB``, ``--imdb PATH``, the cache folder).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ChecksumError, DownloadError

SHIPPED_NAME = "aclImdb-labeled.tar.gz"
SHIPPED_SHA256 = "57d6937cc4cc6dae032bb4071018be154aa9c7c01526eb5ab76b7fff69d91301"
OFFICIAL_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
OFFICIAL_NAME = "aclImdb_v1.tar.gz"
OFFICIAL_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
KNOWN_SHA256 = {SHIPPED_NAME: SHIPPED_SHA256, OFFICIAL_NAME: OFFICIAL_SHA256}
SHUFFLE_SEED = 113  # keras.datasets.imdb's seed: the first 100 train reviews mix both labels

# `seqshap train --task`: what a model learns from the archive. "imdb-rating" predicts the star
# rating in each file name (ID_RATING.txt): the archive holds 1-4 (negative) and 7-10 (positive).
TASKS = ("imdb", "imdb-rating")
RATING_CLASSES = ("1", "2", "3", "4", "7", "8", "9", "10")

_MEMBER = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")


def local_copy_hint() -> str:
    """What to do instead of downloading the IMDB archive."""
    return (
        f"point $SEQSHAP_IMDB (or --imdb PATH) at a local copy of {OFFICIAL_NAME} or {SHIPPED_NAME}, "
        f"or put one in {cache_dir()}"
    )


def _reason(url: str, e: BaseException) -> str:
    """The network error in words, naming the proxy when one is set (a wrong proxy is a common cause)."""
    if isinstance(e, urllib.error.HTTPError):
        why = f"HTTP {e.code} {e.reason}"
    elif isinstance(e, urllib.error.URLError):
        why = str(e.reason)
    else:
        why = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    proxy = urllib.request.getproxies().get(url.split(":", 1)[0].lower())
    return f"{why} (through the proxy {proxy})" if proxy else why


@dataclass(frozen=True)
class Split:
    """One split: ``texts[i]`` with class index ``labels[i]`` and star ``ratings[i]`` (-1 when
    unknown). ``classes`` names the classes in index order; ``None`` means the two sentiment
    classes (0 negative, 1 positive). Multi-label data (``read_labeled(multi_label=True)``) has
    multi-hot ``labels`` ``[n, classes]``, 1 where a label is on."""

    texts: list[str]
    labels: np.ndarray
    ratings: np.ndarray
    ids: list[str]
    classes: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def head(self, n: int) -> Split:
        return self.rows(slice(n))

    def rows(self, which: slice) -> Split:
        """The rows ``which`` selects, classes kept."""
        return Split(self.texts[which], self.labels[which], self.ratings[which], self.ids[which], self.classes)


def repo_data_dir() -> Path:
    return Path(__file__).resolve().parents[3] / "data"


def cache_dir() -> Path:
    return Path(os.environ.get("SEQSHAP_CACHE") or Path.home() / ".cache" / "seqshap")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, expected: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise ChecksumError(
            f"{path}: sha256 is {actual}, expected {expected} (the file is truncated, altered or not the IMDB archive)"
        )


def download(
    url: str, dest: Path, sha256: str, progress: bool = True, timeout: float = 60, what: str = "", instead: str = ""
) -> Path:
    """Download ``url`` to ``dest``: resumable (``dest.part`` + HTTP Range), checksummed,
    then renamed into place, so ``dest`` is either complete and verified or absent.
    A network failure is a :class:`DownloadError` naming ``what`` was fetched, ``url``, and
    what to do ``instead``."""
    dest = Path(dest)
    if dest.exists():
        verify(dest, sha256)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            if have and resp.status != 206:  # server ignored Range: start over
                have = 0
            total = resp.headers.get("Content-Length")
            total = int(total) + have if total is not None else None
            from tqdm import tqdm

            with (
                open(part, "ab" if have else "wb") as f,
                tqdm(
                    total=total,
                    initial=have,
                    unit="B",
                    unit_scale=True,
                    disable=not progress,
                    desc=f"download {dest.name}",
                ) as bar,
            ):
                while block := resp.read(1 << 16):
                    f.write(block)
                    bar.update(len(block))
    # network errors only: a full disk (a plain OSError from the write) keeps its own message
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as e:
        kept = f"; the {part.stat().st_size:,} bytes received are kept in {part} to resume" if part.exists() else ""
        raise DownloadError(
            f"cannot download {what or dest.name} from {url}: {_reason(url, e)}{kept}"
            + (f". {instead}" if instead else "")
        ) from None
    try:
        verify(part, sha256)
    except ChecksumError:
        part.unlink(missing_ok=True)  # a bad partial file must not poison the next resume
        raise
    os.replace(part, dest)
    return dest


def find_archive(path: str | Path | None = None, download_missing: bool = True, url: str = OFFICIAL_URL) -> Path:
    """Locate (and verify) an IMDB archive; see the module docstring for the order."""
    candidates = [Path(path)] if path else []
    if not path and os.environ.get("SEQSHAP_IMDB"):
        candidates.append(Path(os.environ["SEQSHAP_IMDB"]))
    if not path:
        repo = repo_data_dir()  # only in a checkout: an installed package has no repository around it
        candidates += [repo / SHIPPED_NAME] if (repo.parent / "pyproject.toml").exists() else []
        candidates += [cache_dir() / SHIPPED_NAME, cache_dir() / OFFICIAL_NAME]
    for cand in candidates:
        if cand.exists():
            expected = KNOWN_SHA256.get(cand.name)
            if expected:
                verify(cand, expected)
            return cand
    if path:
        raise FileNotFoundError(f"IMDB archive not found: {path}")
    if not download_missing:
        raise FileNotFoundError(
            "IMDB archive not found (looked in: " + ", ".join(map(str, candidates)) + f"); {local_copy_hint()}"
        )
    return download(
        url,
        cache_dir() / OFFICIAL_NAME,
        OFFICIAL_SHA256,
        what=f"the IMDB reviews ({OFFICIAL_NAME}, about 80 MB; not found in " + ", ".join(map(str, candidates)) + ")",
        instead=f"To work offline, {local_copy_hint()}",
    )


def read_archive(path: Path) -> dict[str, Split]:
    """Read both labeled splits from an ``aclImdb`` tar.gz (official or labeled-only)."""
    rows: dict[str, list] = {"train": [], "test": []}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                m = _MEMBER.search(member.name)
                if not m or not member.isfile():
                    continue
                split, pol, rid, rating = m.groups()
                f = tar.extractfile(member)
                if f is None:  # a regular file always has contents; anything else is skipped
                    continue
                text = f.read().decode("utf-8")
                rows[split].append((f"{split}/{pol}/{rid}_{rating}", text, int(pol == "pos"), int(rating)))
    except (tarfile.TarError, EOFError, OSError) as e:
        raise ChecksumError(f"{path}: cannot read the archive ({e})") from None
    out = {}
    for split, items in rows.items():
        if not items:
            raise ValueError(f"{path}: no aclImdb/{split}/{{pos,neg}}/*.txt reviews inside")
        items.sort(key=lambda r: r[0])  # archive order is not guaranteed; fix it first
        order = np.random.RandomState(SHUFFLE_SEED).permutation(len(items))
        items = [items[i] for i in order]
        out[split] = Split(
            texts=[r[1] for r in items],
            labels=np.array([r[2] for r in items], dtype=np.int64),
            ratings=np.array([r[3] for r in items], dtype=np.int64),
            ids=[r[0] for r in items],
        )
    return out


def rating_split(split: Split) -> Split:
    """``split`` labelled by star rating: ``labels[i]`` indexes :data:`RATING_CLASSES`."""
    index = {int(c): i for i, c in enumerate(RATING_CLASSES)}
    labels = np.empty(len(split), dtype=np.int64)
    for i, r in enumerate(split.ratings.tolist()):
        if r not in index:
            raise ValueError(f"review {split.ids[i]} has rating {r}; the IMDB ratings are {', '.join(RATING_CLASSES)}")
        labels[i] = index[r]
    return Split(split.texts, labels, split.ratings, split.ids, RATING_CLASSES)


def load_task(task: str = "imdb", path: str | Path | None = None, download_missing: bool = True) -> dict[str, Split]:
    """:func:`load_imdb`'s splits labelled for ``task`` (one of :data:`TASKS`): sentiment, or
    the star rating (same reviews, same order)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    data = load_imdb(path, download_missing=download_missing)
    if task == "imdb":
        return data
    return {name: rating_split(split) for name, split in data.items()}


_CACHE: dict[tuple, dict[str, Split]] = {}


def load_imdb(path: str | Path | None = None, download_missing: bool = True) -> dict[str, Split]:
    """``{"train": Split, "test": Split}``, 25,000 each for the real dataset, shuffled with
    Keras' seed 113. Cached in memory per archive path and mtime."""
    archive = find_archive(path, download_missing=download_missing)
    key = (str(archive.resolve()), archive.stat().st_mtime_ns)
    if key not in _CACHE:
        _CACHE[key] = read_archive(archive)
    return _CACHE[key]
