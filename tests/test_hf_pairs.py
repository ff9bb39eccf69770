"""Sentence pairs (NLI, paraphrase, question + passage): a Hugging Face model trained on pairs is
explained for ``text`` + ``text_pair``, the words of both texts, exactly.

A pair travels as one string (:func:`seqshap.pair`, the two texts joined by the ASCII record
separator), so the tokenizer, the explanation, its JSON and every picture read it as they read
one text. BERT-style models get their token types from the ids (1 after the first ``[SEP]``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import httpx
import numpy as np
import pytest
import torch

import seqshap
from helpers import build_any, build_hf, seqshap_serve, wordpiece
from seqshap import DeepExplainer
from seqshap.data.pairs import PAIR_SEP, split_pair
from seqshap.viz.html import explanation_html

pytest.importorskip("transformers")

MAXLEN = 40
LABELS = ["entailment", "neutral", "contradiction"]
PREMISE = "The acting was GREAT, but the plot was unbelievably awful."
HYPOTHESIS = "The film was wonderful."
SEQSHAP = [sys.executable, "-m", "seqshap.cli"]


@pytest.fixture(scope="module")
def pair_dirs(imdb, tmp_path_factory):
    texts = imdb["train"].texts[:1500]
    root = tmp_path_factory.mktemp("pairs")
    return {
        "bert": build_hf("bert", root / "bert", wordpiece(texts), LABELS, MAXLEN, seed=11),  # canonized route
        "electra": build_any("electra", root / "electra", texts, LABELS, MAXLEN, seed=12),  # op-level route
        "xlm-roberta": build_any("xlm-roberta", root / "xlmr", texts, LABELS, MAXLEN, seed=13),  # no token types
    }


@pytest.fixture(scope="module")
def pair_models(pair_dirs):
    return {k: seqshap.load(d) for k, d in pair_dirs.items()}


def own(m, a: str, b: str) -> torch.Tensor:
    """The transformers model's own probabilities for the pair, as its tokenizer prepares it."""
    enc = m.vocab.tokenizer([a], [b], return_tensors="pt", truncation="longest_first", max_length=m.maxlen)
    with torch.no_grad():
        return torch.softmax(m.net.hf(**enc).logits, -1)[0]


def test_a_pair_is_one_string_and_back():
    joined = seqshap.pair("a premise", "a hypothesis")
    assert joined == f"a premise{PAIR_SEP}a hypothesis"
    assert split_pair(joined) == ("a premise", "a hypothesis")
    assert split_pair("one text") == ("one text", None)
    with pytest.raises(ValueError, match="pair separator"):
        seqshap.pair("a\x1eb", "c")


@pytest.mark.parametrize("arch", ["bert", "electra", "xlm-roberta"])
def test_pairs_are_read_as_the_models_tokenizer_reads_them(arch, pair_models):
    m = pair_models[arch]
    long = " ".join(["a very long premise"] * 20)
    pairs = [(PREMISE, HYPOTHESIS), (long, HYPOTHESIS), ("Dull.", "Boring film")]
    ids = m.encode([seqshap.pair(a, b) for a, b in pairs])
    ref = m.vocab.tokenizer(
        [a for a, _ in pairs],
        [b for _, b in pairs],
        padding="max_length",
        truncation="longest_first",
        max_length=m.maxlen,
        return_tensors="pt",
    )["input_ids"]
    assert torch.equal(ids, ref)
    # types only where the tokenizer gives them (BERT's does; this ELECTRA's was saved without them)
    assert (m.config["pairs"] == "token types") == ("token_type_ids" in m.vocab.tokenizer("a", "b"))
    assert (m.config["pairs"] == "token types") == (arch == "bert")
    with torch.no_grad():
        got = m.net(ids)
    for i, (a, b) in enumerate(pairs):  # token types from the ids are the tokenizer's token types
        torch.testing.assert_close(got[i], own(m, a, b), atol=1e-5, rtol=0)
    mixed = m.encode([PREMISE, seqshap.pair(PREMISE, HYPOTHESIS), "Dull."])  # one text and pairs in one call
    assert torch.equal(mixed[1], ids[0])
    assert torch.equal(mixed[0], m.encode([PREMISE])[0])


def test_token_types_matter_to_the_model(pair_models):
    """So the check above means something: with every token type 0, BERT says something else."""
    m = pair_models["bert"]
    enc = m.vocab.tokenizer([PREMISE], [HYPOTHESIS], return_tensors="pt")
    with torch.no_grad():
        typed = m.net.hf(**enc).logits
        untyped = m.net.hf(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
    assert (typed - untyped).abs().max() > 1e-3


@pytest.mark.parametrize("arch", ["bert", "electra", "xlm-roberta"])
def test_a_pair_is_explained_exactly_word_by_word_in_both_texts(arch, pair_models, imdb):
    m = pair_models[arch]
    refs = [seqshap.pair("ok", "fine"), seqshap.pair(imdb["train"].texts[3][:200], "a film"), "no"]
    for dtype, tol in ((None, 1e-4), (torch.float64, 1e-9)):
        e = DeepExplainer(m, refs, dtype=dtype).explain([PREMISE], pairs=[HYPOTHESIS], target="contradiction")[0]
        assert e.completeness_error <= tol
        assert np.isfinite(e.values).all()
    assert e.text == seqshap.pair(PREMISE, HYPOTHESIS)
    assert e.prediction == pytest.approx(float(own(m, PREMISE, HYPOTHESIS)[2]), abs=1e-5)
    words = e.word_list()
    first = [w for w in words if w.span[0] < len(PREMISE)]
    second = [w for w in words if w.span[0] > len(PREMISE)]
    assert "".join(w.text for w in first) == re.sub(r"\s+", "", PREMISE)
    assert "".join(w.text for w in second) == re.sub(r"\s+", "", HYPOTHESIS)
    assert len(first) + len(second) == len(words)
    assert second[-1].text in ("wonderful", "wonderful.", ".")
    html = explanation_html(e)
    assert "unbelievably" in html
    assert "wonderful" in html
    assert "\u2016" in html  # the separator shown between the two texts
    assert PAIR_SEP not in html
    with pytest.raises(ValueError, match="one second text per text"):
        DeepExplainer(m, refs).explain([PREMISE, "x"], pairs=[HYPOTHESIS])


def test_a_model_of_one_text_refuses_a_pair(tiny_model):
    with pytest.raises(ValueError, match="reads one text"):
        tiny_model.encode([seqshap.pair("a", "b")])


@pytest.mark.slow
def test_cli_pair_and_its_refusal(pair_dirs, tiny_model, tmp_path):
    page = tmp_path / "pair.html"
    run = subprocess.run(
        [
            *SEQSHAP,
            *("explain", "--model", str(pair_dirs["electra"]), PREMISE, "--pair", HYPOTHESIS),
            *("--json", "--html", str(page), "--background", "3", "--target", "neutral"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    d = json.loads(run.stdout)
    assert d["text"] == seqshap.pair(PREMISE, HYPOTHESIS)
    assert d["output_name"] == "neutral"
    assert abs(sum(d["values"]) - (d["prediction"] - d["base_value"])) <= 1e-4
    assert "wonderful" in page.read_text()
    bad = subprocess.run(
        [*SEQSHAP, "explain", "--model", str(tiny_model.path), PREMISE, "--pair", HYPOTHESIS],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2
    assert "--pair" in bad.stderr
    assert "reads one text" in bad.stderr


@pytest.mark.server
def test_the_server_explains_a_pair(pair_dirs):
    with (
        seqshap_serve("--model", str(pair_dirs["bert"]), "--background", "3") as url,
        httpx.Client(base_url=url, timeout=120) as c,
    ):
        d = c.post("/api/explain", json={"text": PREMISE, "pair": HYPOTHESIS, "html": True}).json()
        assert d["completeness_error"] <= 1e-4
        assert "wonderful" in d["html"]
        assert "\u2016" in d["html"]
        bad = c.post("/api/explain", json={"text": PREMISE, "pair": "   "})
        assert bad.status_code == 422
        assert "pair" in bad.text
