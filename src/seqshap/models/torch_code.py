"""A user's own PyTorch classifier, defined by the user's Python code, as a seqshap model directory.

The directory holds what seqshap trusts (``config.json``, the weights in ``model.safetensors``, the
vocabulary in ``vocab.json``) and a copy of the user's Python file. seqshap never runs code found
in a model directory on its own: loading one needs the code named by the person running seqshap
(``--code FILE`` on the command line, ``seqshap.load(DIR, code=FILE)`` in Python), and that file
must be byte for byte the one the directory was made with (``config.json`` records its sha256).

``config.json``'s ``"code"`` says how to build the model: ``{"file": "model.py", "entry":
"TextClassifier", "kwargs": {...}, "sha256": "..."}``; ``entry`` is a class (called with
``kwargs``) or a function returning an ``nn.Module``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ModelLoadError

ARCH = "torch"
MAX_CODE_BYTES = 4 * 2**20


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def parse_entry(spec: str) -> tuple[Path, str]:
    """``"path/model.py:ClassName"`` -> (path, name)."""
    file, sep, name = str(spec).rpartition(":")
    if not sep or not file or not name.isidentifier():
        raise ModelLoadError(f"{spec!r}: give the model as FILE.py:NAME (a class or a function in your Python file)")
    return Path(file), name


def import_entry(file: Path, name: str):
    """The object ``name`` of the user's Python ``file`` (which runs: the user named it)."""
    if not file.is_file():
        raise ModelLoadError(f"{file}: no such Python file")
    if file.stat().st_size > MAX_CODE_BYTES:
        raise ModelLoadError(f"{file}: larger than {MAX_CODE_BYTES:,} bytes; not a model definition")
    module_name = f"seqshap_user_model_{sha256(file)[:16]}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"{file}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling-free introspection look it up
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the user's code: any error is theirs, named as such
        del sys.modules[module_name]
        raise ModelLoadError(f"{file}: running it failed ({type(e).__name__}: {e})") from None
    entry = getattr(module, name, None)
    if entry is None or not callable(entry):
        found = sorted(n for n, v in vars(module).items() if inspect.isclass(v) and issubclass(v, nn.Module))
        raise ModelLoadError(f"{file}: defines no {name!r}; its nn.Module classes: {', '.join(found) or 'none'}")
    return entry


def build(file: Path, name: str, kwargs: dict[str, Any], meta: bool = False) -> nn.Module:
    """The user's model from their code, on the meta device with ``meta`` (shapes only)."""
    entry = import_entry(file, name)
    try:
        if meta:
            with torch.device("meta"):
                net = entry(**kwargs)
        else:
            net = entry(**kwargs)
    except Exception as e:
        raise ModelLoadError(f"{file}:{name}({_show(kwargs)}) failed: {type(e).__name__}: {e}") from None
    if not isinstance(net, nn.Module):
        raise ModelLoadError(f"{file}:{name}({_show(kwargs)}) returned {type(net).__name__}, not an nn.Module")
    return net


def _show(kwargs: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def check_code(directory: Path, config: dict, code: str | Path | None) -> tuple[Path, str, dict]:
    """(file, entry, kwargs) of a code directory, once the person running seqshap has named the
    code and it is the file the directory was made with."""
    spec = config.get("code")
    where = directory / "config.json"
    if not isinstance(spec, dict) or not all(isinstance(spec.get(k), str) for k in ("file", "entry", "sha256")):
        raise ModelLoadError(f"{where}: 'code' must be an object with 'file', 'entry' and 'sha256'")
    kwargs = spec.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise ModelLoadError(f"{where}: 'code.kwargs' must be a JSON object")
    shipped = directory / Path(spec["file"]).name
    if code is None:
        raise ModelLoadError(
            f"{directory} holds a PyTorch model defined by Python code ({shipped.name}); seqshap runs no code from "
            f"a model directory on its own. Name the code to run it: --code {shipped} "
            f"(Python: seqshap.load({str(directory)!r}, code={str(shipped)!r}))"
        )
    path = Path(code)
    if not path.is_file():
        raise ModelLoadError(f"--code {path}: no such file")
    if sha256(path) != spec["sha256"]:
        raise ModelLoadError(
            f"--code {path}: not the code {directory.name} was made with (sha256 differs from {where}'s "
            f"{spec['sha256'][:12]}…); the weights belong to that code"
        )
    return path, spec["entry"], kwargs


__all__ = ["ARCH", "build", "check_code", "import_entry", "parse_entry", "sha256"]
