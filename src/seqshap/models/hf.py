"""A Hugging Face sequence classifier as a seqshap model: ids ``[B, T]`` -> class probabilities ``[B, labels]``.

:class:`HFClassifier` runs the user's own ``transformers`` modules (their weights, by reference)
in the order Hugging Face runs them, with seams the explainer can use:

- the padding mask comes from a :class:`~seqshap.models.transformer.PaddingMask` with the
  tokenizer's pad id (an input feature, like the embeddings: where an input and a reference
  have different lengths, the mask's share of the difference goes to the positions it masks);
- the HF embeddings module runs as it is (its ``nn.Embedding`` lookups are the input features;
  RoBERTa's position ids follow the padding, so they are per-row features too);
- every encoder layer sits in a :class:`HFEncoderLayer` that calls the HF layer exactly as HF
  does (additive mask from the padding mask) and that the explainer swaps for the explicit,
  exact attention layer while it explains;
- the HF pooler/head runs as it is (Linear, tanh, ReLU, dropout), then softmax over the labels.

Padding goes at the end (as the tokenizers do); absolute positions then never move with it.
``transformers`` is imported only when a directory is loaded (the ``seqshap[hf]`` extra).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.hf_tokenizer import HFTokenizer
from ..errors import HFLoadError
from .transformer import PaddingMask, encoder_layer_spec

# Hugging Face activation modules (by class name: transformers is an optional extra) -> the
# explicit encoder layer's names.
HF_ACTIVATIONS = {
    "GELUActivation": "gelu",  # erf GELU ("gelu", "gelu_python")
    "GELUTanh": "gelu_tanh",  # "gelu_pytorch_tanh", "gelu_python_tanh"
    "PytorchGELUTanh": "gelu_tanh",
    "NewGELUActivation": "gelu_tanh",  # "gelu_new": the same tanh formula written out
    "FastGELUActivation": "gelu_tanh",  # "gelu_fast": ditto
    "ReLU": "relu",
}

# Architecture (config.json "architectures") -> the attribute holding its base model.
SUPPORTED = {
    "BertForSequenceClassification": "bert",
    "DistilBertForSequenceClassification": "distilbert",
    "RobertaForSequenceClassification": "roberta",
}
# The head's output weight (one row per label), to check num_labels before loading.
HEAD_WEIGHT = {
    "bert": "classifier.weight",
    "distilbert": "classifier.weight",
    "roberta": "classifier.out_proj.weight",
}
WEIGHTS, WEIGHTS_INDEX = "model.safetensors", "model.safetensors.index.json"
TOKENIZER_FILES = (("tokenizer.json",), ("vocab.txt",), ("vocab.json", "merges.txt"))
INSTALL_HINT = "pip install 'seqshap[hf]'"


class HFEncoderLayer(nn.Module):
    """One HF encoder layer (``BertLayer``, ``RobertaLayer``, DistilBERT's ``TransformerBlock``)
    taking ``(h [B, T, D], mask [B, T])`` with a float 1/0 padding mask, as the explicit layer does."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer: Any = layer  # a transformers module, duck-typed

    def seqshap_encoder_layer(self) -> dict:
        """The HF layer's weights (by reference) and settings in the explainer's explicit encoder
        layer's terms: ``BertLayer``/``RobertaLayer`` or DistilBERT's ``TransformerBlock``, all post-LN."""
        layer = self.layer
        if hasattr(layer, "sa_layer_norm"):  # DistilBERT
            a, ffn = layer.attention, layer.ffn
            return encoder_layer_spec(
                (a.q_lin, a.k_lin, a.v_lin, a.out_lin, ffn.lin1, ffn.lin2),
                layer.sa_layer_norm,
                layer.output_layer_norm,
                heads=int(a.n_heads),
                activation=_hf_activation(ffn.activation),
                scale=float(a.scaling),
            )
        if getattr(layer, "is_decoder", False) or getattr(layer, "add_cross_attention", False):
            raise ValueError(f"{type(layer).__name__}: decoder layers (cross-attention) are not supported")
        s, o = layer.attention.self, layer.attention.output
        return encoder_layer_spec(
            (s.query, s.key, s.value, o.dense, layer.intermediate.dense, layer.output.dense),
            o.LayerNorm,
            layer.output.LayerNorm,
            heads=int(s.num_attention_heads),
            activation=_hf_activation(layer.intermediate.intermediate_act_fn),
            scale=float(s.scaling),
        )

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # HF's extended mask: 0 for real keys, the dtype's minimum for padding, added to the scores.
        additive = (1.0 - mask.to(h.dtype))[:, None, None, :] * torch.finfo(h.dtype).min
        out = self.layer(h, additive)
        return out[0] if isinstance(out, tuple) else out


def _hf_activation(module: nn.Module) -> str:
    name = type(module).__name__
    if name not in HF_ACTIVATIONS:
        raise ValueError(
            f"activation {name} has no exact rule here; supported: gelu, gelu_new, gelu_fast, gelu_pytorch_tanh, relu"
        )
    return HF_ACTIVATIONS[name]


class HFClassifier(nn.Module):
    """A loaded ``*ForSequenceClassification`` model: ids ``[B, T]`` (right-padded with
    ``pad_id``) or embeddings ``[B, T, E]`` -> softmax over the labels ``[B, num_labels]``."""

    def __init__(self, hf_model: Any, pad_id: int):
        super().__init__()
        arch = type(hf_model).__name__
        if arch not in SUPPORTED:
            raise HFLoadError(f"architecture {arch} is not supported; seqshap explains {', '.join(SUPPORTED)}")
        self.arch, self.kind = arch, SUPPORTED[arch]
        self.hf: Any = hf_model  # a transformers model, duck-typed (the [hf] extra is optional)
        self.pad_id = int(pad_id)
        self.mask = PaddingMask(self.pad_id)
        base = self._base
        layers = base.transformer.layer if self.kind == "distilbert" else base.encoder.layer
        self.layers = nn.ModuleList(HFEncoderLayer(layer) for layer in layers)
        self.num_labels = int(hf_model.config.num_labels)

    @property
    def _base(self) -> Any:
        return getattr(self.hf, self.kind)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.hf.get_input_embeddings()

    def _embed(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        emb = self._base.embeddings
        if not x.is_floating_point():
            return emb(x) if self.kind == "distilbert" else emb(input_ids=x)
        if self.kind == "distilbert":
            return emb(None, inputs_embeds=x)
        if self.kind == "roberta":  # positions count the real tokens, as HF counts them from the ids
            real = mask.detach().long()
            return emb(position_ids=torch.cumsum(real, 1) * real + self.pad_id, inputs_embeds=x)
        return emb(inputs_embeds=x)

    def _head(self, h: torch.Tensor) -> torch.Tensor:
        hf = self.hf
        if self.kind == "bert":
            return hf.classifier(hf.dropout(self._base.pooler(h)))
        if self.kind == "distilbert":
            return hf.classifier(hf.dropout(F.relu(hf.pre_classifier(h[:, 0]))))
        return hf.classifier(h)  # RoBERTa's head reads <s> itself

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != (3 if x.is_floating_point() else 2):
            raise ValueError(f"expected ids [batch, time] or embeddings [batch, time, dim], got {tuple(x.shape)}")
        pad_row = self.get_input_embeddings().weight[self.pad_id]
        mask = self.mask(x, pad_row)
        h = self._embed(x, mask)
        for layer in self.layers:
            h = layer(h, mask)
        return torch.softmax(self._head(h), dim=-1)


# ------------------------------------------------------------------------------- loading
def is_hf_directory(directory: Path) -> bool:
    """Does ``directory`` hold a Hugging Face model (``config.json`` with ``architectures``)?"""
    try:
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "architectures" in config and "arch" not in config


def _read_config(directory: Path) -> dict:
    try:
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise HFLoadError(f"{directory / 'config.json'}: cannot read it ({e})") from None
    if not isinstance(config, dict):
        raise HFLoadError(f"{directory / 'config.json'}: not a JSON object")
    return config


def _architecture(directory: Path, config: dict) -> str:
    archs = config.get("architectures")
    if not isinstance(archs, list) or len(archs) != 1 or archs[0] not in SUPPORTED:
        raise HFLoadError(
            f"{directory / 'config.json'}: architecture {archs!r} is not supported; seqshap explains "
            f"{', '.join(SUPPORTED)} (2 or more labels)"
        )
    return archs[0]


def _check_files(directory: Path) -> None:
    if not (directory / WEIGHTS).is_file() and not (directory / WEIGHTS_INDEX).is_file():
        pickles = sorted(p.name for p in directory.glob("*.bin"))
        if pickles:
            raise HFLoadError(
                f"{directory}: holds {', '.join(pickles)} (a pickle) and no {WEIGHTS}; seqshap loads weights "
                f"from safetensors only. Convert it once with transformers: "
                f"model = AutoModelForSequenceClassification.from_pretrained(dir); "
                f"model.save_pretrained(dir, safe_serialization=True)"
            )
        raise HFLoadError(f"{directory}: missing {WEIGHTS} (the model's weights)")
    if not any(all((directory / f).is_file() for f in group) for group in TOKENIZER_FILES):
        raise HFLoadError(
            f"{directory}: no tokenizer files (tokenizer.json, or vocab.txt / vocab.json + merges.txt); "
            f"save the tokenizer beside the model: tokenizer.save_pretrained(dir)"
        )


def _num_labels(directory: Path, config: dict) -> int:
    id2label = config.get("id2label")
    n = len(id2label) if isinstance(id2label, dict) and id2label else config.get("num_labels", 2)
    if not isinstance(n, int) or n < 2:
        raise HFLoadError(
            f"{directory / 'config.json'}: num_labels is {n!r}; seqshap explains classifiers with 2+ labels"
        )
    return n


def _head_rows(directory: Path, kind: str) -> int | None:
    """Rows of the head's output weight, read from the safetensors header (no tensor is loaded)."""
    from safetensors import safe_open

    name = HEAD_WEIGHT[kind]
    path = directory / WEIGHTS
    if not path.is_file():  # sharded: the index says which file holds the head
        try:
            weight_map = json.loads((directory / WEIGHTS_INDEX).read_text(encoding="utf-8"))["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise HFLoadError(f"{directory / WEIGHTS_INDEX}: cannot read it ({e})") from None
        if not isinstance(weight_map, dict) or name not in weight_map:
            return None
        path = directory / str(weight_map[name])
    try:
        with safe_open(str(path), framework="pt") as f:
            if name in f.keys():  # noqa: SIM118  (safe_open is not a mapping)
                return int(f.get_slice(name).get_shape()[0])
    except Exception as e:  # safetensors raises its own error types for a broken header
        raise HFLoadError(f"{path}: corrupt or truncated safetensors file ({e})") from None
    return None


@contextlib.contextmanager
def _quiet(transformers):
    """No progress bars or info logs from transformers while loading (the CLI prints its own
    lines); its warnings and errors still show. Its settings come back afterwards."""
    logging = transformers.utils.logging
    bars, level = logging.is_progress_bar_enabled(), logging.get_verbosity()
    logging.disable_progress_bar()
    logging.set_verbosity_warning()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


def load_pretrained(directory: str | Path) -> tuple[HFClassifier, HFTokenizer, dict[str, Any]]:
    """Load a saved ``*ForSequenceClassification`` directory offline: (the network, its tokenizer,
    seqshap's config for it). Everything that can be checked is checked before torch loads a weight."""
    directory = Path(directory)
    config = _read_config(directory)
    arch = _architecture(directory, config)
    kind = SUPPORTED[arch]
    _check_files(directory)
    n_labels = _num_labels(directory, config)
    rows = _head_rows(directory, kind)
    if rows is not None and rows != n_labels:
        raise HFLoadError(
            f"{directory}: config.json names {n_labels} labels but the classifier head has {rows} outputs "
            f"({HEAD_WEIGHT[kind]}); fix id2label/num_labels in config.json"
        )
    if config.get("problem_type") in ("regression", "multi_label_classification"):
        raise HFLoadError(
            f"{directory / 'config.json'}: problem_type {config['problem_type']!r}; seqshap explains "
            f"single-label classifiers (softmax over the labels)"
        )
    if config.get("is_decoder") or config.get("add_cross_attention"):
        raise HFLoadError(f"{directory / 'config.json'}: a decoder (is_decoder/add_cross_attention) is not supported")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise HFLoadError(
            f"{directory / 'config.json'}: position_embedding_type {config['position_embedding_type']!r} "
            f"is not supported (absolute positions are)"
        )
    try:
        import transformers
    except ImportError:
        raise HFLoadError(
            f"{directory} is a Hugging Face model directory; loading it needs transformers: {INSTALL_HINT}"
        ) from None
    with _quiet(transformers):
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
        except (OSError, ValueError, TypeError) as e:
            raise HFLoadError(f"{directory}: cannot load the tokenizer offline (local_files_only): {e}") from None
        try:
            hf_model, info = getattr(transformers, arch).from_pretrained(
                str(directory),
                local_files_only=True,
                use_safetensors=True,
                dtype=torch.float32,
                output_loading_info=True,
            )
        except (OSError, ValueError, RuntimeError) as e:
            raise HFLoadError(f"{directory}: cannot load the model offline (local_files_only): {e}") from None
    if info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        raise HFLoadError(
            f"{directory}: {WEIGHTS} lacks {len(missing)} of the model's tensors (e.g. {missing[:3]}); "
            f"transformers would fill them with random numbers"
        )
    hf_model.eval()
    try:
        tok = HFTokenizer(tokenizer)
    except ValueError as e:
        raise HFLoadError(f"{directory}: {e}") from None
    rows_emb = hf_model.get_input_embeddings().num_embeddings
    if tok.num_words > rows_emb:
        raise HFLoadError(
            f"{directory}: the tokenizer has {tok.num_words} tokens but the model's embedding has {rows_emb} rows"
        )
    net = HFClassifier(hf_model, tok.pad_id)
    hc = hf_model.config
    positions = int(hc.max_position_embeddings) - (tok.pad_id + 1 if kind == "roberta" else 0)
    limit = tokenizer.model_max_length
    maxlen = min(int(limit), positions) if isinstance(limit, int) and 0 < limit < 10**9 else positions
    id2label = {int(k): str(v) for k, v in hc.id2label.items()}
    heads = hc.n_heads if kind == "distilbert" else hc.num_attention_heads
    summary = {
        "vocab_size": rows_emb,
        "hidden": hc.dim if kind == "distilbert" else hc.hidden_size,
        "layers": len(net.layers),
        "heads": heads,
        "max_positions": int(hc.max_position_embeddings),
    }
    seqshap_config = {
        "arch": arch,
        "name": directory.name,
        "maxlen": maxlen,
        "classes": [id2label.get(i, str(i)) for i in range(net.num_labels)],
        "output_space": "probability",
        "padding": "right",
        "source": "huggingface",
        "model": summary,
    }
    return net, tok, seqshap_config
