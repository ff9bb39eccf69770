"""Your own PyTorch model through the documented route: a Python file as a tutorial writes it,
weights saved by the user, ``seqshap import-torch`` and then ``explain``/``report``/``serve`` on the
directory (subprocesses, a real server), ``--code`` required and checked."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import torch
from safetensors.torch import save_file

from seqshap.data import Vocab

pytestmark = pytest.mark.slow

SEQSHAP = [sys.executable, "-m", "seqshap.cli"]
TEXT = "A wonderful, moving film with a weak ending."

# PyTorch's text classification tutorial model, batched as rows of ids with padding_idx.
MODEL_PY = """
import torch
from torch import nn



class TextClassificationModel(nn.Module):
    def __init__(self, vocab_size, embed_dim, num_class):
        super().__init__()
        self.embedding = nn.EmbeddingBag(vocab_size, embed_dim, mode="mean", padding_idx=0)
        self.fc = nn.Linear(embed_dim, num_class)

    def forward(self, text):
        return torch.softmax(self.fc(self.embedding(text)), dim=1)


class WithTopK(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, 4)
        self.fc = nn.Linear(4, 1)

    def forward(self, ids):
        top = torch.topk(self.embedding(ids), 2, dim=1).values.mean(1)
        return torch.sigmoid(self.fc(top))
"""


def run(*args, timeout=600, **kw):
    return subprocess.run([*SEQSHAP, *args], capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture(scope="module")
def user_files(imdb, tmp_path_factory):
    """The user's side: their model file, a vocabulary of their data, weights after a short training."""
    work = tmp_path_factory.mktemp("user")
    (work / "my_model.py").write_text(MODEL_PY)
    train = imdb["train"].head(600)
    vocab = Vocab.build(train.texts, num_words=3000)
    vocab.save(work / "vocab.json")
    sys.path.insert(0, str(work))
    try:
        import my_model  # the user's own module, as their training script imports it
    finally:
        sys.path.remove(str(work))
    torch.manual_seed(0)
    net = my_model.TextClassificationModel(len(vocab), 32, 2)
    ids = torch.from_numpy(vocab.encode(train.texts, 80))
    labels = torch.tensor(train.labels)
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(20):
        opt.zero_grad()
        loss = torch.nn.functional.nll_loss(torch.log(net(ids)), labels)
        loss.backward()
        opt.step()
    save_file(net.state_dict(), str(work / "model.safetensors"))
    torch.save(net.state_dict(), work / "model.pt")
    with (work / "reviews.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for t, y in zip(imdb["test"].texts[:12], imdb["test"].labels[:12], strict=True):
            w.writerow([t, y])
    return work


@pytest.fixture(scope="module")
def model_dir(user_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "tutorial"
    r = run(
        "import-torch",
        f"{user_files / 'my_model.py'}:TextClassificationModel",
        "--weights",
        str(user_files / "model.safetensors"),
        "--vocab",
        str(user_files / "vocab.json"),
        "--kwargs",
        json.dumps({"vocab_size": 3000, "embed_dim": 32, "num_class": 2}),
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    assert "explain it with: seqshap explain --model" in r.stdout
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "my_model.py", "vocab.json"]
    return out


def test_explain_needs_the_code_named(model_dir):
    r = run("explain", TEXT, "--model", str(model_dir))
    assert r.returncode == 1
    assert "seqshap runs no code from a model directory on its own" in r.stderr
    assert f"--code {model_dir / 'my_model.py'}" in r.stderr
    assert "Traceback" not in r.stderr


def test_other_code_than_the_directory_was_made_with_is_refused(model_dir, tmp_path):
    other = tmp_path / "my_model.py"
    other.write_text((model_dir / "my_model.py").read_text() + "\nprint('changed')\n")
    r = run("explain", TEXT, "--model", str(model_dir), "--code", str(other))
    assert r.returncode == 1
    assert "not the code tutorial was made with" in r.stderr
    assert "changed" not in r.stdout


def test_explain_json_adds_up(model_dir):
    r = run("explain", TEXT, "--model", str(model_dir), "--code", str(model_dir / "my_model.py"), "--json")
    assert r.returncode == 0, r.stderr
    e = json.loads(r.stdout)
    exp = e[0] if isinstance(e, list) else e
    assert abs(sum(exp["values"]) - (exp["prediction"] - exp["base_value"])) < 1e-5
    assert "wonderful" in [t.lower() for t in exp["tokens"]]


def test_a_torch_save_state_dict_is_read_with_weights_only(user_files, tmp_path):
    r = run(
        "import-torch",
        f"{user_files / 'my_model.py'}:TextClassificationModel",
        "--weights",
        str(user_files / "model.pt"),
        "--vocab",
        str(user_files / "vocab.json"),
        "--kwargs",
        '{"vocab_size": 3000, "embed_dim": 32, "num_class": 2}',
        "--classes",
        "neg,pos",
        "--out",
        str(tmp_path / "m"),
    )
    assert r.returncode == 0, r.stderr
    assert "classes: neg, pos" in r.stdout


def test_an_operation_without_a_rule_is_named_with_the_users_line_at_import(user_files, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("user_topk", user_files / "my_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    save_file(module.WithTopK(3000).state_dict(), str(tmp_path / "w.safetensors"))
    r = run(
        "import-torch",
        f"{user_files / 'my_model.py'}:WithTopK",
        "--weights",
        str(tmp_path / "w.safetensors"),
        "--vocab",
        str(user_files / "vocab.json"),
        "--kwargs",
        '{"vocab_size": 3000}',
        "--out",
        str(tmp_path / "m"),
    )
    assert r.returncode == 1
    assert re.search(r"cannot explain operation 'topk'.*my_model.py:\d+: top = torch.topk", r.stderr), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_report_on_the_users_model(model_dir, user_files, tmp_path):
    out = tmp_path / "report"
    r = run(
        "report",
        "--model",
        str(model_dir),
        "--code",
        str(model_dir / "my_model.py"),
        "--data",
        str(user_files / "reviews.csv"),
        "--n",
        "2",
        "--background",
        "5",
        "--importance-n",
        "6",
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    assert (out / "index.html").exists()


@pytest.mark.server
def test_real_server_explains_the_users_model(model_dir):
    proc = subprocess.Popen(
        [*SEQSHAP, "serve", "--model", str(model_dir), "--code", str(model_dir / "my_model.py"), "--port", "0",
         "--background", "6"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        url = None
        deadline = time.monotonic() + 300
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline() if proc.stdout else ""
            if not line and proc.poll() is not None:
                pytest.fail(f"server exited: {proc.stderr.read() if proc.stderr else ''}")
            m = re.search(r"(http://\S+?/)", line)
            url = m.group(1) if m else None
        assert url, "the server never said where it listens"
        r = httpx.post(url + "api/explain", json={"text": TEXT}, timeout=120)
        assert r.status_code == 200, r.text
        e = r.json()
        assert abs(sum(e["values"]) - (e["prediction"] - e["base_value"])) < 1e-4
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_python_route_loads_with_code(model_dir):
    import seqshap

    with pytest.raises(seqshap.ModelLoadError, match="Name the code"):
        seqshap.load(model_dir)
    model = seqshap.load(model_dir, code=model_dir / "my_model.py")
    exp = seqshap.DeepExplainer(model, ["a dull film", "a fine film"]).explain([TEXT])[0]
    assert exp.completeness_error < 1e-5
    assert Path(model.path) == model_dir
