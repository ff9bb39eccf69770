"""Which positions are words: the tokenizer's :class:`TokenLayout`, read by every method, checked
against rows of ids written by hand for four layouts:

- native: ``<pad>`` 0 in front, ``<start>`` 1, ``<oov>`` 2 (a native Transformer);
- BERT-style: ``[PAD]`` 0, ``[UNK]`` 1, ``[CLS]`` 2, ``[SEP]`` 3, padding at the end;
- RoBERTa-style: ``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3, padding at the end;
- a left-padded decoder (GPT-2 style): its end-of-text token is its padding, in front, no markers.

The Hugging Face models are tiny ones built from configs (tests/helpers.py); the decoder's rows come
from a GPT-2 tokenizer, read by a native Transformer; nothing is downloaded. For each: IG's baseline and base value,
occlusion, the Shapley games, random, DeepLIFT's default reference, the words an explanation shows
(and the pictures, word importance and the faithfulness metrics built on them).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import seqshap
from helpers import build_hf, byte_bpe, wordpiece
from seqshap.attribution import (
    DeepExplainer,
    DeepLift,
    ExactShapley,
    Explanation,
    IntegratedGradients,
    Occlusion,
    RandomBaseline,
    SamplingShapley,
)
from seqshap.attribution.base import layout_of
from seqshap.data import Vocab
from seqshap.data.layout import NATIVE, TokenLayout, hf_layout
from seqshap.faithfulness.metrics import keep_words, pad_in_place, rank_words, remove_words
from seqshap.importance import WordImportance
from seqshap.models.transformer import TransformerClassifier
from seqshap.store import SeqshapModel
from seqshap.viz.layout import force_layout

T = 12
KINDS = ("native", "bert", "roberta", "decoder")
TEXT = "The film was good"


@dataclass
class Case:
    """A model and rows written by hand: ``ids`` ``[2, T]`` (a short text, a text filling the row),
    ``words`` which positions hold words, ``blank`` the rows with their words padded (specials kept),
    ``empty`` the empty text as the tokenizer writes it, ``unknown`` where the unknown-word id is."""

    model: object  # a SeqshapModel, or a bare nn.Module with ``layout`` given to each method
    layout: TokenLayout
    ids: torch.Tensor
    words: np.ndarray
    blank: torch.Tensor
    empty: list[int]
    unknown: np.ndarray
    given: TokenLayout | None = None  # what a bare nn.Module is told

    @property
    def net(self) -> nn.Module:
        return self.model.net if isinstance(self.model, SeqshapModel) else self.model

    def f(self, rows) -> np.ndarray:
        """The model's output column 0 (what the methods explain by default), by a plain forward."""
        with torch.no_grad():
            return self.net.eval()(torch.as_tensor(rows)).double()[:, 0].numpy()

    def method(self, cls, **kw):
        return cls(self.model, output="probability", layout=self.given, **kw)


def ids_of(tokens: list[str], vocab: dict[str, int]) -> list[int]:
    return [vocab[t] for t in tokens]


@pytest.fixture(scope="module")
def texts(imdb) -> list[str]:
    return list(imdb["train"].texts[:300])


@pytest.fixture(scope="module")
def cases(texts, tmp_path_factory) -> dict[str, Case]:
    import transformers as tr
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    out: dict[str, Case] = {}
    # native: a Transformer (it has an output for a row of padding only: the text filling the row)
    vocab = Vocab.build(texts, num_words=400)
    torch.manual_seed(0)
    net = TransformerClassifier(vocab_size=400, embed_dim=16, heads=2, layers=1, ff_dim=32, dropout=0.0).eval()
    native = SeqshapModel(net, vocab, {"arch": "transformer", "maxlen": T, "name": "native"})
    the, film, great = ids_of(["the", "film", "good"], vocab.word_to_id)
    short = [0] * 7 + [1, the, film, 2, great]  # <oov> 2 is a word, one the vocabulary does not know
    full = [the, film, great] * 3 + [the, 2, film]  # front-truncated: no start token left
    out["native"] = Case(
        native,
        NATIVE,
        torch.tensor([short, full]),
        np.array([[False] * 8 + [True] * 4, [True] * T]),
        torch.tensor([[0] * 7 + [1, 0, 0, 0, 0], [0] * T]),
        [0] * (T - 1) + [1],
        np.array([[False] * 10 + [True, False], [False] * 10 + [True, False]]),
    )
    # BERT and RoBERTa from configs, with tokenizers trained on the reviews
    root = tmp_path_factory.mktemp("layouts")
    for kind, tok in (("bert", wordpiece(texts)), ("roberta", byte_bpe(texts))):
        model = seqshap.load(build_hf(kind, root / kind, tok, ["negative", "positive"], T, seed=1))
        v = model.vocab.word_to_id
        if kind == "bert":  # [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3
            the, film, great = ids_of(["the", "film", "good"], v)
            assert (v["[PAD]"], v["[UNK]"], v["[CLS]"], v["[SEP]"]) == (0, 1, 2, 3)
            short = [2, the, film, 1, great, 3] + [0] * 6
            full = [2] + [the, film, great] * 3 + [1] + [3]
            blank = [[2, 0, 0, 0, 0, 3] + [0] * 6, [2] + [0] * 10 + [3]]
            empty, pad = [2, 3] + [0] * (T - 2), 0
            unk = 1
        else:  # <s> 0, <pad> 1, </s> 2, <unk> 3
            the, film, great = ids_of(["Ġthe", "Ġfilm", "Ġgood"], v)
            assert (v["<s>"], v["<pad>"], v["</s>"], v["<unk>"]) == (0, 1, 2, 3)
            short = [0, the, film, 3, great, 2] + [1] * 6
            full = [0] + [the, film, great] * 3 + [3] + [2]
            blank = [[0, 1, 1, 1, 1, 2] + [1] * 6, [0] + [1] * 10 + [2]]
            empty, pad = [0, 2] + [1] * (T - 2), 1
            unk = 3
        ids = torch.tensor([short, full])
        words = (ids != pad).numpy() & ~np.isin(ids.numpy(), [0, 2, 3] if kind == "bert" else [0, 2])
        out[kind] = Case(model, model.vocab.layout, ids, words, torch.tensor(blank), empty, ids.numpy() == unk)
    # a left-padded decoder's tokenizer: GPT-2's pads with its end-of-text token, in front, and adds no
    # markers; the model reading its rows is a native Transformer (it masks id 0, that token)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=500, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    bpe.decoder = decoders.ByteLevel()
    end = "<|endoftext|>"
    fast = tr.GPT2TokenizerFast(
        tokenizer_object=bpe, bos_token=end, eos_token=end, unk_token=end, pad_token=end, padding_side="left"
    )
    layout = hf_layout(fast)
    v = fast.get_vocab()
    the, film, great = ids_of(["Ġthe", "Ġfilm", "Ġgood"], v)
    assert v[end] == 0
    ids = torch.tensor([[0] * 8 + [the, film, great, film], [the, film, great] * 4])
    assert fast([" the film good film"], padding="max_length", max_length=T)["input_ids"] == [ids[0].tolist()]
    torch.manual_seed(2)
    decoder = TransformerClassifier(vocab_size=len(fast), embed_dim=16, heads=2, layers=1, ff_dim=32, dropout=0.0)
    out["decoder"] = Case(
        decoder.eval(), layout, ids, (ids != 0).numpy(), torch.zeros(2, T, dtype=torch.long), [0] * T,
        np.zeros((2, T), dtype=bool), given=layout,
    )  # fmt: skip
    return out


# ---------------------------------------------------------------------------- the layout itself
@pytest.mark.parametrize("kind", KINDS)
def test_the_layout_reads_hand_built_rows(kind, cases):
    c = cases[kind]
    assert layout_of(c.model, c.given) is c.layout
    if isinstance(c.model, SeqshapModel):
        assert c.model.vocab.layout == c.layout  # the tokenizer owns it
        assert c.model.encode([""])[0].tolist() == c.empty  # its empty text is the tokenizer's own
    assert c.layout.visible(c.ids).tolist() == c.words.tolist()
    assert c.layout.blank_words(c.ids).tolist() == c.blank.tolist()
    assert isinstance(c.layout.blank_words(c.ids), torch.Tensor)
    assert c.layout.empty_row(T).tolist() == c.empty
    assert c.layout.is_unknown(c.ids).tolist() == c.unknown.tolist()
    assert [c.layout.players(row).tolist() for row in c.ids] == [np.flatnonzero(w).tolist() for w in c.words]
    with pytest.raises(ValueError, match="not a word"):
        c.layout.blank_words(c.ids, ~c.words)  # padding and specials are never blanked
    assert TokenLayout.from_json(c.layout.to_json()) == c.layout


def test_hugging_face_layouts_come_from_the_tokenizer(cases):
    bert, roberta = cases["bert"].layout, cases["roberta"].layout
    assert (bert.pad_id, bert.padding_side, bert.special_ids, bert.unknown_id) == (0, "right", {2, 3}, 1)
    assert (roberta.pad_id, roberta.padding_side, roberta.special_ids, roberta.unknown_id) == (1, "right", {0, 2}, 3)
    dec = cases["decoder"].layout  # pad = eos = unk: that id reads as padding, as the model's mask reads it
    assert (dec.pad_id, dec.padding_side, dec.special_ids, dec.empty_ids, dec.unknown_id) == (
        0,
        "left",
        set(),
        (),
        None,
    )


def test_a_bare_module_gets_the_native_layout_unless_told():
    net = nn.Sequential(nn.Embedding(10, 2), nn.Flatten(), nn.Linear(8, 1), nn.Sigmoid())
    assert Occlusion(net).layout is NATIVE
    right = TokenLayout(pad_id=0, padding_side="right", special_ids=frozenset({2, 3}), empty_ids=(2, 3))
    assert Occlusion(net, layout=right).layout is right
    x = torch.tensor([[2, 5, 6, 3]])
    assert (Occlusion(net, layout=right).attribute(x)[0, [0, 3]] == 0).all()
    with pytest.raises(TypeError, match="layout must be a TokenLayout"):
        Occlusion(net, layout={"pad_id": 0})


# ------------------------------------------------------------------------- every method's reference
@pytest.mark.parametrize("kind", KINDS)
def test_ig_base_value_is_f_of_the_text_with_its_words_padded_and_specials_kept(kind, cases):
    c = cases[kind]
    ig = c.method(IntegratedGradients, steps=4)
    assert ig.baseline_ids(c.ids).tolist() == c.blank.tolist()
    values, base = ig.attribute_with_base(c.ids)
    np.testing.assert_allclose(base, c.f(c.blank), atol=1e-6)
    assert np.isfinite(values).all()
    assert (values[~c.words] == 0).all()  # padding and special tokens keep their embedding on the path


@pytest.mark.parametrize("kind", KINDS)
def test_occlusion_pads_one_word_at_a_time_and_gives_specials_exactly_zero(kind, cases):
    c = cases[kind]
    values = c.method(Occlusion).attribute(c.ids)
    assert (values[~c.words] == 0).all()
    fx = c.f(c.ids)
    for i, t in zip(*np.nonzero(c.words), strict=True):
        row = c.ids[i].clone()
        row[t] = c.layout.pad_id
        assert values[i, t] == pytest.approx(fx[i] - c.f(row[None])[0], abs=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_shapley_games_start_from_the_text_with_its_words_padded(kind, cases):
    c = cases[kind]
    short = c.ids[:1]  # 4 words: 16 coalitions
    values, base = c.method(ExactShapley).attribute_with_base(short)
    assert base[0] == pytest.approx(c.f(c.blank[:1])[0], abs=1e-6)
    assert values.sum() == pytest.approx(c.f(short)[0] - base[0], abs=1e-6)
    assert (values[~c.words[:1]] == 0).all()
    assert c.method(ExactShapley).n_players(c.ids).tolist() == c.words.sum(1).tolist()
    values, base = c.method(SamplingShapley, n_permutations=2).attribute_with_base(c.ids)
    np.testing.assert_allclose(base, c.f(c.blank), atol=1e-6)
    np.testing.assert_allclose(values.sum(1), c.f(c.ids) - base, atol=1e-6)
    assert (values[~c.words] == 0).all()


@pytest.mark.parametrize("kind", KINDS)
def test_random_values_fall_on_the_words_only(kind, cases):
    c = cases[kind]
    values = c.method(RandomBaseline).attribute(c.ids)
    assert (values[~c.words] == 0).all()
    assert (values[c.words] != 0).all()


@pytest.mark.parametrize("kind", KINDS)
def test_deeplift_default_reference_is_the_empty_text_as_the_tokenizer_writes_it(kind, cases):
    c = cases[kind]
    dl = DeepLift(c.model, maxlen=T, layout=c.given)
    assert dl.reference_ == "the empty text"
    assert dl.background[0].tolist() == c.empty
    assert dl.expected_value[0] == pytest.approx(c.f([c.empty])[0], abs=1e-6)
    values, base = dl.attribute_with_base(c.ids)
    np.testing.assert_allclose(values.sum(1), c.f(c.ids) - base, atol=1e-4)


# ------------------------------------------------------------------------------- the words shown
@pytest.mark.parametrize("kind", KINDS)
def test_explanations_show_the_words_and_only_the_words(kind, cases):
    c = cases[kind]
    for method in (c.method(Occlusion), DeepLift(c.model, maxlen=T, layout=c.given)):
        exps = method.explain(c.ids)
        for e, words, unknown in zip(exps, c.words, c.unknown, strict=True):
            assert e.layout == c.layout
            assert e.visible.tolist() == words.tolist()
            shown = e.word_list()
            assert [w.positions for w in shown] == [(int(p),) for p in np.flatnonzero(words)]
            assert [w.unknown for w in shown] == unknown[words].tolist()
            assert e.hidden_value == pytest.approx(float(e.values[~words].sum()), abs=1e-12)
            segments = force_layout(e).segments
            assert {s.pos for s in segments} - {-1} <= {int(p) for p in np.flatnonzero(words)}
            hidden = [s for s in segments if s.pos == -1]
            assert all(set(s.positions) == {int(p) for p in np.flatnonzero(~words)} for s in hidden)
            back = Explanation.from_dict(e.to_dict())  # the JSON form keeps the layout
            assert back.layout == c.layout
            assert back.visible.tolist() == words.tolist()


@pytest.mark.parametrize("kind", ["native", "bert", "roberta"])
def test_a_texts_words_are_its_tokenizers_spans(kind, cases):
    """Explained from a text, the positions the layout calls words are exactly those the tokenizer
    read from the text, and the words shown are the text's words as written."""
    c = cases[kind]
    e = c.method(Occlusion).explain([TEXT])[0]
    assert e.visible.tolist() == [s is not None for s in e.spans]
    assert [w for w, _ in e.words()] == TEXT.split()
    acc = WordImportance().add(e)
    assert {r.word for r in acc.table(1).rows} == {w.lower() for w in TEXT.split()}


def test_word_importance_skips_specials_and_counts_unknown_words(cases):
    c = cases["bert"]
    acc = WordImportance().update(c.method(Occlusion).explain(c.ids))
    words = {r.word for r in acc.table(1).rows}
    assert not words & {"[cls]", "[sep]", "[pad]", "[unk]"}
    assert acc.n_skipped == int(c.unknown.sum())  # [UNK] is a word the vocabulary does not know
    tokens = c.model.tokens(c.ids[0].tolist())
    by_ids = WordImportance()
    by_ids.add_tokens(tokens, np.ones(T), ids=c.ids[0].tolist(), layout=c.layout)
    assert {r.word for r in by_ids.table(1).rows} == {"the", "film", "good"}
    assert by_ids.n_skipped == 1


@pytest.mark.parametrize("kind", KINDS)
def test_faithfulness_metrics_remove_words_and_keep_specials(kind, cases):
    c = cases[kind]
    row, words = c.ids[0].numpy(), np.flatnonzero(c.words[0])
    assert pad_in_place(row, words, c.layout).tolist() == c.blank[0].tolist()
    assert sorted(rank_words(np.arange(T, dtype=float), row, 1, c.layout).tolist()) == words.tolist()
    kept = keep_words(row, words[:1], c.layout)
    assert c.layout.visible(kept).sum() == 1
    assert sorted(kept[~c.layout.visible(kept) & (kept != c.layout.pad_id)].tolist()) == sorted(
        row[~c.words[0] & (row != c.layout.pad_id)].tolist()
    )  # every special token of the row stays
    assert c.layout.visible(remove_words(row, words, c.layout)).sum() == 0


def test_deepshap_explanations_read_the_tokenizers_layout(cases):
    c = cases["roberta"]
    e = DeepExplainer(c.model, c.ids[1:]).explain(c.ids[:1])[0]
    assert e.layout == c.layout
    assert e.visible.tolist() == c.words[0].tolist()
    assert e.completeness_error < 1e-4


# ------------------------------------------------------------------------- the engine reads no constants
SRC = Path(seqshap.__file__).resolve().parent


def test_the_methods_import_no_tokenizer_constants_no_store_and_not_the_package_root():
    """Which ids are padding or special is the layout's answer; a model reaches the methods as a value."""
    bad = []
    for path in sorted((SRC / "attribution").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                names = {a.name for a in node.names}
                if node.level == 2 and module == "data.tokenize" and names - {"Encoding"}:
                    bad.append(f"{path.name}: data.tokenize {sorted(names - {'Encoding'})}")
                if node.level == 2 and module in ("store", ""):  # the store, or the package root itself
                    bad.append(f"{path.name}: from ..{module} import {sorted(names)}")
                if node.level == 0 and module.split(".")[0] == "seqshap":
                    bad.append(f"{path.name}: {module}")
            elif isinstance(node, ast.Import) and any(a.name.split(".")[0] == "seqshap" for a in node.names):
                bad.append(f"{path.name}: import seqshap")
    assert not bad, bad


class NoWordsNoNumber(nn.Module):
    """A bag of embeddings that gives NaN for a row without words (native layout: only ids 0 and 1)."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(10, 1)

    def forward(self, x):
        if x.is_floating_point():  # embeddings (IG's path): finite
            return torch.sigmoid(x.sum(1))
        out = torch.sigmoid(self.embedding(x).sum(1))
        return torch.where((x > 1).any(1, keepdim=True), out, torch.full_like(out, float("nan")))


@pytest.mark.parametrize(
    ("method", "names"),
    [
        (IntegratedGradients, "the IG baseline \\(the text with its words replaced by padding\\), made from input 0"),
        (Occlusion, "an occluded text \\(one word replaced by padding\\), made from input 1"),
        (ExactShapley, "the empty coalition \\(the text with its words replaced by padding\\), made from input 0"),
        (SamplingShapley, "the empty coalition \\(the text with its words replaced by padding\\), made from input 0"),
    ],
)
def test_a_reference_without_a_number_is_named_for_what_it_is(method, names):
    """The error says which reference the model failed on, not "the mean output over the background"."""
    from seqshap.attribution import NonFiniteError

    x = torch.tensor([[0, 1, 5, 6], [0, 0, 1, 7]])
    with pytest.raises(NonFiniteError, match=f"the model's output for {names}, is nan"):
        method(NoWordsNoNumber(), output="raw").attribute(x if method is not ExactShapley else x[:1])
