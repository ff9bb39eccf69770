"""Keras functional graphs -> seqshap: a zoo of small Keras 3 models (keras.io's IMDB examples and their
variations) built here on the torch backend, saved as ``.keras`` and ``.h5``, converted, and compared
with Keras (predictions within 1e-5), then explained with DeepSHAP in float64 against references of
other lengths (completeness within 1e-6).

Models whose padding masks differ between an input and its reference are exact through the engine's
op-level rules for masks computed from the ids.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

os.environ["KERAS_BACKEND"] = "torch"  # must precede the keras import

import h5py
import keras
import numpy as np
import pytest
import torch
from keras import layers as L
from keras import ops

from seqshap import store
from seqshap.attribution import DeepExplainer, IntegratedGradients
from seqshap.keras_import import KerasImportError, import_keras
from seqshap.models.keras.activations import ACTIVATIONS

pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"),
    pytest.mark.filterwarnings("ignore:Layer .* does not support masking"),
    pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel"),
    pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`, which is deprecated"),
]

V, E, T = 30, 8, 10  # vocabulary rows, embedding width, sequence length
TOL_PRED, TOL_EXACT = 1e-5, 1e-6


def ids_input() -> keras.KerasTensor:
    return keras.Input((T,), dtype="int32", name="ids")


def transformer_block() -> keras.Model:
    """keras.io "Text classification with Transformer" (its TokenAndPositionEmbedding and
    TransformerBlock written with built-in layers and keras.ops)."""
    inp = ids_input()
    positions = ops.cumsum(ops.ones_like(inp), axis=1) - 1
    x = L.Embedding(V, E)(inp) + L.Embedding(T, E)(positions)
    attn = L.Dropout(0.1)(L.MultiHeadAttention(num_heads=2, key_dim=E)(x, x))
    out1 = L.LayerNormalization(epsilon=1e-6)(x + attn)
    ffn = L.Dropout(0.1)(L.Dense(E)(L.Dense(16, activation="relu")(out1)))
    x = L.LayerNormalization(epsilon=1e-6)(out1 + ffn)
    x = L.Dropout(0.1)(L.GlobalAveragePooling1D()(x))
    x = L.Dropout(0.1)(L.Dense(20, activation="relu")(x))
    return keras.Model(inp, L.Dense(2, activation="softmax")(x))


def two_branch_cnn() -> keras.Model:
    inp = ids_input()
    x = L.Embedding(V, E)(inp)
    a = L.GlobalMaxPooling1D()(L.Conv1D(6, 3, activation="relu")(x))
    b = L.Conv1D(6, 2, padding="causal", dilation_rate=2, activation="tanh")(x)
    b = L.GlobalAveragePooling1D()(L.MaxPooling1D(2)(b))
    y = L.Concatenate()([a, b])
    return keras.Model(inp, L.Dense(1, activation="sigmoid")(L.Dense(8, activation="relu")(y)))


def residual_bilstm() -> keras.Model:
    inp = ids_input()
    x = L.Embedding(V, E)(inp)
    h = L.Bidirectional(L.LSTM(4, return_sequences=True))(x)
    h = L.Add()([L.TimeDistributed(L.Dense(8))(x), h])  # a residual around the BiLSTM
    h = L.LayerNormalization()(h)
    h = L.Bidirectional(L.GRU(3), merge_mode="ave")(h)
    return keras.Model(inp, L.Dense(3, activation="softmax")(h))


def masked_gru() -> keras.Model:
    inp = ids_input()
    x = L.Embedding(V, E, mask_zero=True)(inp)
    x = L.Bidirectional(L.GRU(4, return_sequences=True))(x)
    x = L.GRU(3, reset_after=False)(x)
    return keras.Model(inp, L.Dense(1, activation="sigmoid")(x))


def masked_lstm_pooling() -> keras.Model:
    inp = ids_input()
    x = L.Embedding(V, E, mask_zero=True)(inp)
    x = L.Dense(E, activation="tanh")(x)  # hands the mask on
    x = L.LSTM(5, return_sequences=True)(x)
    x = L.GlobalAveragePooling1D()(x)  # averages the real steps only
    return keras.Model(inp, L.Dense(1, activation="sigmoid")(x))


def masked_concat() -> keras.Model:
    """Concatenate's masks: along time (a masked branch and an unmasked one) and along features."""
    inp = ids_input()
    a = L.Embedding(V, E, mask_zero=True)(inp)
    b = L.Conv1D(E, 3, padding="same")(L.Embedding(V, E)(inp))  # Conv1D drops the mask
    x = L.GRU(4)(L.Concatenate(axis=1)([a, b]))  # the mask: a's, then all real
    y = L.GlobalAveragePooling1D()(L.Concatenate()([a, L.Dense(E)(a)]))
    z = L.Add()([L.Dense(3)(x), L.Dense(3)(y)])
    return keras.Model(inp, L.Dense(1, activation="sigmoid")(z))


def masking_layer() -> keras.Model:
    inp = ids_input()
    x = L.Masking(0.0)(L.Embedding(V, E)(inp))
    x = L.SimpleRNN(4, return_sequences=True)(x)
    x = L.LSTM(3)(x)
    return keras.Model(inp, L.Dense(1, activation="sigmoid")(x))


def causal_mha() -> keras.Model:
    inp = ids_input()
    x = L.Embedding(V, E)(inp)
    a = L.MultiHeadAttention(num_heads=2, key_dim=3, value_dim=5, output_shape=6)(x, x, use_causal_mask=True)
    y = L.GlobalAveragePooling1D()(a)
    return keras.Model(inp, L.Dense(1, activation="sigmoid")(y))


def cross_attention() -> keras.Model:
    """Cross-attention between two branches, with an explicit attention mask built from the ids."""
    inp = ids_input()
    x = L.Embedding(V, E)(inp)
    q = L.Conv1D(E, 3, padding="same")(x)
    real = ops.not_equal(inp, 0)
    mask = ops.logical_and(ops.expand_dims(real, 2), ops.expand_dims(real, 1))
    a = L.MultiHeadAttention(num_heads=3, key_dim=2)(q, x, key=q, attention_mask=mask)
    y = L.GlobalMaxPooling1D()(a)
    return keras.Model(inp, L.Dense(2, activation="softmax")(y))


def masked_transformer_two_blocks() -> keras.Model:
    """Keras 3 removes the masks of the tensors MultiHeadAttention reads: the residual Add after the
    first block gets none, so the second block attends to padding too. The converted model must agree."""
    inp = ids_input()
    x = L.Embedding(V, E, mask_zero=True)(inp)
    for _ in range(2):
        a = L.MultiHeadAttention(num_heads=2, key_dim=4)(x, x)
        x = L.LayerNormalization()(L.Add()([x, L.Dropout(0.1)(a)]))
    return keras.Model(inp, L.Dense(1, activation="sigmoid")(L.GlobalAveragePooling1D()(x)))


def norms() -> keras.Model:
    inp = ids_input()
    x = L.Embedding(V, E)(inp)
    x = L.BatchNormalization()(x)
    x = L.Conv1D(8, 3, padding="same", activation="relu")(x)
    x = L.GroupNormalization(groups=4)(x)
    x = L.LayerNormalization(rms_scaling=True)(x)
    x = L.Flatten()(x)
    x = L.LayerNormalization(center=False)(L.Dense(6)(x))
    return keras.Model(inp, L.Dense(1, activation="sigmoid")(x))


def simple_rnn() -> keras.Model:
    inp = ids_input()
    x = L.Embedding(V, E)(inp)
    x = L.Bidirectional(L.SimpleRNN(4, return_sequences=True, activation="relu"), merge_mode="sum")(x)
    x = L.SimpleRNN(3)(x)
    return keras.Model(inp, L.Dense(1, activation="sigmoid")(x))


def shared_and_merges() -> keras.Model:
    """One Dense applied to two branches; Multiply, Subtract, Maximum, Minimum, Average."""
    inp = ids_input()
    x = L.Embedding(V, E)(inp)
    shared = L.Dense(E, activation="tanh", name="shared")
    a = shared(L.Conv1D(E, 3, padding="same")(x))
    b = shared(x)
    merged = [L.Multiply()([a, b]), L.Subtract()([a, b]), L.Maximum()([a, b]), L.Minimum()([a, b]), L.Average()([a, b])]
    y = L.Concatenate(axis=-1)(merged)
    return keras.Model(inp, L.Dense(2, activation="softmax")(L.GlobalAveragePooling1D()(y)))


def reshapes() -> keras.Model:
    inp = ids_input()
    x = L.Embedding(V, E)(inp)
    x = L.Permute((2, 1))(x)  # [E, T]
    x = L.Reshape((E // 2, 2 * T))(x)
    x = L.Flatten()(x)
    x = L.RepeatVector(3)(L.Dense(4, activation="relu")(x))
    x = L.LSTM(3)(x)
    return keras.Model(inp, L.Dense(1, activation="sigmoid")(x))


def nested_models() -> keras.Model:
    """Models used as layers (keras.io's end-to-end pattern): a Sequential and a functional model."""
    ids = keras.Input((T,), dtype="int32")
    body = keras.Sequential([L.Conv1D(6, 3, activation="relu"), L.GlobalMaxPooling1D()], name="body")
    inner_in = keras.Input((T,), dtype="int32")
    encoder = keras.Model(inner_in, body(L.Embedding(V, E, name="table")(inner_in)), name="encoder")
    return keras.Model(ids, L.Dense(1, activation="sigmoid")(encoder(ids)))


def two_heads() -> keras.Model:
    inp = ids_input()
    x = L.GlobalAveragePooling1D()(L.Embedding(V, E)(inp))
    h = L.Dense(6, activation="relu")(x)
    return keras.Model(inp, [L.Dense(1, activation="sigmoid", name="sentiment")(h), L.Dense(4, name="topic")(h)])


def activations() -> keras.Model:
    """Every activation Keras serializes by name, one Activation layer each (plus the layer forms)."""
    inp = ids_input()
    x = L.Flatten()(L.Embedding(V, E)(inp))
    h = L.Dense(6)(x)
    # (glu halves the last axis, which Keras' Activation layer does not tell the next layer: left out)
    names = sorted(a for a in ACTIVATIONS if a not in ("hard_sigmoid_keras2", "glu"))
    branches = [L.Activation(a, name=f"act_{a}")(h) for a in names]
    branches += [L.ReLU(max_value=1.5, negative_slope=0.1, threshold=0.2)(h), L.LeakyReLU(0.2)(h), L.ELU(0.7)(h)]
    branches += [L.Softmax()(h)]
    return keras.Model(inp, L.Dense(1)(L.Concatenate()(branches)))


ZOO = {
    "transformer_block": transformer_block,
    "two_branch_cnn": two_branch_cnn,
    "residual_bilstm": residual_bilstm,
    "masked_gru": masked_gru,
    "masked_lstm_pooling": masked_lstm_pooling,
    "masked_concat": masked_concat,
    "masking_layer": masking_layer,
    "causal_mha": causal_mha,
    "cross_attention": cross_attention,
    "masked_transformer_two_blocks": masked_transformer_two_blocks,
    "norms": norms,
    "simple_rnn": simple_rnn,
    "shared_and_merges": shared_and_merges,
    "reshapes": reshapes,
    "two_heads": two_heads,
    "nested_models": nested_models,
    "activations": activations,
}


def randomize(model: keras.Model, seed: int = 0, scale: float = 0.5) -> keras.Model:
    """Weights larger than the initializers give (a wrong layout cannot hide behind outputs near 0.5);
    BatchNormalization's moving variances stay positive."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, scale, w.shape).astype("float32") for w in model.get_weights()])
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            g, b, m, v = layer.get_weights()
            layer.set_weights([g, b, m, np.abs(v) + 0.5])
    return model


def random_ids(n: int = 20, seed: int = 1) -> np.ndarray:
    """Ids with padding at the front, at the end, in the middle, and a row of padding only."""
    ids = np.random.default_rng(seed).integers(1, V, (n, T))
    ids[1, : T // 2] = 0
    ids[2, T - 3 :] = 0
    ids[3, 2:4] = 0
    ids[4, :-1] = 0
    ids[5] = 0
    ids[6, -1] = V - 1
    return ids


def keras_out(model: keras.Model, ids: np.ndarray, head: int | None = None) -> np.ndarray:
    out = model(ids.astype("int32"), training=False)
    return keras.ops.convert_to_numpy(out[head] if head is not None else out)


def torch_out(net: torch.nn.Module, ids: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(torch.from_numpy(ids.astype(np.int64))).numpy()


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """case -> (Keras model, converted from .keras, converted from .h5), built once per case."""
    cache: dict[str, tuple] = {}

    def get(case: str):
        if case not in cache:
            d = tmp_path_factory.mktemp(case)
            model = randomize(ZOO[case]())
            if case == "masking_layer":  # the padding id's vector is all zeros: Masking masks it
                emb = next(la for la in model.layers if isinstance(la, L.Embedding))
                w = emb.get_weights()[0]
                w[0] = 0.0
                emb.set_weights([w])
            out = {"output": "sentiment"} if case == "two_heads" else {}
            models = []
            for ext in ("keras", "h5"):
                model.save(d / f"model.{ext}")
                models.append(import_keras(d / f"model.{ext}", d / f"out_{ext}", **out))
            cache[case] = (model, *models)
        return cache[case]

    return get


@pytest.mark.parametrize("case", sorted(ZOO))
def test_zoo_predicts_what_keras_predicts(case, converted):
    model, from_keras, from_h5 = converted(case)
    ids = random_ids()
    head = 0 if case == "two_heads" else None
    expected = keras_out(model, ids, head)
    for sm in (from_keras, from_h5):
        got = torch_out(sm.net, ids)
        assert got.shape == expected.shape
        # A row of padding only has no average over real steps: NaN in Keras, NaN here, nowhere else.
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        # float32 carries ~7 digits: outputs in the hundreds (exponential, selu, ...) are compared relatively
        diff = np.nanmax(np.abs(got - expected) / np.maximum(1.0, np.abs(expected)))
        assert diff <= TOL_PRED, f"{case}: max |torch - keras| = {diff}"
    a, b = from_keras.net.state_dict(), from_h5.net.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "the two formats differ"
    reloaded = store.load(from_keras.path)
    np.testing.assert_array_equal(torch_out(reloaded.net, ids), torch_out(from_keras.net, ids))


@pytest.mark.parametrize("case", sorted(ZOO))
def test_zoo_takes_embeddings_too(case, converted):
    """Gradient methods feed embeddings ``[n, T, E]``: the padding mask is then where a row is the
    padding id's vector, positions come from the shape; the same numbers as from the ids."""
    _, sm, _ = converted(case)
    ids = torch.from_numpy(random_ids())
    tables = [c for c in sm.config["model"]["calls"] if c.get("layer") is not None and c["inputs"] == ["ids"]]
    if len(tables) > 1:  # a second table of the ids cannot be read from the first one's vectors
        with pytest.raises(ValueError, match="reads the token ids themselves; give it ids, not embeddings"):
            sm.net(sm.net.embedding(ids))
        return
    with torch.no_grad():
        from_ids = sm.net(ids)
        from_embeddings = sm.net(sm.net.embedding(ids))
    torch.testing.assert_close(from_embeddings, from_ids, equal_nan=True, rtol=1e-6, atol=1e-6)


def test_gradient_methods_run_on_a_converted_graph(converted):
    _, sm, _ = converted("transformer_block")
    ig = IntegratedGradients(sm, output="probability")
    values = ig.attribute(torch.from_numpy(random_ids()[6:9]))
    assert values.shape == (3, T)
    assert np.isfinite(values).all()


def explain_exactly(sm: store.SeqshapModel) -> float:
    """DeepSHAP in float64: inputs and references of different lengths (padding in front, at the end)."""
    ids = random_ids(seed=7)
    x = torch.from_numpy(ids[[0, 1, 2, 3, 6]])
    bg = torch.from_numpy(np.concatenate([random_ids(seed=8)[[0, 1, 2, 4]], ids[[7]]]))
    explainer = DeepExplainer(sm, bg, output=sm.config["output_space"], dtype=torch.float64)
    phi = explainer.shap_values(x, check_additivity=False)
    f = explainer.predict(x.numpy()) if phi.shape[2] == 1 else None
    fx = explainer._outputs(x).numpy() if f is None else f[:, None]
    miss = float(np.abs(phi.sum(1) - (fx - explainer.expected_value[None, :])).max())
    assert np.isfinite(phi).all()
    return miss


EXACT_CASES = sorted(set(ZOO) - {"activations"})


@pytest.mark.parametrize("case", EXACT_CASES)
def test_zoo_explained_exactly(case, converted):
    _, sm, _ = converted(case)
    miss = explain_exactly(sm)
    assert miss <= TOL_EXACT, f"{case}: completeness missed by {miss}"


@pytest.mark.parametrize(
    "case", ["masked_gru", "masked_lstm_pooling", "masked_transformer_two_blocks", "masking_layer"]
)
def test_masked_models_explained_exactly_against_references_of_the_same_length(case, converted):
    """Where every input and its references share one padding pattern, the masks agree pair by pair
    and the engine explains masked models today."""
    _, sm, _ = converted(case)
    ids = np.random.default_rng(11).integers(1, V, (9, T))
    ids[:, :3] = 0  # the same three steps of padding in every row
    explainer = DeepExplainer(sm, torch.from_numpy(ids[5:9]), output=sm.config["output_space"], dtype=torch.float64)
    x = torch.from_numpy(ids[:4])
    phi = explainer.shap_values(x, check_additivity=False)
    fx = explainer._outputs(x).numpy()
    assert np.abs(phi.sum(1) - (fx - explainer.expected_value[None, :])).max() <= TOL_EXACT
    assert np.abs(phi[:, :3]).max() == 0.0  # padding that no pair differs in gets nothing


# ------------------------------------------------------------------ several outputs, the command line


def test_two_heads_pick_one_by_name(tmp_path, converted):
    model, sm, _ = converted("two_heads")
    assert sm.config["imported_from"]["output"] == "sentiment"
    assert sm.config["output_space"] == "probability"
    model.save(tmp_path / "heads.keras")
    with pytest.raises(KerasImportError, match=r"2 outputs \(sentiment, topic\); choose .* --output NAME"):
        import_keras(tmp_path / "heads.keras", tmp_path / "none")
    with pytest.raises(KerasImportError, match="no output 'mood'; its outputs are sentiment, topic"):
        import_keras(tmp_path / "heads.keras", tmp_path / "bad", output="mood")
    topic = import_keras(tmp_path / "heads.keras", tmp_path / "topic", output="topic")
    ids = random_ids()
    assert np.abs(torch_out(topic.net, ids) - keras_out(model, ids, 1)).max() <= TOL_PRED
    assert topic.config["output_space"] == "raw"
    assert topic.classes == ("class_0", "class_1", "class_2", "class_3")
    # the other head's layers are not carried
    assert all(s["keras_name"] != "sentiment" for s in topic.config["model"]["layers"])


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seqshap.cli", *args], capture_output=True, text=True, timeout=600)


def test_cli_converts_the_transformer_and_explains_it(tmp_path, converted):
    model, _, _ = converted("transformer_block")
    model.save(tmp_path / "transformer.keras")
    wi = {f"w{i}": i for i in range(1, V - 3)}  # imdb scheme: word of rank r has id r + 3
    (tmp_path / "wi.json").write_text(json.dumps(wi))
    out = tmp_path / "runs" / "transformer"
    done = run_cli(
        "import-keras",
        str(tmp_path / "transformer.keras"),
        "--word-index",
        str(tmp_path / "wi.json"),
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    assert "multi_head_attention" in done.stdout
    assert "explains dense" in done.stdout
    sm = store.load(out)
    ids = random_ids()
    assert np.abs(torch_out(sm.net, ids) - keras_out(model, ids)).max() <= TOL_PRED
    (tmp_path / "bg.txt").write_text("w1 w2 w3\nw4 w5 w6 w7 w8\nw9\n")
    done = run_cli(
        "explain", "--model", str(out), "--background-file", str(tmp_path / "bg.txt"), "--json", "w5 w9 w2 w17"
    )
    assert done.returncode == 0, done.stderr
    exp = json.loads(done.stdout.splitlines()[0])
    assert abs(exp["completeness_error"]) <= 1e-4
    assert [t for t in exp["tokens"] if t.startswith("w")] == ["w5", "w9", "w2", "w17"]


def test_cli_refuses_with_one_line(tmp_path, converted):
    model, _, _ = converted("two_heads")
    model.save(tmp_path / "heads.keras")
    done = run_cli("import-keras", str(tmp_path / "heads.keras"), "--out", str(tmp_path / "x"))
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1
    assert "--output NAME" in done.stderr
    done = run_cli("import-keras", str(tmp_path / "heads.keras"), "--output", "topic", "--out", str(tmp_path / "t"))
    assert done.returncode == 0, done.stderr
    assert "explains topic" in done.stdout


# ------------------------------------------------------------------ Keras 2 files


def save_as_keras2_h5(model: keras.Model, path) -> None:
    """The model as tf.keras 2 wrote a full-model ``.h5``: the same weight layout Keras 3's legacy
    ``.h5`` writes, but a Keras 2 config: inbound nodes as ``[[name, node, tensor, kwargs], ...]``,
    no ``module`` keys, masks implicit (no mask ops or mask arguments recorded)."""
    model.save(path)
    with h5py.File(path, "r+") as f:
        cfg = json.loads(f.attrs["model_config"])
        kept = []
        for layer in cfg["config"]["layers"]:
            if "trainable" not in layer["config"] and layer["class_name"] != "InputLayer":
                continue  # a keras.ops call: tf.keras 2 had none of these in masks
            layer.pop("module", None)
            layer.pop("registered_name", None)
            if "batch_shape" in layer["config"]:
                layer["config"]["batch_input_shape"] = layer["config"].pop("batch_shape")
            nodes = []
            for node in layer["inbound_nodes"]:
                first = node["args"][0]
                tensors = first if isinstance(first, list) else [first]
                nodes.append([[*t["config"]["keras_history"], {}] for t in tensors])
            layer["inbound_nodes"] = nodes
            kept.append(layer)
        cfg["config"]["layers"] = kept
        f.attrs["model_config"] = json.dumps(cfg)
        f.attrs["keras_version"] = "2.15.0"
        f.attrs["backend"] = "tensorflow"


@pytest.mark.parametrize("case", ["residual_bilstm", "two_branch_cnn", "shared_and_merges", "masked_gru", "norms"])
def test_keras2_h5_graphs(case, tmp_path, converted):
    model = converted(case)[0]
    save_as_keras2_h5(model, tmp_path / "keras2.h5")
    sm = import_keras(tmp_path / "keras2.h5", tmp_path / "out")
    assert sm.config["imported_from"]["keras_version"] == "2.15.0"
    ids = random_ids()
    got, expected = torch_out(sm.net, ids), keras_out(model, ids)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    assert np.nanmax(np.abs(got - expected)) <= TOL_PRED


def test_keras2_mask_into_a_merge_is_refused(tmp_path):
    """Keras 2 combined the masks of a merge's inputs otherwise than Keras 3 does; not guessed."""
    inp = ids_input()
    x = L.Embedding(V, E, mask_zero=True)(inp)
    y = L.Add(name="residual")([x, L.Dense(E)(x)])
    save_as_keras2_h5(keras.Model(inp, L.Dense(1)(L.GlobalAveragePooling1D()(y))), tmp_path / "k2.h5")
    with pytest.raises(
        KerasImportError, match=r"'residual' \(Add\): a padding mask reaches a merge layer in a Keras 2"
    ):
        import_keras(tmp_path / "k2.h5", tmp_path / "out")


# ------------------------------------------------------------------ refusals


def custom_layer_model() -> keras.Model:
    @keras.saving.register_keras_serializable(package="zoo")
    class Doubler(L.Layer):
        def call(self, x):
            return x * 2.0

    inp = ids_input()
    x = Doubler(name="doubler")(L.Embedding(V, E)(inp))
    return keras.Model(inp, L.Dense(1)(L.GlobalAveragePooling1D()(x)))


def lambda_model() -> keras.Model:
    inp = ids_input()
    x = L.Lambda(lambda t: t * 2.0, name="double")(L.Embedding(V, E)(inp))
    return keras.Model(inp, L.Dense(1)(L.GlobalAveragePooling1D()(x)))


def shared_submodel() -> keras.Model:
    inner = keras.Sequential([L.Dense(4)], name="inner")
    inp = ids_input()
    x = L.Embedding(V, E)(inp)
    return keras.Model(inp, L.Dense(1)(L.GlobalAveragePooling1D()(L.Add()([inner(x), inner(x)]))))


def two_inputs() -> keras.Model:
    a, b = keras.Input((T,), dtype="int32"), keras.Input((T,), dtype="int32")
    x = L.Concatenate(axis=1)([L.Embedding(V, E)(a), L.Embedding(V, E)(b)])
    return keras.Model([a, b], L.Dense(1)(L.GlobalAveragePooling1D()(x)))


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (custom_layer_model, r"layer 'doubler' \(Doubler\) is a custom layer class .*Express it with built-in layers"),
        (lambda_model, r"layer 'double' \(Lambda\) runs Python code that is not saved in the file"),
        (shared_submodel, r"layer 'inner' \(Sequential\): a model used as a layer more than once"),
        (two_inputs, r"the model has 2 inputs"),
        (
            lambda: keras.Model(
                i := ids_input(),
                L.Dense(1)(L.GlobalAveragePooling1D()(L.Attention(name="att")([L.Embedding(V, E)(i)] * 2))),
            ),
            r"unsupported layer 'att' \(Attention\); supported layers: InputLayer, TextVectorization, Embedding",
        ),
        (
            lambda: keras.Model(
                i := ids_input(),
                L.Dense(1)(
                    L.GlobalAveragePooling1D()(
                        L.MultiHeadAttention(2, 2, use_gate=True, name="gated")(e := L.Embedding(V, E)(i), e)
                    )
                ),
            ),
            r"unsupported layer 'gated' \(MultiHeadAttention\): use_gate=True",
        ),
    ],
)
def test_refused_by_name(make, match, tmp_path):
    make().save(tmp_path / "m.keras")
    with pytest.raises(KerasImportError, match=match) as err:
        import_keras(tmp_path / "m.keras", tmp_path / "out")
    assert "\n" not in str(err.value)


def test_a_crafted_graph_is_refused_on_load(converted, tmp_path):
    import shutil

    from seqshap.errors import ModelLoadError

    _, sm, _ = converted("two_branch_cnn")
    d = tmp_path / "crafted"
    shutil.copytree(sm.path, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["model"]["calls"][1]["inputs"] = ["nowhere"]
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(
        ModelLoadError, match=r"config.json: cannot build the model .*reads 'nowhere' before it is computed"
    ):
        store.load(d)
