"""Architectures, the model directory (save/load/corruption), training and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import seqshap
from seqshap.models import TRAINABLE, build_model
from seqshap.store import ModelLoadError, load
from seqshap.train import TrainConfig, train

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("arch", TRAINABLE)
def test_forward_shape_and_range(arch):
    size = {"cnn": {"filters": 4}, "transformer": {"heads": 2, "layers": 1, "ff_dim": 8}}.get(arch, {"hidden": 4})
    net = build_model(arch, vocab_size=50, embed_dim=8, **size)
    net.eval()
    out = net(torch.randint(0, 50, (3, 11)))
    assert out.shape == (3, 1)
    assert ((out > 0) & (out < 1)).all()
    # the same model accepts float embeddings [B, T, E] in place of ids
    emb = net.embedding(torch.randint(0, 50, (3, 11)))
    assert net(emb).shape == (3, 1)


def test_seed_architecture_matches_the_notebook():
    net = build_model("lstm")
    assert net.embedding.weight.shape == (20000, 128)
    assert (net.rnn.input_size, net.rnn.hidden_size, net.rnn.num_layers) == (128, 128, 1)
    assert net.fc.in_features == 128
    assert net.dropout == 0.2
    assert net.recurrent_dropout == 0.2


def test_recurrent_dropout_is_active_in_training_only():
    torch.manual_seed(0)
    net = build_model("lstm", vocab_size=30, embed_dim=6, hidden=5)
    x = torch.randint(0, 30, (4, 9))
    net.train()
    a, b = net(x), net(x)
    assert not torch.allclose(a, b)  # masks drawn per batch
    net.eval()
    assert torch.equal(net(x), net(x))


def test_unknown_arch():
    with pytest.raises(ValueError, match="unknown architecture 'mamba'"):
        build_model("mamba")


def test_save_load_round_trip_identical_predictions(tiny_model, imdb):
    texts = imdb["test"].texts[:20]
    again = load(tiny_model.path)
    assert np.array_equal(again.predict(texts), tiny_model.predict(texts))
    assert again.encode(texts).shape == (20, 40)
    assert set(os.listdir(tiny_model.path)) >= {"config.json", "vocab.json", "model.safetensors", "metrics.json"}
    m = json.loads((tiny_model.path / "metrics.json").read_text())
    assert {"history", "best_epoch", "test_accuracy", "versions", "seconds_per_epoch"} <= set(m)
    assert m["history"][0]["epoch"] == 1
    assert 0 <= m["test_accuracy"] <= 1


def _copy_model(src, dst):
    dst.mkdir()
    for f in src.iterdir():
        if f.is_file():
            (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_corrupt_model_dirs_give_clear_errors(tiny_model, tmp_path):
    d = _copy_model(tiny_model.path, tmp_path / "m1")
    (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:500])
    with pytest.raises(ModelLoadError, match="corrupt or truncated"):
        load(d)
    d = _copy_model(tiny_model.path, tmp_path / "m2")
    (d / "vocab.json").unlink()
    with pytest.raises(ModelLoadError, match=r"missing vocab\.json"):
        load(d)
    d = _copy_model(tiny_model.path, tmp_path / "m3")
    cfg = json.loads((d / "config.json").read_text())
    cfg["model"]["hidden"] = 32
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="has shape"):
        load(d)
    d = _copy_model(tiny_model.path, tmp_path / "m4")
    cfg = json.loads((d / "config.json").read_text())
    cfg["model"]["vocab_size"] = 3000
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="vocabulary has 2000 ids but the model's embedding has 3000"):
        load(d)
    d = _copy_model(tiny_model.path, tmp_path / "m5")
    (d / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        load(d)
    with pytest.raises(ModelLoadError, match="not a model directory"):
        load(tmp_path / "nowhere")


def test_predict_rejects_unknown_ids(tiny_model):
    with pytest.raises(ValueError, match="unknown word ids"):
        tiny_model.predict_ids(torch.tensor([[1, 5, 99999]]))


def test_validation_split_never_uses_test(tiny_model):
    m = tiny_model.metrics
    assert m["n_train"] + m["n_val"] == 2000
    assert m["n_val"] == 200
    assert m["n_test"] == 500


CFG = {"arch": "gru", "maxlen": 30, "num_words": 1500, "seed": 3, "model": {"embed_dim": 8, "hidden": 8}}


def test_resume_continues_to_the_same_weights(imdb, tmp_path):
    data = imdb["train"].head(1500)
    straight = train(data, tmp_path / "straight", TrainConfig(epochs=2, patience=5, **CFG), progress=False)
    train(data, tmp_path / "resumed", TrainConfig(epochs=1, patience=5, **CFG), progress=False)
    resumed = train(data, tmp_path / "resumed", TrainConfig(epochs=2, patience=5, **CFG), resume=True, progress=False)
    assert [h["epoch"] for h in resumed.metrics["history"]] == [1, 2]
    for (k, a), b in zip(straight.net.state_dict().items(), resumed.net.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_killed_run_resumes_without_losing_epochs(imdb, tmp_path):
    """SIGKILL the real CLI mid-run, then --resume: finished epochs are kept."""
    out = tmp_path / "killed"
    csv = tmp_path / "data.csv"
    split = imdb["train"].head(3000)
    import csv as csvmod

    with open(csv, "w", newline="") as f:
        w = csvmod.writer(f)
        w.writerow(["text", "label"])
        w.writerows(zip(split.texts, split.labels.tolist(), strict=True))
    cmd = [
        sys.executable,
        "-m",
        "seqshap.cli",
        "train",
        "--data",
        str(csv),
        "--arch",
        "lstm",
        "--epochs",
        "4",
        "--maxlen",
        "30",
        "--num-words",
        "1500",
        "--hidden",
        "8",
        "--patience",
        "9",
        "--out",
        str(out),
        "--quiet",
    ]
    proc = subprocess.Popen(cmd)
    state = out / "checkpoint" / "state.json"
    deadline = time.time() + 120
    while time.time() < deadline and not state.exists() and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = json.loads(state.read_text())["epoch"]
    assert done >= 1
    result = subprocess.run([*cmd, "--resume"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2, 3, 4]
    assert seqshap.load(out).predict(["a fine film"]).shape == (1,)


def test_resume_refuses_a_different_configuration(imdb, tmp_path):
    data = imdb["train"].head(600)
    train(data, tmp_path / "r", TrainConfig(epochs=1, **CFG), progress=False)
    with pytest.raises(ValueError, match="different configuration"):
        train(data, tmp_path / "r", TrainConfig(epochs=2, **{**CFG, "seed": 4}), resume=True, progress=False)


def test_lr_decay_after_epochs_that_are_not_the_best(imdb, tmp_path):
    m = train(
        imdb["train"].head(800), tmp_path / "d", TrainConfig(epochs=4, patience=9, lr_decay=0.5, **CFG), progress=False
    )
    hist = m.metrics["history"]
    best = -1.0
    lr = 1e-3
    for h in hist:  # the lr an epoch trained with; halved after each epoch that did not improve
        assert h["lr"] == pytest.approx(lr)
        if h["val_accuracy"] > best:
            best = h["val_accuracy"]
        else:
            lr *= 0.5
