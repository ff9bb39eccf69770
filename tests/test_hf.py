"""Hugging Face sequence classifiers (BERT, DistilBERT, RoBERTa) explained exactly, offline.

Tiny models are built from configs with random weights (scaled up so attention, GELU, LayerNorm
and the softmax over labels are far from linear) and WordPiece / byte-level BPE tokenizers trained
with the ``tokenizers`` library on real IMDB reviews, saved with ``save_pretrained`` and loaded back
the way a user would: ``seqshap.load``, the CLI in a subprocess, a real server.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
import transformers as tr

import seqshap
from helpers import build_hf, byte_bpe, wordpiece
from seqshap import DeepExplainer, DeepLift, ModelLoadError
from seqshap.attribution.attention import EncoderLayerParams, ExplicitEncoderLayer
from seqshap.attribution.pairs import Pairing
from seqshap.importance import WordImportance
from seqshap.models.hf import HFEncoderLayer

MAXLEN = 48
KINDS = ("bert", "distilbert", "roberta")
LABELS = {"bert": ["negative", "positive"], "distilbert": ["neg", "pos"], "roberta": ["negative", "mixed", "positive"]}
TEXT = "the acting was great but the plot was unbelievably awful"
EXE = Path(sys.executable).with_name("seqshap")


@pytest.fixture(scope="module")
def hf_dirs(imdb, tmp_path_factory) -> dict[str, Path]:
    texts = imdb["train"].texts[:2000]
    root = tmp_path_factory.mktemp("hf")
    wp, bpe = wordpiece(texts), byte_bpe(texts)
    return {
        k: build_hf(k, root / k, bpe if k == "roberta" else wp, LABELS[k], MAXLEN, seed=i) for i, k in enumerate(KINDS)
    }


@pytest.fixture(scope="module")
def hf_models(hf_dirs) -> dict[str, seqshap.SeqshapModel]:
    return {k: seqshap.load(d) for k, d in hf_dirs.items()}


def texts_of_lengths(imdb) -> tuple[list[str], list[str]]:
    """Inputs and references whose lengths differ both ways (short ones, truncated long ones)."""
    inputs = [TEXT, "Dull.", imdb["test"].texts[3]]
    refs = ["ok", "a fine film with a good cast", imdb["train"].texts[7], imdb["train"].texts[11], "no"]
    return inputs, refs


# --------------------------------------------------------------------------- the adapter
@pytest.mark.parametrize("kind", KINDS)
def test_prediction_equals_the_hf_models_own_output(kind, hf_models, imdb):
    m = hf_models[kind]
    assert m.config["arch"] == tr.AutoConfig.from_pretrained(m.path).architectures[0]
    assert m.classes == tuple(LABELS[kind])
    texts = [TEXT, "Dull.", *imdb["test"].texts[:6]]
    ids = m.encode(texts)
    own = m.vocab.tokenizer(texts, padding="max_length", truncation=True, max_length=m.maxlen, return_tensors="pt")
    assert torch.equal(ids, own["input_ids"])  # right padding, truncation: the model's own way
    assert (ids[:, -1] == m.vocab.pad_id).any()
    assert (ids[:, -1] != m.vocab.pad_id).any()
    hf = m.net.hf
    with torch.no_grad():
        expected = torch.softmax(hf(input_ids=ids, attention_mask=own["attention_mask"]).logits, -1)
        got = m.net(ids)
    assert got.shape == (len(texts), len(LABELS[kind]))
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    assert float(expected.max() - expected.min()) > 0.1  # the scaled weights make a real difference
    p = m.predict(texts)
    if len(LABELS[kind]) == 2:
        np.testing.assert_allclose(p, expected[:, 1].double().numpy(), atol=1e-6)
    else:
        np.testing.assert_allclose(p, expected.double().numpy(), atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_explicit_layer_computes_what_the_hf_layer_computes(kind, dtype, tol, hf_models):
    layer = HFEncoderLayer(copy.deepcopy(hf_models[kind].net.layers[0].layer)).to(dtype)
    explicit = ExplicitEncoderLayer(layer, EncoderLayerParams(**layer.seqshap_encoder_layer()), Pairing())
    g = torch.Generator().manual_seed(0)
    h = torch.randn(5, MAXLEN, 32, generator=g, dtype=dtype) * 3
    lengths = torch.tensor([1, 2, 9, 30, MAXLEN])
    mask = (torch.arange(MAXLEN)[None] < lengths[:, None]).to(dtype)  # right padding
    real = mask[:, :, None] > 0  # padded positions' outputs are never read
    with torch.no_grad():
        torch.testing.assert_close(explicit(h, mask) * real, layer(h, mask) * real, atol=tol, rtol=0)


# -------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("output", ["probability", "logit"])
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-5), (None, 1e-4)])
@pytest.mark.slow
def test_completeness_with_inputs_and_references_of_other_lengths(kind, output, dtype, tol, hf_models, imdb):
    m = hf_models[kind]
    inputs, refs = texts_of_lengths(imdb)
    real_in = (m.encode(inputs) != m.vocab.pad_id).sum(1).tolist()
    real_ref = (m.encode(refs) != m.vocab.pad_id).sum(1).tolist()
    assert min(real_ref) < min(real_in)
    assert max(real_ref) == max(real_in) == m.maxlen
    ex = DeepExplainer(m, refs, output=output, dtype=dtype)
    phi = ex.shap_values(m.encode(inputs))  # raises AdditivityError past tol
    assert phi.shape == (3, m.maxlen, len(LABELS[kind]))
    assert ex.last_errors_.max() <= tol
    if dtype == torch.float64:
        assert ex.last_errors_.max() < 1e-9  # exact to rounding, not just within the tolerance
    for e in ex.explain(inputs):
        assert e.completeness_error <= tol
        assert abs(e.values.sum() - (e.prediction - e.base_value)) <= tol
        assert np.isfinite(e.values).all()
        assert e.classes == tuple(LABELS[kind])
        assert e.output_name == LABELS[kind][e.output_index]


@pytest.mark.parametrize("kind", KINDS)
def test_summarize_and_a_single_reference_add_up(kind, hf_models, imdb):
    m = hf_models[kind]
    ex = DeepExplainer(m, imdb["train"].texts[:40], summarize=6)
    assert len(ex.background) == 6
    for e in ex.explain([TEXT, imdb["test"].texts[0]]):
        assert e.completeness_error <= 1e-4
    dl = DeepLift(m)  # default reference: the empty text ([CLS] [SEP] / <s> </s>, then padding)
    assert dl.background.tolist() == m.encode([""]).tolist()
    assert dl.explain([TEXT])[0].completeness_error <= 1e-4
    one = DeepLift(m, reference=m.encode(["a film"]), dtype=torch.float64)
    e = one.explain([TEXT])[0]
    assert e.method == "deeplift"
    assert e.completeness_error < 1e-9


def test_single_position_difference_gets_the_whole_difference(hf_models):
    """A reference equal to the input but at one subword: all of f(x) - f(r) lands there."""
    m = hf_models["bert"]
    x = m.encode([TEXT])
    r = x.clone()
    r[0, 3] = m.vocab.word_to_id["bad"]
    ex = DeepLift(m, reference=r, dtype=torch.float64)
    phi = ex.shap_values(x)[0, :, 1]
    net64 = copy.deepcopy(m.net).double()
    fx, fr = net64(x)[0, 1].item(), net64(r)[0, 1].item()
    assert phi[3] == pytest.approx(fx - fr, abs=1e-12)
    assert np.abs(np.delete(phi, 3)).max() == 0.0


# -------------------------------------------------------------------------- words
@pytest.mark.parametrize("kind", KINDS)
def test_explanations_read_as_the_words_of_the_text(kind, hf_models, imdb):
    m = hf_models[kind]
    text = "The acting was GREAT, but the plot... unbelievably awful!"
    e = DeepExplainer(m, imdb["train"].texts[:5]).explain([text])[0]
    words = e.word_list()
    # every word of the text, as written, in order; no [CLS]/[SEP]/<s>/</s>/padding
    assert "".join(w.text for w in words) == re.sub(r"\s+", "", text)
    assert [w.text for w in words][:4] == ["The", "acting", "was", "GREAT"]
    long = next(w for w in words if w.text == "unbelievably")
    assert len(long.positions) > 1  # a word of several subwords, summed into one
    assert long.value == pytest.approx(sum(e.values[p] for p in long.positions))
    assert ("unbelievably", long.value) in e.words()  # the Python API reads words too, not "##" pieces
    assert all(w in text for w, _ in e.top(20))  # as written: no "##"/"Ġ" pieces, no lower-casing
    hidden = [p for p in range(len(e.tokens)) if not e.visible[p]]
    assert e.spans[0] is None
    assert 0 in hidden
    assert all(e.ids[p] == m.vocab.pad_id or e.tokens[p] in ("[CLS]", "[SEP]", "<s>", "</s>") for p in hidden)
    # the sum over positions includes the special tokens and padding (the mask's share): still exact
    assert abs(e.values.sum() - (e.prediction - e.base_value)) <= 1e-4
    d = e.to_dict()
    assert d["label"] == e.predicted in LABELS[kind]
    assert d["output_name"] == LABELS[kind][e.output_index]


@pytest.mark.slow
def test_class_one_of_two_and_the_predicted_class_of_three(hf_models, imdb):
    texts = [TEXT, "Dull.", *imdb["test"].texts[:6]]
    two = DeepExplainer(hf_models["bert"], imdb["train"].texts[:5]).explain(texts)
    assert {e.output_index for e in two} == {1}
    assert {e.output_name for e in two} == {"positive"}
    three = hf_models["roberta"]
    exps = DeepExplainer(three, imdb["train"].texts[:5]).explain(texts)
    p = three.predict(texts)
    assert [e.output_index for e in exps] == p.argmax(1).tolist()
    assert [e.output_name for e in exps] == [e.predicted for e in exps]
    assert len({e.output_index for e in exps}) > 1  # several classes explained in one call
    chosen = DeepExplainer(three, imdb["train"].texts[:5]).explain(texts[:2], output_index=0)
    assert [e.output_name for e in chosen] == ["negative", "negative"]
    with pytest.raises(ValueError, match="out of range"):
        DeepExplainer(three, imdb["train"].texts[:5]).explain(texts[:1], output_index=3)


def test_word_importance_pools_subwords_into_words(hf_models, imdb):
    m = hf_models["bert"]
    texts = [TEXT, "Unbelievably dull.", "An unbelievably good film."]
    exps = DeepExplainer(m, imdb["train"].texts[:5]).explain(texts)
    table = WordImportance().update(exps).table(min_count=1)
    words = {r.word for r in table.rows}
    assert "unbelievably" in words
    assert table["unbelievably"].count == 3
    assert not any(w.startswith("##") or w in ("[CLS]", "[SEP]", "[PAD]") for w in words)
    expected = sum(w.value for e in exps for w in e.word_list() if w.text.lower() == "unbelievably")
    assert table["unbelievably"].sum == pytest.approx(expected, abs=1e-12)


# ------------------------------------------------------------------------- refusals
def copy_dir(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def edit_config(directory: Path, **changes) -> None:
    path = directory / "config.json"
    cfg = json.loads(path.read_text())
    cfg.update(changes)
    path.write_text(json.dumps(cfg))


def test_refuses_an_architecture_that_is_not_a_sequence_classifier_by_name(hf_dirs, tmp_path):
    d = copy_dir(hf_dirs["bert"], tmp_path / "mlm")
    edit_config(d, architectures=["BertForMaskedLM"])
    (d / "model.safetensors").write_bytes(b"not even read")  # refused before any weight is touched
    with pytest.raises(
        ModelLoadError, match=r"BertForMaskedLM.*not a sequence classifier.*BertForSequenceClassification.*GPT2For"
    ):
        seqshap.load(d)


def test_refuses_pickled_weights_and_says_how_to_convert(hf_dirs, tmp_path):
    d = copy_dir(hf_dirs["distilbert"], tmp_path / "bin")
    (d / "model.safetensors").rename(d / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match=r"pytorch_model\.bin.*safetensors only.*safe_serialization=True"):
        seqshap.load(d)
    (d / "pytorch_model.bin").unlink()
    with pytest.raises(ModelLoadError, match=r"missing model\.safetensors"):
        seqshap.load(d)


def test_refuses_a_directory_without_tokenizer_files(hf_dirs, tmp_path):
    d = copy_dir(hf_dirs["roberta"], tmp_path / "notok")
    for f in ("tokenizer.json", "vocab.json", "merges.txt", "vocab.txt"):
        (d / f).unlink(missing_ok=True)
    with pytest.raises(ModelLoadError, match=r"no tokenizer files.*tokenizer\.save_pretrained"):
        seqshap.load(d)


def test_refuses_num_labels_that_disagree_with_the_head(hf_dirs, tmp_path):
    d = copy_dir(hf_dirs["bert"], tmp_path / "labels")
    edit_config(d, id2label={"0": "a", "1": "b", "2": "c"}, label2id={"a": 0, "b": 1, "c": 2})
    with pytest.raises(ModelLoadError, match="3 labels but the classifier head has 2 outputs"):
        seqshap.load(d)


def test_refuses_missing_weights_and_single_output_heads(hf_dirs, tmp_path):
    from safetensors.torch import load_file, save_file

    d = copy_dir(hf_dirs["bert"], tmp_path / "partial")
    state = load_file(str(d / "model.safetensors"))
    save_file({k: v for k, v in state.items() if "layer.1." not in k}, str(d / "model.safetensors"))
    with pytest.raises(ModelLoadError, match=r"lacks .* tensors.*random"):
        seqshap.load(d)
    (d / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")  # a truncated header
    with pytest.raises(ModelLoadError, match="corrupt or truncated"):
        seqshap.load(d)
    r = copy_dir(hf_dirs["bert"], tmp_path / "regression")
    edit_config(r, id2label={"0": "score"}, label2id={"score": 0})
    with pytest.raises(ModelLoadError, match="2\\+ labels"):
        seqshap.load(r)


# ------------------------------------------------------------------ CLI, report, server
def run_cli(*argv: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(EXE), *argv], capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_cli_explain_json_and_html(hf_dirs, hf_models, tmp_path):
    m = hf_models["distilbert"]
    page = tmp_path / "out.html"
    r = run_cli(
        "explain", "--model", str(hf_dirs["distilbert"]), TEXT, "--json", "--background", "5", "--html", str(page)
    )
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["prediction"] == pytest.approx(float(m.predict([TEXT])[0]), abs=1e-6)
    assert d["completeness_error"] <= 1e-4
    assert sum(d["values"]) == pytest.approx(d["prediction"] - d["base_value"], abs=1e-4)
    assert d["output_name"] == "pos"
    assert d["classes"] == ["neg", "pos"]
    assert d["label"] in ("neg", "pos")
    assert "unbelievably" in {w["word"] for w in d["top"]}  # one word, though several subwords
    html = page.read_text()
    assert "unbelievably" in html
    assert "##" not in html
    assert "[CLS]" not in html
    bad = run_cli("explain", "--model", str(hf_dirs["distilbert"] / "nope"), TEXT)
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1


@pytest.mark.slow
def test_cli_report_with_own_data(hf_dirs, tmp_path, imdb):
    data = tmp_path / "reviews.csv"
    with data.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for text, label in zip(imdb["test"].texts[:9], imdb["test"].labels[:9], strict=True):
            w.writerow([text, int(label)])
    out = tmp_path / "report"
    r = run_cli(
        "report",
        "--model",
        str(hf_dirs["bert"]),
        "--data",
        str(data),
        "--out",
        str(out),
        "--n",
        "3",
        "--background",
        "5",
    )
    assert r.returncode == 0, r.stderr
    index = (out / "index.html").read_text()
    assert "BertForSequenceClassification" in index
    assert "##" not in index
    exps = json.loads((out / "explanations.json").read_text())
    assert len(exps) == 3
    for e, text in zip(exps, imdb["test"].texts[:3], strict=True):
        assert e["text"] == text
        assert e["output_name"] == "positive"
        assert sum(e["values"]) == pytest.approx(e["prediction"] - e["base_value"], abs=1e-4)
    assert (out / "word_importance.csv").exists()


@pytest.mark.server
@pytest.mark.slow
def test_serve_explains_through_a_real_server(hf_dirs, hf_models):
    proc = subprocess.Popen(
        [str(EXE), "serve", "--model", str(hf_dirs["roberta"]), "--port", "0", "--background", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert url, (line, proc.stderr.read() if proc.poll() is not None else "")
        with httpx.Client(base_url=url.group(0), timeout=120) as c:
            info = c.get("/api/model").json()
            assert info["arch"] == "RobertaForSequenceClassification"
            d = c.post("/api/explain", json={"text": TEXT, "html": True}).json()
            assert d["completeness_error"] <= 1e-4
            assert d["prediction"] == pytest.approx(float(hf_models["roberta"].predict([TEXT])[0].max()), abs=1e-6)
            assert d["label"] == d["output_name"] in LABELS["roberta"]
            assert "unbelievably" in d["html"]
            assert "Ġ" not in d["html"]
            assert c.get("/").status_code == 200
    finally:
        proc.terminate()
        proc.wait(30)
