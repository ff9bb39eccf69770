"""Build Hugging Face sequence classifiers for the benchmarks, offline: a WordPiece tokenizer
trained with the ``tokenizers`` library on IMDB training reviews, and a BERT or DistilBERT
classifier from a config (random weights), saved with ``save_pretrained`` as a user would."""

from __future__ import annotations

from pathlib import Path


def wordpiece(texts: list[str], vocab_size: int, maxlen: int):
    """A lowercasing BERT WordPiece tokenizer trained on ``texts`` (``[PAD]`` is id 0)."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    tok.decoder = decoders.WordPiece()
    return transformers.BertTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        model_max_length=maxlen,
    )


def byte_bpe(texts: list[str], vocab_size: int, maxlen: int):
    """A byte-level BPE tokenizer as Llama 3 and Qwen2 use, trained on ``texts``: ``<s>`` (BOS,
    added in front), ``</s>`` (EOS, also the padding token, as users set it for classification)."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<s>", "</s>", "<unk>"]
    tok.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="</s>",
        model_max_length=maxlen,
    )


def decoder(tokenizer, hidden: int, layers: int, heads: int, kv_heads: int, ff: int, positions: int = 512):
    """A random two-class ``LlamaForSequenceClassification`` (RMSNorm, rotary, SwiGLU, grouped-query
    causal attention) for ``tokenizer``."""
    import transformers

    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        intermediate_size=ff,
        max_position_embeddings=positions,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    config.architectures = ["LlamaForSequenceClassification"]
    return transformers.LlamaForSequenceClassification(config)


def classifier(kind: str, tokenizer, hidden: int, layers: int, heads: int, ff: int, positions: int = 512):
    """A random ``bert``, ``distilbert`` or ``electra`` two-class classifier for ``tokenizer``."""
    import transformers

    labels = {"id2label": {0: "negative", 1: "positive"}, "label2id": {"negative": 0, "positive": 1}}
    if kind == "electra":  # explained through the op-level route (no canonized layer)
        config = transformers.ElectraConfig(
            vocab_size=len(tokenizer),
            embedding_size=hidden,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=ff,
            max_position_embeddings=positions,
            pad_token_id=tokenizer.pad_token_id,
            **labels,
        )
        config.architectures = ["ElectraForSequenceClassification"]
        return transformers.ElectraForSequenceClassification(config)
    if kind == "distilbert":
        config = transformers.DistilBertConfig(
            vocab_size=len(tokenizer),
            dim=hidden,
            n_layers=layers,
            n_heads=heads,
            hidden_dim=ff,
            max_position_embeddings=positions,
            pad_token_id=tokenizer.pad_token_id,
            **labels,
        )
        return transformers.DistilBertForSequenceClassification(config)
    config = transformers.BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ff,
        max_position_embeddings=positions,
        pad_token_id=tokenizer.pad_token_id,
        **labels,
    )
    return transformers.BertForSequenceClassification(config)


def save(model, tokenizer, out: str | Path) -> Path:
    model.eval()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return Path(out)
