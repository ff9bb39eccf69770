"""Issue 12, item by item, through the real entry points: the ``seqshap`` command in a
subprocess, a real ``seqshap serve`` process answering HTTP, real model directories and
files. Each test reproduces what a hostile or unlucky user did and checks that they now get
a clear error (or that their data are kept). docs/bad-inputs.md is the table of them all.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import seqshap
from seqshap import AdditivityError, DeepExplainer, NonFiniteError, NoWordsError
from seqshap.attribution import METHODS, make_method
from seqshap.data import words

BG = 5  # background reviews: the small archive's training reviews


# ----------------------------------------------------------------------------- helpers
def cli(*args: str, cwd: Path | None = None, **kw) -> subprocess.CompletedProcess:
    """``seqshap ARGS`` as a user runs it: a new process, its exit code, stdout and stderr."""
    return subprocess.run(
        [sys.executable, "-m", "seqshap.cli", *args], capture_output=True, text=True, timeout=600, cwd=cwd, **kw
    )


def one_line_error(r: subprocess.CompletedProcess, code: int, command: str) -> str:
    """The promise of the CLI: exit ``code``, one line on stderr, no traceback; returns the line."""
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"seqshap {command}: error: "), err
    return err


def strict_json(text: str):
    """JSON as the standard has it: a bare NaN or Infinity is an error, not a number."""

    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("checkpoint"))
    return dst


def edit_weights(d: Path, edit) -> Path:
    state = load_file(str(d / "model.safetensors"))
    edit(state)
    save_file(state, str(d / "model.safetensors"))
    return d


def small_archive(path: Path, imdb, n: int = BG) -> Path:
    """An aclImdb-layout tar.gz of ``n`` real reviews per split (reading it beats reading 50,000)."""
    with tarfile.open(path, "w:gz") as tar:
        for split in ("train", "test"):
            for i, (text, label) in enumerate(zip(imdb[split].texts[:n], imdb[split].labels[:n], strict=True)):
                data = text.encode("utf-8")
                info = tarfile.TarInfo(f"aclImdb/{split}/{'pos' if label else 'neg'}/{i}_{8 if label else 2}.txt")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def write_csv(path: Path, split) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(zip(split.texts, split.labels.tolist(), strict=True))
    return path


# A child exec'd straight from this process reports this process's peak too (Linux keeps the old
# memory's high-water mark across exec, and subprocess spawns with vfork): a test process grown
# big would inflate every figure. A small Python in between forks a clean child, reports its peak.
_PEAK = (
    "import os, sys\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)\n"
    "    os.execv(sys.argv[1], sys.argv[1:])\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "print(usage.ru_maxrss)\n"
    "sys.exit(min(255, abs(os.waitstatus_to_exitcode(status))))\n"
)


def max_rss_mib(argv: list[str]) -> tuple[int, str, float]:
    """Run ``argv``; (exit code, stderr, the peak memory of that process alone in MiB)."""
    proc = subprocess.run([sys.executable, "-c", _PEAK, *argv], capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stderr, int(proc.stdout.split()[-1]) / 1024


@pytest.fixture(scope="module")
def archive(imdb, tmp_path_factory) -> Path:
    return small_archive(tmp_path_factory.mktemp("imdb") / "small-imdb.tar.gz", imdb)


@pytest.fixture(scope="module")
def nan_word(tiny_model, imdb) -> str:
    """A frequent word of the tiny model's vocabulary that none of the small archive's reviews holds."""
    seen = {w for split in ("train", "test") for t in imdb[split].texts[:BG] for w in words(t)}
    word = min((w for w in tiny_model.vocab.word_to_id if w not in seen), key=tiny_model.vocab.word_to_id.get)
    assert word not in seen
    return word


@pytest.fixture(scope="module")
def nan_model(tiny_model, nan_word, tmp_path_factory) -> Path:
    """The tiny model with one word's embedding row NaN: every text holding the word gives NaN."""
    d = copy_model(tiny_model.path, tmp_path_factory.mktemp("broken") / "nan-row")
    row = tiny_model.vocab.word_to_id[nan_word]
    return edit_weights(d, lambda s: s["embedding.weight"][row].fill_(float("nan")))


# ------------------------------------------------- 1. NaN passes the additivity check
def test_saturating_weights_raise_instead_of_nan_attributions(tiny_model, imdb):
    """Scaling the net's weights by 1e20: f(x) saturates to finite values, the multipliers overflow."""
    m = seqshap.load(tiny_model.path)
    with torch.no_grad():
        for p in m.net.parameters():
            p.mul_(1e20)
    x = m.encode(imdb["test"].texts[:3])
    ex = DeepExplainer(m.net, m.encode(imdb["train"].texts[:4]))
    for check in (True, False):  # a NaN is never an answer, additivity checked or not
        with pytest.raises(NonFiniteError, match=r"attributions of input \d+ are not finite \(nan at position"):
            ex.shap_values(x, check_additivity=check)
    with pytest.raises(AdditivityError, match="not finite"):  # a NonFiniteError is an AdditivityError
        ex.shap_values(x)
    with pytest.raises(NonFiniteError, match="not finite"):
        DeepExplainer(m, imdb["train"].texts[:4]).explain(imdb["test"].texts[:1])


def test_one_nan_weight_is_named_before_anything_is_explained(tiny_model, imdb):
    m = seqshap.load(tiny_model.path)
    with torch.no_grad():
        m.net.fc.weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match=r"the model's output for background row 0 \('.*'…\) is nan"):
        DeepExplainer(m, imdb["train"].texts[:4])


def test_every_method_refuses_nan_outputs(tiny_model, nan_model, nan_word, imdb):
    m = seqshap.load(nan_model)
    good, bad = "a fine film with a good story", f"a fine film with a good {nan_word} story"
    bg = imdb["train"].texts[:BG]
    for name in METHODS:
        method = make_method(name, m, background=bg)
        ok = method.explain([good])[0]
        assert np.isfinite(ok.values).all(), name
        assert np.isfinite(ok.prediction), name
        json.dumps(ok.to_dict(), allow_nan=False)  # its one JSON form is JSON, also without a base value
        with pytest.raises(NonFiniteError, match=rf"the model's output for input 1 \('{re.escape(bad)}'\) is nan"):
            method.explain([good, bad])
        if name != "random":  # the floor to beat draws its values without asking the model
            # the attributions, or (methods that ask the model about the input itself first) its output
            with pytest.raises(NonFiniteError, match=r"input 0 are not finite|the model's output for input 0 is nan"):
                method.attribute(m.encode([bad]))


# --------------------------------------- 2. non-finite model output reaches the user as data
@pytest.mark.slow
def test_cli_refuses_nan_output_as_one_line_exit_1(nan_model, nan_word, archive, tmp_path):
    common = ["--model", str(nan_model), "--background", str(BG), "--imdb", str(archive)]
    bad = f"the acting was {nan_word} but the plot was fine"
    for extra in (["--json"], [], ["--html", str(tmp_path / "x.html"), "--png", str(tmp_path / "x.png")]):
        r = cli("explain", bad, *common, *extra)
        err = one_line_error(r, 1, "explain")
        assert "the model's output for input 0" in err
        assert "is nan" in err
        assert r.stdout == ""  # no half-written JSON, no terminal picture
    assert not (tmp_path / "x.html").exists()
    assert not (tmp_path / "x.png").exists()
    # the same model on a text without the broken word: exit 0 and standard JSON
    r = cli("explain", "the acting was great but the plot was fine", *common, "--json")
    assert r.returncode == 0, r.stderr
    d = strict_json(r.stdout)
    assert abs(sum(d["values"]) - (d["prediction"] - d["base_value"])) < 1e-5


@pytest.mark.slow
def test_cli_importance_and_report_refuse_a_nan_model(tiny_model, archive, tmp_path):
    """Every review holds "the": the background itself gives NaN, named before any work."""
    d = copy_model(tiny_model.path, tmp_path / "nan-the")
    the = tiny_model.vocab.word_to_id["the"]
    edit_weights(d, lambda s: s["embedding.weight"][the].fill_(float("nan")))
    common = ["--model", str(d), "--background", str(BG), "--imdb", str(archive)]
    for cmd in (
        ["importance", "--n", "3", "--out", str(tmp_path / "imp")],
        ["report", "--n", "2", "--out", str(tmp_path / "rep")],
    ):
        err = one_line_error(cli(*cmd, *common), 1, cmd[0])
        assert "background row 0" in err
        assert "is nan" in err
    assert not (tmp_path / "rep" / "index.html").exists()
    assert not (tmp_path / "imp" / "word_importance.json").exists()


@pytest.fixture(scope="module")
def nan_server(nan_model, archive):
    """A real ``seqshap serve`` process on a free port, serving the model with a NaN word."""
    opts = ["--background", str(BG), "--imdb", str(archive), "--log-level", "warning"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "seqshap.cli", "serve", "--model", str(nan_model), "--port", "0", *opts],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = proc.stdout.readline()  # printed once the port is open
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert url, (line, proc.stderr.read() if proc.poll() is not None else "")
        with httpx.Client(base_url=url.group(0), timeout=120) as client:
            yield client
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.server
def test_web_api_answers_500_not_200_with_nulls(nan_server, nan_word):
    bad = f"the acting was {nan_word} but the plot was fine"
    for body in ({"text": bad}, {"text": bad, "html": True}, {"text": bad, "output": "logit"}):
        r = nan_server.post("/api/explain", json=body)
        assert r.status_code == 500, r.text
        d = strict_json(r.text)
        assert set(d) == {"error"}
        assert d["error"] == "the model produced NaN or infinity for text (its output is nan); nothing to explain"
    r = nan_server.post("/api/explain/batch", json={"texts": ["a fine film", bad]})
    assert r.status_code == 500
    assert strict_json(r.text)["error"].startswith("the model produced NaN or infinity for texts[1] (its output is")
    # the server keeps serving, and a good text is explained as ever
    r = nan_server.post("/api/explain", json={"text": "a fine film", "html": True})
    assert r.status_code == 200
    d = strict_json(r.text)
    assert abs(sum(d["values"]) - (d["prediction"] - d["base_value"])) < 1e-5
    assert nan_server.get("/api/health").json()["pending"] == 0


# ------------------------------------------------ 3. train --resume accepts different data
DATA_OPTS = ["--arch", "lstm", "--maxlen", "30", "--num-words", "1500", "--hidden", "8", "--quiet"]


@pytest.fixture(scope="module")
def data_files(imdb, tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("data")
    return {
        "good": write_csv(d / "good.csv", imdb["train"].head(1500)),
        "tiny": write_csv(d / "tiny.csv", imdb["train"].head(300)),
    }


@pytest.fixture(scope="module")
def trained(data_files, tmp_path_factory) -> Path:
    """``seqshap train --data good.csv --out M`` for one epoch (module-wide; tests copy it)."""
    out = tmp_path_factory.mktemp("runs") / "M"
    r = cli(
        "train", "--data", str(data_files["good"]), "--epochs", "1", "--patience", "9", *DATA_OPTS, "--out", str(out)
    )
    assert r.returncode == 0, r.stderr
    return out


def snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_resume_with_other_data_is_refused_naming_it(trained, data_files, tmp_path):
    m = shutil.copytree(trained, tmp_path / "M")
    before = snapshot(m)
    r = cli(
        "train",
        "--data",
        str(data_files["tiny"]),
        "--epochs",
        "2",
        "--patience",
        "9",
        *DATA_OPTS,
        "--out",
        str(m),
        "--resume",
    )
    err = one_line_error(r, 1, "train")
    assert "the checkpoint was trained on other data" in err
    assert "good.csv (1500 rows" in err
    assert "tiny.csv (300 rows" in err
    assert snapshot(m) == before  # the run and its history are untouched
    # what the run was trained on is on record, in the checkpoint and beside the model
    metrics = json.loads((m / "metrics.json").read_text())
    state = json.loads((m / "checkpoint" / "state.json").read_text())
    assert metrics["trained_on"]["train"] == state["trained_on"]["train"]
    rec = metrics["trained_on"]["train"]
    assert rec["source"] == str(data_files["good"].resolve())
    assert rec["n"] == 1500
    import hashlib

    assert rec["file_sha256"] == hashlib.sha256(data_files["good"].read_bytes()).hexdigest()
    assert len(metrics["trained_on"]["vocab_sha256"]) == 64
    assert metrics["config"]["model"] == {"hidden": 8}


@pytest.mark.slow
def test_resume_with_other_options_names_each_difference(trained, data_files, tmp_path):
    m = shutil.copytree(trained, tmp_path / "M")
    opts = [o if o != "1500" else "1000" for o in DATA_OPTS]  # --num-words 1000
    r = cli(
        "train",
        "--data",
        str(data_files["good"]),
        "--epochs",
        "2",
        "--patience",
        "9",
        "--seed",
        "4",
        *opts,
        "--out",
        str(m),
        "--resume",
    )
    err = one_line_error(r, 1, "train")
    assert "--num-words: 1500 in the checkpoint, 1000 now" in err
    assert "--seed: 0 in the checkpoint, 4 now" in err


@pytest.mark.slow
def test_resume_with_the_same_data_continues(trained, data_files, tmp_path):
    m = shutil.copytree(trained, tmp_path / "M")
    moved = shutil.copy(data_files["good"], tmp_path / "elsewhere.csv")  # same content, another path: fine
    r = cli("train", "--data", str(moved), "--epochs", "2", "--patience", "9", *DATA_OPTS, "--out", str(m), "--resume")
    assert r.returncode == 0, r.stderr
    assert [h["epoch"] for h in json.loads((m / "metrics.json").read_text())["history"]] == [1, 2]


# -------------------------------------------- 4. train --out EXISTING silently overwrites
@pytest.mark.slow
def test_train_into_a_model_directory_is_refused(trained, data_files, tmp_path):
    m = shutil.copytree(trained, tmp_path / "M")
    before = snapshot(m)
    args = ["train", "--data", str(data_files["tiny"]), "--epochs", "1", *DATA_OPTS, "--seed", "7", "--out", str(m)]
    err = one_line_error(cli(*args), 2, "train")
    assert f"{m} already holds a trained model" in err
    assert "--resume continues its training, --overwrite replaces it, or choose another --out" in err
    assert snapshot(m) == before
    r = cli(*args, "--overwrite")
    assert r.returncode == 0, r.stderr
    metrics = json.loads((m / "metrics.json").read_text())
    assert metrics["n_train"] + metrics["n_val"] == 300  # replaced, on purpose
    assert metrics["config"]["seed"] == 7
    assert {p.name for p in (m / "checkpoint").iterdir()} == {"state.json", "epoch-1.safetensors", "best-1.safetensors"}
    err = one_line_error(cli(*args, "--overwrite", "--resume"), 2, "train")
    assert "choose one" in err


@pytest.mark.slow
def test_train_into_an_interrupted_run_is_refused(trained, data_files, tmp_path):
    m = tmp_path / "M"
    shutil.copytree(trained / "checkpoint", m / "checkpoint")  # a run killed before it finished
    err = one_line_error(cli("train", "--data", str(data_files["good"]), *DATA_OPTS, "--out", str(m)), 2, "train")
    assert "already holds the checkpoint of an interrupted run" in err


# ------------------------------------------------------- 5. atomically written files are 0600
def modes(d: Path) -> dict[str, int]:
    return {str(p.relative_to(d)): stat.S_IMODE(p.stat().st_mode) for p in d.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_written_files_get_the_umask_permissions(data_files, archive, tmp_path):
    """Model directory, checkpoint, explain pictures and report: 0644 under umask 022, as `open(..., "w")`."""

    def umask(mask):
        return lambda: os.umask(mask)

    m = tmp_path / "M"
    r = cli(
        "train",
        "--data",
        str(data_files["tiny"]),
        "--epochs",
        "1",
        *DATA_OPTS,
        "--out",
        str(m),
        preexec_fn=umask(0o022),
    )
    assert r.returncode == 0, r.stderr
    pics = ["--html", str(tmp_path / "x.html"), "--png", str(tmp_path / "x.png"), "--svg", str(tmp_path / "x.svg")]
    common = ["--model", str(m), "--background", "3", "--imdb", str(archive)]
    r = cli("explain", "a fine film", *common, *pics, "--waterfall", str(tmp_path / "w.png"), preexec_fn=umask(0o022))
    assert r.returncode == 0, r.stderr
    r = cli("report", "--n", "2", *common, "--out", str(tmp_path / "report"), "--quiet", preexec_fn=umask(0o022))
    assert r.returncode == 0, r.stderr
    found = modes(tmp_path)
    assert {"M/config.json", "M/vocab.json", "M/model.safetensors", "M/metrics.json", "M/checkpoint/state.json"} <= set(
        found
    )
    assert {"x.html", "x.png", "x.svg", "w.png", "report/index.html", "report/force_01.png"} <= set(found)
    assert "report/word_importance.csv" in found
    assert set(found.values()) == {0o644}, found
    # and a private umask gives private files: the umask decides, not seqshap
    r = cli("explain", "a fine film", *common, "--html", str(tmp_path / "private.html"), preexec_fn=umask(0o077))
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE((tmp_path / "private.html").stat().st_mode) == 0o600


# ------------------------------------------------------ 6. unbounded reads of untrusted files
@pytest.mark.slow
def test_keras_zip_bomb_is_refused_before_it_is_read(tmp_path):
    """A .keras archive of about 1 MB whose weights member inflates to 1 GiB."""
    bomb = tmp_path / "bomb.keras"
    config = {"class_name": "Sequential", "config": {"layers": [{"class_name": "Embedding", "config": {"name": "e"}}]}}
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("config.json", json.dumps(config))
        with z.open("model.weights.h5", "w", force_zip64=True) as f:
            block = bytes(16 << 20)
            for _ in range(64):
                f.write(block)
    assert bomb.stat().st_size < 8 << 20
    code, err, rss = max_rss_mib(
        [sys.executable, "-m", "seqshap.cli", "import-keras", str(bomb), "--out", str(tmp_path / "o")]
    )
    assert code == 1
    assert f"seqshap import-keras: error: {bomb}: model.weights.h5 would inflate from" in err
    assert "to 1,073,741,824 bytes" in err
    assert rss < 900  # python + torch; the member was never inflated (it needed 1 GiB and then 2)
    assert not (tmp_path / "o").exists()


def test_h5_dataset_bomb_is_refused(tmp_path):
    import h5py

    path = tmp_path / "bomb.h5"
    config = {
        "class_name": "Sequential",
        "config": {
            "layers": [{"class_name": "Embedding", "config": {"name": "emb", "input_dim": 4_000_000, "output_dim": 64}}]
        },
    }
    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = json.dumps(config)
        g = h5.create_group("model_weights/emb")
        g.attrs["weight_names"] = [b"emb/embeddings:0"]
        g.create_dataset(
            "emb/embeddings:0", shape=(4_000_000, 64), dtype="float32", compression="gzip", chunks=(65536, 64)
        )
    assert path.stat().st_size < 1 << 20  # never written: HDF5 stores nothing, declares 1 GiB
    err = one_line_error(
        cli("import-keras", str(path), "--maxlen", "10", "--out", str(tmp_path / "o")), 1, "import-keras"
    )
    assert "weight /model_weights/emb/emb/embeddings:0 declares shape (4000000, 64) (1,024,000,000 bytes)" in err


def test_crafted_config_is_refused_before_allocating(tiny_model, tmp_path):
    def crafted(name: str, **changes) -> Path:
        d = copy_model(tiny_model.path, tmp_path / name)
        cfg = json.loads((d / "config.json").read_text())
        cfg.update(changes.pop("top", {}))
        cfg["model"].update(changes)
        (d / "config.json").write_text(json.dumps(cfg))
        return d

    def explain(d: Path) -> tuple[int, str, float]:
        return max_rss_mib([sys.executable, "-m", "seqshap.cli", "explain", "good", "--model", str(d)])

    d = crafted("maxlen", top={"maxlen": 10**9})
    code, err, rss = explain(d)
    assert code == 1
    assert f"{d / 'config.json'}: 'maxlen' must be a whole number from 1 to 100,000, got 1000000000" in err
    # vocab_size 3e7 with a vocabulary to match: only the weights' header can tell
    d = crafted("vocab", vocab_size=30_000_000)
    vocab = json.loads((d / "vocab.json").read_text())
    (d / "vocab.json").write_text(json.dumps({**vocab, "num_words": 30_000_000}))
    code, err, rss = explain(d)
    assert code == 1
    assert f"{d / 'model.safetensors'}: tensor 'embedding.weight' has shape (2000, 16), but config.json" in err
    assert "vocab_size=30000000" in err
    assert "makes it (30000000, 16)" in err
    assert rss < 900  # the 1.9 GB embedding was never allocated
    # a header that lies about its tensors is a corrupt file, named
    d = copy_model(tiny_model.path, tmp_path / "lying")
    raw = (d / "model.safetensors").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = raw[8 : 8 + n].replace(b"[2000,16]", b"[9000,16]")
    assert header != raw[8 : 8 + n]
    (d / "model.safetensors").write_bytes(raw[:8] + header + raw[8 + n :])
    err = one_line_error(cli("explain", "good", "--model", str(d)), 1, "explain")
    assert "model.safetensors: corrupt or truncated safetensors file" in err


# ------------------------------------------------------------------------- 7. consistency
@pytest.mark.slow
def test_text_without_words_is_refused_everywhere(tiny_model, nan_server, archive):
    err = one_line_error(
        cli("explain", "!!!", "--model", str(tiny_model.path), "--imdb", str(archive), "--background", "3"),
        2,
        "explain",
    )
    assert err.endswith("the text has no words (only punctuation or symbols); nothing to explain")
    r = nan_server.post("/api/explain", json={"text": "!!!"})
    assert r.status_code == 422
    assert r.json() == {"error": "text has no words (only punctuation or symbols); nothing to explain"}
    r = nan_server.post("/api/explain/batch", json={"texts": ["a film", "?! ... :-)"]})
    assert r.status_code == 422
    assert r.json()["error"] == "texts[1] has no words (only punctuation or symbols); nothing to explain"
    ex = make_method("occlusion", tiny_model)
    with pytest.raises(NoWordsError, match="text 1 has no words") as e:
        ex.explain(["a film", "<br /> !!!"])
    assert e.value.index == 1
    # a reference may be word-less: the all-padding row is one
    DeepExplainer(tiny_model, ["!!!", "a film"])


def test_stdin_closed_is_a_usage_error(tiny_model):
    r = cli("explain", "-", "--model", str(tiny_model.path), preexec_fn=lambda: os.close(0))
    err = one_line_error(r, 2, "explain")
    assert "stdin is closed" in err


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        ("config.json", [1, 2], "config.json: expected a JSON object, got a list"),
        (
            "config.json",
            {"arch": "lstm", "maxlen": 40, "model": ["hidden", 16]},
            "config.json: 'model' must be a JSON object",
        ),
        (
            "config.json",
            {"arch": "lstm", "maxlen": "40"},
            "config.json: 'maxlen' must be a whole number from 1 to 100,000, got '40'",
        ),
        (
            "config.json",
            {"arch": "lstm", "maxlen": 40, "model": {"layers": [3]}},
            "config.json: cannot build the model",
        ),
        ("vocab.json", [1, 2], "vocab.json: expected a JSON object with 'word_index' and 'num_words', got list"),
        (
            "vocab.json",
            {"word_index": [], "num_words": 2000},
            "vocab.json: 'word_index' must be an object mapping words to ids, got list",
        ),
        (
            "vocab.json",
            {"word_index": {"a": "3"}, "num_words": 2000},
            "vocab.json: 'word_index': the id of 'a' is '3', not a whole number",
        ),
        ("vocab.json", {"word_index": {}}, "vocab.json: missing key 'num_words'"),
        ("metrics.json", [], "metrics.json: expected a JSON object, got a list"),
    ],
)
def test_config_and_vocab_errors_name_file_and_key(tiny_model, tmp_path, file, content, message):
    d = copy_model(tiny_model.path, tmp_path / "m")
    (d / file).write_text(json.dumps(content))
    err = one_line_error(cli("explain", "good", "--model", str(d)), 1, "explain")
    assert f"{d / file}" in err
    assert message in err


@pytest.mark.slow
def test_float16_inputs_work_and_narrowing_is_refused(tiny_model, imdb):
    net = tiny_model.net
    x, bg = tiny_model.encode(imdb["test"].texts[:2]), tiny_model.encode(imdb["train"].texts[:3])
    with torch.no_grad():
        e_x, e_bg = net.embedding(x), net.embedding(bg)
    ref = DeepExplainer(net, e_bg.half().float()).shap_values(e_x.half().float())
    half = DeepExplainer(net, e_bg.half()).shap_values(e_x.half())  # widened to the model's float32, losslessly
    np.testing.assert_array_equal(half, ref)
    with pytest.raises(
        TypeError, match=r"X: the embeddings are float64 but the model computes in float32.*dtype=torch\.float64"
    ):
        DeepExplainer(net, e_bg).shap_values(e_x.double())
    with pytest.raises(TypeError, match=r"X: got float16 numbers of shape \(2, 40\); token ids must be integers"):
        DeepExplainer(net, bg).shap_values(x.numpy().astype(np.float16))
    np.testing.assert_allclose(  # float32 embeddings are widened for a float64 explainer too
        DeepExplainer(net, e_bg, dtype=torch.float64).shap_values(e_x),
        DeepExplainer(net, bg, dtype=torch.float64).shap_values(x),
        atol=1e-12,
    )


@pytest.mark.parametrize(("arch", "param"), [("cnn", "filters"), ("transformer", "ff_dim"), ("gru", "hidden")])
@pytest.mark.slow
def test_hidden_sets_each_architectures_size(arch, param, data_files, tmp_path):
    out = tmp_path / arch
    opts = ["--arch", arch, "--maxlen", "20", "--num-words", "500", "--hidden", "16", "--epochs", "1", "--quiet"]
    r = cli("train", "--data", str(data_files["tiny"]), *opts, "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "config.json").read_text())["model"] == {"vocab_size": 500, param: 16}
    assert seqshap.load(out).predict(["a fine film"]).shape == (1,)


@pytest.mark.slow
def test_diverging_training_is_named_not_a_torch_error(data_files, tmp_path):
    opts = ["--arch", "transformer", "--lr", "1e8", "--maxlen", "20", "--num-words", "500", "--epochs", "2", "--quiet"]
    err = one_line_error(
        cli("train", "--data", str(data_files["tiny"]), *opts, "--out", str(tmp_path / "o")), 1, "train"
    )
    assert err.endswith(
        "training diverged in epoch 1: the model's outputs became NaN or infinite (learning rate 1e+08 too high?)"
    )


def test_train_help_says_what_hidden_sets():
    out = cli("train", "--help").stdout
    assert "the CNN's filters" in " ".join(out.split())
    assert "feed-forward width (ff_dim" in " ".join(out.split())


# ------------------------------------------------------------------------ 8. the commit point
KILL_AT_NEW_BEST = """
import os, sys
from seqshap import atomic, cli
write_json = atomic.write_json
def dying(path, obj, *a, **k):
    # SIGKILL's effect, at the worst moment: a new best epoch's weights are on disk, its state.json is not
    if path.name == "state.json" and obj["epoch"] >= 2 and obj["best"]["epoch"] == obj["epoch"]:
        print(obj["epoch"], flush=True)
        os._exit(137)
    return write_json(path, obj, *a, **k)
atomic.write_json = dying
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_kill_between_best_weights_and_state_keeps_metrics_and_weights_together(data_files, tmp_path):
    args = ["train", "--data", str(data_files["good"]), *DATA_OPTS, "--patience", "9"]
    r = subprocess.run(
        [sys.executable, "-c", KILL_AT_NEW_BEST, *args, "--epochs", "6", "--out", str(tmp_path / "killed")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 137, (r.stdout, r.stderr)  # some epoch >= 2 was a new best, and the run died there
    killed_at = int(r.stdout.split()[-1])
    state = json.loads((tmp_path / "killed" / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == killed_at - 1
    assert state["best"]["epoch"] < killed_at
    uncommitted = (tmp_path / "killed" / "checkpoint" / f"best-{killed_at}.safetensors").exists()
    # Resume to the last committed epoch: the restored best is the one state.json names ...
    resumed = cli(*args, "--epochs", str(killed_at - 1), "--out", str(tmp_path / "killed"), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    # ... exactly what an uninterrupted run of that many epochs gives.
    straight = cli(*args, "--epochs", str(killed_at - 1), "--out", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr
    a = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    b = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    assert a["best_epoch"] == b["best_epoch"] == state["best"]["epoch"]
    wa, wb = (
        load_file(str(tmp_path / "killed" / "model.safetensors")),
        load_file(str(tmp_path / "straight" / "model.safetensors")),
    )
    for k in wb:
        assert torch.equal(wa[k], wb[k]), k
    assert uncommitted  # the new best's weights were on disk when it died, and they did not leak in
    assert {p.name for p in (tmp_path / "killed" / "checkpoint").iterdir()} == {
        "state.json",
        f"epoch-{killed_at - 1}.safetensors",
        f"best-{state['best']['epoch']}.safetensors",
    }
