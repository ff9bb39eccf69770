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
import tarfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from seqshap.web.server import make_server

if TYPE_CHECKING:  # transformers and tokenizers load only where a Hugging Face model is built
    from tokenizers import Tokenizer

REVIEW = (
    "A wonderful, moving film: the acting is superb and the story is beautiful. "
    "The ending was a bit dull, but I loved it."
)


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
