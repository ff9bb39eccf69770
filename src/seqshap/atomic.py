"""Atomic file writes: a temp file in the same folder, flushed to disk, then renamed into place.

A reader sees the old file or the new one, never half of one; a crash leaves at most a
hidden ``.NAME.*.tmp`` beside it. The file gets the permissions a plain ``open(path, "w")``
would give it (``0o666`` minus the umask), not ``mkstemp``'s private ``0o600``, so model
folders and reports can be shared and served.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    # Reading the umask means setting it; /proc avoids the (racy) set-and-restore where it can.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write(path: Path, fill: Callable[[IO[bytes]], Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    _write(Path(path), lambda f: f.write(data))
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON (UTF-8, a final newline) atomically. NaN and infinity are refused:
    they are not JSON, and a reader would choke on them later."""
    return write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False) + "\n")
