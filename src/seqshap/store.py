"""Model directory: ``config.json`` + ``vocab.json`` + ``model.safetensors`` (+ ``metrics.json``,
+ ``background.json``: the model's default DeepSHAP background texts, see :mod:`seqshap.background`).

Every file is written atomically (temp file in the same folder, then rename), and
loading checks everything it can before torch sees a tensor, so a broken directory
gives one clear sentence instead of a traceback from deep inside torch. Nothing is
allocated from a number in ``config.json`` before the weights file's header (read
without loading a tensor) confirms it: a crafted config cannot make seqshap allocate
more than the weights file itself holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from . import atomic, safe_files
from .data.hf_tokenizer import HFTokenizer
from .data.labels import DEFAULT_CLASSES
from .data.pairs import PAIR_SEP
from .data.tokenize import Encoding
from .data.vocab import Vocab, check_ids
from .errors import ModelLoadError
from .models import TRAINABLE, build_model, torch_code
from .models.keras.text import SCHEME as TEXT_VECTORIZATION
from .models.keras.text import TextVectorizer

CONFIG, VOCAB, WEIGHTS, METRICS = "config.json", "vocab.json", "model.safetensors", "metrics.json"
BACKGROUND = "background.json"
# Caps on a model directory's JSON, checked before a byte is read: parsed, JSON takes up to ~25 times
# its size in memory (a list of empty objects), and a run must stay under 500 MB. A trained model's
# config.json and metrics.json hold a few kB, its vocab.json ~20 bytes a word (400 kB for 20,000
# words), its background.json ~1.3 kB a review (55 kB for the shipped 100).
MAX_CONFIG_BYTES = 2**20
MAX_VOCAB_BYTES = 8 * 2**20
MAX_BACKGROUND_BYTES = 4 * 2**20  # background.json, read whole
MAX_TEXT_CHARS = 50_000  # one background text (the longest IMDB review has 13,704 characters)
MAX_BACKGROUND_TEXTS = 10_000  # DeepSHAP runs the model once per background text and input
MAX_BACKGROUND_CHARS = 8_000_000  # all the background texts together
ENCODE_CHARS = 100_000  # characters tokenized in one call (see _chunks)
MAX_HEADER_BYTES = 16 * 2**20  # a safetensors header (~100 bytes a tensor): parsed before any check
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "default_model"
MAX_MAXLEN = 100_000  # tokens a model reads per text; encoding allocates [n, maxlen], so more is refused
MAX_SIZE = 2**31 - 1  # any size in config.json's "model" settings
MAX_COUNT = 1024  # layers or heads: each is a module built before a shape can be checked


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

    def _one_text_each(self, texts: list[str]) -> None:
        if not getattr(self.vocab, "reads_pairs", False):
            at = next((i for i, t in enumerate(texts) if isinstance(t, str) and PAIR_SEP in t), None)
            if at is not None:
                raise ValueError(
                    f"text {at} is a sentence pair; {self.name} reads one text at a time "
                    f"(pairs are for Hugging Face models trained on them)"
                )

    def encode(self, texts: list[str]) -> torch.Tensor:
        """Texts -> ids ``[n, maxlen]``, tokenized a bounded number of characters at a time."""
        if isinstance(texts, str):
            texts = [texts]
        self._one_text_each(texts)
        parts = [self.vocab.encode(chunk, self.maxlen) for chunk in _chunks(list(texts))]
        return torch.from_numpy(np.concatenate(parts) if parts else np.zeros((0, self.maxlen), dtype=np.int64))

    def encodings(self, texts: list[str]) -> list[Encoding]:
        """Each text as the model reads it, with the span of text behind every position."""
        if isinstance(texts, str):
            texts = [texts]
        self._one_text_each(texts)
        return [e for chunk in _chunks(list(texts)) for e in self.vocab.encodings(chunk, self.maxlen)]

    def tokens(self, ids) -> list[str]:
        return self.vocab.tokens(ids)

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names in label order (a one-output sigmoid model explains the last one)."""
        return tuple(self.config.get("classes") or DEFAULT_CLASSES)

    @property
    def multi_label(self) -> bool:
        """Is each class a label of its own (a sigmoid per label, any number of them on at once)?"""
        return bool(self.config.get("multi_label"))

    @torch.no_grad()
    def predict_ids(self, ids: torch.Tensor, batch_size: int = 512) -> np.ndarray:
        """Positive-class probability for ids ``[n, T]`` -> ``[n]`` (class 1 of a two-class
        softmax model; every class's probability ``[n, classes]`` for more classes, and every
        label's for a multi-label model)."""
        ids = torch.as_tensor(ids)
        check_ids(ids, self.vocab.num_words)
        self.net.eval()
        out = [self.net(ids[i : i + batch_size]) for i in range(0, len(ids), batch_size)]
        if not out:
            return np.zeros(0)
        probs = torch.cat(out).double()
        return probs[:, -1].numpy() if probs.shape[1] <= 2 and not self.multi_label else probs.numpy()

    def predict(self, texts: list[str]) -> np.ndarray:
        return self.predict_ids(self.encode(texts))

    def save(self, directory: str | Path) -> Path:
        if isinstance(self.vocab, HFTokenizer):
            self.vocab.save(directory)  # raises: transformers' save_pretrained writes those
        return save_model(directory, self.net, self.vocab, self.config, self.metrics)


def _chunks(texts: list[str]) -> list[list[str]]:
    """``texts`` in consecutive groups of at most :data:`ENCODE_CHARS` characters (a longer text
    alone): a tokenizer holds every token of a call before truncating to maxlen, ~600 bytes a token
    for a Hugging Face fast tokenizer, so a call's memory follows its characters, not its texts."""
    chunks: list[list[str]] = []
    size = 0
    for text in texts:
        if not chunks or size + len(text) > ENCODE_CHARS:
            chunks.append([])
            size = 0
        chunks[-1].append(text)
        size += len(text)
    return chunks


def save_model(directory: str | Path, net: nn.Module, vocab: Vocab, config: dict, metrics: dict | None = None) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_weights(directory / WEIGHTS, net)
    vocab.save(directory / VOCAB)
    atomic.write_json(directory / CONFIG, config)
    if metrics is not None:
        atomic.write_json(directory / METRICS, metrics)
    return directory


def _read_json(path: Path, limit: int = MAX_CONFIG_BYTES, what: str | None = None) -> Any:
    """A model directory's JSON file: a regular file of the directory (a link may point only inside
    it), at most ``limit`` bytes, nested a bounded depth; :class:`ModelLoadError` naming it otherwise."""
    if not (path.exists() or path.is_symlink()):
        raise ModelLoadError(f"{path.parent}: missing {path.name}")
    return safe_files.read_json(path, limit, what or f"a {path.name}", root=path.parent, error=ModelLoadError)


def load(path: str | Path | None = None, code: str | Path | None = None) -> SeqshapModel:
    """Load a model directory; no path loads the shipped default model. A Hugging Face
    directory (``config.json`` with ``architectures``) loads with its own tokenizer. A directory of
    a user's own PyTorch model (``seqshap import-torch``) needs its Python file named by ``code``:
    seqshap runs no code from a model directory on its own."""
    directory = Path(path) if path is not None else DEFAULT_MODEL_DIR
    if not directory.is_dir():
        raise ModelLoadError(f"{directory}: not a model directory (expected {CONFIG}, {VOCAB}, {WEIGHTS})")
    config = _read_json(directory / CONFIG)
    if isinstance(config, dict) and "architectures" in config and "arch" not in config:  # Hugging Face
        del config  # read again, with the rest of the directory, by models.hf
        return _load_hf(directory)
    config = _check_config(directory / CONFIG, config)
    if config["arch"] == torch_code.ARCH:
        return _load_torch(directory, config, code)
    try:
        raw = _read_json(directory / VOCAB, MAX_VOCAB_BYTES)
        is_tv = isinstance(raw, dict) and raw.get("scheme") == TEXT_VECTORIZATION  # an imported Keras TextVectorization
        vocab = TextVectorizer.from_json(raw) if is_tv else Vocab.from_json(raw)
    except ValueError as e:
        raise ModelLoadError(f"{directory / VOCAB}: {e}") from None
    metrics = _read_metrics(directory)
    weights = directory / WEIGHTS
    if not (weights.exists() or weights.is_symlink()):
        raise ModelLoadError(f"{directory}: missing {WEIGHTS}")
    safe_files.check_regular_file(weights, None, WEIGHTS, root=directory, error=ModelLoadError)
    expected = _shapes(directory / CONFIG, config)
    emb_rows = expected.get("embedding.weight", (None,))[0]
    if emb_rows is not None and emb_rows != vocab.num_words:
        raise ModelLoadError(
            f"{directory}: vocabulary has {vocab.num_words} ids but the model's embedding has {emb_rows} rows "
            f"({VOCAB} 'num_words' against {CONFIG} 'model.vocab_size')"
        )
    _check_shapes(weights, directory / CONFIG, config, expected, _header_shapes(weights))
    net = _build(directory / CONFIG, config)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        raise ModelLoadError(f"{weights}: corrupt or truncated safetensors file ({e})") from None
    net.load_state_dict(state)
    net.eval()
    return SeqshapModel(net, vocab, config, metrics, directory)


def read_background(directory: str | Path) -> tuple[list[str], str] | None:
    """``(texts, source)`` from the model directory's ``background.json`` (``{"source": str,
    "texts": [str, ...]}``), or None when it has none."""
    path = Path(directory) / BACKGROUND
    if not (path.exists() or path.is_symlink()):
        return None
    record = _read_json(path, MAX_BACKGROUND_BYTES, "a background")
    if not isinstance(record, dict):
        raise ModelLoadError(f"{path}: expected a JSON object, got {_json_kind(record)}")
    texts, source = record.get("texts"), record.get("source", f"the background texts in {path}")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise ModelLoadError(f"{path}: 'texts' must be a non-empty list of strings")
    if not isinstance(source, str):
        raise ModelLoadError(f"{path}: 'source' must be a string, got {_json_kind(source)}")
    if len(texts) > MAX_BACKGROUND_TEXTS:
        raise ModelLoadError(f"{path}: {len(texts):,} texts; a background holds at most {MAX_BACKGROUND_TEXTS:,}")
    for i, text in enumerate(texts):
        if len(text) > MAX_TEXT_CHARS:
            raise ModelLoadError(
                f"{path}: text {i} has {len(text):,} characters; a background text may hold at most {MAX_TEXT_CHARS:,}"
            )
    if (total := sum(map(len, texts))) > MAX_BACKGROUND_CHARS:
        raise ModelLoadError(
            f"{path}: its texts hold {total:,} characters; a background holds at most {MAX_BACKGROUND_CHARS:,}"
        )
    return texts, source


def _read_metrics(directory: Path) -> dict:
    path = directory / METRICS
    metrics = _read_json(path) if path.exists() or path.is_symlink() else {}
    if not isinstance(metrics, dict):
        raise ModelLoadError(f"{path}: expected a JSON object, got {_json_kind(metrics)}")
    return metrics


def _json_kind(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(
        type(v), "a number"
    )


def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_config(path: Path, config: Any) -> dict:
    """``config.json`` checked field by field before anything is built from it."""
    if not isinstance(config, dict):
        raise ModelLoadError(f"{path}: expected a JSON object, got {_json_kind(config)}")
    if "arch" not in config or "maxlen" not in config:
        raise ModelLoadError(f"{path}: needs at least 'arch' and 'maxlen'")
    if not isinstance(config["arch"], str):
        raise ModelLoadError(f"{path}: 'arch' must be a string, got {_json_kind(config['arch'])}")
    maxlen = config["maxlen"]
    if not _whole(maxlen) or not 1 <= maxlen <= MAX_MAXLEN:
        raise ModelLoadError(f"{path}: 'maxlen' must be a whole number from 1 to {MAX_MAXLEN:,}, got {maxlen!r}")
    settings = config.get("model", {})
    if not isinstance(settings, dict):
        raise ModelLoadError(
            f"{path}: 'model' must be a JSON object of the architecture's settings, got {_json_kind(settings)}"
        )
    for key, v in settings.items():
        if _whole(v) and not 0 <= v <= MAX_SIZE:
            raise ModelLoadError(f"{path}: 'model.{key}' must be a whole number from 0 to {MAX_SIZE:,}, got {v!r}")
        if _whole(v) and key in ("layers", "num_layers", "heads") and v > MAX_COUNT:
            raise ModelLoadError(f"{path}: 'model.{key}' is {v:,}; at most {MAX_COUNT:,} are supported")
    classes = config.get("classes")
    if classes is not None and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise ModelLoadError(f"{path}: 'classes' must be a list of class names, got {_json_kind(classes)}")
    multi = settings.get("multi_label", False)
    if not isinstance(multi, bool):
        raise ModelLoadError(f"{path}: 'model.multi_label' must be true or false, got {_json_kind(multi)}")
    if config["arch"] in TRAINABLE and multi != bool(config.get("multi_label", False)):
        raise ModelLoadError(
            f"{path}: 'model.multi_label' ({multi!r}) and 'multi_label' ({config.get('multi_label')!r}) must both be "
            "true for a multi-label model (a sigmoid per label) and false, or left out, otherwise"
        )
    outputs = settings.get("outputs", 1)
    if classes is not None and config["arch"] in TRAINABLE and _whole(outputs):
        # one sigmoid output is two classes; a multi-label model has one output per label
        want = 2 if outputs == 1 and not multi else outputs
        if len(classes) != want:
            raise ModelLoadError(
                f"{path}: 'classes' names {len(classes)} classes, but the model has {outputs} output(s), "
                f"that is {want} classes ('model.outputs')"
            )
    return config


def _build(path: Path, config: dict) -> nn.Module:
    try:
        return build_model(config["arch"], **config.get("model", {}))
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, RuntimeError) as e:
        raise ModelLoadError(f"{path}: cannot build the model ({type(e).__name__}: {e})") from None


# Random initialisation does nothing on the meta device but cost time (normal_ alone imports
# torch._dynamo there, seconds at every start): skipped while shapes are taken.
_INIT_OPS = frozenset(
    {"normal_", "uniform_", "trunc_normal_", "random_", "bernoulli_", "fill_", "zero_", "orthogonal_"}
    | {f"{k}_{d}_" for k in ("kaiming", "xavier") for d in ("uniform", "normal")}
)


class _SkipInit(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        t = args[0] if args else kwargs.get("tensor")
        if getattr(func, "__name__", "") in _INIT_OPS and isinstance(t, torch.Tensor) and t.is_meta:
            return t
        return func(*args, **kwargs)


def _shapes(path: Path, config: dict) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor the model ``config`` describes, built on the meta device:
    no memory, so a crafted size is caught by the comparison with the weights file, not by the allocator."""
    with torch.device("meta"), _SkipInit():
        return {k: tuple(v.shape) for k, v in _build(path, config).state_dict().items()}


def _header_shapes(weights: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from the safetensors header, without reading a tensor; a header over
    :data:`MAX_HEADER_BYTES` is refused before it is parsed."""
    from safetensors import SafetensorError, safe_open

    try:
        with weights.open("rb") as f:
            head = f.read(8)
    except OSError as e:
        raise ModelLoadError(f"{weights}: cannot read it ({e.strerror})") from None
    if len(head) == 8 and (size := int.from_bytes(head, "little")) > MAX_HEADER_BYTES:
        raise ModelLoadError(
            f"{weights}: a safetensors header of {size:,} bytes, more than the {MAX_HEADER_BYTES:,} seqshap reads "
            "(a corrupt or crafted file)"
        )
    try:
        with safe_open(str(weights), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        raise ModelLoadError(f"{weights}: corrupt or truncated safetensors file ({e})") from None


def _check_shapes(
    weights: Path, config_path: Path, config: dict, expected: dict[str, tuple], found: dict[str, tuple]
) -> None:
    """The weights file holds exactly the tensors ``config.json`` describes, shape for shape."""
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if missing or extra:
        raise ModelLoadError(
            f"{weights}: tensors do not match architecture {config['arch']!r} "
            f"(missing {missing[:4]}, unexpected {extra[:4]})"
        )
    for name, shape in found.items():
        if shape != expected[name]:
            settings = ", ".join(f"{k}={v}" for k, v in config.get("model", {}).items() if _whole(v))
            raise ModelLoadError(
                f"{weights}: tensor {name!r} has shape {shape}, but {config_path.name} "
                f"(arch {config['arch']!r}{', ' + settings if settings else ''}) makes it {expected[name]}"
            )


def _load_torch(directory: Path, config: dict, code: str | Path | None) -> SeqshapModel:
    """A user's own PyTorch model: their code (named by the caller, checked against the directory's
    record), built on the meta device and compared with the weights' header before it is built."""
    file, entry, kwargs = torch_code.check_code(directory, config, code)
    try:
        vocab = Vocab.from_json(_read_json(directory / VOCAB, MAX_VOCAB_BYTES))
    except ValueError as e:
        raise ModelLoadError(f"{directory / VOCAB}: {e}") from None
    weights = directory / WEIGHTS
    if not weights.exists():
        raise ModelLoadError(f"{directory}: missing {WEIGHTS}")
    with _SkipInit():
        expected = {k: tuple(v.shape) for k, v in torch_code.build(file, entry, kwargs, meta=True).state_dict().items()}
    config = {**config, "model": {}}  # the shapes come from the code, not from settings
    _check_shapes(weights, directory / CONFIG, config, expected, _header_shapes(weights))
    net = torch_code.build(file, entry, kwargs)
    from safetensors.torch import load_file

    net.load_state_dict(load_file(str(weights)))
    net.eval()
    return SeqshapModel(net, vocab, config, _read_metrics(directory), directory)


def _load_hf(directory: Path) -> SeqshapModel:
    """A saved ``transformers`` sequence classifier, offline, weights from safetensors only."""
    from .models.hf import HFLoadError, load_pretrained

    try:
        net, tokenizer, config = load_pretrained(directory)
    except HFLoadError as e:
        raise ModelLoadError(str(e)) from None
    return SeqshapModel(net, tokenizer, config, _read_metrics(directory), directory)
