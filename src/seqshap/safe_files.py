"""Reading files a user hands to seqshap as untrusted input: a model directory's JSON, a
background file, an index of weight shards.

Every read goes through the same three checks, so a crafted file can neither hang seqshap nor
make it allocate more than a cap:

- the path is a regular file (not a FIFO, a device, a directory), and when it lies in a model
  directory it is the directory's own file: a link may point only inside that directory;
- its size is checked before a byte is read, and no more than the cap is ever read (a file that
  grows meanwhile is caught by the read itself, not by an earlier ``stat``);
- JSON is parsed only after a scan of its brackets shows it is nested no deeper than a bound
  (Python's parser recurses once per level).

Opening uses ``O_NONBLOCK``: a FIFO swapped in after the check still cannot block the open.
Errors name the file and the problem in one line; ``error`` picks the class the caller raises.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UntrustedFileError

MAX_JSON_DEPTH = 64  # configs and tokenizers nest 2 to 7 levels; Python's parser recurses per level
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)
_CHUNK = 1 << 18
_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_STEP = np.zeros(256, dtype=np.int8)
_STEP[list(b"[{")] = 1
_STEP[list(b"]}")] = -1


def inside(directory: str | Path, path: str | Path) -> bool:
    """Does ``path``, every link followed, lie inside ``directory`` (its links followed too)?"""
    try:
        Path(path).resolve(strict=True).relative_to(Path(directory).resolve(strict=True))
    except (OSError, RuntimeError, ValueError):  # missing, a link loop (RuntimeError on 3.11), or outside
        return False
    return True


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def check_regular_file(
    path: str | Path,
    limit: int | None = None,
    what: str = "this file",
    *,
    root: str | Path | None = None,
    error: type[Exception] = UntrustedFileError,
) -> os.stat_result:
    """``path``'s ``stat`` when it is a regular file of at most ``limit`` bytes (and, with
    ``root``, lies inside ``root`` once its links are followed); else ``error`` naming why.
    ``stat`` never opens the file, so a FIFO cannot block here."""
    path = Path(path)
    if root is not None and path.is_symlink() and not inside(root, path):
        target = os.path.realpath(path)
        raise error(
            f"{path}: a link to {target}, outside {root}; seqshap reads only the directory's own files "
            "(copy the file itself in: cp -L)"
        )
    try:
        info = path.stat()
    except FileNotFoundError:
        raise error(f"{path}: no such file" if not path.is_symlink() else f"{path}: a link to nothing") from None
    except OSError as e:
        raise error(f"{path}: cannot read it ({e.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{path}: {_kind(info.st_mode)}, not a regular file; {what} must be a plain file")
    if limit is not None and info.st_size > limit:
        raise error(f"{path}: {info.st_size:,} bytes, more than the {limit:,} {what} may hold")
    return info


def read_bytes(
    path: str | Path,
    limit: int,
    what: str = "this file",
    *,
    root: str | Path | None = None,
    error: type[Exception] = UntrustedFileError,
) -> bytes:
    """The bytes of ``path``, checked by :func:`check_regular_file` and never more than ``limit``."""
    path = Path(path)
    check_regular_file(path, limit, what, root=root, error=error)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise error(f"{path}: cannot read it ({e.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if not stat.S_ISREG(mode):  # swapped after the check
            raise error(f"{path}: {_kind(mode)}, not a regular file; {what} must be a plain file")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise error(f"{path}: more than the {limit:,} bytes {what} may hold")
    return data


def json_depth(data: bytes | str) -> int:
    """How deep the arrays and objects of a JSON text nest, without parsing it: brackets are
    counted outside strings (a quote preceded by an odd run of backslashes is escaped). Runs over
    the bytes in chunks with numpy, so its memory stays a few MB whatever the text holds."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    codes = np.frombuffer(raw, np.uint8)
    deepest = depth = 0
    in_string = 0  # 1 while the text read so far ends inside a string
    backslashes = 0  # the run of backslashes the text read so far ends with
    for start in range(0, len(codes), _CHUNK):
        part = codes[start : start + _CHUNK]
        at = np.arange(len(part))
        last_other = np.maximum.accumulate(np.where(part == _BACKSLASH, -1, at))
        run = at - last_other + np.where(last_other < 0, backslashes, 0)  # backslashes ending at each byte
        before = np.concatenate(([backslashes], run[:-1]))  # ... ending just before it
        quote = (part == _QUOTE) & (before % 2 == 0)
        quotes = np.cumsum(quote, dtype=np.int64)
        outside = ((quotes - quote + in_string) & 1) == 0
        levels = np.cumsum(_STEP[part] * outside, dtype=np.int64) + depth
        deepest = max(deepest, int(levels.max()))
        depth = int(levels[-1])
        in_string = int(in_string + quotes[-1]) & 1
        backslashes = int(run[-1])
    return deepest


def loads(
    data: bytes | str,
    what: str | Path,
    *,
    max_depth: int = MAX_JSON_DEPTH,
    error: type[Exception] = UntrustedFileError,
) -> Any:
    """Parse JSON from UTF-8 ``data``, refusing it (``error``, message starting ``what: ``) when it
    nests deeper than ``max_depth``, is not UTF-8 or is not JSON."""
    if json_depth(data) > max_depth:
        raise error(
            f"{what}: JSON nested more than {max_depth} levels deep; not reading it (a corrupt or crafted file)"
        )
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as e:
        raise error(f"{what}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"{what}: not valid JSON ({e})") from None
    except RecursionError:  # the scan above bounds the depth; this is the parser's own guard
        raise error(f"{what}: JSON nested too deeply; not reading it (a corrupt or crafted file)") from None


def read_json(
    path: str | Path,
    limit: int,
    what: str = "this file",
    *,
    root: str | Path | None = None,
    max_depth: int = MAX_JSON_DEPTH,
    error: type[Exception] = UntrustedFileError,
) -> Any:
    """The JSON value in ``path``: a regular file (inside ``root`` if given) of at most ``limit``
    bytes, nested at most ``max_depth`` deep; ``error`` naming the file otherwise."""
    path = Path(path)
    return loads(read_bytes(path, limit, what, root=root, error=error), path, max_depth=max_depth, error=error)
