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
- the HF pooler/head runs as it is (Linear, tanh, ReLU, dropout), then softmax over the labels
  (a sigmoid per label for a multi-label head).

Every other ``*ForSequenceClassification`` (ELECTRA, ALBERT, XLM-R, DeBERTa-v2, MPNet, ModernBERT,
GPT-2, Llama, Qwen2, Mistral, ...) runs as :class:`HFAnyClassifier`: the model's own forward, with
eager attention, under the op-level rules (:mod:`seqshap.attribution.op_rules`); nothing of it is
rewritten, and an operation without a rule is refused by name with the transformers line that
calls it.

Padding goes at the end (as the tokenizers do), for decoders too: every real token then keeps the
position it has in the text alone, so the prediction is the model's own on the unpadded text
(transformers derives positions from the row, not from the mask, so left padding would shift them).
``transformers`` is imported only when a directory is loaded (the ``seqshap[hf]`` extra).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import re
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import safe_files
from ..data.hf_tokenizer import HFTokenizer
from ..errors import HFLoadError, UntrustedFileError
from . import hf_checks
from .hf_checks import WEIGHTS, WEIGHTS_INDEX
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

# Architecture (config.json "architectures") -> the attribute holding its base model: these run
# through seqshap's own explicit encoder layer (the canonized route).
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
# Run as they are under the op-level rules (HFAnyClassifier); tested in tests/test_hf_any.py. Any other
# *ForSequenceClassification of transformers is tried the same way.
TESTED = (
    "AlbertForSequenceClassification",
    "DebertaV2ForSequenceClassification",
    "ElectraForSequenceClassification",
    "GPT2ForSequenceClassification",
    "LlamaForSequenceClassification",
    "MistralForSequenceClassification",
    "ModernBertForSequenceClassification",
    "MPNetForSequenceClassification",
    "Qwen2ForSequenceClassification",
    "XLMRobertaForSequenceClassification",
)
_ARCH = re.compile(r"[A-Z][A-Za-z0-9]{0,80}ForSequenceClassification")
# Model types whose position ids count from the pad id + 1 (RoBERTa's scheme): that many positions
# fewer (MPNet counts from its fixed padding_idx 1, whatever its pad token).
PAD_OFFSET_POSITIONS = frozenset({"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "data2vec-text"})
FIXED_OFFSET_POSITIONS = {"mpnet": 2}
# Rows are padded to maxlen: a model with thousands of positions is read at most this many tokens.
MAX_TOKENS = 512
TOKENIZER_FILES = (("tokenizer.json",), ("vocab.txt",), ("vocab.json", "merges.txt"))
INSTALL_HINT = "pip install 'seqshap[hf]'"


def token_types(x: torch.Tensor, sep: int, pad: int) -> torch.Tensor:
    """BERT's token types ``[B, T]`` for ids ``x`` ``[B, T]``, as its tokenizer writes them: 1 after
    the first ``sep`` (a pair's second text and its closing separator), else 0, and 0 at padding.
    Computed from the ids, so a position's token type is read as part of that position's input."""
    at = (x == sep).long()
    after = (at.cumsum(1) - at) > 0
    return (after & (x != pad)).long()


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


def squash(logits: torch.Tensor, multi_label: bool) -> torch.Tensor:
    """The labels' probabilities ``[B, L]``: one sigmoid per label for a multi-label head (as
    transformers trains ``problem_type="multi_label_classification"``, BCE on each logit), else a
    softmax over the labels."""
    return torch.sigmoid(logits) if multi_label else torch.softmax(logits, dim=-1)


class HFClassifier(nn.Module):
    """A loaded ``*ForSequenceClassification`` model: ids ``[B, T]`` (right-padded with
    ``pad_id``) or embeddings ``[B, T, E]`` -> the labels' probabilities ``[B, num_labels]``
    (:func:`squash`)."""

    def __init__(self, hf_model: Any, pad_id: int, type_sep: int | None = None, multi_label: bool = False):
        super().__init__()
        arch = type(hf_model).__name__
        if arch not in SUPPORTED:
            raise HFLoadError(f"architecture {arch} is not supported; seqshap explains {', '.join(SUPPORTED)}")
        self.arch, self.kind = arch, SUPPORTED[arch]
        self.hf: Any = hf_model  # a transformers model, duck-typed (the [hf] extra is optional)
        self.pad_id = int(pad_id)
        self.type_sep = type_sep  # sentence pairs: token types from the ids (BERT), else None
        self.mask = PaddingMask(self.pad_id)
        base = self._base
        layers = base.transformer.layer if self.kind == "distilbert" else base.encoder.layer
        self.layers = nn.ModuleList(HFEncoderLayer(layer) for layer in layers)
        self.num_labels = int(hf_model.config.num_labels)
        self.multi_label = bool(multi_label)

    @property
    def _base(self) -> Any:
        return getattr(self.hf, self.kind)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.hf.get_input_embeddings()

    def _embed(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        emb = self._base.embeddings
        if not x.is_floating_point():
            if self.kind == "distilbert":
                return emb(x)
            if self.type_sep is not None:
                return emb(input_ids=x, token_type_ids=token_types(x, self.type_sep, self.pad_id))
            return emb(input_ids=x)
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
        return squash(self._head(h), self.multi_label)


_NARROW = (torch.float32, torch.float16, torch.bfloat16)


class _Float64Throughout(torch.overrides.TorchFunctionMode):
    """While a float64 copy runs: transformers' casts to float32 (the softmax of attention with
    ``dtype=torch.float32``, RMSNorm's ``.to(torch.float32)``, rotary tables) keep float64. The
    copy then computes what the model computes, more precisely; without this, a fully masked
    attention row (padding under a sliding window) turns float64's lowest number into float32's
    -inf, and the softmax into NaN."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        name = getattr(func, "__name__", "")
        first = args[0] if args else None
        wide = isinstance(first, torch.Tensor) and first.dtype == torch.float64
        if wide and name in ("float", "half", "bfloat16"):
            return first
        if wide and name in ("to", "type"):
            args = tuple(torch.float64 if a in _NARROW else a for a in args)
            if kwargs.get("dtype") in _NARROW:
                kwargs["dtype"] = torch.float64
        elif wide and kwargs.get("dtype") in _NARROW:
            kwargs["dtype"] = torch.float64
        return func(*args, **kwargs)


class HFAnyClassifier(nn.Module):
    """Any loaded ``*ForSequenceClassification`` run by its own forward: ids ``[B, T]``
    (right-padded with ``pad_id``) -> the labels' probabilities ``[B, num_labels]`` (:func:`squash`).

    The attention mask is ``ids != pad_id``, computed here from the ids as the tokenizer's would
    be; the explainer reads it as a function of the ids (a feature of each position), so inputs
    and references of different lengths are explained exactly. Decoders read their label at the
    last real token, which transformers finds from the ids as well (``config.pad_token_id``).

    Embeddings ``[B, T, E]`` (the gradient methods' input) run the same code: the ids are read
    back where the embeddings say (a position holding the padding row is padding, one holding the
    separator's row a separator), every other position gets a stand-in id, and the token
    embedding's output is replaced by the embeddings given, so the mask, the positions, the token
    types and the position of the label are transformers' own."""

    def __init__(self, hf_model: Any, pad_id: int, type_sep: int | None = None, multi_label: bool = False):
        super().__init__()
        self.arch = type(hf_model).__name__
        self.kind = str(getattr(hf_model.config, "model_type", ""))
        self.hf: Any = hf_model
        self.pad_id = int(pad_id)
        self.type_sep = type_sep  # sentence pairs: token types from the ids (BERT-style), else None
        self.num_labels = int(hf_model.config.num_labels)
        self.multi_label = bool(multi_label)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.hf.get_input_embeddings()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != (3 if x.is_floating_point() else 2):
            raise ValueError(f"expected ids [batch, time] or embeddings [batch, time, dim], got {tuple(x.shape)}")
        return self._from_embeddings(x) if x.is_floating_point() else self._from_ids(x)

    def _from_ids(self, x: torch.Tensor) -> torch.Tensor:
        wide = self.get_input_embeddings().weight.dtype == torch.float64
        with _Float64Throughout() if wide else contextlib.nullcontext():
            extra = {} if self.type_sep is None else {"token_type_ids": token_types(x, self.type_sep, self.pad_id)}
            out = self.hf(input_ids=x, attention_mask=(x != self.pad_id).long(), return_dict=True, **extra)
        return squash(out.logits, self.multi_label)

    def _from_embeddings(self, e: torch.Tensor) -> torch.Tensor:
        table = self.get_input_embeddings()
        with torch.no_grad():  # which positions are padding (or separators): read off the rows
            weight = table.weight
            # An ordinary word's id from the middle of the vocabulary: low ids are special tokens,
            # which some models treat apart (MPNet counts positions past a hard-coded id 1).
            word = next(i for i in range(len(weight) // 2, len(weight)) if i not in (self.pad_id, self.type_sep))
            ids = torch.where((e == weight[self.pad_id]).all(-1), self.pad_id, word)
            if self.type_sep is not None:
                ids = torch.where((e == weight[self.type_sep]).all(-1), self.type_sep, ids)
        handle = table.register_forward_hook(lambda _module, _inputs, _output: e)
        try:  # not self(ids): hooks a caller put on this module (Captum's) see one call
            return self._from_ids(ids)
        finally:
            handle.remove()


# ------------------------------------------------------------------------------- loading
def is_hf_directory(directory: Path) -> bool:
    """Does ``directory`` hold a Hugging Face model (``config.json`` with ``architectures``)?
    Reads ``config.json`` as :func:`load_pretrained` does (a bounded regular file); False when it cannot."""
    try:
        config = safe_files.read_json(directory / "config.json", hf_checks.SMALL_JSON, "config.json", root=directory)
    except UntrustedFileError:
        return False
    return isinstance(config, dict) and "architectures" in config and "arch" not in config


def _architecture(directory: Path, config: dict) -> str:
    archs = config.get("architectures")
    if not (isinstance(archs, list) and len(archs) == 1 and isinstance(archs[0], str) and _ARCH.fullmatch(archs[0])):
        raise HFLoadError(
            f"{directory / 'config.json'}: architecture {archs!r} is not a sequence classifier; seqshap explains "
            f"Hugging Face *ForSequenceClassification models (2 or more labels): {', '.join(SUPPORTED)} through its "
            f"own encoder layers; {', '.join(TESTED)} as tested; any other one whose operations have exact rules"
        )
    return archs[0]


def _check_files(directory: Path, found: hf_checks.Directory) -> None:
    if not found.weights:
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


# The head's output weight of other classifiers (decoders' "score", ELECTRA's and DeBERTa's "classifier").
_HEAD_NAMES = ("score.weight", "classifier.out_proj.weight", "classifier.weight")


def _head_rows(shapes: dict[str, tuple[int, ...]], kind: str) -> tuple[str, int] | None:
    """The head's output weight and its rows, from the safetensors headers."""
    for name in (HEAD_WEIGHT[kind],) if kind in HEAD_WEIGHT else _HEAD_NAMES:
        shape = shapes.get(name)
        if shape:
            return name, int(shape[0])
    return None


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(e).__name__}: {first[:300]}" if first else type(e).__name__


@contextlib.contextmanager
def _quiet(transformers):
    """While loading: no progress bars, no info or warnings from transformers (the CLI prints its
    own one line; its load report would be many), nothing printed on stdout (``--json`` stays
    JSON) and nothing read from stdin (no prompt can be answered). Its settings come back afterwards."""
    logging = transformers.utils.logging
    bars, level = logging.is_progress_bar_enabled(), logging.get_verbosity()
    logging.disable_progress_bar()
    logging.set_verbosity_error()
    stdin = sys.stdin
    sys.stdin = io.StringIO()  # input() reads an empty line's end: EOF, never the user's stdin
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdin = stdin
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


def _model_class(transformers: Any, arch: str, config_path: Path, config: dict) -> Any:
    """transformers' class for ``arch``, checked against config.json's ``model_type``."""
    model_class: Any = getattr(transformers, arch, None)
    if not (isinstance(model_class, type) and issubclass(model_class, transformers.PreTrainedModel)):
        raise HFLoadError(
            f"{config_path}: transformers {transformers.__version__} has no {arch}; seqshap runs no code from a "
            f"model directory (trust_remote_code is never set)"
        )
    config_class: Any = model_class.config_class  # type: ignore[attr-defined]
    kind = SUPPORTED.get(arch) or str(config_class.model_type)
    if config.get("model_type", kind) != kind:
        raise HFLoadError(
            f"{config_path}: model_type {config['model_type']!r} does not match {arch} (model_type {kind!r})"
        )
    return model_class


def _pad_id(tokenizer: Any, hf_config: Any, config_path: Path) -> None:
    """One padding id for the tokenizer and the model. A decoder's tokenizer often has none: its
    ``config.pad_token_id`` is taken (as the model finds its last real token by it); a config
    without one takes the tokenizer's; two different ones are refused (the model would read its
    label at a padding position)."""
    from_config = getattr(hf_config, "pad_token_id", None)
    if isinstance(from_config, list):
        from_config = from_config[0] if from_config else None
    if tokenizer.pad_token_id is None:
        if from_config is None:
            raise HFLoadError(
                f"{config_path}: neither the tokenizer nor config.json has a padding token, and rows of "
                f"different lengths need one. Set it and save both again, as for training: "
                f"tokenizer.pad_token = tokenizer.eos_token; model.config.pad_token_id = tokenizer.eos_token_id"
            )
        if not 0 <= int(from_config) < len(tokenizer):
            raise HFLoadError(f"{config_path}: pad_token_id {from_config} is not a token of the tokenizer")
        tokenizer.pad_token = tokenizer.convert_ids_to_tokens(int(from_config))
    elif from_config is None:
        hf_config.pad_token_id = int(tokenizer.pad_token_id)
    elif int(from_config) != int(tokenizer.pad_token_id):
        raise HFLoadError(
            f"{config_path}: pad_token_id {from_config} differs from the tokenizer's padding token "
            f"{tokenizer.pad_token!r} (id {tokenizer.pad_token_id}); the model would read padding as text. "
            f"Make them one and save both again"
        )


def load_pretrained(directory: str | Path) -> tuple[nn.Module, HFTokenizer, dict[str, Any]]:
    """Load a saved ``*ForSequenceClassification`` directory offline: (the network, its tokenizer,
    seqshap's config for it). The directory is untrusted input (:mod:`seqshap.models.hf_checks`):
    everything that can be checked is checked before transformers opens a file or torch allocates
    a weight, and no code from it ever runs. BERT, DistilBERT and RoBERTa load as
    :class:`HFClassifier`, every other architecture as :class:`HFAnyClassifier`."""
    directory = Path(directory)
    config_path = directory / "config.json"
    if not (config_path.exists() or config_path.is_symlink()):
        raise HFLoadError(f"{directory}: missing config.json")
    found = hf_checks.check_directory(directory)
    config = found.json.get("config.json")
    if not isinstance(config, dict):
        raise HFLoadError(f"{config_path}: not a JSON object")
    arch = _architecture(directory, config)
    canonized = arch in SUPPORTED
    kind = SUPPORTED[arch] if canonized else config.get("model_type")
    if not isinstance(kind, str) or not kind:
        raise HFLoadError(f"{config_path}: 'model_type' must name the model type (a string), got {kind!r}")
    if canonized and config.get("model_type", kind) != kind:
        raise HFLoadError(
            f"{config_path}: model_type {config['model_type']!r} does not match {arch} (model_type {kind!r})"
        )
    n_labels = hf_checks.check_config(config_path, config, kind)
    _check_files(directory, found)
    shapes = hf_checks.header_shapes(found)
    where = found.weights[0] if len(found.weights) == 1 else directory / WEIGHTS_INDEX
    head = _head_rows(shapes, kind)
    if head is not None and head[1] != n_labels:
        raise HFLoadError(
            f"{directory}: config.json names {n_labels} labels but the classifier head has {head[1]} outputs "
            f"({head[0]}); fix id2label/num_labels in config.json"
        )
    problem = config.get("problem_type")
    if problem not in (None, "single_label_classification", "multi_label_classification"):
        raise HFLoadError(
            f"{config_path}: problem_type {problem!r}; seqshap explains classifiers "
            f"(single_label_classification: a softmax over the labels; multi_label_classification: "
            f"a sigmoid per label)"
        )
    multi_label = problem == "multi_label_classification"
    if canonized and (config.get("is_decoder") or config.get("add_cross_attention")):
        raise HFLoadError(f"{config_path}: a decoder (is_decoder/add_cross_attention) is not supported")
    if canonized and config.get("position_embedding_type", "absolute") != "absolute":
        raise HFLoadError(
            f"{config_path}: position_embedding_type {config['position_embedding_type']!r} "
            f"is not supported (absolute positions are)"
        )
    try:
        import transformers
    except ImportError:
        raise HFLoadError(
            f"{directory} is a Hugging Face model directory; loading it needs transformers: {INSTALL_HINT}"
        ) from None
    model_class = _model_class(transformers, arch, config_path, config)
    with _quiet(transformers):
        try:
            # Built from the checked dict: transformers never reads config.json itself.
            hf_config = model_class.config_class.from_dict(config)
            if not canonized:  # every step visible to the rules: no fused attention kernel
                hf_config._attn_implementation = "eager"
            expected = hf_checks.expected_shapes(model_class, hf_config, config_path)
        except HFLoadError:
            raise
        except (TypeError, ValueError, KeyError, AttributeError, IndexError, RuntimeError, AssertionError) as e:
            raise HFLoadError(f"{config_path}: cannot build the model ({_one_line(e)})") from None
        hf_checks.check_shapes(where, config, kind, expected, shapes)
        if canonized:
            rows = shapes[f"{kind}.embeddings.word_embeddings.weight"][0]
            if found.tokens is not None and found.tokens > rows:  # before transformers builds the tokenizer
                raise HFLoadError(
                    f"{directory}: tokenizer.json defines {found.tokens} tokens "
                    f"but the model's embedding has {rows} rows"
                )
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                str(directory), config=hf_config, local_files_only=True, trust_remote_code=False
            )
        except Exception as e:  # transformers and tokenizers raise many types for a broken file
            files = ", ".join(f for f in hf_checks.TOKENIZER_NAMES if (directory / f).is_file())
            raise HFLoadError(f"{directory}: cannot load the tokenizer from {files} ({_one_line(e)})") from None
        _pad_id(tokenizer, hf_config, config_path)
        try:
            hf_model, info = model_class.from_pretrained(
                str(directory),
                config=hf_config,
                local_files_only=True,
                use_safetensors=True,
                trust_remote_code=False,
                dtype=torch.float32,
                output_loading_info=True,
                **({} if canonized else {"attn_implementation": "eager"}),
            )
        except Exception as e:
            raise HFLoadError(f"{directory}: cannot load the model offline ({_one_line(e)})") from None
    # The shapes were compared above; this is transformers' own account, after its renamings.
    for key, what in (
        ("missing_keys", "lacks"),
        ("unexpected_keys", "holds unexpected"),
        ("mismatched_keys", "holds misshapen"),
    ):
        names = sorted(str(k) for k in info.get(key) or ())
        if names:
            raise HFLoadError(
                f"{where}: {what} tensors (e.g. {names[:3]}); config.json does not describe these weights"
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
    types = int(getattr(hf_model.config, "type_vocab_size", 0) or 0) >= 2
    takes = "token_type_ids" in inspect.signature(hf_model.forward).parameters
    type_sep = tok.type_sep if types and takes else None
    wrapper = HFClassifier if canonized else HFAnyClassifier
    net: HFClassifier | HFAnyClassifier = wrapper(hf_model, tok.pad_id, type_sep, multi_label=multi_label)
    net.eval()  # the wrapper is made in training mode, as every new nn.Module is
    n_layers = (
        len(net.layers) if isinstance(net, HFClassifier) else getattr(hc := hf_model.config, "num_hidden_layers", None)
    )
    hc = hf_model.config
    positions = getattr(hc, "max_position_embeddings", None)
    limit = tokenizer.model_max_length
    limits = [int(limit)] if isinstance(limit, int) and 0 < limit < 10**9 else []
    if isinstance(positions, int) and not isinstance(positions, bool):
        offset = tok.pad_id + 1 if kind in PAD_OFFSET_POSITIONS else FIXED_OFFSET_POSITIONS.get(kind, 0)
        limits.append(positions - offset)
    if not canonized:
        limits.append(MAX_TOKENS)
    maxlen = min(limits) if limits else MAX_TOKENS
    if maxlen < 1:
        raise HFLoadError(
            f"{config_path}: 'max_position_embeddings' {positions} leaves no position for a token "
            f"(pad_token_id {tok.pad_id})"
        )
    if not canonized:
        _try_forward(net, tok, maxlen, arch, directory)
    id2label = {int(k): str(v) for k, v in hc.id2label.items()}
    summary = {
        "vocab_size": rows_emb,
        "hidden": hc.dim if kind == "distilbert" else getattr(hc, "hidden_size", None),
        "layers": n_layers,
        "heads": hc.n_heads if kind == "distilbert" else getattr(hc, "num_attention_heads", None),
        "max_positions": positions,
    }
    seqshap_config = {
        "arch": arch,
        "name": directory.name,
        "maxlen": maxlen,
        "classes": [id2label.get(i, str(i)) for i in range(net.num_labels)],
        "output_space": "probability",
        "padding": "right",
        "source": "huggingface",
        "route": "canonized" if canonized else "op-level",
        "pairs": "token types" if type_sep is not None else "one sequence",
        "multi_label": multi_label,
        "model": summary,
    }
    return net, tok, seqshap_config


def _try_forward(net: nn.Module, tok: HFTokenizer, maxlen: int, arch: str, directory: Path) -> None:
    """One forward of the empty text: a model that needs more than ids and a mask (images, boxes,
    a language id) is refused here, by name, rather than in the middle of an explanation."""
    row = torch.as_tensor(tok.empty_ids(maxlen))
    try:
        with torch.no_grad():
            out = net(row)
    except Exception as e:
        raise HFLoadError(
            f"{directory}: {arch} does not run on token ids and an attention mask alone ({_one_line(e)})"
        ) from None
    if not torch.isfinite(out).all():
        raise HFLoadError(f"{directory}: {arch} gives NaN or infinity for the empty text")
