"""Keras models that read raw text: a ``TextVectorization`` inside the saved model. Its vocabulary,
standardization and split travel into the converted directory, and seqshap reads a text into the
very ids Keras does (checked on hundreds of real IMDB reviews, punctuation, case and all), so
``seqshap explain --model DIR "text"`` explains the Keras model's own reading of the text.

Keras' TextVectorization needs TensorFlow (in the test extra); the rest of the model runs on Keras'
torch backend. seqshap's ids are Keras' shifted by one past padding (seqshap keeps id 1 for a start
token): Keras id j >= 1 is seqshap id j + 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

os.environ["KERAS_BACKEND"] = "torch"  # must precede the keras import

import keras
import numpy as np
import pytest
import torch
from keras import layers as L

from seqshap import store
from seqshap.attribution import DeepExplainer
from seqshap.keras_import import KerasImportError, import_keras
from seqshap.models.keras.text import TextVectorizer

pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"),
    pytest.mark.filterwarnings("ignore:Layer .* does not support masking"),
]

MAX_TOKENS, LENGTH = 3000, 80
N_REVIEWS = 300


def keras_ids(vectorizer, texts: list[str]) -> np.ndarray:
    """Keras' ids for ``texts``, fed as the model feeds them: ``[batch, 1]`` strings."""
    return keras.ops.convert_to_numpy(vectorizer(np.array(texts, dtype=object)[:, None])).astype(np.int64)


def shifted(ids: np.ndarray) -> np.ndarray:
    """Keras TextVectorization ids in seqshap's numbering (padding stays 0, the rest move up one)."""
    return np.where(ids > 0, ids + 1, 0)


def end_to_end(vectorizer, masked: bool = False) -> tuple[keras.Model, keras.Model]:
    """keras.io's "text classification from scratch" CNN behind the vectorizer: (the model on text,
    the same layers on ids, to run Keras' reference on the torch backend, which has no strings)."""
    ids_in = keras.Input((LENGTH,), dtype="int64")
    x = L.Embedding(MAX_TOKENS, 16, mask_zero=masked)(ids_in)
    x = L.Dropout(0.5)(x)
    if masked:
        x = L.GlobalAveragePooling1D()(L.GRU(8, return_sequences=True)(x))
    else:
        x = L.Conv1D(16, 7, padding="valid", activation="relu", strides=3)(x)
        x = L.Conv1D(16, 7, padding="valid", activation="relu", strides=3)(x)
        x = L.GlobalMaxPooling1D()(x)
    x = L.Dropout(0.5)(L.Dense(16, activation="relu")(x))
    core = keras.Model(ids_in, L.Dense(1, activation="sigmoid", name="predictions")(x))
    rng = np.random.default_rng(0)
    core.set_weights([rng.normal(0.0, 0.4, w.shape).astype("float32") for w in core.get_weights()])
    text_in = keras.Input((1,), dtype="string")
    h = vectorizer(text_in)
    for layer in core.layers[1:]:
        h = layer(h)
    return keras.Model(text_in, h), core


@pytest.fixture(scope="module")
def reviews(imdb) -> tuple[list[str], list[str]]:
    """(texts to adapt on, other texts to read): real IMDB reviews, with their HTML, punctuation and case."""
    return imdb["train"].texts[:N_REVIEWS], imdb["test"].texts[:N_REVIEWS]


@pytest.fixture(scope="module")
def cnn(reviews, tmp_path_factory):
    d = tmp_path_factory.mktemp("tv")
    vec = L.TextVectorization(max_tokens=MAX_TOKENS, output_sequence_length=LENGTH, name="vectorize")
    vec.adapt(reviews[0])
    model, core = end_to_end(vec)
    model.save(d / "cnn.keras")
    return model, core, d / "cnn.keras"


def test_reads_imdb_reviews_into_the_ids_keras_reads(cnn, reviews, tmp_path):
    _, core, path = cnn
    sm = import_keras(path, tmp_path / "out")
    assert isinstance(sm.vocab, TextVectorizer)
    assert sm.maxlen == LENGTH
    texts = reviews[1]
    # Keras' own reading after loading the file back (its vocabulary as Keras restores it).
    reloaded = keras.models.load_model(path)
    expected = keras_ids(reloaded.get_layer("vectorize"), texts)
    np.testing.assert_array_equal(sm.encode(texts).numpy(), shifted(expected))
    assert (expected == 1).any(), "the reviews should hold out-of-vocabulary words"
    assert any(t != t.lower() for t in texts)
    assert any("," in t for t in texts)
    # and the model on those ids is the Keras model
    got = sm.predict(texts)
    want = keras.ops.convert_to_numpy(core(expected))[:, 0]
    assert np.abs(got - want).max() <= 1e-5
    # the directory reloads with its tokenizer
    again = store.load(tmp_path / "out")
    assert isinstance(again.vocab, TextVectorizer)
    np.testing.assert_array_equal(again.encode(texts[:20]).numpy(), shifted(expected[:20]))


@pytest.mark.parametrize(
    ("standardize", "split"),
    [
        ("lower", "whitespace"),
        ("strip_punctuation", "whitespace"),
        (None, "whitespace"),
        ("lower", "character"),
        ("lower_and_strip_punctuation", None),
    ],
)
def test_every_builtin_standardize_and_split(standardize, split, reviews, tmp_path):
    length = 200 if split == "character" else 40
    vec = L.TextVectorization(max_tokens=400, standardize=standardize, split=split, output_sequence_length=length)
    texts = [*reviews[1][:100], "ÉCOLE Naïve CAFÉ, \u00a0nbsp\x1cx\u3000y!", "   ", "", "A\tB\vC\fD\rE\nF"]
    if split == "character":  # a line break as a token (IMDB has \x85) would break Keras' own
        texts = [" ".join(t.splitlines()) for t in texts]  # vocabulary.txt: Keras could not load the model back
    adapt_on = [*reviews[0][:100], *texts[-4:]]
    if split == "character":
        adapt_on = [" ".join(t.splitlines()) for t in adapt_on]
    vec.adapt(adapt_on)
    inp = keras.Input((1,), dtype="string")
    model = keras.Model(inp, L.Dense(1)(L.Flatten()(L.Embedding(401, 2)(vec(inp)))))
    model.save(tmp_path / "m.keras")
    sm = import_keras(tmp_path / "m.keras", tmp_path / "out")
    expected = keras_ids(keras.models.load_model(tmp_path / "m.keras").layers[1], texts)
    np.testing.assert_array_equal(sm.encode(texts).numpy(), shifted(expected))


def test_positions_keep_their_words(cnn, tmp_path):
    _, _, path = cnn
    sm = import_keras(path, tmp_path / "out")
    text = "The ACTING was great, but... the plot? Awful!!"
    enc = sm.encodings([text])[0]
    words = [text[span[0] : span[1]] for span in enc.spans if span is not None]
    assert words == ["The", "ACTING", "was", "great", "but", "the", "plot", "Awful"]  # punctuation stripped, as Keras
    assert enc.tokens[:3] == ("the", "acting", "was")
    assert enc.ids[8:] == (0,) * (LENGTH - 8)  # padding at the end, as Keras pads


def test_explained_exactly_from_text(cnn, reviews, tmp_path):
    _, _, path = cnn
    sm = import_keras(path, tmp_path / "out")
    texts = [reviews[1][0][:300], "a truly great film"]
    background = [reviews[0][3][:500], "bad", reviews[0][7]]  # other lengths than the inputs
    explainer = DeepExplainer(sm, background, dtype=torch.float64)
    phi = explainer.shap_values(texts, check_additivity=False)
    fx = explainer._outputs(explainer._prepare(texts, "X")).numpy()
    assert np.abs(phi.sum(1) - (fx - explainer.expected_value[None, :])).max() <= 1e-6


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seqshap.cli", *args], capture_output=True, text=True, timeout=600)


def test_cli_import_and_explain_raw_text(cnn, reviews, tmp_path):
    model, core, path = cnn
    out = tmp_path / "runs" / "cnn"
    done = run_cli("import-keras", str(path), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "TextVectorization 'vectorize'" in done.stdout
    (tmp_path / "bg.txt").write_text("\n".join(t.replace("\n", " ") for t in reviews[0][:20]))
    text = "What a WONDERFUL, moving film -- I loved it!"
    done = run_cli("explain", "--model", str(out), "--background-file", str(tmp_path / "bg.txt"), "--json", text)
    assert done.returncode == 0, done.stderr
    exp = json.loads(done.stdout.splitlines()[0])
    ids = keras_ids(model.layers[1], [text])
    assert [t for t in exp["tokens"] if t != "<pad>"] == [
        "what",
        "a",
        "wonderful",
        "moving",
        "film",
        "i",
        "loved",
        "it",
    ]
    assert exp["ids"] == shifted(ids)[0].tolist()
    assert abs(exp["prediction"] - float(keras.ops.convert_to_numpy(core(ids))[0, 0])) <= 1e-5
    assert abs(exp["completeness_error"]) <= 1e-4


def test_masked_model_from_text(reviews, tmp_path):
    """Embedding(mask_zero=True) after the vectorizer: Keras pads at the end, the mask follows."""
    vec = L.TextVectorization(max_tokens=MAX_TOKENS, output_sequence_length=LENGTH)
    vec.adapt(reviews[0])
    model, core = end_to_end(vec, masked=True)
    model.save(tmp_path / "gru.keras")
    sm = import_keras(tmp_path / "gru.keras", tmp_path / "out")
    texts = [*reviews[1][:50], "short one", "word"]
    ids = keras_ids(vec, texts)
    assert np.abs(sm.predict(texts) - keras.ops.convert_to_numpy(core(ids))[:, 0]).max() <= 1e-5


def test_h5_without_the_vocabulary_is_refused_and_an_inline_vocabulary_travels(tmp_path):
    vec = L.TextVectorization(max_tokens=50, output_sequence_length=6, name="vec")
    vec.adapt(["the cat sat on the mat", "a dog"])
    model, _ = (lambda m: (m, None))(
        keras.Model(i := keras.Input((1,), dtype="string"), L.Dense(1)(L.Flatten()(L.Embedding(50, 2)(vec(i)))))
    )
    model.save(tmp_path / "adapted.h5")
    with pytest.raises(KerasImportError, match=r"does not hold the vocabulary of layer 'vec'.*save the model with"):
        import_keras(tmp_path / "adapted.h5", tmp_path / "out")
    given = L.TextVectorization(vocabulary=["the", "cat", "mat"], output_sequence_length=6, name="given")
    inp = keras.Input((1,), dtype="string")
    model = keras.Model(inp, L.Dense(1)(L.Flatten()(L.Embedding(5, 2)(given(inp)))))
    for ext in ("h5", "keras"):
        model.save(tmp_path / f"given.{ext}")
        sm = import_keras(tmp_path / f"given.{ext}", tmp_path / f"out_{ext}")
        texts = ["The CAT, the hat!", "mat"]
        np.testing.assert_array_equal(sm.encode(texts).numpy(), shifted(keras_ids(given, texts)))


def test_custom_standardization_is_refused_by_name(tmp_path):
    @keras.saving.register_keras_serializable(package="tests")
    def strip_html(x):
        import tensorflow as tf

        return tf.strings.regex_replace(tf.strings.lower(x), "<br />", " ")

    vec = L.TextVectorization(max_tokens=20, output_sequence_length=5, standardize=strip_html, name="vec")
    vec.adapt(["a b<br />c"])
    inp = keras.Input((1,), dtype="string")
    keras.Model(inp, L.Dense(1)(L.Flatten()(L.Embedding(20, 2)(vec(inp))))).save(tmp_path / "m.keras")
    with pytest.raises(
        KerasImportError,
        match=r"layer 'vec' \(TextVectorization\) uses a custom standardize "
        r"function \(.*strip_html.*\).*use one of them",
    ):
        import_keras(tmp_path / "m.keras", tmp_path / "out")
    with zipfile.ZipFile(tmp_path / "m.keras") as z:
        assert "strip_html" in z.read("config.json").decode()


def test_word_index_is_not_wanted_for_a_text_model(cnn, tmp_path):
    (tmp_path / "wi.json").write_text(json.dumps({"the": 1}))
    with pytest.raises(KerasImportError, match="its vocabulary is in the file, so leave out --word-index"):
        import_keras(cnn[2], tmp_path / "out", word_index=tmp_path / "wi.json")


def test_a_vocabulary_keras_cannot_read_back_is_refused(tmp_path):
    """Characters as tokens, one of them a line break (IMDB's \\x85): the saved vocabulary.txt no
    longer lists the tokens one per line; Keras fails to load it, seqshap says why."""
    vec = L.TextVectorization(max_tokens=30, split="character", output_sequence_length=8, name="chars")
    vec.adapt(["\x85\x85\x85 ab", "abc"])  # the line break is the most frequent token: early in the file
    inp = keras.Input((1,), dtype="string")
    keras.Model(inp, L.Dense(1)(L.Flatten()(L.Embedding(30, 2)(vec(inp))))).save(tmp_path / "m.keras")
    with pytest.raises(ValueError, match="repeated term"):
        keras.models.load_model(tmp_path / "m.keras")
    with pytest.raises(
        KerasImportError,
        match=r"'chars' \(TextVectorization\)'s saved vocabulary.txt holds a token "
        r"with a line break",
    ):
        import_keras(tmp_path / "m.keras", tmp_path / "out")


def test_keras_io_end_to_end_model(reviews, tmp_path):
    """keras.io's export: ``end_to_end = keras.Model(text, model(vectorize_layer(text)))``, the trained
    model used as a layer after the vectorizer."""
    vec = L.TextVectorization(max_tokens=MAX_TOKENS, output_sequence_length=LENGTH, name="vectorize_layer")
    vec.adapt(reviews[0])
    _, core = end_to_end(vec)
    text_in = keras.Input((1,), dtype="string")
    keras.Model(text_in, core(vec(text_in))).save(tmp_path / "end_to_end.keras")
    sm = import_keras(tmp_path / "end_to_end.keras", tmp_path / "out")
    texts = reviews[1][:100]
    ids = keras_ids(vec, texts)
    np.testing.assert_array_equal(sm.encode(texts).numpy(), shifted(ids))
    assert np.abs(sm.predict(texts) - keras.ops.convert_to_numpy(core(ids))[:, 0]).max() <= 1e-5
    assert any(name.endswith("/predictions (Dense)") for name in sm.config["imported_from"]["layers"])


def test_a_broken_vocabulary_is_refused_on_load(cnn, tmp_path):
    from seqshap.errors import ModelLoadError

    sm = import_keras(cnn[2], tmp_path / "out")
    vocab = json.loads((sm.path / "vocab.json").read_text())
    vocab["vocabulary"] = vocab["vocabulary"][2:]  # the padding and [UNK] entries gone
    (sm.path / "vocab.json").write_text(json.dumps(vocab))
    with pytest.raises(ModelLoadError, match=r"vocab.json: the vocabulary must start with '' and '\[UNK\]'"):
        store.load(sm.path)
