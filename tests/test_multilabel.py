"""Multi-label classifiers: a sigmoid per label (transformers' ``problem_type=
"multi_label_classification"``), each label explained by name as its own output, exactly.

Tiny models built from configs (a BERT on the canonized route, a Llama on the op-level route),
saved with ``save_pretrained`` and the config's ``problem_type`` set as a user's fine-tuning
script leaves it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

import seqshap
from helpers import build_any, build_hf, seqshap_serve, wordpiece
from seqshap import DeepExplainer, Explanation, ModelLoadError

pytest.importorskip("transformers")

MAXLEN = 32
LABELS = ["acting", "plot", "music"]
TEXT = "The acting was great, the plot a mess, and the music wonderful."
SEQSHAP = [sys.executable, "-m", "seqshap.cli"]


def problem(directory: Path, kind: str | None) -> Path:
    """Set (or drop, ``None``) ``problem_type`` in the saved config, as fine-tuning leaves it."""
    path = directory / "config.json"
    config = json.loads(path.read_text())
    config.pop("problem_type", None)
    if kind is not None:
        config["problem_type"] = kind
    path.write_text(json.dumps(config))
    return directory


@pytest.fixture(scope="module")
def ml_dirs(imdb, tmp_path_factory) -> dict[str, Path]:
    texts = imdb["train"].texts[:800]
    root = tmp_path_factory.mktemp("multi-label")
    bert = build_hf("bert", root / "bert", wordpiece(texts), LABELS, MAXLEN, seed=3)
    llama = build_any("llama", root / "llama", texts, LABELS, MAXLEN, seed=4)
    return {k: problem(d, "multi_label_classification") for k, d in (("bert", bert), ("llama", llama))}


@pytest.fixture(scope="module")
def ml_models(ml_dirs) -> dict[str, seqshap.SeqshapModel]:
    return {k: seqshap.load(d) for k, d in ml_dirs.items()}


def refs(imdb) -> list[str]:
    return ["ok", "a fine film with a good cast", imdb["train"].texts[7]]


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_each_label_is_its_own_sigmoid_of_the_models_logits(arch, ml_models, imdb):
    m = ml_models[arch]
    assert m.multi_label
    assert m.config["multi_label"] is True
    texts = [TEXT, "Dull.", imdb["test"].texts[2]]
    with torch.no_grad():
        got = m.net(m.encode(texts))
        own = []
        for t in texts:
            enc = m.vocab.tokenizer([t], return_tensors="pt", truncation=True, max_length=m.maxlen)
            own.append(torch.sigmoid(m.net.hf(**enc).logits)[0])
    torch.testing.assert_close(got, torch.stack(own), atol=1e-5, rtol=0)
    assert not torch.allclose(got.sum(1), torch.ones(len(texts)), atol=1e-3)  # not a softmax
    assert m.predict(texts).shape == (len(texts), len(LABELS))


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_every_label_explained_by_name_adds_up(arch, ml_models, imdb):
    m = ml_models[arch]
    inputs = [TEXT, "Dull.", imdb["test"].texts[3]]
    probs = m.predict(inputs)
    for output in ("probability", "logit"):
        wide = DeepExplainer(m, refs(imdb), output=output, dtype=torch.float64)
        narrow = DeepExplainer(m, refs(imdb), output=output)
        for j, label in enumerate(LABELS):
            for e in wide.explain(inputs, target=label):
                assert e.output_name == label
                assert e.output_index == j
                assert e.multi_label
                assert e.completeness_error <= 1e-6
            for i, e in enumerate(narrow.explain(inputs, target=label)):
                assert e.completeness_error <= 1e-4
                if output == "probability":  # each label's probability is its own output
                    assert abs(e.prediction - probs[i, j]) <= 1e-5
    # the default: each text's most likely label
    for i, e in enumerate(DeepExplainer(m, refs(imdb)).explain(inputs)):
        assert e.output_index == int(np.argmax(probs[i]))


def test_as_many_rows_as_positions_are_not_taken_for_the_positions(ml_models, imdb):
    """Input and references stacked are 2 x 16 = 32 rows, as many as the model's 32 positions:
    the batch dim of transformers' mask (``mask[batch_arange, kv_arange]``) is told apart from the
    key positions by where indexing puts it, not by its size. Found with the CLI's default
    background, whose 100 references ran in chunks of exactly 32 rows ("a mask computed from the
    ids ... cannot be traced back to token positions")."""
    m = ml_models["llama"]
    assert m.maxlen == MAXLEN
    e = DeepExplainer(m, imdb["train"].texts[: MAXLEN // 2]).explain([TEXT])[0]
    assert e.completeness_error <= 1e-4


def test_the_labels_on_are_named_and_the_json_round_trips(ml_models, imdb):
    m = ml_models["bert"]
    e = DeepExplainer(m, refs(imdb)).explain([TEXT], target="plot")[0]
    p = m.predict([TEXT])[0]
    on = [c for c, q in zip(LABELS, p, strict=True) if q > 0.5]
    assert e.predicted == ", ".join(on)
    assert e.predicted_label is None  # labels are not exclusive
    assert e.explained_class == "plot"
    back = Explanation.from_dict(json.loads(json.dumps(e.to_dict())))
    assert back.multi_label
    assert back.predicted == e.predicted
    assert back.output_name == "plot"
    from seqshap.viz.layout import describe_prediction

    assert describe_prediction(e) == f"P(plot) = {e.prediction:.4f} (labels: {e.predicted or 'none'})"


def test_unknown_label_and_other_problem_types_are_refused(ml_models, ml_dirs, imdb, tmp_path):
    ex = DeepExplainer(ml_models["bert"], refs(imdb))
    with pytest.raises(ValueError, match=r"unknown target 'sound'.*acting, plot, music"):
        ex.explain([TEXT], target="sound")
    import shutil

    reg = problem(Path(shutil.copytree(ml_dirs["bert"], tmp_path / "reg")), "regression")
    with pytest.raises(ModelLoadError, match=r"problem_type 'regression'.*multi_label_classification"):
        seqshap.load(reg)
    single = problem(Path(shutil.copytree(ml_dirs["bert"], tmp_path / "single")), None)
    m = seqshap.load(single)
    assert not m.multi_label
    torch.testing.assert_close(m.net(m.encode([TEXT])).sum(), torch.tensor(1.0), atol=1e-6, rtol=0)


def test_cli_explains_a_label_by_name(ml_dirs, tmp_path):
    html = tmp_path / "ml.html"
    run = subprocess.run(
        [
            *SEQSHAP,
            "explain",
            "--model",
            str(ml_dirs["llama"]),
            "--target",
            "music",
            "--json",
            "--html",
            str(html),
            TEXT,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    row = out[0] if isinstance(out, list) else out
    assert row["multi_label"] is True
    assert row["output_name"] == "music"
    assert abs(sum(row["values"]) - (row["prediction"] - row["base_value"])) <= 1e-4
    assert "P(music)" in html.read_text()
    assert "labels:" in html.read_text()
    bad = subprocess.run(
        [*SEQSHAP, "explain", "--model", str(ml_dirs["llama"]), "--target", "sound", TEXT],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2
    assert "unknown target 'sound'" in bad.stderr


@pytest.mark.server
def test_the_server_explains_each_label(ml_dirs):
    with (
        seqshap_serve("--model", str(ml_dirs["llama"]), "--background", "3") as url,
        httpx.Client(base_url=url, timeout=120) as c,
    ):
        assert c.get("/api/model").json()["targets"] == LABELS
        values = {}
        for label in LABELS:
            d = c.post("/api/explain", json={"text": TEXT, "target": label}).json()
            assert d["output_name"] == label
            assert d["multi_label"] is True
            assert d["completeness_error"] <= 1e-4
            values[label] = d["prediction"]
        assert abs(sum(values.values()) - 1.0) > 1e-3  # three sigmoids, not one softmax
