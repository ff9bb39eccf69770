"""``seqshap import-torch``: a user's own PyTorch classifier (their Python file, their weights) as a
model directory every command accepts.

The directory holds ``config.json`` (how to build the model: the file, the class or function,
its keyword arguments, the file's sha256), ``model.safetensors``, ``vocab.json`` and a copy of
the Python file. Loading it needs the code named again (``--code``): see
:mod:`seqshap.models.torch_code`.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import atomic
from .data.labels import DEFAULT_CLASSES
from .data.vocab import Vocab
from .errors import ModelLoadError
from .models import torch_code
from .store import CONFIG, VOCAB, WEIGHTS, SeqshapModel, load, save_weights

MAX_STATE_BYTES = 4 * 2**30  # a pickle-free checkpoint larger than this is not a text classifier's


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a ``torch.save``'d ``.pt``/``.pth`` (read with
    ``weights_only=True``: tensors only, no code), possibly wrapped in ``{"state_dict": ...}``."""
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such weights file")
    if path.stat().st_size > MAX_STATE_BYTES:
        raise ModelLoadError(f"{path}: larger than {MAX_STATE_BYTES:,} bytes")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, RuntimeError, ValueError) as e:
            raise ModelLoadError(f"{path}: corrupt or truncated safetensors file ({e})") from None
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError and friends for anything but plain tensors
        raise ModelLoadError(
            f"{path}: not a plain state dict ({type(e).__name__}); save it with "
            f"torch.save(model.state_dict(), path) or safetensors.torch.save_file(model.state_dict(), path)"
        ) from None
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"{path}: expected a state dict (name -> tensor)")
    return state


def _load_into(net: nn.Module, state: dict[str, torch.Tensor], weights: Path, where: str) -> None:
    mine = net.state_dict()
    missing, extra = sorted(set(mine) - set(state)), sorted(set(state) - set(mine))
    if missing or extra:
        raise ModelLoadError(f"{weights}: does not fit {where} (missing {missing[:4]}, unexpected {extra[:4]})")
    for k, v in state.items():
        if tuple(v.shape) != tuple(mine[k].shape):
            raise ModelLoadError(
                f"{weights}: tensor {k!r} has shape {tuple(v.shape)}, {where} has {tuple(mine[k].shape)}"
            )
    net.load_state_dict(state)


def _classes(net: nn.Module, vocab: Vocab, maxlen: int, classes: Sequence[str] | None) -> list[str]:
    with torch.no_grad():
        out = net.eval()(torch.from_numpy(vocab.encode(["a short text", "another"], maxlen)))
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelLoadError(f"the model returns {shape} for ids [2, {maxlen}]; seqshap needs [batch, outputs]")
    columns = out.shape[1]
    if classes is None:
        return list(DEFAULT_CLASSES) if columns <= 2 else [f"class_{i}" for i in range(columns)]
    want = 2 if columns == 1 else columns
    if len(classes) != want:
        raise ModelLoadError(f"the model has {columns} output(s), that is {want} classes; {len(classes)} names given")
    return list(classes)


def import_torch(
    entry: str,
    weights: str | Path,
    out: str | Path,
    vocab: str | Path | Vocab,
    maxlen: int = 80,
    kwargs: dict[str, Any] | None = None,
    classes: Sequence[str] | None = None,
    name: str | None = None,
    overwrite: bool = False,
) -> SeqshapModel:
    """Write the model directory ``out`` for the model ``entry`` (``"file.py:ClassName"``) with the
    weights ``weights`` and the vocabulary ``vocab`` (a seqshap ``vocab.json``, or a :class:`Vocab`);
    returns it loaded back (with its code). Refuses an ``out`` that holds a model unless ``overwrite``."""
    file, entry_name = torch_code.parse_entry(entry)
    kwargs = dict(kwargs or {})
    out = Path(out)
    if (out / CONFIG).exists() and not overwrite:
        raise ModelLoadError(f"{out} already holds a model; choose another --out or pass --overwrite")
    if not 1 <= maxlen <= 100_000:
        raise ModelLoadError(f"--maxlen must be from 1 to 100,000, got {maxlen}")
    if isinstance(vocab, Vocab):
        words = vocab
    else:
        try:
            words = Vocab.from_json(json.loads(Path(vocab).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ModelLoadError(f"{vocab}: not a seqshap vocab.json ({e})") from None
    net = torch_code.build(file, entry_name, kwargs)
    _load_into(net, read_state(Path(weights)), Path(weights), f"{file.name}:{entry_name}")
    names = _classes(net, words, maxlen, classes)
    out.mkdir(parents=True, exist_ok=True)
    code_copy = out / file.name
    if code_copy.resolve() != file.resolve():
        shutil.copyfile(file, code_copy)
    save_weights(out / WEIGHTS, net)
    words.save(out / VOCAB)
    config = {
        "arch": torch_code.ARCH,
        "name": name or file.stem,
        "maxlen": int(maxlen),
        "classes": names,
        "output_space": "probability",
        "source": "torch",
        "code": {"file": file.name, "entry": entry_name, "kwargs": kwargs, "sha256": torch_code.sha256(file)},
    }
    atomic.write_json(out / CONFIG, config)  # last: the directory is a model once this exists
    return load(out, code=code_copy)
