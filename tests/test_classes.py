"""Any labelled text, any number of classes (issue 16).

Two small models are trained through ``seqshap train`` itself: a 3-class topic model from a CSV
and an 8-class IMDB star-rating model (``--task imdb-rating``) from a small archive of real
reviews whose file names carry their ratings. Every class of both is explained and checked for
completeness; the class names must reach the JSON, the pictures, the CLI, ``seqshap evaluate``,
``seqshap importance`` and the web page's select box (in Chromium). Two-class models keep
today's behaviour and wording.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import httpx
import numpy as np
import pytest
from scipy.stats import mannwhitneyu

import seqshap
from helpers import LiveServer
from seqshap.attribution import DeepExplainer, Explanation, resolve_target
from seqshap.data import DEFAULT_CLASSES, RATING_CLASSES, DataFileError, load_task, read_labeled
from seqshap.viz.html import explanation_html, force_plot_svg
from seqshap.viz.terminal import render
from seqshap.web import create_app

pytestmark = pytest.mark.slow

EXE = str(Path(sys.executable).with_name("seqshap"))
TOPICS = {
    "sports": "goal match team coach season league striker referee stadium score",
    "politics": "election vote senate minister party campaign policy law parliament debate",
    "tech": "software code chip startup laptop internet server algorithm phone robot",
}
FILLER = "the a of and to in it was this that with for on is very really today new old big"
TOL = 1e-4  # float32 completeness, as everywhere in the suite


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``seqshap ARGS`` as a user would (a subprocess of the installed console script)."""
    proc = subprocess.run([EXE, *args], capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"seqshap {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def topic_rows(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        topic = list(TOPICS)[i % 3]
        words = rng.sample(TOPICS[topic].split(), 3) + rng.sample(FILLER.split(), 5)
        rng.shuffle(words)
        rows.append((" ".join(words).capitalize() + ".", topic))
    return rows


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "topic"])
        w.writerows(rows)
    return path


def rating_archive(path: Path, imdb, n_train: int = 400, n_test: int = 120) -> Path:
    """An aclImdb-layout tar.gz of real reviews, each under its own ``ID_RATING.txt`` name."""
    with tarfile.open(path, "w:gz") as tar:
        for split, n in (("train", n_train), ("test", n_test)):
            for rid, text in zip(imdb[split].ids[:n], imdb[split].texts[:n], strict=True):
                data = text.encode("utf-8")
                info = tarfile.TarInfo(f"aclImdb/{rid}.txt")  # rid: "train/pos/123_9"
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(scope="module")
def topic_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("topics")
    return write_csv(d / "train.csv", topic_rows(300, 0)), write_csv(d / "test.csv", topic_rows(60, 1))


@pytest.fixture(scope="module")
def topic_model(topic_files, tmp_path_factory):
    train_csv, test_csv = topic_files
    out = tmp_path_factory.mktemp("runs") / "topics"
    cli(
        "train", "--data", str(train_csv), "--test-data", str(test_csv), "--label-column", "topic",
        "--epochs", "6", "--maxlen", "16", "--num-words", "200", "--hidden", "16", "--batch-size", "16",
        "--quiet", "--out", str(out),
    )  # fmt: skip
    return seqshap.load(out)


@pytest.fixture(scope="module")
def archive(imdb, tmp_path_factory):
    return rating_archive(tmp_path_factory.mktemp("imdb") / "ratings.tar.gz", imdb)


@pytest.fixture(scope="module")
def rating_model(archive, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "rating"
    cli(
        "train", "--task", "imdb-rating", "--imdb", str(archive), "--epochs", "2", "--maxlen", "40",
        "--num-words", "2000", "--hidden", "16", "--quiet", "--out", str(out),
    )  # fmt: skip
    return seqshap.load(out)


@pytest.fixture(scope="module")
def rating_texts(archive):
    return load_task("imdb-rating", archive)["test"].texts[:4]


# ---- data and training -------------------------------------------------------------------------
def test_labels_of_any_value_become_sorted_classes(tmp_path):
    (tmp_path / "n.jsonl").write_text("".join(json.dumps({"text": f"t{i}", "label": v}) + "\n" for i, v in
                                              enumerate([10, 2, 1, 2.0])))  # fmt: skip
    s = read_labeled(tmp_path / "n.jsonl")
    assert s.classes == ("1", "2", "10")  # by number, not "1" < "10" < "2"
    assert s.labels.tolist() == [2, 1, 0, 1]
    (tmp_path / "w.csv").write_text("text,label\na,tech\nb,sports\nc,politics\nd,tech\n")
    s = read_labeled(tmp_path / "w.csv")
    assert s.classes == ("politics", "sports", "tech")
    assert s.labels.tolist() == [2, 1, 0, 2]
    # the usual binary words keep the two sentiment classes and their indices, in any mix
    (tmp_path / "b.csv").write_text("text,label\na,pos\nb,0\nc,Negative\nd,TRUE\n")
    s = read_labeled(tmp_path / "b.csv")
    assert s.classes == DEFAULT_CLASSES
    assert s.labels.tolist() == [1, 0, 0, 1]


def test_csv_with_three_labels_trains_a_softmax_model_with_its_classes(topic_model, topic_files):
    assert topic_model.classes == ("politics", "sports", "tech")
    cfg = json.loads((topic_model.path / "config.json").read_text())
    assert cfg["classes"] == ["politics", "sports", "tech"]
    assert cfg["model"]["outputs"] == 3
    p = topic_model.predict(["the senate vote on the new law", "a late goal won the match"])
    assert p.shape == (2, 3)
    assert np.allclose(p.sum(1), 1)
    assert p.argmax(1).tolist() == [0, 1]  # politics, sports
    assert topic_model.metrics["test_accuracy"] > 0.9  # easy data: the model learned the topics


def test_a_model_directory_whose_classes_do_not_fit_its_head_is_refused(topic_model, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(topic_model.path, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["classes"] = ["politics", "sports"]
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(seqshap.ModelLoadError, match="'classes' names 2 classes, but the model has 3 output"):
        seqshap.load(bad)


def test_test_label_the_training_data_lacks_is_an_error_naming_row_and_label(topic_files, tmp_path):
    train_csv, _ = topic_files
    rows = topic_rows(5, 2)
    rows[2] = ("Sunny skies all week.", "weather")
    bad = write_csv(tmp_path / "test.csv", rows)
    proc = cli("train", "--data", str(train_csv), "--test-data", str(bad), "--label-column", "topic",
               "--epochs", "1", "--out", str(tmp_path / "m"), check=False)  # fmt: skip
    assert proc.returncode == 1
    assert "row 3: label 'weather'" in proc.stderr
    assert "politics, sports, tech" in proc.stderr
    assert not (tmp_path / "m" / "config.json").exists()
    with pytest.raises(DataFileError, match=r"row 3: label 'weather' in column 'topic' is not one of"):
        read_labeled(bad, label_column="topic", classes=("politics", "sports", "tech"))


def test_imdb_rating_task_reads_the_ratings_in_the_file_names(rating_model, archive, imdb):
    assert rating_model.classes == RATING_CLASSES
    assert rating_model.config["task"] == "imdb-rating"
    assert rating_model.config["model"]["outputs"] == 8
    data = load_task("imdb-rating", archive)
    train = data["train"]
    assert sorted(set(train.labels.tolist())) == list(range(8))  # all eight ratings are in the subset
    for rid, label in zip(train.ids[:50], train.labels[:50].tolist(), strict=True):
        assert rid.endswith(f"_{RATING_CLASSES[label]}")  # "train/pos/123_9" -> class "9"
    # the same reviews in the same order as the sentiment task: only the labels differ
    sentiment = load_task("imdb", archive)["train"]
    assert sentiment.texts == train.texts
    assert sentiment.classes is None
    assert (np.asarray([int(RATING_CLASSES[i]) >= 7 for i in train.labels]) == sentiment.labels.astype(bool)).all()
    assert len(rating_model.predict(["fine"])[0]) == 8


# ---- explaining every class --------------------------------------------------------------------
@pytest.mark.parametrize("which", ["topic", "rating"])
def test_every_class_is_explained_exactly(which, topic_model, rating_model, topic_files, rating_texts):
    if which == "topic":
        model, texts = topic_model, [t for t, _ in topic_rows(4, 3)]
        background = [t for t, _ in topic_rows(12, 4)]
    else:
        model, texts = rating_model, rating_texts
        background = load_task("imdb-rating", None)["train"].texts[:12]
    ex = DeepExplainer(model, background)
    sv = ex.shap_values(model.encode(texts))  # every output, last axis
    assert sv.shape == (len(texts), model.maxlen, len(model.classes))
    assert ex.last_errors_.max() <= TOL
    # softmax: the class probabilities sum to 1, so each token's values sum to 0 over the classes
    assert np.abs(sv.sum(-1)).max() <= 1e-6
    probs = model.predict(texts)
    for i, name in enumerate(model.classes):
        exps = ex.explain(texts, target=name)
        assert [e.output_name for e in exps] == [name] * len(texts)
        assert [e.output_index for e in exps] == [i] * len(texts)
        for j, e in enumerate(exps):
            assert e.completeness_error <= TOL
            assert abs(e.values.sum() - (e.prediction - e.base_value)) <= TOL
            assert e.prediction == pytest.approx(probs[j, i], abs=1e-6)
            assert e.base_value == pytest.approx(ex.expected_value[i], abs=1e-12)
            np.testing.assert_allclose(e.values, sv[j, :, i], atol=1e-9)
            assert e.explained_class == name
            assert e.predicted == model.classes[int(probs[j].argmax())]
        by_index = ex.explain(texts[:1], target=i)[0]
        np.testing.assert_array_equal(by_index.values, exps[0].values)
    default = ex.explain(texts)  # the predicted class of each
    assert [e.output_name for e in default] == [model.classes[k] for k in probs.argmax(1)]


def test_target_names_a_class_or_says_which_classes_there_are(rating_model, rating_texts, tiny_model, imdb):
    ex = DeepExplainer(rating_model, imdb["train"].texts[:5])
    with pytest.raises(ValueError, match=r"unknown target '5': the classes are 1, 2, 3, 4, 7, 8, 9, 10"):
        ex.explain(rating_texts[:1], target="5")  # "5" is no rating here, and never read as an index
    with pytest.raises(ValueError, match="out of range: the model has 8 classes"):
        ex.explain(rating_texts[:1], target=8)
    with pytest.raises(ValueError, match=r"target .* or output_index"):
        ex.explain(rating_texts[:1], target="9", output_index=6)
    assert resolve_target("9", RATING_CLASSES, 8) == 6
    assert resolve_target("2", ("a", "b", "c"), 3) == 2  # digits are an index where no class is a number
    # a sigmoid model's one output is the probability of its last class
    assert resolve_target("positive", DEFAULT_CLASSES, 1) == resolve_target(1, DEFAULT_CLASSES, 1) == 0
    tiny = DeepExplainer(tiny_model, imdb["train"].texts[:5])
    with pytest.raises(ValueError, match="opposite sign"):
        tiny.explain(["a fine film"], target="negative")


def test_class_names_reach_the_json_and_the_pictures(rating_model, rating_texts, imdb):
    e = DeepExplainer(rating_model, imdb["train"].texts[:5]).explain(rating_texts[:1], target="9")[0]
    d = e.to_dict()
    assert d["output_name"] == "9"
    assert d["output_index"] == 6
    assert d["classes"] == list(RATING_CLASSES)
    assert d["label"] == e.predicted in RATING_CLASSES
    back = Explanation.from_dict(json.loads(json.dumps(d)))
    assert back.output_name == "9"
    assert back.explained_class == "9"
    assert back.predicted == e.predicted
    page = explanation_html(e)
    assert '<span class="why">why <b>9</b></span>' in page
    assert f"P(9) = {e.prediction:.4f} (predicted {e.predicted})" in page
    assert "blue pushes P(9) down" in page
    svg = force_plot_svg(e)
    assert f"P(9) = {e.prediction:.4f}</text>" in svg
    assert "why 9 · probability" in svg
    text = render(e)
    assert text.startswith(f"why 9: prediction P(9) = {e.prediction:.4f} (predicted {e.predicted})")
    assert "(value = push on P(9))" in text


def test_two_class_models_keep_their_wording(tiny_model, imdb):
    ex = DeepExplainer(tiny_model, imdb["train"].texts[:5])
    e = ex.explain(["a wonderful film, I loved it"])[0]
    assert e.output_name == "positive"
    assert e.explained_class is None
    page = explanation_html(e)
    assert "why" not in page
    assert "f(x) = " in force_plot_svg(e)
    assert f"{e.prediction:.4f} ({e.predicted_name})" in page
    named = ex.explain(["a wonderful film, I loved it"], target="positive")[0]
    np.testing.assert_array_equal(named.values, e.values)
    assert render(e).startswith("prediction ")


def test_head_softmax_gives_two_classes_one_output_each(tmp_path, imdb):
    rows = [
        (t, "pos" if y else "neg") for t, y in zip(imdb["train"].texts[:200], imdb["train"].labels[:200], strict=True)
    ]
    data = write_csv(tmp_path / "two.csv", rows)
    out = tmp_path / "softmax2"
    cli("train", "--data", str(data), "--label-column", "topic", "--head", "softmax", "--epochs", "1",
        "--maxlen", "30", "--num-words", "500", "--hidden", "8", "--quiet", "--out", str(out))  # fmt: skip
    m = seqshap.load(out)
    assert m.classes == DEFAULT_CLASSES
    assert m.config["model"]["outputs"] == 2
    ex = DeepExplainer(m, imdb["train"].texts[:5])
    e = ex.explain(["a wonderful film"])[0]
    assert (e.output_index, e.output_name, e.explained_class) == (1, "positive", None)  # column 1, today's words
    neg = ex.explain(["a wonderful film"], target="negative")[0]
    assert neg.explained_class == "negative"
    assert neg.completeness_error <= TOL
    np.testing.assert_allclose(neg.values, -e.values, atol=1e-6)  # two probabilities summing to 1
    proc = cli("train", "--data", str(write_csv(tmp_path / "t.csv", topic_rows(9, 0))), "--label-column", "topic",
               "--head", "sigmoid", "--out", str(tmp_path / "x"), check=False)  # fmt: skip
    assert proc.returncode == 2
    assert "a sigmoid head has two classes; this data has 3" in proc.stderr


# ---- the command line --------------------------------------------------------------------------
def test_cli_explain_target(rating_model, archive):
    common = ["--model", str(rating_model.path), "--background", "5", "--imdb", str(archive)]
    text = "A solid film, 8/10, with a great cast."
    d = json.loads(cli("explain", text, "--target", "9", "--json", *common).stdout)
    assert d["output_name"] == "9"
    assert d["classes"] == list(RATING_CLASSES)
    assert abs(sum(d["values"]) - (d["prediction"] - d["base_value"])) <= TOL
    want = DeepExplainer(rating_model, load_task("imdb-rating", archive)["train"].texts[:5]).explain([text], target="9")
    assert d["values"] == pytest.approx(want[0].values.tolist(), abs=1e-9)
    out = cli("explain", text, "--target", "10", "--color", "never", *common).stdout
    assert out.startswith("why 10: prediction P(10) = ")
    bad = cli("explain", text, "--target", "5", *common, check=False)
    assert bad.returncode == 2
    assert "--target 5: unknown target '5': the classes are 1, 2, 3, 4, 7, 8, 9, 10" in bad.stderr


def test_cli_evaluate_reports_per_class_metrics(rating_model, topic_model, topic_files, tiny_model, archive):
    d = json.loads(cli("evaluate", "--model", str(rating_model.path), "--imdb", str(archive), "--json").stdout)
    test = load_task("imdb-rating", archive)["test"]  # the model's own task, read from its config
    probs = rating_model.predict(test.texts)
    pred = probs.argmax(1)
    cm = np.asarray(d["confusion_matrix"])
    assert d["n"] == len(test)
    assert d["classes"] == list(RATING_CLASSES)
    assert cm.shape == (8, 8)
    assert cm.sum() == len(test)
    assert cm.sum(1).tolist() == np.bincount(test.labels, minlength=8).tolist()
    assert cm.sum(0).tolist() == np.bincount(pred, minlength=8).tolist()  # columns: predicted
    assert d["test_accuracy"] == pytest.approx(np.trace(cm) / len(test)) == pytest.approx(np.mean(pred == test.labels))
    stars = np.array([int(c) for c in RATING_CLASSES])
    assert d["mean_absolute_error"] == pytest.approx(np.abs(stars[pred] - stars[test.labels]).mean())
    assert [r["support"] for r in d["per_class"]] == cm.sum(1).tolist()
    assert "roc_auc" not in d
    # a CSV model scored on its own test file, with the text form's table
    _, test_csv = topic_files
    out = cli("evaluate", "--model", str(topic_model.path), "--data", str(test_csv), "--label-column", "topic").stdout
    assert out.startswith("test accuracy ")
    assert "confusion matrix (rows: true class, columns: predicted class)" in out
    assert "politics" in out
    assert "tech" in out
    # two classes: ROC AUC, against the Mann-Whitney U statistic of the same scores
    two = json.loads(cli("evaluate", "--model", str(tiny_model.path), "--imdb", str(archive), "--json").stdout)
    sent = load_task("imdb", archive)["test"]
    p = tiny_model.predict(sent.texts)
    u = mannwhitneyu(p[sent.labels == 1], p[sent.labels == 0]).statistic
    assert two["roc_auc"] == pytest.approx(u / ((sent.labels == 1).sum() * (sent.labels == 0).sum()))
    assert two["classes"] == ["negative", "positive"]
    assert two["test_accuracy"] == pytest.approx(np.mean((p > 0.5) == sent.labels))


def test_cli_importance_per_class(rating_model, archive, tmp_path):
    common = ["--model", str(rating_model.path), "--imdb", str(archive), "--background", "5", "--n", "6"]
    d = json.loads(cli("importance", *common, "--min-count", "2", "--out", str(tmp_path / "all"), "--json").stdout)
    assert d["classes"] == list(RATING_CLASSES)
    assert len(d["tables"]) == 8
    for name, table in zip(RATING_CLASSES, d["tables"], strict=True):
        assert table["target"] == name
        saved = json.loads(Path(table["files"]["json"]).read_text())
        assert saved["target"] == name
        assert Path(table["files"]["json"]).name == f"word_importance_{name}.json"
    one = json.loads(cli("importance", *common, "--target", "9", "--out", str(tmp_path / "9"), "--json").stdout)
    assert one["target"] == "9"
    assert sorted(p.name for p in (tmp_path / "9").iterdir())[0] == "word_importance_9.csv"
    # the table of class 9 pools exactly the explanations of class 9
    texts = load_task("imdb-rating", archive)["test"].texts[:6]
    bg = load_task("imdb-rating", archive)["train"].texts[:5]
    exps = DeepExplainer(rating_model, bg).explain(texts, target="9")
    table = seqshap.importance.WordImportance().update(exps).table(10)
    saved = json.loads((tmp_path / "9" / "word_importance_9.json").read_text())
    assert [w["word"] for w in saved["words"]] == [r.word for r in table.rows]


# Keras' own numpy-2 copy= deprecation noise, not ours (as in test_keras_import.py).
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
def test_keras_softmax_import_keeps_every_column_and_names_the_classes(tmp_path):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    layers = keras.layers
    for units in (3, 2):
        m = keras.Sequential(
            [keras.Input((12,), dtype="int32"), layers.Embedding(40, 6), layers.LSTM(4),
             layers.Dense(units, activation="softmax")]
        )  # fmt: skip
        m.save(tmp_path / f"k{units}.keras")
    cli("import-keras", str(tmp_path / "k3.keras"), "--classes", "sports,politics,tech", "--out", str(tmp_path / "a"))
    cli("import-keras", str(tmp_path / "k3.keras"), "--out", str(tmp_path / "b"))
    cli("import-keras", str(tmp_path / "k2.keras"), "--out", str(tmp_path / "c"))
    a, b, c = (seqshap.load(tmp_path / n) for n in "abc")
    assert a.classes == ("sports", "politics", "tech")
    assert b.classes == ("class_0", "class_1", "class_2")
    assert c.classes == DEFAULT_CLASSES
    assert "classes" not in c.config
    ids = np.random.RandomState(0).randint(3, 40, (3, 12))
    ex = DeepExplainer(a, np.random.RandomState(1).randint(3, 40, (4, 12)))
    for name in a.classes:
        e = ex.explain(ids, target=name)
        assert all(x.output_name == name and x.completeness_error <= TOL for x in e)
    two = DeepExplainer(c, np.random.RandomState(1).randint(3, 40, (4, 12))).explain(ids)
    assert {x.output_index for x in two} == {1}
    assert {x.output_name for x in two} == {"positive"}
    bad = cli("import-keras", str(tmp_path / "k3.keras"), "--classes", "a,b", "--out", str(tmp_path / "d"), check=False)
    assert bad.returncode == 1
    assert "the model has 3 outputs, but 2 class names were given" in bad.stderr


# ---- the web page ------------------------------------------------------------------------------


@pytest.mark.server
def test_web_api_takes_a_target_and_lists_the_classes(rating_model, rating_texts, imdb):
    app = create_app(rating_model.path, background_texts=imdb["train"].texts[:5])
    with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=60) as c:
        info = c.get("/api/model").json()
        assert info["classes"] == info["targets"] == list(RATING_CLASSES)
        d = c.post("/api/explain", json={"text": rating_texts[0], "target": "9"}).json()
        want = DeepExplainer(rating_model, imdb["train"].texts[:5]).explain(rating_texts[:1], target="9")[0]
        assert d["output_name"] == "9"
        assert d["values"] == pytest.approx(want.values.tolist(), abs=1e-9)
        batch = c.post("/api/explain/batch", json={"texts": rating_texts[:2], "target": 0}).json()
        assert [e["output_name"] for e in batch["explanations"]] == ["1", "1"]
        r = c.post("/api/explain", json={"text": rating_texts[0], "target": "5"})
        assert r.status_code == 422
        assert r.json()["error"].startswith("unknown target '5'")
        r = c.post("/api/explain", json={"text": rating_texts[0], "target": [9]})
        assert r.status_code == 422
        assert r.json()["error"] == "target must be a class name or index, got a list"


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.mark.browser
@pytest.mark.server
def test_page_offers_the_classes_and_defaults_to_the_predicted_one(browser, rating_model, tiny_model, imdb):
    assert shutil.which("chromium")
    background = imdb["train"].texts[:5]
    review = "One of the best films I have seen: 10/10, a masterpiece."
    predicted = RATING_CLASSES[int(rating_model.predict([review])[0].argmax())]
    with LiveServer(create_app(rating_model.path, background_texts=background)) as live:
        page = browser.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(live.url + "/")
        options = page.eval_on_selector_all("#target option", "os => os.map(o => [o.value, o.textContent])")
        assert options == [["", "the predicted class"], *[[c, c] for c in RATING_CLASSES]]
        assert page.input_value("#target") == ""  # the default: the predicted class

        def explain() -> str:
            page.fill("#review", review)
            page.click("#explain-button")
            page.wait_for_selector('#status[data-state="done"], #status[data-state="error"]', timeout=60_000)
            return page.inner_text("#status")

        assert explain().startswith(f"Predicted {predicted} — why {predicted}: explained in")
        assert page.inner_text("#result .prediction .why b") == predicted
        other = next(c for c in RATING_CLASSES if c != predicted)
        page.select_option("#target", other)
        assert explain().startswith(f"Predicted {predicted} — why {other}: explained in")
        assert page.inner_text("#result .prediction .why b") == other
        assert f"P({other}) = " in page.inner_text("#result .prediction")
        assert page.locator("#result svg.seqshap-force g.seg").count() > 0
        assert problems == []
        page.close()
    # a two-class (sigmoid) model's page has no class to choose: unchanged
    with LiveServer(create_app(tiny_model.path, background_texts=background)) as live:
        page = browser.new_page()
        page.goto(live.url + "/")
        assert page.locator("#target").count() == 0
        page.close()
