"""Model directory: ``config.json`` + ``vocab.json`` + ``model.safetensors`` (+ ``metrics.json``).

Every file is written atomically (temp file in the same folder, then rename), and
loading checks everything it can before torch sees a tensor, so a broken directory
gives one clear sentence instead of a traceback from deep inside torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import atomic
from .data.hf_tokenizer import HFTokenizer
from .data.tokenize import Encoding
from .data.vocab import Vocab, check_ids
from .models import build_model

CONFIG, VOCAB, WEIGHTS, METRICS = "config.json", "vocab.json", "model.safetensors", "metrics.json"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "default_model"
DEFAULT_CLASSES = ("negative", "positive")  # labels 0 and 1 of a two-class model


class ModelLoadError(RuntimeError):
    """A model directory is missing, corrupt or inconsistent."""


def save_weights(path: Path, net: nn.Module) -> None:
    from safetensors.torch import save

    state = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    atomic.write_bytes(path, save(state))


class SeqshapModel:
    """A trained classifier with its vocabulary: ``.net`` (the ``nn.Module``),
    ``.encode(texts) -> LongTensor [n, maxlen]``, ``.predict(texts) -> float64 [n]``.

    ``vocab`` is the native word vocabulary, or for a Hugging Face model its subword tokenizer
    (:class:`~seqshap.data.hf_tokenizer.HFTokenizer`) behind the same interface."""

    def __init__(
        self,
        net: nn.Module,
        vocab: Vocab | HFTokenizer,
        config: dict,
        metrics: dict | None = None,
        path: Path | None = None,
    ):
        self.net, self.vocab, self.config = net, vocab, config
        self.metrics = metrics or {}
        self.path = path
        self.maxlen = int(config["maxlen"])
        self.name = config.get("name") or config["arch"]

    def __repr__(self) -> str:
        return f"SeqshapModel(name={self.name!r}, arch={self.config['arch']!r}, maxlen={self.maxlen})"

    def encode(self, texts: list[str]) -> torch.Tensor:
        if isinstance(texts, str):
            texts = [texts]
        return torch.from_numpy(self.vocab.encode(list(texts), self.maxlen))

    def encodings(self, texts: list[str]) -> list[Encoding]:
        """Each text as the model reads it, with the span of text behind every position."""
        if isinstance(texts, str):
            texts = [texts]
        return self.vocab.encodings(list(texts), self.maxlen)

    def tokens(self, ids) -> list[str]:
        return self.vocab.tokens(ids)

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names in label order (a one-output sigmoid model explains the last one)."""
        return tuple(self.config.get("classes") or DEFAULT_CLASSES)

    @torch.no_grad()
    def predict_ids(self, ids: torch.Tensor, batch_size: int = 512) -> np.ndarray:
        """Positive-class probability for ids ``[n, T]`` -> ``[n]`` (class 1 of a two-class
        softmax model; every class's probability ``[n, classes]`` for more classes)."""
        ids = torch.as_tensor(ids)
        check_ids(ids, self.vocab.num_words)
        self.net.eval()
        out = [self.net(ids[i : i + batch_size]) for i in range(0, len(ids), batch_size)]
        if not out:
            return np.zeros(0)
        probs = torch.cat(out).double()
        return probs[:, -1].numpy() if probs.shape[1] <= 2 else probs.numpy()

    def predict(self, texts: list[str]) -> np.ndarray:
        return self.predict_ids(self.encode(texts))

    def save(self, directory: str | Path) -> Path:
        if isinstance(self.vocab, HFTokenizer):
            self.vocab.save(directory)  # raises: transformers' save_pretrained writes those
        return save_model(directory, self.net, self.vocab, self.config, self.metrics)


def save_model(directory: str | Path, net: nn.Module, vocab: Vocab, config: dict, metrics: dict | None = None) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_weights(directory / WEIGHTS, net)
    vocab.save(directory / VOCAB)
    atomic.write_json(directory / CONFIG, config)
    if metrics is not None:
        atomic.write_json(directory / METRICS, metrics)
    return directory


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"{path.parent}: missing {path.name}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelLoadError(f"{path}: not valid JSON ({e})") from None


def load(path: str | Path | None = None) -> SeqshapModel:
    """Load a model directory; no path loads the shipped default model. A Hugging Face
    directory (``config.json`` with ``architectures``) loads with its own tokenizer."""
    directory = Path(path) if path is not None else DEFAULT_MODEL_DIR
    if not directory.is_dir():
        raise ModelLoadError(f"{directory}: not a model directory (expected {CONFIG}, {VOCAB}, {WEIGHTS})")
    from .models.hf import is_hf_directory

    if is_hf_directory(directory):
        return _load_hf(directory)
    config = _read_json(directory / CONFIG)
    try:
        vocab = Vocab.from_json(_read_json(directory / VOCAB))
    except ValueError as e:
        raise ModelLoadError(f"{directory / VOCAB}: {e}") from None
    metrics = _read_json(directory / METRICS) if (directory / METRICS).exists() else {}
    if not isinstance(config, dict) or "arch" not in config or "maxlen" not in config:
        raise ModelLoadError(f"{directory / CONFIG}: needs at least 'arch' and 'maxlen'")
    try:
        net = build_model(config["arch"], **config.get("model", {}))
    except (TypeError, ValueError) as e:
        raise ModelLoadError(f"{directory / CONFIG}: cannot build the model ({e})") from None
    emb = getattr(net, "embedding", None)
    if emb is not None and emb.num_embeddings != vocab.num_words:
        raise ModelLoadError(
            f"{directory}: vocabulary has {vocab.num_words} ids but the model's embedding has {emb.num_embeddings} rows"
        )
    weights = directory / WEIGHTS
    if not weights.exists():
        raise ModelLoadError(f"{directory}: missing {WEIGHTS}")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        raise ModelLoadError(f"{weights}: corrupt or truncated safetensors file ({e})") from None
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise ModelLoadError(
            f"{weights}: tensors do not match architecture {config['arch']!r} "
            f"(missing {missing[:4]}, unexpected {extra[:4]})"
        )
    for name, t in state.items():
        if tuple(t.shape) != tuple(expected[name].shape):
            raise ModelLoadError(
                f"{weights}: tensor {name!r} has shape {tuple(t.shape)}, the config says {tuple(expected[name].shape)}"
            )
    net.load_state_dict(state)
    net.eval()
    return SeqshapModel(net, vocab, config, metrics, directory)


def _load_hf(directory: Path) -> SeqshapModel:
    """A saved ``transformers`` sequence classifier, offline, weights from safetensors only."""
    from .models.hf import HFLoadError, load_pretrained

    try:
        net, tokenizer, config = load_pretrained(directory)
    except HFLoadError as e:
        raise ModelLoadError(str(e)) from None
    metrics = _read_json(directory / METRICS) if (directory / METRICS).exists() else {}
    return SeqshapModel(net, tokenizer, config, metrics, directory)
