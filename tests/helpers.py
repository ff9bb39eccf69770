"""Helpers shared by the test files (one module: a test file never imports another test file).

- :data:`REVIEW`, :class:`LiveServer` (uvicorn in a thread), :func:`small_archive` (an aclImdb
  tar.gz of a few real reviews): the web and server tests;
- :func:`wordpiece`, :func:`byte_bpe`, :func:`build_hf`: tiny Hugging Face classifiers built from
  configs with tokenizers trained on real reviews, saved with ``save_pretrained`` (nothing is
  downloaded). ``[PAD]`` 0, ``[UNK]`` 1, ``[CLS]`` 2, ``[SEP]`` 3 (WordPiece); ``<s>`` 0, ``<pad>`` 1,
  ``</s>`` 2, ``<unk>`` 3 (byte-level BPE).
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from seqshap.web.server import make_server

if TYPE_CHECKING:  # transformers and tokenizers load only where a Hugging Face model is built
    from tokenizers import Tokenizer

REVIEW = (
    "A wonderful, moving film: the acting is superb and the story is beautiful. "
    "The ending was a bit dull, but I loved it."
)


@contextmanager
def seqshap_serve(*args: str) -> Iterator[str]:
    """``seqshap serve --port 0 ARGS`` as a real process: yields its base URL, stops it after."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "seqshap.cli", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        if url is None:
            err = proc.stderr.read() if proc.poll() is not None and proc.stderr is not None else ""
            raise AssertionError(f"seqshap serve did not start: {line!r} {err}")
        yield url.group(0)
    finally:
        proc.terminate()
        proc.wait(30)


class LiveServer:
    """uvicorn serving ``app`` on 127.0.0.1 in a background thread (port chosen by the OS),
    set up as ``seqshap serve`` sets it up (``options``: :func:`seqshap.web.server.make_server`'s)."""

    def __init__(self, app, **options):
        self.app = app
        self.server = make_server(app, host="127.0.0.1", port=0, log_level="warning", **options)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def small_archive(path: Path, imdb, n: int = 5) -> Path:
    """An aclImdb-layout tar.gz of ``n`` real reviews per split (reading it beats reading 50,000)."""
    with tarfile.open(path, "w:gz") as tar:
        for split in ("train", "test"):
            for i, (text, label) in enumerate(zip(imdb[split].texts[:n], imdb[split].labels[:n], strict=True)):
                data = text.encode("utf-8")
                info = tarfile.TarInfo(f"aclImdb/{split}/{'pos' if label else 'neg'}/{i}_{8 if label else 2}.txt")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


# ----------------------------------------------------------- tiny Hugging Face models
def wordpiece(texts: list[str]) -> Tokenizer:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(
        texts, trainers.WordPieceTrainer(vocab_size=800, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    )
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    tok.decoder = decoders.WordPiece()
    return tok


def byte_bpe(texts: list[str]) -> Tokenizer:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=800,
            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")), trim_offsets=True, add_prefix_space=False
    )
    tok.decoder = decoders.ByteLevel()
    return tok


def build_hf(kind: str, out: Path, tokenizer: Tokenizer, labels: list[str], maxlen: int, seed: int = 0) -> Path:
    """Save a random ``kind`` classifier (``bert``, ``distilbert``, ``roberta``; hidden 32, 2 layers,
    2-4 heads) with class names ``labels`` and its tokenizer (``maxlen`` tokens) to ``out``."""
    import torch
    import transformers as tr

    names = {"id2label": dict(enumerate(labels)), "label2id": {n: i for i, n in enumerate(labels)}}
    torch.manual_seed(seed)
    if kind == "roberta":
        fast = tr.RobertaTokenizerFast(
            tokenizer_object=tokenizer,
            bos_token="<s>",
            eos_token="</s>",
            sep_token="</s>",
            cls_token="<s>",
            unk_token="<unk>",
            pad_token="<pad>",
            mask_token="<mask>",
            model_max_length=maxlen,
        )
        config = tr.RobertaConfig(
            vocab_size=len(fast),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=maxlen + 2,
            pad_token_id=fast.pad_token_id,
            bos_token_id=fast.bos_token_id,
            eos_token_id=fast.eos_token_id,
            hidden_act="gelu_new",
            **names,
        )
        model = tr.RobertaForSequenceClassification(config)
    else:
        cls = tr.BertTokenizerFast if kind == "bert" else tr.DistilBertTokenizerFast
        fast = cls(
            tokenizer_object=tokenizer,
            unk_token="[UNK]",
            sep_token="[SEP]",
            pad_token="[PAD]",
            cls_token="[CLS]",
            mask_token="[MASK]",
            model_max_length=maxlen,
        )
        if kind == "bert":
            config = tr.BertConfig(
                vocab_size=len(fast),
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                intermediate_size=64,
                max_position_embeddings=64,
                pad_token_id=fast.pad_token_id,
                **names,
            )
            model = tr.BertForSequenceClassification(config)
        else:
            config = tr.DistilBertConfig(
                vocab_size=len(fast),
                dim=32,
                n_layers=2,
                n_heads=4,
                hidden_dim=64,
                max_position_embeddings=64,
                pad_token_id=fast.pad_token_id,
                **names,
            )
            model = tr.DistilBertForSequenceClassification(config)
    with torch.no_grad():  # default init is near-linear (std 0.02); make every nonlinearity bend
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.mul_(25.0 if "embeddings" in name else 10.0)
    model.eval()
    model.save_pretrained(out)
    fast.save_pretrained(out)
    return out


# ------------------------------------------- any Hugging Face classifier (the op-level route)
def _trained(model, texts: list[str], trainer_cls, specials: list[str], **kw):
    from tokenizers import Tokenizer

    tok = Tokenizer(model)
    for key, value in kw.items():
        setattr(tok, key, value)
    tok.train_from_iterator(texts, trainer_cls(specials))
    return tok


def unigram(texts: list[str], specials: list[str], template: str | None) -> Tokenizer:
    """A SentencePiece-style Unigram tokenizer (ALBERT, XLM-R, DeBERTa-v2): ``▁`` marks a word's
    start; ``template`` like ``"[CLS] $A [SEP]"`` (its tokens among ``specials``)."""
    from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

    tok = _trained(
        models.Unigram(),
        texts,
        lambda sp: trainers.UnigramTrainer(vocab_size=800, special_tokens=sp, unk_token=specials[1]),
        specials,
        normalizer=normalizers.Lowercase(),
        pre_tokenizer=pre_tokenizers.Metaspace(),
        decoder=decoders.Metaspace(),
    )
    _template(tok, template)
    return tok


def bpe(texts: list[str], specials: list[str], template: str | None) -> Tokenizer:
    """A byte-level BPE tokenizer as decoders (GPT-2, Llama 3, Qwen2) and ModernBERT use."""
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = _trained(
        models.BPE(),
        texts,
        lambda sp: trainers.BpeTrainer(
            vocab_size=800, special_tokens=sp, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
        specials,
        pre_tokenizer=pre_tokenizers.ByteLevel(add_prefix_space=False),
        decoder=decoders.ByteLevel(),
    )
    _template(tok, template)
    return tok


def _template(tok, template: str | None) -> None:
    from tokenizers import processors

    if template is None:
        tok.post_processor = (
            processors.ByteLevel(trim_offsets=True) if tok.decoder.__class__.__name__ == "ByteLevel" else None
        )
        return
    names = [t for t in template.split() if t != "$A"]
    tok.post_processor = processors.TemplateProcessing(
        single=template,
        pair=template.replace("$A", "$A " + " ".join(names[-1:]) + " $B:1") if names else "$A $B:1",
        special_tokens=[(t, tok.token_to_id(t)) for t in dict.fromkeys(names)],
    )


# arch -> (tokenizer kind, special tokens in id order, template, special token names for transformers)
_WP = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_BERTLIKE = {
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "mask_token": "[MASK]",
}
_SP = ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]
_SPLIKE = {
    "pad_token": "<pad>",
    "unk_token": "<unk>",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "mask_token": "[MASK]",
}
_XLMR = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
_ROBERTALIKE = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "cls_token": "<s>",
    "sep_token": "</s>",
    "pad_token": "<pad>",
    "unk_token": "<unk>",
    "mask_token": "<mask>",
}
ANY_ARCHS = {
    "electra": ("wordpiece", _WP, "[CLS] $A [SEP]", _BERTLIKE),
    "mpnet": ("wordpiece", _WP, "[CLS] $A [SEP]", _BERTLIKE),
    "albert": ("unigram", _SP, "[CLS] $A [SEP]", _SPLIKE),
    "deberta-v2": ("unigram", _SP, "[CLS] $A [SEP]", _SPLIKE),
    "xlm-roberta": ("unigram", _XLMR, "<s> $A </s>", _ROBERTALIKE),
    "modernbert": ("bpe", _WP, "[CLS] $A [SEP]", _BERTLIKE),
    "gpt2": ("bpe", ["<|endoftext|>"], None, {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"}),
    "qwen2": ("bpe", ["<|endoftext|>"], None, {"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}),
    "llama": (
        "bpe",
        ["<s>", "</s>", "<unk>"],
        "<s> $A",
        {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
    ),
    "mistral": (
        "bpe",
        ["<s>", "</s>", "<unk>"],
        "<s> $A",
        {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
    ),
}
DECODERS = ("gpt2", "llama", "qwen2", "mistral")


def _any_config(kind: str, vocab: int, maxlen: int, pad: int, tok, names: dict):
    import transformers as tr

    small = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}
    ids = {"pad_token_id": pad}
    for key in ("bos", "eos", "cls", "sep"):
        token = getattr(tok, f"{key}_token", None)
        if token is not None:
            ids[f"{key}_token_id"] = tok.convert_tokens_to_ids(token)
    if kind == "electra":
        return tr.ElectraConfig(
            vocab_size=vocab, embedding_size=16, max_position_embeddings=64, **small, **ids, **names
        )
    if kind == "albert":
        return tr.AlbertConfig(vocab_size=vocab, embedding_size=16, max_position_embeddings=64, **small, **ids, **names)
    if kind == "xlm-roberta":
        return tr.XLMRobertaConfig(vocab_size=vocab, max_position_embeddings=maxlen + pad + 1, **small, **ids, **names)
    if kind == "mpnet":
        return tr.MPNetConfig(vocab_size=vocab, max_position_embeddings=maxlen + 2, **small, **ids, **names)
    if kind == "deberta-v2":
        return tr.DebertaV2Config(
            vocab_size=vocab,
            max_position_embeddings=64,
            relative_attention=True,
            position_buckets=8,
            pos_att_type=["p2c", "c2p"],
            type_vocab_size=0,
            position_biased_input=False,
            pooler_hidden_size=32,
            norm_rel_ebd="layer_norm",
            share_att_key=True,
            max_relative_positions=-1,
            **small,
            **ids,
            **names,
        )
    if kind == "modernbert":
        return tr.ModernBertConfig(
            vocab_size=vocab,
            max_position_embeddings=128,
            hidden_size=32,
            num_hidden_layers=3,
            num_attention_heads=4,
            intermediate_size=64,
            global_attn_every_n_layers=2,
            local_attention=8,
            classifier_pooling="mean",
            bos_token_id=ids["cls_token_id"],
            eos_token_id=ids["sep_token_id"],
            **ids,
            **names,
        )
    if kind == "gpt2":
        return tr.GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=4, n_positions=64, **ids, **names)
    rope = {"num_key_value_heads": 2, "max_position_embeddings": 128, "head_dim": 8}
    if kind == "llama":
        return tr.LlamaConfig(vocab_size=vocab, **small, **rope, **ids, **names)
    if kind == "qwen2":
        return tr.Qwen2Config(vocab_size=vocab, **small, **rope, **ids, **names)
    if kind == "mistral":
        return tr.MistralConfig(vocab_size=vocab, sliding_window=8, **small, **rope, **ids, **names)
    raise ValueError(kind)


def build_any(
    kind: str,
    out: Path,
    texts: list[str],
    labels: list[str],
    maxlen: int,
    seed: int = 0,
    padding_side: str = "right",
    pad: str | None = "default",
    scaled: bool = True,
) -> Path:
    """Save a random tiny ``*ForSequenceClassification`` of model type ``kind`` (see
    :data:`ANY_ARCHS`; hidden 32, 2-3 layers) with a tokenizer trained on ``texts``. Decoders get
    ``pad``: ``"default"`` (their end-of-text token, as users set it), None (no pad token in the
    tokenizer, ``config.pad_token_id`` only) or a token. ``scaled=False`` keeps transformers' own
    initialization (std 0.02: near-linear, and a zero padding embedding where the config says so)."""
    import torch
    import transformers as tr

    tok_kind, specials, template, special_names = ANY_ARCHS[kind]
    trained = {
        "wordpiece": lambda: wordpiece(texts),
        "unigram": lambda: unigram(texts, specials, template),
        "bpe": lambda: bpe(texts, specials, template),
    }[tok_kind]()
    special_names = dict(special_names)
    if kind in DECODERS and pad != "default":
        special_names.pop("pad_token", None)
        if pad is not None:
            special_names["pad_token"] = pad
    elif kind in DECODERS and "pad_token" not in special_names:
        special_names["pad_token"] = special_names["eos_token"]
    fast = tr.PreTrainedTokenizerFast(
        tokenizer_object=trained, model_max_length=maxlen, padding_side=padding_side, **special_names
    )
    pad_id = fast.pad_token_id
    if pad_id is None:  # the tokenizer has none: the config names the end-of-text token
        pad_id = fast.convert_tokens_to_ids(special_names["eos_token"])
    names = {"id2label": dict(enumerate(labels)), "label2id": {n: i for i, n in enumerate(labels)}}
    torch.manual_seed(seed)
    config = _any_config(kind, len(fast), maxlen, pad_id, fast, names)
    config.architectures = [tr.AutoModelForSequenceClassification._model_mapping[type(config)].__name__]
    model = getattr(tr, config.architectures[0])(config)
    with torch.no_grad():  # default init is near-linear (std 0.02); make every nonlinearity bend
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.mul_(
                    25.0 if "emb" in name or "wte" in name or "wpe" in name else 6.0 if kind != "modernbert" else 3.0
                )
    model.eval()
    model.save_pretrained(out)
    fast.save_pretrained(out)
    return out
