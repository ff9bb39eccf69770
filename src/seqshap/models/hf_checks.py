"""A Hugging Face model directory checked as untrusted input, before ``transformers`` reads it.

A directory is data, never code, and nothing in it may make seqshap allocate more than its
weights hold. :func:`check_directory` runs before ``transformers`` opens a file:

- every file ``transformers`` would read there (config, tokenizer, chat templates, the index of
  weight shards) is a regular file of the directory itself (no FIFO, no device, no link out of
  it), capped in size before a byte is read; its JSON is parsed with a depth bound;
- an ``auto_map`` (the key that makes ``transformers`` import Python code from the directory)
  is refused by file and key, so no prompt to run code is ever shown (``trust_remote_code=False``
  is passed as well);
- the weights are ``model.safetensors`` or the ``.safetensors`` shards its index names, inside
  the directory: never a ``.bin`` (a pickle) and never a path out of it.

:func:`check_config` bounds the sizes in ``config.json`` and checks the labels; :func:`check_shapes`
builds the model on the meta device (shapes, no memory) and compares every tensor with the
safetensors headers (read without loading a tensor): missing, unexpected and misshapen tensors
are refused by name before a weight is allocated. :data:`FILE_LIMITS` are the caps.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import safe_files
from ..errors import HFLoadError

WEIGHTS, WEIGHTS_INDEX = "model.safetensors", "model.safetensors.index.json"
# Parsed, JSON takes up to ~25 times its size in memory, and a run must stay under 500 MB (transformers
# and torch take ~400 MB of it): configs hold a few kB (tokenizer_config.json up to ~50 kB, with a chat
# template or many added tokens).
SMALL_JSON = 2**20
TINY_JSON = 64 * 2**10  # files a classifier's directory holds only by accident (a few hundred bytes when it does)
# The tokenizer's vocabulary: BERT-family tokenizer.json files hold 0.3 (English) to 2.9 MB (multilingual).
# transformers needs ~25 bytes of memory a byte of it: 4 MiB keeps a whole run under 500 MB.
VOCAB = 4 * 2**20
# The files transformers 5 reads from a saved classifier's directory (when they are there), and the cap of each.
FILE_LIMITS = {
    "config.json": SMALL_JSON,
    "tokenizer_config.json": SMALL_JSON // 2,
    "special_tokens_map.json": TINY_JSON,
    "added_tokens.json": SMALL_JSON // 4,
    "generation_config.json": TINY_JSON,
    "chat_template.json": TINY_JSON,
    "preprocessor_config.json": TINY_JSON,
    "processor_config.json": TINY_JSON,
    "adapter_config.json": TINY_JSON,
    WEIGHTS_INDEX: SMALL_JSON,
    "tokenizer.json": VOCAB,
    "vocab.json": VOCAB,
    "vocab.txt": VOCAB,
    "merges.txt": VOCAB,
    "tokenizer.model": VOCAB,
    "spiece.model": VOCAB,
    "sentencepiece.bpe.model": VOCAB,
    "tekken.json": VOCAB,
    "tiktoken.model": VOCAB,
    "chat_template.jinja": TINY_JSON,
}
TOKENIZER_KEYS = frozenset(
    {
        "version",
        "truncation",
        "padding",
        "added_tokens",
        "normalizer",
        "pre_tokenizer",
        "post_processor",
        "decoder",
        "model",
    }
)
MAX_TOKENIZER_SETTINGS = 10_000  # a BERT/RoBERTa tokenizer's settings hold under 100
KEPT = ("config.json", WEIGHTS_INDEX)  # the JSON seqshap reads itself; the rest is only checked
TOKENIZER_NAMES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "merges.txt")
TEMPLATES_DIR = "additional_chat_templates"  # transformers reads every *.jinja in it
MAX_TEMPLATES = 64
MAX_TOTAL_BYTES = 8 * 2**20  # all of the files above together
MAX_HEADER_BYTES = 16 * 2**20  # a safetensors header: ~100 bytes a tensor; BERT-base's is 20 kB
MAX_SHARDS = 1024
MAX_LAYERS = 256  # each is built (on the meta device) before its shapes can be compared
MAX_HEADS = 1024
MAX_SIZE = 2**31 - 1
# Per model kind: config.json field -> (what it is, the largest value allowed).
SIZES = {
    "bert": {
        "num_hidden_layers": MAX_LAYERS,
        "num_attention_heads": MAX_HEADS,
        "hidden_size": MAX_SIZE,
        "intermediate_size": MAX_SIZE,
        "vocab_size": MAX_SIZE,
        "max_position_embeddings": MAX_SIZE,
        "type_vocab_size": MAX_SIZE,
    },
    "distilbert": {
        "n_layers": MAX_LAYERS,
        "n_heads": MAX_HEADS,
        "dim": MAX_SIZE,
        "hidden_dim": MAX_SIZE,
        "vocab_size": MAX_SIZE,
        "max_position_embeddings": MAX_SIZE,
    },
}
SIZES["roberta"] = SIZES["bert"]
HIDDEN = {"bert": ("hidden_size", "num_attention_heads"), "roberta": ("hidden_size", "num_attention_heads")}
HIDDEN["distilbert"] = ("dim", "n_heads")
LAYERS = {"bert": "num_hidden_layers", "roberta": "num_hidden_layers", "distilbert": "n_layers"}
# Any other model type: every whole-number size field of config.json is bounded by its name.
_LAYER_FIELD = re.compile(r"(^|_)(n_)?(hidden_)?layers?$|^num_hidden_layers$|^n_layer$")
_HEADS_FIELD = re.compile(r"(^|_)(n_)?(attention_|key_value_)?heads?$|^n_head$")
_SIZE_FIELD = re.compile(r"size|dim|positions|vocab|n_embd|n_inner|n_ctx|intermediate|layers?$|heads?$|window|buckets")
# Buffers a model builds beside its weights (rotary tables, causal masks, position ids) are not in
# the checkpoint, so their sizes come from config.json alone: 2**28 numbers (1 GiB in float32) at most.
MAX_BUFFER_NUMBERS = 2**28
_SHARD_NAME = re.compile(r"[^/\\\x00]+\.safetensors")
_LAYER_INDEX = re.compile(r"\.(?:layer|layers|h|blocks?)\.(\d+)\.")
# transformers renames these (old TensorFlow-converted checkpoints) when it loads them.
_LEGACY_NAMES = (
    (re.compile(r"LayerNorm\.gamma$"), "LayerNorm.weight"),
    (re.compile(r"LayerNorm\.beta$"), "LayerNorm.bias"),
)


@dataclass
class Directory:
    """What :func:`check_directory` read: the parsed JSON files by name, and the weight files."""

    path: Path
    json: dict[str, Any] = field(default_factory=dict)  # config.json and the index, parsed
    tokens: int | None = None  # how many tokens tokenizer.json defines (its largest id + 1)
    weights: list[Path] = field(default_factory=list)
    weight_map: dict[str, str] | None = None  # tensor -> shard file name, for a sharded checkpoint


def check_directory(directory: Path) -> Directory:
    """Check every file transformers would read in ``directory`` (see the module docstring), all
    sizes before any is read; keep ``config.json`` and the index parsed. Raises
    :class:`~seqshap.errors.HFLoadError` naming the file and the problem."""
    found = Directory(directory)
    present = []
    total = 0
    for name, limit in FILE_LIMITS.items():
        path = directory / name
        if path.exists() or path.is_symlink():
            total += safe_files.check_regular_file(path, limit, name, root=directory, error=HFLoadError).st_size
            present.append((name, path, limit))
    templates = directory / TEMPLATES_DIR
    if templates.is_symlink() or templates.exists():
        if templates.is_symlink() or not templates.is_dir():
            raise HFLoadError(f"{templates}: not a plain directory (transformers reads the chat templates in it)")
        jinja = sorted(templates.glob("*.jinja"))
        if len(jinja) > MAX_TEMPLATES:
            raise HFLoadError(f"{templates}: {len(jinja):,} chat templates; at most {MAX_TEMPLATES} are read")
        for path in jinja:
            info = safe_files.check_regular_file(path, SMALL_JSON, "a chat template", root=directory, error=HFLoadError)
            total += info.st_size
    if total > MAX_TOTAL_BYTES:
        raise HFLoadError(
            f"{directory}: its configuration and tokenizer files hold {total:,} bytes, more than the "
            f"{MAX_TOTAL_BYTES:,} seqshap reads"
        )
    for name, path, limit in present:
        if not name.endswith(".json"):
            continue
        value = safe_files.read_json(path, limit, name, root=directory, error=HFLoadError)
        if isinstance(value, dict) and "auto_map" in value:
            raise HFLoadError(
                f"{path}: has 'auto_map', which makes transformers run Python code from the directory; "
                "seqshap never runs code from a model directory (remove the key to load the built-in class)"
            )
        if name == "tokenizer.json":
            found.tokens = _tokenizer_tokens(path, value)
        elif name in KEPT:
            found.json[name] = value
        del value  # parsed JSON takes many times its size; only config.json and the index are kept
    _check_weight_files(found)
    return found


def _tokenizer_tokens(path: Path, value: Any) -> int:
    """The number of tokens a parsed ``tokenizer.json`` defines, after checking it has the shape
    the ``tokenizers`` library writes: only the vocabulary, the merges and the added tokens may be
    large (memory then follows the number of tokens, which the embedding bounds); the settings
    around them hold at most :data:`MAX_TOKENIZER_SETTINGS` values. :class:`HFLoadError` names
    what is wrong where transformers would trip over it (``KeyError: 'added_tokens'`` says nothing)."""
    problem = _tokenizer_problem(value)
    if problem is not None:
        raise HFLoadError(
            f"{path}: {problem}; not a tokenizer file the tokenizers library wrote "
            "(save it again: tokenizer.save_pretrained(dir))"
        )
    model, added = value["model"], value["added_tokens"]
    vocab, merges = model.get("vocab"), model.get("merges")
    count = len(vocab) if isinstance(vocab, list) else max(vocab.values(), default=-1) + 1 if vocab else 0
    if merges and len(merges) > count:  # each BPE merge makes one token of the vocabulary
        raise HFLoadError(
            f"{path}: {len(merges):,} merges for a vocabulary of {count:,} tokens (a corrupt or crafted file)"
        )
    return max([count, *(int(t["id"]) + 1 for t in added)])


def _tokenizer_problem(value: Any) -> str | None:
    if not isinstance(value, dict):
        return f"expected a JSON object, got {type(value).__name__}"
    unknown = sorted(set(value) - TOKENIZER_KEYS)
    if unknown:
        return f"unknown key {unknown[0]!r}"
    model, added = value.get("model"), value.get("added_tokens")
    if not isinstance(model, dict) or not isinstance(model.get("type", ""), str):
        return "no 'model' object (the vocabulary and its algorithm)"
    if not isinstance(added, list):
        return "no 'added_tokens' list"
    for i, token in enumerate(added):
        if (
            not isinstance(token, dict)
            or not _whole(token.get("id"))
            or not isinstance(token.get("content"), str)
            or not all(isinstance(v, str | int | float | bool) for v in token.values())
        ):
            return f"'added_tokens' item {i} is not an object with an integer 'id', a string 'content' and flags"
    vocab, merges = model.get("vocab"), model.get("merges")
    if isinstance(vocab, dict):
        if not all(_whole(v) and v >= 0 for v in vocab.values()):
            return "'model.vocab' must map tokens to ids (whole numbers)"
    elif isinstance(vocab, list):
        if not all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in vocab):
            return "'model.vocab' must be a list of [token, score] pairs"
    elif vocab is not None:
        return "'model.vocab' must be an object or a list"
    if merges is not None and not (
        isinstance(merges, list) and all(isinstance(m, str) or (isinstance(m, list) and len(m) == 2) for m in merges)
    ):
        return "'model.merges' must be a list of merges"
    settings = {k: v for k, v in value.items() if k not in ("model", "added_tokens")}
    settings["model"] = {k: v for k, v in model.items() if k not in ("vocab", "merges")}
    if _count_values(settings, MAX_TOKENIZER_SETTINGS) > MAX_TOKENIZER_SETTINGS:
        return (
            f"its settings (normalizer, pre_tokenizer, post_processor, decoder, ...) hold more than "
            f"{MAX_TOKENIZER_SETTINGS:,} JSON values"
        )
    return None


def _count_values(value: Any, limit: int) -> int:
    """JSON values in ``value`` (containers and scalars), counting no further than past ``limit``."""
    count, stack = 0, [value]
    while stack and count <= limit:
        v = stack.pop()
        count += 1
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return count


def _check_weight_files(found: Directory) -> None:
    directory = found.path
    single = directory / WEIGHTS
    if single.exists() or single.is_symlink():  # transformers prefers it to an index
        safe_files.check_regular_file(single, None, f"a {WEIGHTS}", root=directory, error=HFLoadError)
        found.weights = [single]
        return
    if WEIGHTS_INDEX not in found.json:
        return  # the caller says what is missing
    index_path = directory / WEIGHTS_INDEX
    index = found.json[WEIGHTS_INDEX]
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise HFLoadError(f"{index_path}: needs a 'weight_map' object (tensor name -> shard file)")
    shards: dict[str, Path] = {}
    for tensor, name in weight_map.items():
        if not isinstance(name, str):
            raise HFLoadError(f"{index_path}: the shard of {tensor!r} must be a file name, got {name!r}")
        if name.endswith(".bin") or name.endswith(".pt") or name.endswith(".pth"):
            raise HFLoadError(
                f"{index_path}: names {name!r} (a pickle) for {tensor!r}; seqshap loads only .safetensors shards"
            )
        if not _SHARD_NAME.fullmatch(name) or name.startswith("."):
            raise HFLoadError(
                f"{index_path}: shard {name!r} (for {tensor!r}) is not a .safetensors file name in the "
                "directory; shards must be plain file names, no paths"
            )
        if name not in shards:
            shard = directory / name
            safe_files.check_regular_file(shard, None, "a weight shard", root=directory, error=HFLoadError)
            shards[name] = shard
    if len(shards) > MAX_SHARDS:
        raise HFLoadError(f"{index_path}: {len(shards):,} shards; at most {MAX_SHARDS:,} are read")
    found.weights = list(shards.values())
    found.weight_map = {str(k): v for k, v in weight_map.items()}


def header_shapes(found: Directory) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape over every weight file, from the safetensors headers (no tensor is
    loaded; a header over :data:`MAX_HEADER_BYTES` is refused before it is parsed)."""
    from safetensors import SafetensorError, safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for path in found.weights:
        try:
            with path.open("rb") as f:
                head = f.read(8)
        except OSError as e:
            raise HFLoadError(f"{path}: cannot read it ({e.strerror})") from None
        if len(head) == 8 and (size := struct.unpack("<Q", head)[0]) > MAX_HEADER_BYTES:
            raise HFLoadError(
                f"{path}: a safetensors header of {size:,} bytes, more than the {MAX_HEADER_BYTES:,} seqshap reads "
                "(a corrupt or crafted file)"
            )
        try:
            with safe_open(str(path), framework="pt") as f:
                here = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 (not a dict)
        except (SafetensorError, OSError, RuntimeError, ValueError) as e:
            raise HFLoadError(f"{path}: corrupt or truncated safetensors file ({e})") from None
        twice = sorted(set(here) & set(shapes))
        if twice:
            raise HFLoadError(f"{path}: holds {twice[:3]} again (already in another shard)")
        shapes.update(here)
    if found.weight_map is not None:
        for tensor, name in found.weight_map.items():
            if tensor not in shapes or found.path / name not in found.weights:
                raise HFLoadError(f"{found.path / WEIGHTS_INDEX}: names {tensor!r} in {name}, which does not hold it")
    return {_legacy(k): v for k, v in shapes.items()}


def _legacy(name: str) -> str:
    for pattern, new in _LEGACY_NAMES:
        name = pattern.sub(new, name)
    return name


def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def size_fields(config: dict, kind: str) -> dict[str, tuple[int, int]]:
    """config.json field -> (smallest, largest value allowed): :data:`SIZES` for the kinds seqshap
    canonizes; for any other model type every whole-number field named like a size (layers, heads,
    hidden/intermediate size, vocabulary, positions, windows), from -1 (types use 0 or -1 for "none")."""
    if kind in SIZES:
        return {k: (1, limit) for k, limit in SIZES[kind].items()}
    out = {}
    for key, value in config.items():
        if not (_whole(value) and isinstance(key, str) and _SIZE_FIELD.search(key)) or key.endswith("_id"):
            continue
        limit = MAX_LAYERS if _LAYER_FIELD.search(key) else MAX_HEADS if _HEADS_FIELD.search(key) else MAX_SIZE
        out[key] = (-1, limit)
    return out


def layers_field(config: dict, kind: str) -> str:
    """The config.json field that counts the layers."""
    if kind in LAYERS:
        return LAYERS[kind]
    return next(
        (k for k in ("num_hidden_layers", "n_layer", "n_layers", "num_layers") if k in config), "num_hidden_layers"
    )


def check_config(path: Path, config: dict, kind: str) -> int:
    """The sizes and labels of ``config.json`` (at ``path``) for a ``kind`` model; returns the
    number of labels. Every refusal names the file and the field."""
    for key, (low, limit) in size_fields(config, kind).items():
        if key in config and not (_whole(config[key]) and low <= config[key] <= limit):
            raise HFLoadError(f"{path}: '{key}' must be a whole number from {low} to {limit:,}, got {config[key]!r}")
    hidden_key, heads_key = HIDDEN.get(kind, ("hidden_size", "num_attention_heads"))
    hidden, heads = config.get(hidden_key), config.get(heads_key)
    if isinstance(hidden, int) and isinstance(heads, int) and hidden % heads:
        raise HFLoadError(
            f"{path}: '{hidden_key}' {hidden} is not a multiple of '{heads_key}' {heads} "
            "(each attention head gets an equal share)"
        )
    return _check_labels(path, config)


def _check_labels(path: Path, config: dict) -> int:
    id2label = config.get("id2label")
    num_labels = config.get("num_labels")
    if id2label is None or id2label == {}:
        n = 2 if num_labels is None else num_labels
        if not _whole(n) or n < 2:
            raise HFLoadError(f"{path}: num_labels is {n!r}; seqshap explains classifiers with 2+ labels")
        return int(n)
    if not isinstance(id2label, dict):
        raise HFLoadError(f"{path}: 'id2label' must be an object (label number -> name), got {type(id2label).__name__}")
    n = len(id2label)
    if n < 2:
        raise HFLoadError(f"{path}: num_labels is {n}; seqshap explains classifiers with 2+ labels")
    numbers = []
    for key in id2label:
        try:
            numbers.append(int(key))
        except ValueError:
            raise HFLoadError(f"{path}: 'id2label' key {key!r} is not a label number") from None
    if sorted(numbers) != list(range(n)):
        raise HFLoadError(
            f"{path}: 'id2label' must number the labels 0 to {n - 1} without gaps, got {sorted(numbers)[:10]}"
        )
    names: dict[str, int] = {}
    for key, name in id2label.items():
        if not isinstance(name, str) or not name:
            raise HFLoadError(f"{path}: 'id2label' name of label {key} must be a non-empty string, got {name!r}")
        if name in names:
            raise HFLoadError(
                f"{path}: 'id2label' names {name!r} twice (labels {names[name]} and {int(key)}); each label "
                "needs its own name"
            )
        names[name] = int(key)
    if num_labels is not None and num_labels != n:
        raise HFLoadError(f"{path}: 'num_labels' is {num_labels!r} but 'id2label' names {n} labels")
    label2id = config.get("label2id")
    if label2id is not None and label2id != {} and (not isinstance(label2id, dict) or label2id != names):
        raise HFLoadError(f"{path}: 'label2id' disagrees with 'id2label' (each must be the other turned around)")
    return n


def expected_shapes(model_class: Any, hf_config: Any, where: Path | None = None) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor ``model_class(hf_config)`` holds, built on the meta device
    (no memory, no random initialisation). Its buffers outside the checkpoint (rotary tables,
    causal masks) are bounded too: config.json alone sizes them (``where`` names it)."""
    import torch
    from transformers.initialization import no_init_weights

    with torch.device("meta"), no_init_weights():
        model = model_class(hf_config)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    extra = [(n, b) for n, b in model.named_buffers() if n not in shapes]
    total = sum(b.numel() for _, b in extra)
    if total > MAX_BUFFER_NUMBERS:
        name, big = max(extra, key=lambda nb: nb[1].numel())
        raise HFLoadError(
            f"{where or 'config.json'}: the model would build {total:,} numbers beside its weights "
            f"(e.g. {name} {tuple(big.shape)}), more than {MAX_BUFFER_NUMBERS:,}; check the position and size fields"
        )
    return shapes


def _layers(names: set[str]) -> int:
    return 1 + max((int(m.group(1)) for n in names if (m := _LAYER_INDEX.search(n))), default=-1)


def check_shapes(where: Path, config: dict, kind: str, expected: dict[str, tuple], found: dict[str, tuple]) -> None:
    """The weights hold exactly the tensors ``config.json`` describes, shape for shape; else one
    line naming a few tensors and the config fields involved."""
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    sizes = ", ".join(f"{k}={config[k]}" for k in size_fields(config, kind) if k in config)
    has, says = _layers(set(found)), _layers(set(expected))
    why = (
        f"config.json says {layers_field(config, kind)} {says}, the weights hold {has} layers"
        if has != says
        else f"config.json: {sizes}"
    )
    if extra:
        raise HFLoadError(
            f"{where}: holds {len(extra)} tensor(s) the model of config.json does not have (e.g. {extra[:3]}; "
            f"{why}); loading would drop them and explain another model"
        )
    if missing:
        raise HFLoadError(
            f"{where}: lacks {len(missing)} of the model's tensors (e.g. {missing[:3]}; {why}); transformers "
            "would fill them with random numbers"
        )
    for name in sorted(found):
        if found[name] != expected[name]:
            raise HFLoadError(
                f"{where}: tensor {name!r} has shape {found[name]}, but config.json ({sizes}) makes it {expected[name]}"
            )


__all__ = [
    "FILE_LIMITS",
    "Directory",
    "check_config",
    "check_directory",
    "check_shapes",
    "expected_shapes",
    "header_shapes",
    "layers_field",
    "size_fields",
]
