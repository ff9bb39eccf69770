"""Training multi-label models: ``seqshap train --multi-label`` on a CSV whose label column holds
several labels separated by ``|``, a sigmoid per label; ``seqshap evaluate`` reports per-label
F1 and micro/macro averages; every label is explained by name as its own output, exactly.

The data are real IMDB reviews labelled by what they talk about (acting, plot, music), tiny
models (hidden 8, maxlen 30), trained through the real CLI."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

import seqshap
from seqshap import DeepExplainer, ModelLoadError
from seqshap.data import DataFileError, read_labeled
from seqshap.models import build_model
from seqshap.train import TrainConfig, _differences, data_record, multi_label_metrics

SEQSHAP = [sys.executable, "-m", "seqshap.cli"]
LABELS = ["acting", "music", "plot"]  # sorted: the model's classes
WORDS = {
    "acting": re.compile(r"\b(acting|actor|actors|actress)\b", re.I),
    "plot": re.compile(r"\b(plot|story)\b", re.I),
    "music": re.compile(r"\b(music|score|song|songs)\b", re.I),
}
SMALL = ["--maxlen", "30", "--num-words", "1500", "--hidden", "8", "--epochs", "2", "--quiet"]


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([*SEQSHAP, *args], capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"seqshap {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def tags(text: str) -> str:
    return "|".join(label for label, word in WORDS.items() if word.search(text))


def write_csv(path: Path, rows: list[tuple[str, str]], header: tuple[str, str] = ("review", "tags")) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def tagged(texts: list[str]) -> list[tuple[str, str]]:
    """Each review with its labels; reviews with none are left out."""
    return [(t, tags(t)) for t in texts if tags(t)]


@pytest.fixture(scope="module")
def files(imdb, tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("tags")
    return {
        "train": write_csv(d / "train.csv", tagged(imdb["train"].texts[:600])),
        "test": write_csv(d / "test.csv", tagged(imdb["test"].texts[:150])),
    }


@pytest.fixture(scope="module")
def trained(files, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tags"
    cli(
        "train", "--data", str(files["train"]), "--test-data", str(files["test"]), "--text-column", "review",
        "--label-column", "tags", "--multi-label", *SMALL, "--out", str(out),
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def model(trained) -> seqshap.SeqshapModel:
    return seqshap.load(trained)


def refs(imdb) -> list[str]:
    return ["ok", "a fine film with a good cast", imdb["train"].texts[7]]


# ------------------------------------------------------------------ reading
def test_read_labeled_multi_label_known_answers(tmp_path):
    path = write_csv(
        tmp_path / "t.csv",
        [("one", "b | a"), ("two", "c"), ("three", "a||c|"), ("four", " b ")],
        header=("text", "label"),
    )
    split = read_labeled(path, multi_label=True)
    assert split.classes == ("a", "b", "c")
    np.testing.assert_array_equal(split.labels, [[1, 1, 0], [0, 0, 1], [1, 0, 1], [0, 1, 0]])
    assert split.labels.dtype == np.int64
    test = write_csv(tmp_path / "u.csv", [("x", "c|b")], header=("text", "label"))
    np.testing.assert_array_equal(read_labeled(test, classes=split.classes, multi_label=True).labels, [[0, 1, 1]])
    # numbers in number order; binary words keep their own names (they are labels, not a sentiment)
    nums = write_csv(tmp_path / "n.csv", [("x", "10|2"), ("y", "2")], header=("text", "label"))
    assert read_labeled(nums, multi_label=True).classes == ("2", "10")
    words = write_csv(tmp_path / "w.csv", [("x", "yes|no"), ("y", "no")], header=("text", "label"))
    assert read_labeled(words, multi_label=True).classes == ("no", "yes")
    # JSONL: a list, or the same |-separated string
    jl = tmp_path / "t.jsonl"
    jl.write_text('{"text": "x", "label": ["b", "a"]}\n{"text": "y", "label": "c|a"}\n')
    got = read_labeled(jl, multi_label=True)
    assert got.classes == ("a", "b", "c")
    np.testing.assert_array_equal(got.labels, [[1, 1, 0], [1, 0, 1]])


def test_read_labeled_multi_label_refusals(tmp_path):
    empty = write_csv(tmp_path / "e.csv", [("x", "a"), ("y", ""), ("z", "b")], header=("text", "label"))
    with pytest.raises(DataFileError, match=r"row 2: no label"):
        read_labeled(empty, multi_label=True)
    bars = write_csv(tmp_path / "b.csv", [("x", "a"), ("y", "b"), ("z", " | ")], header=("text", "label"))
    with pytest.raises(DataFileError, match=r"row 3: no label"):
        read_labeled(bars, multi_label=True)
    one = write_csv(tmp_path / "o.csv", [("x", "a"), ("y", "a|a")], header=("text", "label"))
    with pytest.raises(DataFileError, match="at least two different labels"):
        read_labeled(one, multi_label=True)
    unknown = write_csv(tmp_path / "u.csv", [("x", "a"), ("y", "a|zzz")], header=("text", "label"))
    with pytest.raises(DataFileError, match=r"row 2: label 'zzz' .* not one of the model's 2 labels \(a, b\)"):
        read_labeled(unknown, classes=("a", "b"), multi_label=True)


def test_data_record_of_multi_hot_labels(tmp_path):
    rows = [("x", "a|b"), ("y", "b")]
    a = read_labeled(write_csv(tmp_path / "a.csv", rows, header=("text", "label")), multi_label=True)
    b = read_labeled(write_csv(tmp_path / "b.csv", [*rows[:1], ("y", "a")], header=("text", "label")), multi_label=True)
    assert data_record(a)["n"] == 2
    assert data_record(a)["sha256"] == data_record(a)["sha256"]
    assert data_record(a)["sha256"] != data_record(b)["sha256"]  # one label moved


def test_multi_label_metrics_known_answers():
    labels = np.array([[1, 0], [1, 1], [0, 1], [0, 0]])
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    m = multi_label_metrics(labels, probs, ("a", "b"))
    assert m["label_accuracy"] == pytest.approx(6 / 8)
    assert m["subset_accuracy"] == pytest.approx(2 / 4)
    a, b = m["per_label"]
    assert (a["precision"], a["recall"], a["support"]) == (pytest.approx(2 / 3), 1.0, 2)
    assert (b["precision"], b["recall"], b["support"]) == (1.0, 0.5, 2)
    assert m["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert m["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))  # tp 3, fp 1, fn 1


# ------------------------------------------------------------------ models
@pytest.mark.parametrize("arch", ["lstm", "cnn", "transformer"])
def test_a_multi_label_head_is_a_sigmoid_per_label_even_for_two(arch):
    net = build_model(arch, vocab_size=50, outputs=2, multi_label=True).eval()
    assert isinstance(net.out, torch.nn.Sigmoid)
    x = torch.randint(3, 50, (4, 12))
    with torch.no_grad():
        torch.testing.assert_close(net(x), torch.sigmoid(net.logits(x)))
    assert isinstance(build_model(arch, vocab_size=50, outputs=2).out, torch.nn.Softmax)


# ------------------------------------------------------------------ the trained directory
def test_the_directory_says_multi_label(trained, model, files):
    config = json.loads((trained / "config.json").read_text())
    assert config["multi_label"] is True
    assert config["model"]["multi_label"] is True
    assert config["model"]["outputs"] == len(LABELS)
    assert config["classes"] == LABELS
    assert model.multi_label
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["multi_label"] is True
    assert "per-label accuracy" in metrics["accuracy"]
    test = metrics["test"]
    assert [r["label"] for r in test["per_label"]] == LABELS
    assert 0 <= test["micro_f1"] <= 1
    assert 0 <= test["macro_f1"] <= 1
    assert metrics["test_accuracy"] == pytest.approx(test["label_accuracy"])
    background = json.loads((trained / "background.json").read_text())
    assert all(len(row) == len(LABELS) for row in background["labels"])


def test_predictions_are_independent_sigmoids(model, imdb):
    texts = ["The acting was great and the music wonderful.", "Dull.", imdb["test"].texts[2]]
    p = model.predict(texts)
    assert p.shape == (len(texts), len(LABELS))
    with torch.no_grad():
        z = model.net.logits(model.encode(texts)).double()
    np.testing.assert_allclose(p, torch.sigmoid(z).numpy(), atol=1e-6)
    assert not np.allclose(p.sum(1), 1.0, atol=1e-3)  # not a softmax


def test_every_label_explained_by_name_adds_up(model, imdb):
    inputs = ["The acting was great, the plot a mess, and the music wonderful.", imdb["test"].texts[3]]
    probs = model.predict(inputs)
    wide = DeepExplainer(model, refs(imdb), dtype=torch.float64)
    narrow = DeepExplainer(model, refs(imdb))
    for j, label in enumerate(LABELS):
        for e in wide.explain(inputs, target=label):
            assert e.output_name == label
            assert e.output_index == j
            assert e.multi_label
            assert e.completeness_error <= 1e-6
        for i, e in enumerate(narrow.explain(inputs, target=label)):
            assert e.completeness_error <= 1e-4
            assert abs(e.prediction - probs[i, j]) <= 1e-5  # each label's probability is its own output
    for i, e in enumerate(narrow.explain(inputs)):  # the default: each text's most likely label
        assert e.output_index == int(np.argmax(probs[i]))


def test_explain_cli_names_the_label(trained):
    text = "The story was thin but the songs were lovely."
    for label in LABELS:
        d = json.loads(cli("explain", "--model", str(trained), "--target", label, "--json", text).stdout)
        d = d[0] if isinstance(d, list) else d
        assert d["output_name"] == label
        assert d["multi_label"] is True
        assert d["completeness_error"] <= 1e-4


def test_evaluate_reports_per_label_f1_and_averages(trained, files):
    args = ("evaluate", "--model", str(trained), "--data", str(files["test"]))
    args += ("--text-column", "review", "--label-column", "tags")
    text = cli(*args).stdout
    for label in LABELS:
        assert re.search(rf"^{label}\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+\d+$", text, re.M), text
    assert re.search(r"^micro F1\s+[\d.]+$", text, re.M)
    assert re.search(r"^macro F1\s+[\d.]+$", text, re.M)
    assert "subset accuracy" in text
    m = json.loads(cli(*args, "--json").stdout)
    metrics = json.loads((trained / "metrics.json").read_text())["test"]
    assert [r["label"] for r in m["per_label"]] == LABELS
    for key in ("micro_f1", "macro_f1", "subset_accuracy", "label_accuracy"):
        assert m[key] == pytest.approx(metrics[key], abs=1e-9)  # the same test file scored at training
    for got, want in zip(m["per_label"], metrics["per_label"], strict=True):
        assert got["support"] == want["support"]
        assert got["f1"] == pytest.approx(want["f1"], abs=1e-9)
    # without --data there is nothing to score a multi-label model on
    proc = cli("evaluate", "--model", str(trained), check=False)
    assert proc.returncode == 2
    assert "multi-label model" in proc.stderr


# ------------------------------------------------------------------ refusals
def test_refusals(files, tmp_path):
    base = ("train", "--data", str(files["train"]), "--text-column", "review", "--label-column", "tags")
    proc = cli(*base, "--multi-label", "--head", "softmax", "--out", str(tmp_path / "a"), check=False)
    assert proc.returncode == 2
    assert "--head softmax does not go with --multi-label" in proc.stderr
    bad_test = write_csv(tmp_path / "bad.csv", [("great acting", "acting"), ("a song", "music|dance")])
    proc = cli(*base, "--multi-label", "--test-data", str(bad_test), *SMALL, "--out", str(tmp_path / "b"), check=False)
    assert proc.returncode != 0
    assert re.search(r"bad\.csv, row 2: label 'dance' .*not one of the model's 3 labels", proc.stderr), proc.stderr
    empty = write_csv(tmp_path / "empty.csv", [("great acting", "acting"), ("nothing", ""), ("a song", "music")])
    proc = cli("train", "--data", str(empty), "--text-column", "review", "--label-column", "tags", "--multi-label",
               *SMALL, "--out", str(tmp_path / "c"), check=False)  # fmt: skip
    assert proc.returncode != 0
    assert "empty.csv, row 2: no label in column 'tags'" in proc.stderr
    assert not (tmp_path / "c" / "config.json").exists()


def test_evaluate_refuses_an_unknown_label_naming_the_row(trained, tmp_path):
    bad = write_csv(tmp_path / "bad.csv", [("great acting", "acting"), ("x", "plot"), ("a song", "music|dance")])
    proc = cli("evaluate", "--model", str(trained), "--data", str(bad), "--text-column", "review",
               "--label-column", "tags", check=False)  # fmt: skip
    assert proc.returncode == 2
    assert "row 3: label 'dance'" in proc.stderr


def test_resume_with_another_multi_label_setting_is_refused(tmp_path):
    rows = [(f"the acting and the song number {i}", "acting|music") for i in range(20)]
    rows += [(f"the plot number {i}", "plot") for i in range(20)]
    data = write_csv(tmp_path / "d.csv", rows, header=("text", "label"))
    out = tmp_path / "run"
    small = ("--maxlen", "10", "--num-words", "100", "--hidden", "4", "--quiet")
    cli("train", "--data", str(data), "--multi-label", "--epochs", "1", *small, "--out", str(out))
    proc = cli("train", "--data", str(data), "--epochs", "2", *small, "--out", str(out), "--resume", check=False)
    assert proc.returncode != 0
    assert "--multi-label: True in the checkpoint, False now" in proc.stderr
    cli("train", "--data", str(data), "--multi-label", "--epochs", "2", *small, "--out", str(out), "--resume")
    assert seqshap.load(out).multi_label


def test_a_checkpoint_from_before_multi_label_still_resumes():
    old = {k: v for k, v in asdict(TrainConfig()).items() if k != "multi_label"}
    assert _differences(old, asdict(TrainConfig())) == []
    assert _differences(old, asdict(TrainConfig(multi_label=True))) == [
        "--multi-label: False in the checkpoint, True now"
    ]


def test_the_two_multi_label_settings_must_agree(trained, tmp_path):
    import shutil

    copy = Path(shutil.copytree(trained, tmp_path / "copy"))
    config = json.loads((copy / "config.json").read_text())
    del config["multi_label"]
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="multi_label"):
        seqshap.load(copy)


def test_importance_writes_one_table_per_label(trained, files, tmp_path):
    out = tmp_path / "imp"
    cli("importance", "--model", str(trained), "--data", str(files["test"]), "--text-column", "review",
        "--label-column", "tags", "--n", "12", "--min-count", "1", "--out", str(out), "--quiet")  # fmt: skip
    assert sorted(p.name for p in out.glob("word_importance_*.csv")) == [
        f"word_importance_{label}.csv" for label in LABELS
    ]


def test_report_refuses_a_multi_label_model_by_name(trained, tmp_path):
    proc = cli("report", "--model", str(trained), "--out", str(tmp_path / "r"), check=False)
    assert proc.returncode == 2
    assert "multi-label model" in proc.stderr


def test_train_in_python_checks_the_labels_against_the_setting(tmp_path):
    from seqshap.train import train

    rows = [("acting and song", "acting|music"), ("the plot", "plot"), ("a song", "music")]
    multi = read_labeled(write_csv(tmp_path / "m.csv", rows, header=("text", "label")), multi_label=True)
    with pytest.raises(ValueError, match="multi_label=True"):
        train(multi, tmp_path / "a", TrainConfig(epochs=1), progress=False)
    single = read_labeled(write_csv(tmp_path / "s.csv", rows, header=("text", "label")))
    with pytest.raises(ValueError, match="needs multi-hot labels"):
        train(single, tmp_path / "b", TrainConfig(epochs=1, multi_label=True), progress=False)
    with pytest.raises(ValueError, match="would disagree"):
        train(multi, tmp_path / "c", TrainConfig(epochs=1, model={"multi_label": False}, multi_label=True))
