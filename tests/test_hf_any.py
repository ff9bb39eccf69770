"""Any Hugging Face sequence classifier, encoder or decoder, explained exactly by running the
model's own transformers code under the op-level rules (no per-architecture code in seqshap).

Ten architectures are built from configs with random weights scaled up (so every nonlinearity
bends) and tokenizers trained on real IMDB reviews: WordPiece (ELECTRA, MPNet), SentencePiece-style
Unigram (ALBERT, DeBERTa-v2, XLM-R), byte-level BPE (ModernBERT, GPT-2, Qwen2, Llama, Mistral).
Each is saved with ``save_pretrained`` and loaded back as a user would, with ``seqshap.load``.
"""

from __future__ import annotations

import copy
import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import seqshap
from helpers import ANY_ARCHS, build_any
from seqshap import DeepExplainer, DeepLift, ModelLoadError
from seqshap.attribution import GradXInput, IntegratedGradients
from seqshap.models.hf import TESTED

pytest.importorskip("transformers")

MAXLEN = 40
LABELS = ["negative", "positive"]
ARCHS = tuple(ANY_ARCHS)
TEXT = "The acting was GREAT, but the plot... unbelievably awful!"
SEQSHAP = [sys.executable, "-m", "seqshap.cli"]


@pytest.fixture(scope="module")
def any_dirs(imdb, tmp_path_factory) -> dict[str, Path]:
    texts = imdb["train"].texts[:1500]
    root = tmp_path_factory.mktemp("hf-any")
    return {k: build_any(k, root / k, texts, LABELS, MAXLEN, seed=i) for i, k in enumerate(ARCHS)}


@pytest.fixture(scope="module")
def any_models(any_dirs) -> dict[str, seqshap.SeqshapModel]:
    return {k: seqshap.load(d) for k, d in any_dirs.items()}


def own_output(m: seqshap.SeqshapModel, texts: list[str]) -> torch.Tensor:
    """The transformers model's own probabilities, one unpadded text at a time."""
    rows = []
    with torch.no_grad():
        for t in texts:
            enc = m.vocab.tokenizer([t], return_tensors="pt", truncation=True, max_length=m.maxlen)
            enc.pop("token_type_ids", None)
            rows.append(torch.softmax(m.net.hf(**enc).logits, -1)[0])
    return torch.stack(rows)


def inputs_and_references(imdb) -> tuple[list[str], list[str]]:
    """Lengths that differ both ways: short texts, and reviews truncated at maxlen."""
    return [TEXT, "Dull.", imdb["test"].texts[3]], ["ok", "a fine film with a good cast", imdb["train"].texts[7]]


# ------------------------------------------------------------------------ the prediction
@pytest.mark.parametrize("arch", ARCHS)
def test_prediction_equals_the_models_own_output(arch, any_models, imdb):
    m = any_models[arch]
    assert m.config["route"] == "op-level"
    assert m.config["arch"] in TESTED
    assert m.classes == tuple(LABELS)
    texts = [TEXT, "Dull.", *imdb["test"].texts[:4]]
    ids = m.encode(texts)
    assert (ids[:, -1] == m.vocab.pad_id).any()
    assert (ids[:, -1] != m.vocab.pad_id).any()
    with torch.no_grad():
        got = m.net(ids)
    torch.testing.assert_close(got, own_output(m, texts), atol=1e-5, rtol=0)
    assert (
        float(got[:, 1].min()) > 0.02 or float(got[:, 1].max()) < 0.98
    )  # not saturated: there is something to explain
    assert float(got[:, 1].max() - got[:, 1].min()) > 1e-3


def test_explaining_leaves_the_model_as_it_was(any_models):
    """Dropout stays off: every module's train/eval flag is what it was before the explanation."""
    m = any_models["electra"]
    x = m.encode([TEXT])
    with torch.no_grad():
        before = m.net(x)
    DeepExplainer(m, ["ok", "a fine film"]).explain([TEXT])
    assert not any(mod.training for mod in m.net.modules())
    with torch.no_grad():
        assert torch.equal(m.net(x), before)


# -------------------------------------------------------------------------- exactness
@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_completeness_in_float64_and_float32_probability_and_logit(arch, any_models, imdb):
    m = any_models[arch]
    inputs, refs = inputs_and_references(imdb)
    real = (m.encode(inputs + refs) != m.vocab.pad_id).sum(1)
    assert real.min() < 8
    assert real.max() == m.maxlen
    for output in ("probability", "logit"):
        wide = DeepExplainer(m, refs, output=output, dtype=torch.float64)
        for e in wide.explain(inputs):
            assert e.completeness_error < 1e-9  # exact to rounding (the issue asks <= 1e-6)
            assert np.isfinite(e.values).all()
        narrow = DeepExplainer(m, refs, output=output)
        for e in narrow.explain(inputs):
            assert e.completeness_error <= 1e-4
            assert abs(e.values.sum() - (e.prediction - e.base_value)) <= 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_transformers_own_initialization_is_exact_too(arch, imdb, tmp_path):
    """Unscaled weights (std 0.02, near-linear) and a zero padding embedding where the config
    says so: RMSNorm then takes rsqrt between ε and a word's small mean square, where only the
    secant is exact (the midpoint slope there is off by 10x)."""
    d = build_any(arch, tmp_path / arch, imdb["train"].texts[:800], LABELS, MAXLEN, seed=3, scaled=False)
    m = seqshap.load(d)
    inputs, refs = inputs_and_references(imdb)
    for output in ("probability", "logit"):
        for e in DeepExplainer(m, refs, output=output).explain(inputs):
            assert e.completeness_error <= 1e-4
        for e in DeepExplainer(m, refs, output=output, dtype=torch.float64).explain(inputs):
            assert e.completeness_error <= 1e-9


@pytest.mark.parametrize("arch", ARCHS)
def test_embeddings_run_the_same_model_so_gradient_methods_work(arch, any_models):
    """Gradient x input, Integrated Gradients and Captum's peers feed embeddings: the model given
    its own token embeddings answers as it does for the ids (padding, positions, the label's
    position read back from them), and the methods run on it."""
    m = any_models[arch]
    ids = m.encode([TEXT, "Dull.", "a fine film with a good cast"])
    with torch.no_grad():
        torch.testing.assert_close(m.net(m.net.get_input_embeddings()(ids)), m.net(ids), atol=1e-6, rtol=0)
    for method in (GradXInput(m), IntegratedGradients(m, steps=8)):
        e = method.explain([TEXT])[0]
        assert np.isfinite(e.values).all()
        assert np.abs(e.values[e.visible]).max() > 0


@pytest.mark.parametrize("arch", ["llama", "albert", "electra"])
def test_planted_words_are_the_ids_words_get_inside_a_text(arch, any_models):
    """The faithfulness check plants a sentiment word inside a review: byte-level BPE and
    SentencePiece give a word there its space-marked token (``Ġgreat``, ``▁great``), not the bare
    ``great`` of the vocabulary's other entry."""
    from seqshap.faithfulness.evaluate import planted_word_ids

    m = any_models[arch]
    ids, words = planted_word_ids(m)
    for i, w in zip(ids, words, strict=True):
        assert i in m.encode([f"it was {w} indeed"])[0].tolist()


@pytest.mark.parametrize("arch", ARCHS)
def test_one_differing_position_gets_the_whole_difference(arch, any_models):
    """Closed form: against a reference equal to the input but at one subword, DeepLIFT gives
    that position f(x) - f(r) and every other position exactly 0 (the mask, the positions and
    the other tokens are the same in both, so nothing else may take a share)."""
    m = any_models[arch]
    x = m.encode([TEXT])
    at = int(np.flatnonzero(m.vocab.layout.visible(x[0]))[-2])  # within reach of a sliding window
    r = x.clone()
    r[0, at] = m.encode(["bad"])[0][m.vocab.layout.visible(m.encode(["bad"])[0])][0]
    assert r[0, at] != x[0, at]
    phi = DeepLift(m, reference=r, dtype=torch.float64).shap_values(x)[0, :, 1]
    net64 = copy.deepcopy(m.net).double()
    with torch.no_grad():
        fx, fr = net64(x)[0, 1].item(), net64(r)[0, 1].item()
    assert abs(fx - fr) > 1e-6
    assert phi[at] == pytest.approx(fx - fr, abs=1e-12)
    assert np.abs(np.delete(phi, at)).max() == 0.0


# ------------------------------------------------------------------------------ words
@pytest.mark.parametrize("arch", ARCHS)
def test_words_as_written_and_special_tokens_hidden(arch, any_models, imdb):
    m = any_models[arch]
    e = DeepExplainer(m, imdb["train"].texts[:3]).explain([TEXT])[0]
    words = e.word_list()
    assert "".join(w.text for w in words) == re.sub(r"\s+", "", TEXT)  # every character, in order, no "▁"/"Ġ"
    assert [w.text for w in words][:3] == ["The", "acting", "was"]
    assert all(not w.text[:1].isspace() for w in words)
    layout = m.vocab.layout
    hidden = [p for p in range(len(e.tokens)) if not e.visible[p]]
    assert all(e.ids[p] == layout.pad_id or e.ids[p] in layout.special_ids for p in hidden)
    specials = [p for p in hidden if e.ids[p] in layout.special_ids]
    assert bool(specials) == (arch not in ("gpt2", "qwen2"))  # GPT-2 and Qwen2 add no markers
    # the special tokens' and padding's share is in the sum: the values still add up
    assert abs(e.values.sum() - (e.prediction - e.base_value)) <= 1e-4


# --------------------------------------------------------------------------- decoders
@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_a_left_padding_tokenizer_is_read_right_padded(arch, imdb, tmp_path):
    """Saved with padding_side='left' (as decoder tokenizers often are): seqshap pads on the right,
    so each token keeps the position it has alone (transformers takes positions from the row, so
    left padding would move them); the prediction is the model's own on the unpadded text."""
    d = build_any(arch, tmp_path / arch, imdb["train"].texts[:800], LABELS, MAXLEN, seed=5, padding_side="left")
    assert json.loads((d / "tokenizer_config.json").read_text())["padding_side"] == "left"
    m = seqshap.load(d)
    ids = m.encode([TEXT, "Dull."])
    assert ids[1, -1] == m.vocab.pad_id
    assert ids[1, 0] != m.vocab.pad_id
    with torch.no_grad():
        torch.testing.assert_close(m.net(ids), own_output(m, [TEXT, "Dull."]), atol=1e-5, rtol=0)
    e = DeepExplainer(m, ["ok", imdb["train"].texts[2]], dtype=torch.float64).explain([TEXT])[0]
    assert e.completeness_error <= 1e-6


def test_a_decoder_without_a_pad_token_takes_the_configs(imdb, tmp_path):
    d = build_any("llama", tmp_path / "nopad", imdb["train"].texts[:800], LABELS, MAXLEN, seed=6, pad=None)
    assert json.loads((d / "config.json").read_text())["pad_token_id"] is not None
    m = seqshap.load(d)
    assert m.vocab.pad_id == json.loads((d / "config.json").read_text())["pad_token_id"]
    e = DeepExplainer(m, ["ok"]).explain([TEXT])[0]
    assert e.completeness_error <= 1e-4


# --------------------------------------------------------------------------- refusals
def edited(src: Path, dst: Path, **changes) -> Path:
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    cfg.update(changes)
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


def test_refuses_a_model_that_is_not_a_sequence_classifier_listing_the_architectures(any_dirs, tmp_path):
    d = edited(any_dirs["llama"], tmp_path / "lm", architectures=["LlamaForCausalLM"])
    with pytest.raises(
        ModelLoadError, match=r"LlamaForCausalLM.*not a sequence classifier.*LlamaForSequenceClassification"
    ):
        seqshap.load(d)
    d = edited(any_dirs["llama"], tmp_path / "other", architectures=["NoSuchThingForSequenceClassification"])
    with pytest.raises(ModelLoadError, match=r"has no NoSuchThingForSequenceClassification.*trust_remote_code"):
        seqshap.load(d)


def test_refuses_a_pad_token_the_tokenizer_does_not_share(any_dirs, tmp_path):
    pad = json.loads((any_dirs["gpt2"] / "config.json").read_text())["pad_token_id"]
    d = edited(any_dirs["gpt2"], tmp_path / "pad", pad_token_id=pad + 5)
    with pytest.raises(ModelLoadError, match=r"pad_token_id \d+ differs from the tokenizer's padding token"):
        seqshap.load(d)


def test_sizes_of_any_config_are_bounded_by_name(any_dirs, tmp_path):
    d = edited(any_dirs["gpt2"], tmp_path / "layers", n_layer=1_000_000)
    with pytest.raises(ModelLoadError, match=r"'n_layer' must be a whole number from -1 to 256"):
        seqshap.load(d)
    d = edited(any_dirs["electra"], tmp_path / "positions", max_position_embeddings=300_000_000)
    with pytest.raises(ModelLoadError, match=r"beside its weights \(e\.g\. .*position_ids"):
        seqshap.load(d)
    d = edited(any_dirs["llama"], tmp_path / "heads", num_key_value_heads=3)
    with pytest.raises(ModelLoadError, match=r"config\.json"):
        seqshap.load(d)


# -------------------------------------------------------------------------------- CLI
@pytest.mark.slow
@pytest.mark.parametrize("arch", ["deberta-v2", "mistral"])
def test_cli_explains_an_encoder_and_a_decoder(arch, any_dirs, tmp_path):
    html = tmp_path / f"{arch}.html"
    run = subprocess.run(
        [*SEQSHAP, "explain", "--model", str(any_dirs[arch]), "--json", "--html", str(html), TEXT],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    row = out[0] if isinstance(out, list) else out
    assert row["label"] in LABELS
    assert abs(sum(row["values"]) - (row["prediction"] - row["base_value"])) <= 1e-4
    assert "acting" in html.read_text()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("arch", "commands"),
    [("electra", ("evaluate", "faithfulness")), ("llama", ("importance", "report", "faithfulness"))],
)
def test_every_command_runs_on_an_op_level_encoder_and_decoder(arch, commands, any_dirs, imdb, tmp_path):
    """evaluate, importance, report and faithfulness (with the gradient methods, which feed
    embeddings) on directories explained through the op-level route, as a user runs them (split
    between an encoder and a decoder to keep the suite short; explain and serve are tested above
    and in test_multilabel.py)."""
    data = tmp_path / "reviews.csv"
    with data.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for text, label in zip(imdb["test"].texts[:8], imdb["test"].labels[:8], strict=True):
            w.writerow([text, int(label)])
    model = ["--model", str(any_dirs[arch])]

    def run(*args: str) -> subprocess.CompletedProcess:
        r = subprocess.run([*SEQSHAP, *args], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, (args[0], r.stderr[-2000:])
        return r

    if "evaluate" in commands:
        scores = json.loads(run("evaluate", *model, "--data", str(data), "--json").stdout)
        assert scores["n"] == 8
        assert 0 <= scores["test_accuracy"] <= 1
    if "importance" in commands:
        imp = tmp_path / "importance"
        run("importance", *model, "--data", str(data), "--n", "4", "--background", "3", "--out", str(imp), "--quiet")
        assert (imp / "word_importance.csv").exists()
    if "report" in commands:
        rep = tmp_path / "report"
        run("report", *model, "--data", str(data), "--n", "2", "--background", "3", "--out", str(rep))
        for e in json.loads((rep / "explanations.json").read_text()):
            assert sum(e["values"]) == pytest.approx(e["prediction"] - e["base_value"], abs=1e-4)
    faith = tmp_path / "faithfulness"
    methods = "deepshap,deeplift,gradxinput,ig,occlusion,random"
    run(
        "faithfulness", *model, "--data", str(data), "--n", "3", "--methods", methods, "--background", "3",
        "--short", "0", "--planted", "0", "--ig-steps", "8", "--out", str(faith), "--quiet",
    )  # fmt: skip
    table = (faith / "faithfulness.md").read_text()
    for name in methods.split(","):
        assert f"| {name} |" in table
