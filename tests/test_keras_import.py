"""Keras -> seqshap import of chains (the seed notebook's models): small Keras 3 models of every
recurrent/convolutional layer combination are built here, saved as ``.keras`` and ``.h5``, converted,
and must predict what Keras predicts (1e-5) and be explainable with DeepSHAP (completeness 1e-4).
Keras-2-only layouts are written with h5py directly. Keras runs on its torch backend.
Functional graphs, attention and masks: tests/test_keras_graphs.py; TextVectorization:
tests/test_keras_text.py.
"""

from __future__ import annotations

import json
import os
import zipfile

os.environ["KERAS_BACKEND"] = "torch"  # must precede the keras import

import h5py
import keras
import numpy as np
import pytest
import torch
from keras import layers as L

from seqshap import store
from seqshap.attribution import DeepExplainer
from seqshap.cli import main
from seqshap.data.tokenize import KERAS_FILTERS
from seqshap.keras_import import KerasImportError, import_keras

# Keras' own numpy-2 copy= deprecation noise, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

V, E, T = 40, 6, 12  # vocabulary rows, embedding width, sequence length
TOL_PRED, TOL_SHAP = 1e-5, 1e-4


def seq(*layers, length=T) -> keras.Sequential:
    return keras.Sequential([keras.Input((length,), dtype="int32"), L.Embedding(V, E), *layers])


def functional_chain() -> keras.Model:
    inp = keras.Input((T,), dtype="int32")
    x = L.Embedding(V, E)(inp)
    x = L.Bidirectional(L.LSTM(3, return_sequences=True))(x)
    x = L.GlobalAveragePooling1D()(x)
    return keras.Model(inp, L.Dense(2, activation="softmax")(x))


CASES = {
    # the seed notebook's architecture, in small
    "lstm": lambda: seq(L.LSTM(5, dropout=0.2, recurrent_dropout=0.2), L.Dense(1, activation="sigmoid")),
    "gru_reset_after": lambda: seq(L.GRU(5), L.Dense(1, activation="sigmoid")),
    "gru_reset_before": lambda: seq(L.GRU(5, reset_after=False), L.Dense(1, activation="sigmoid")),
    "bilstm_stacked": lambda: seq(
        L.Bidirectional(L.LSTM(4, return_sequences=True)), L.Dropout(0.3), L.LSTM(3), L.Dense(1, activation="sigmoid")
    ),
    "bigru_both_resets": lambda: seq(
        L.Bidirectional(L.GRU(4, return_sequences=True)),
        L.Bidirectional(L.GRU(3, reset_after=False)),
        L.Dense(2, activation="softmax"),
    ),
    "gru_sequences_maxpool": lambda: seq(
        L.SpatialDropout1D(0.2),
        L.GRU(4, return_sequences=True, reset_after=False),
        L.GRU(4, return_sequences=True),
        L.GlobalMaxPooling1D(),
        L.Dense(3, activation="softmax"),
    ),
    "lstm_hard_sigmoid_relu": lambda: seq(
        L.LSTM(5, recurrent_activation="hard_sigmoid", activation="relu"), L.Dense(1, activation="sigmoid")
    ),
    "lstm_sequences_flatten": lambda: seq(
        L.LSTM(3, return_sequences=True), L.Flatten(), L.Dense(1, activation="sigmoid")
    ),
    "lstm_flatten_noop": lambda: seq(L.LSTM(3), L.Flatten(), L.Dense(1, activation="sigmoid")),
    "cnn_valid": lambda: seq(
        L.Conv1D(6, 3, activation="relu"), L.GlobalMaxPooling1D(), L.Dense(1, activation="sigmoid")
    ),
    "cnn_same_even_kernel_linear_out": lambda: seq(
        L.Conv1D(6, 4, padding="same", activation="relu"),
        L.MaxPooling1D(2),
        L.Conv1D(5, 3, activation="tanh"),
        L.GlobalAveragePooling1D(),
        L.Dense(1),
    ),
    "cnn_lstm": lambda: seq(
        L.Conv1D(6, 3, padding="same"),
        L.AveragePooling1D(2),
        L.LSTM(4),
        L.Dense(4, activation="relu"),
        L.Dense(1, activation="sigmoid"),
    ),
    "dense_activation_layers": lambda: seq(
        L.Flatten(), L.Dense(4), L.Activation("tanh"), L.Dense(1), L.Activation("sigmoid")
    ),
    "functional_chain": functional_chain,
}


def randomize(model: keras.Model, seed: int = 0, scale: float = 0.5) -> keras.Model:
    """Non-zero biases and larger weights than the initializers give, so a wrong gate order
    or a dropped bias cannot hide behind outputs near 0.5."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, scale, w.shape).astype("float32") for w in model.get_weights()])
    return model


def keras_out(model: keras.Model, ids: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(ids.astype("int32"), training=False))


def torch_out(sm: store.SeqshapModel, ids: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return sm.net(torch.from_numpy(ids.astype(np.int64))).numpy()


def random_ids(n: int = 24, seed: int = 1, length: int = T, high: int = V) -> np.ndarray:
    ids = np.random.default_rng(seed).integers(0, high, (n, length))
    ids[0] = 0  # all padding
    ids[1, : length // 2] = 0  # front-padded, as pad_sequences does
    ids[2, -1] = high - 1  # the embedding's last row
    return ids


def check_completeness(sm: store.SeqshapModel, ids: np.ndarray) -> float:
    """DeepSHAP on the converted model: must not raise, and must add up to f(x) - E f(bg)."""
    x, bg = torch.from_numpy(ids[:3]), torch.from_numpy(ids[3:8])
    explainer = DeepExplainer(sm, bg, output=sm.config["output_space"])
    phi = explainer.shap_values(x)
    f = torch_out(sm, ids[:3]).astype(np.float64)
    assert phi.shape == (3, ids.shape[1], f.shape[1])
    miss = np.abs(phi.sum(1) - (f - explainer.expected_value[None, :])).max()
    assert miss <= TOL_SHAP, f"completeness missed by {miss}"
    return float(miss)


@pytest.mark.parametrize("case", sorted(CASES))
def test_converted_models_match_keras_and_explain(case, tmp_path):
    model = randomize(CASES[case]())
    ids = random_ids()
    expected = keras_out(model, ids)
    converted = {}
    for ext in ("keras", "h5"):
        path = tmp_path / f"model.{ext}"
        model.save(path)
        sm = import_keras(path, tmp_path / f"out_{ext}")
        assert sm.config["arch"] == "keras"
        assert sm.maxlen == T
        got = torch_out(sm, ids)
        assert got.shape == expected.shape
        diff = np.abs(got - expected).max()
        assert diff <= TOL_PRED, f"{case} from .{ext}: max |torch - keras| = {diff}"
        converted[ext] = sm
    # Both formats must give the very same tensors, and the directory must reload to them.
    a, b = converted["keras"].net.state_dict(), converted["h5"].net.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    reloaded = store.load(tmp_path / "out_keras")
    np.testing.assert_array_equal(torch_out(reloaded, ids), torch_out(converted["keras"], ids))
    expect_space = "probability" if model.layers[-1].get_config().get("activation") in ("sigmoid", "softmax") else "raw"
    assert converted["keras"].config["output_space"] == expect_space
    check_completeness(converted["keras"], ids)


def test_keras_versions_hard_sigmoid_differs(tmp_path):
    """Keras 3 hard_sigmoid is relu6(x+3)/6; the converter must not use Keras 2's 0.2x+0.5 for it."""
    model = randomize(seq(L.LSTM(4, recurrent_activation="hard_sigmoid"), L.Dense(1, activation="sigmoid")), seed=3)
    model.save(tmp_path / "m.keras")
    sm = import_keras(tmp_path / "m.keras", tmp_path / "out")
    assert sm.config["model"]["layers"][0]["recurrent_activation"] == "hard_sigmoid"
    ids = random_ids(seed=4)
    assert np.abs(torch_out(sm, ids) - keras_out(model, ids)).max() <= TOL_PRED


# ------------------------------------------------------------------ Keras 2 files (written with h5py)


def keras2_hard_sigmoid(x):
    return keras.ops.clip(0.2 * x + 0.5, 0.0, 1.0)


def write_keras2_h5(path, model: keras.Model, style: str) -> None:
    """A full-model ``.h5`` as Keras 2 / tf.keras wrote it: ``model_config`` JSON attribute,
    ``model_weights/<layer>/<layer>/<cell>/kernel:0`` datasets listed in ``weight_names``."""
    emb, lstm, gru, dense = model.layers
    names = ["embedding", "lstm", "gru", "dense"]
    cfgs = [
        {
            "class_name": "Embedding",
            "config": {
                "name": "embedding",
                "trainable": True,
                "batch_input_shape": [None, T],
                "dtype": "float32",
                "input_dim": V,
                "output_dim": E,
                "mask_zero": False,
                "input_length": T,
            },
        },
        {
            "class_name": "LSTM",
            "config": {
                "name": "lstm",
                "return_sequences": True,
                "return_state": False,
                "go_backwards": False,
                "stateful": False,
                "unroll": False,
                "time_major": False,
                "units": 5,
                "activation": "tanh",
                "recurrent_activation": "hard_sigmoid",
                "use_bias": True,
                "unit_forget_bias": True,
                "dropout": 0.0,
                "recurrent_dropout": 0.0,
                "implementation": 2,
            },
        },
        {
            "class_name": "GRU",
            "config": {
                "name": "gru",
                "return_sequences": False,
                "units": 4,
                "activation": "tanh",
                "recurrent_activation": "sigmoid",
                "use_bias": True,
                "implementation": 2,
            },
        },
        {"class_name": "Dense", "config": {"name": "dense", "units": 1, "activation": "sigmoid", "use_bias": True}},
    ]
    if style != "keras22":
        cfgs[2]["config"]["reset_after"] = False  # Keras 2.2 files predate the key (default False)
    if style == "tf2_sequential":
        config = {
            "class_name": "Sequential",
            "config": {
                "name": "sequential",
                "layers": [
                    {
                        "class_name": "InputLayer",
                        "config": {"batch_input_shape": [None, T], "dtype": "int32", "name": "embedding_input"},
                    },
                    *cfgs,
                ],
            },
        }
    elif style == "keras22":
        config = {"class_name": "Sequential", "config": cfgs}  # Keras <= 2.2: a bare layer list
    else:  # tf2 functional: layers carry name and inbound_nodes [[["prev", 0, 0, {}]]]
        chain = [
            {
                "class_name": "InputLayer",
                "name": "ids",
                "config": {"batch_input_shape": [None, T], "dtype": "int32", "name": "ids"},
                "inbound_nodes": [],
            }
        ]
        prev = "ids"
        for c in cfgs:
            chain.append(dict(c, name=c["config"]["name"], inbound_nodes=[[[prev, 0, 0, {}]]]))
            prev = c["config"]["name"]
        config = {
            "class_name": "Functional",
            "config": {
                "name": "model",
                "layers": chain,
                "input_layers": [["ids", 0, 0]],
                "output_layers": [["dense", 0, 0]],
            },
        }
    weights = {
        "embedding": [("embedding/embeddings:0", emb.get_weights()[0])],
        "lstm": list(
            zip(
                ["lstm/lstm_cell/kernel:0", "lstm/lstm_cell/recurrent_kernel:0", "lstm/lstm_cell/bias:0"],
                lstm.get_weights(),
                strict=True,
            )
        ),
        "gru": list(
            zip(
                ["gru/gru_cell/kernel:0", "gru/gru_cell/recurrent_kernel:0", "gru/gru_cell/bias:0"],
                gru.get_weights(),
                strict=True,
            )
        ),
        "dense": list(zip(["dense/kernel:0", "dense/bias:0"], dense.get_weights(), strict=True)),
    }
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.4.0"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(config).encode()
        mw = f.create_group("model_weights")
        mw.attrs["layer_names"] = [n.encode() for n in names]
        for name in names:
            g = mw.create_group(name)
            g.attrs["weight_names"] = [w.encode() for w, _ in weights[name]]
            for wname, arr in weights[name]:
                g.create_dataset(wname, data=arr)


@pytest.mark.parametrize("style", ["tf2_sequential", "tf2_functional", "keras22"])
def test_keras2_h5_layouts(style, tmp_path):
    """Keras 2 semantics: hard_sigmoid = clip(0.2x + 0.5), GRU reset_after=False (the Keras 2.2
    default when the key is absent); the reference is Keras 3 given Keras 2's hard sigmoid."""
    model = randomize(
        seq(
            L.LSTM(5, return_sequences=True, recurrent_activation=keras2_hard_sigmoid),
            L.GRU(4, reset_after=False),
            L.Dense(1, activation="sigmoid"),
        ),
        seed=7,
    )
    path = tmp_path / "keras2.h5"
    write_keras2_h5(path, model, style)
    sm = import_keras(path, tmp_path / "out")
    spec = sm.config["model"]["layers"]
    assert spec[0]["recurrent_activation"] == "hard_sigmoid_keras2"
    assert spec[1]["reset_after"] is False
    assert sm.config["imported_from"]["keras_version"] == "2.4.0"
    assert sm.maxlen == T
    ids = random_ids(seed=8)
    diff = np.abs(torch_out(sm, ids) - keras_out(model, ids)).max()
    assert diff <= TOL_PRED, f"Keras 2 {style}: max diff {diff}"
    check_completeness(sm, ids)


# ------------------------------------------------------------------ vocabularies


@pytest.fixture(scope="module")
def lstm_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("lstm")
    model = randomize(CASES["lstm"](), seed=11)
    model.save(d / "model.keras")
    return model, d / "model.keras"


def test_imdb_word_index(lstm_file, tmp_path):
    """Keras imdb scheme: id = rank + 3, 1 start, 2 OOV; ranks past the embedding's rows are OOV."""
    model, path = lstm_file
    wi = {"the": 1, "movie": 2, "great": 3, "awful": 30, "rare": 37}  # rare: 37 + 3 = 40 = V -> OOV
    (tmp_path / "wi.json").write_text(json.dumps(wi))
    sm = import_keras(path, tmp_path / "out", word_index=tmp_path / "wi.json")
    assert sm.vocab.word_to_id == {"the": 4, "movie": 5, "great": 6, "awful": 33}
    assert sm.vocab.num_words == V
    assert sm.tokens([1, 2, 4, 33]) == ["<start>", "<oov>", "the", "awful"]
    texts = ["The great movie!", "awful, rare movie"]
    ids = sm.encode(texts).numpy()
    np.testing.assert_array_equal(ids[0, -5:], [0, 1, 4, 6, 5])
    np.testing.assert_array_equal(ids[1, -4:], [1, 33, 2, 5])
    np.testing.assert_allclose(sm.predict(texts), keras_out(model, ids)[:, 0], atol=TOL_PRED)
    assert "imdb word index" in sm.metrics["vocabulary"]


def tokenizer_json(oov: bool) -> dict:
    """What ``keras.preprocessing.text.Tokenizer(num_words=30, oov_token=...).to_json()`` writes
    (Keras 3 no longer ships the Tokenizer): the dicts are JSON strings inside the JSON."""
    words = ["the", "good", "bad", "film", "plot"] + [f"w{i}" for i in range(40)]
    wi = {w: i + (2 if oov else 1) for i, w in enumerate(words)}
    if oov:
        wi["<OOV>"] = 1
    cfg = {
        "num_words": 30,
        "filters": KERAS_FILTERS,
        "lower": True,
        "split": " ",
        "char_level": False,
        "oov_token": "<OOV>" if oov else None,
        "document_count": 3,
        "word_counts": json.dumps(dict.fromkeys(wi, 1)),
        "word_docs": json.dumps(dict.fromkeys(wi, 1)),
        "index_docs": json.dumps({str(i): 1 for i in wi.values()}),
        "index_word": json.dumps({str(i): w for w, i in wi.items()}),
        "word_index": json.dumps(wi),
    }
    return {"class_name": "Tokenizer", "config": cfg}


def test_tokenizer_json(lstm_file, tmp_path):
    """Tokenizer ids j (0 pad, words from 1, oov_token at 1) become j + 2; the model on the moved
    ids equals Keras on the Tokenizer's ids, and texts shorter than maxlen predict the same."""
    model, path = lstm_file
    (tmp_path / "tok.json").write_text(json.dumps(tokenizer_json(oov=True)))
    sm = import_keras(path, tmp_path / "out", word_index=tmp_path / "tok.json")
    assert sm.vocab.num_words == 30 + 2
    assert sm.vocab.word_to_id["the"] == 2 + 2
    assert max(sm.vocab.word_to_id.values()) == 29 + 2  # num_words=30 caps the Tokenizer at id 29
    keras_ids = random_ids(seed=5, high=30)
    ours = np.where(keras_ids > 0, keras_ids + 2, 0)
    assert np.abs(torch_out(sm, ours) - keras_out(model, keras_ids)).max() <= TOL_PRED
    # "the good zzz film": Tokenizer ids [2, 3, 1 (oov), 5]; seqshap adds a start token, whose
    # embedding is the padding row, so front-padded inputs agree exactly.
    text = "The good zzz film"
    k_ids = np.zeros((1, T), dtype=np.int64)
    k_ids[0, -4:] = [2, 3, 1, 5]
    np.testing.assert_array_equal(sm.encode([text]).numpy()[0, -5:], [1, 4, 5, 2, 7])
    np.testing.assert_allclose(sm.predict([text]), keras_out(model, k_ids)[:, 0], atol=TOL_PRED)
    assert "Tokenizer" in sm.metrics["vocabulary"]


def test_tokenizer_with_other_filters_is_refused(lstm_file, tmp_path):
    tok = tokenizer_json(oov=False)
    tok["config"]["lower"] = False
    with pytest.raises(KerasImportError, match="non-default lower/split/filters"):
        import_keras(lstm_file[1], tmp_path / "out", word_index=tok)


def test_no_vocabulary_explains_ids(lstm_file, tmp_path):
    model, path = lstm_file
    sm = import_keras(path, tmp_path / "out")
    assert sm.tokens([0, 1, 2, 3, 39]) == ["<pad>", "<start>", "<oov>", "id3", "id39"]
    assert "explains word ids" in sm.metrics["vocabulary"]
    ids = sm.encode(["id5 id17 id39"]).numpy()
    np.testing.assert_array_equal(ids[0, -4:], [1, 5, 17, 39])
    np.testing.assert_allclose(sm.predict(["id5 id17 id39"]), keras_out(model, ids)[:, 0], atol=TOL_PRED)


def test_bad_word_index(lstm_file, tmp_path):
    (tmp_path / "wi.json").write_text("[1, 2, 3]")
    with pytest.raises(KerasImportError, match="not a word index"):
        import_keras(lstm_file[1], tmp_path / "out", word_index=tmp_path / "wi.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(KerasImportError, match="not valid JSON"):
        import_keras(lstm_file[1], tmp_path / "out", word_index=tmp_path / "broken.json")


# ------------------------------------------------------------------ maxlen


def test_maxlen_from_file_or_argument(tmp_path):
    model = randomize(seq(L.GRU(3), L.Dense(1, activation="sigmoid"), length=None), seed=2)
    model.save(tmp_path / "free.keras")
    with pytest.raises(KerasImportError, match=r"input length is not fixed.*maxlen"):
        import_keras(tmp_path / "free.keras", tmp_path / "out")
    sm = import_keras(tmp_path / "free.keras", tmp_path / "out", maxlen=9)
    assert sm.maxlen == 9
    ids = random_ids(length=9)
    assert np.abs(torch_out(sm, ids) - keras_out(model, ids)).max() <= TOL_PRED
    fixed = seq(L.GRU(3), L.Dense(1, activation="sigmoid"))
    fixed.save(tmp_path / "fixed.keras")
    with pytest.raises(KerasImportError, match="input length is 12, but maxlen=9"):
        import_keras(tmp_path / "fixed.keras", tmp_path / "out2", maxlen=9)


def test_maxlen_from_a_fitted_sequential_without_input(tmp_path):
    """The seed notebook's style: no Input layer; fit() fixes the length in the saved config."""
    model = keras.Sequential([L.Embedding(V, E), L.LSTM(3), L.Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer="adam")
    ids = random_ids(n=8, length=10)
    model.fit(ids, np.arange(8) % 2, epochs=1, verbose=0)
    model.save(tmp_path / "fit.keras")
    sm = import_keras(tmp_path / "fit.keras", tmp_path / "out")
    assert sm.maxlen == 10
    assert np.abs(torch_out(sm, ids) - keras_out(model, ids)).max() <= TOL_PRED


# ------------------------------------------------------------------ refusals and corrupt files


def test_unsupported_layers_are_named(tmp_path):
    seq(L.LSTM(3, return_sequences=True), L.UnitNormalization(name="unit"), L.Flatten(), L.Dense(1)).save(
        tmp_path / "m.keras"
    )
    with pytest.raises(KerasImportError) as err:
        import_keras(tmp_path / "m.keras", tmp_path / "out")
    msg = str(err.value)
    assert "unsupported layer 'unit' (UnitNormalization)" in msg
    assert "supported layers: InputLayer, TextVectorization, Embedding, LSTM, GRU" in msg
    assert "\n" not in msg


def test_lambda_is_refused_saying_what_to_do(tmp_path):
    seq(L.Lambda(lambda x: x * 2.0, name="double"), L.LSTM(3), L.Dense(1)).save(tmp_path / "m.keras")
    with pytest.raises(KerasImportError, match=r"layer 'double' \(Lambda\) runs Python code .* built-in layers"):
        import_keras(tmp_path / "m.keras", tmp_path / "out")


def test_attention_model_is_refused(tmp_path):
    inp = keras.Input((T,), dtype="int32")
    x = L.Embedding(V, E)(inp)
    h = L.LSTM(4, return_sequences=True)(x)
    a = L.Attention(name="attn")([h, h])
    model = keras.Model(inp, L.Dense(1, activation="sigmoid")(L.GlobalAveragePooling1D()(a)))
    model.save(tmp_path / "att.keras")
    with pytest.raises(KerasImportError, match=r"unsupported layer 'attn' \(Attention\); supported layers"):
        import_keras(tmp_path / "att.keras", tmp_path / "out")


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: keras.Sequential([keras.Input((T, 3)), L.LSTM(3), L.Dense(1)]), "must start with an Embedding"),
        (lambda: seq(L.LSTM(3, return_sequences=True)), r"output has shape \[batch, 12, 3\]"),
        (lambda: seq(L.LSTM(3, return_state=True, name="st")), r"'st' \(LSTM\): return_state=True"),
        (lambda: seq(L.Conv1D(3, 3, padding="same", strides=2), L.GlobalMaxPooling1D(), L.Dense(1)), "strides=2"),
        (lambda: seq(L.MaxPooling1D(2, padding="same"), L.Flatten(), L.Dense(1)), "only padding='valid'"),
    ],
)
def test_unsupported_settings(make, match, tmp_path):
    make().save(tmp_path / "m.keras")
    with pytest.raises(KerasImportError, match=match):
        import_keras(tmp_path / "m.keras", tmp_path / "out")


def test_corrupt_files(lstm_file, tmp_path):
    model, good = lstm_file
    data = good.read_bytes()
    cases = {}
    (tmp_path / "noise.keras").write_bytes(b"this is not a model" * 10)
    cases["noise.keras"] = "not a Keras model file"
    (tmp_path / "half.keras").write_bytes(data[: len(data) // 2])
    cases["half.keras"] = "corrupt or truncated .keras archive"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(tmp_path / "noweights.keras", "w") as dst:
        for item in src.namelist():
            if item != "model.weights.h5":
                dst.writestr(item, src.read(item))
    cases["noweights.keras"] = "lacks model.weights.h5"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(tmp_path / "badjson.keras", "w") as dst:
        for item in src.namelist():
            dst.writestr(item, b"{oops" if item == "config.json" else src.read(item))
    cases["badjson.keras"] = "config.json is not valid JSON"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(tmp_path / "badh5.keras", "w") as dst:
        for item in src.namelist():
            dst.writestr(item, b"\x89HDF\r\n\x1a\n garbage" if item == "model.weights.h5" else src.read(item))
    cases["badh5.keras"] = "model.weights.h5 is not a readable HDF5 file"
    model.save(tmp_path / "full.h5")
    h5 = (tmp_path / "full.h5").read_bytes()
    (tmp_path / "half.h5").write_bytes(h5[: len(h5) // 2])
    cases["half.h5"] = "corrupt or truncated .h5 file"
    model.save_weights(tmp_path / "only.weights.h5")
    cases["only.weights.h5"] = "no model config"
    cases["missing.keras"] = "no such file"
    for name, match in cases.items():
        with pytest.raises(KerasImportError, match=match):
            import_keras(tmp_path / name, tmp_path / "out")


def test_weights_that_do_not_fit_the_config(tmp_path):
    model = randomize(CASES["lstm"]())
    model.save(tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "r+") as f:
        g = f["model_weights"]
        lstm = next(n for n in g if n.startswith("lstm"))
        kernel = next(
            n
            for n in (w.decode() if isinstance(w, bytes) else w for w in g[lstm].attrs["weight_names"])
            if n.endswith("/kernel")
        )
        del g[lstm][kernel]
        g[lstm].create_dataset(kernel, data=np.zeros((E, 7), dtype="float32"))
    with pytest.raises(KerasImportError, match=r"\(LSTM\): weight has shape \(6, 7\), expected \(6, 20\)"):
        import_keras(tmp_path / "m.h5", tmp_path / "out")


# ------------------------------------------------------------------ command line


def test_cli_import_keras(lstm_file, tmp_path, capsys):
    model, path = lstm_file
    (tmp_path / "wi.json").write_text(json.dumps({"the": 1, "movie": 2}))
    out = tmp_path / "from_keras"
    assert main(["import-keras", str(path), "--word-index", str(tmp_path / "wi.json"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"model written to {out}" in printed
    assert "imdb word index" in printed
    sm = store.load(out)
    ids = random_ids(seed=9)
    assert np.abs(torch_out(sm, ids) - keras_out(model, ids)).max() <= TOL_PRED
    (tmp_path / "junk.keras").write_bytes(b"junk")
    assert main(["import-keras", str(tmp_path / "junk.keras"), "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "seqshap import-keras: error:" in err
    assert "not a Keras model file" in err


def test_directories_converted_before_graphs_still_load(tmp_path):
    """Before graphs, ``config.json`` listed a chain of layers after the embedding and no ``calls``;
    such a directory builds the same modules (same weight names) and predicts the same."""
    model = randomize(CASES["cnn_lstm"](), seed=4)
    model.save(tmp_path / "m.keras")
    sm = import_keras(tmp_path / "m.keras", tmp_path / "out")
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    chain = [c["layer"] for c in cfg["model"]["calls"] if isinstance(c.get("layer"), int)]
    assert chain == list(range(len(cfg["model"]["layers"])))  # a chain: one call per layer, in order
    del cfg["model"]["calls"], cfg["model"]["output"]
    (tmp_path / "out" / "config.json").write_text(json.dumps(cfg))
    old_style = store.load(tmp_path / "out")
    assert old_style.net.calls is None
    ids = random_ids(seed=3)
    np.testing.assert_array_equal(torch_out(old_style, ids), torch_out(sm, ids))
    assert np.abs(torch_out(old_style, ids) - keras_out(model, ids)).max() <= TOL_PRED
