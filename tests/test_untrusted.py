"""Issue 36: a model directory (and any file a user hands seqshap) is untrusted input. No code
from it runs, no other model is explained, every read is bounded.

Each defect of the issue is reproduced through the real entry point (``seqshap`` in a
subprocess, a real ``seqshap serve``), with the hostile directory or file built here; variants
of the same defect are checked in-process with ``seqshap.load``. docs/bad-inputs.md ("Untrusted
model directories") lists what was tried, what you get and the peak memory.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from safetensors.torch import load_file, save_file

import seqshap
from helpers import build_hf, wordpiece
from seqshap import ModelLoadError, safe_files
from seqshap.background import Background, read_background_file, save_background
from seqshap.data import DataFileError
from seqshap.store import DEFAULT_MODEL_DIR
from seqshap.web.security import SECURITY_HEADERS
from test_bad_inputs import max_rss_mib
from test_web_server import Served

pytestmark = [pytest.mark.slow, pytest.mark.server]

TEXTS = [
    "the acting was great but the plot was unbelievably awful",
    "a dull, lifeless film with a weak ending",
    "what a wonderful, moving story; I loved every minute",
    "not good, not bad, just forgettable",
] * 20
EARLY_MIB = 500  # a refusal before any weight is read: measured 220 to 260 MiB (the imports)


# ----------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> Path:
    """A tiny saved BertForSequenceClassification (2 layers, hidden 32) with its fast tokenizer."""
    return build_hf("bert", tmp_path_factory.mktemp("hf") / "bert", wordpiece(TEXTS), ["negative", "positive"], 48)


@pytest.fixture(scope="module")
def background_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bg") / "bg.txt"
    path.write_text("a fine film\nthe plot was awful\n", encoding="utf-8")
    return path


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def edit(path: Path, **changes) -> None:
    value = json.loads(path.read_text(encoding="utf-8"))
    value.update(changes)
    path.write_text(json.dumps(value), encoding="utf-8")


def explain_argv(model: Path, background: Path, *extra: str) -> list[str]:
    command = ["explain", "--model", str(model), "a dull film", "--json", "--background-file", str(background)]
    return [sys.executable, "-m", "seqshap.cli", *command, *extra]


def refused(argv: list[str], message: str, code: int = 1, bound: float = EARLY_MIB) -> str:
    """Run ``argv`` (a seqshap command); it must fail with ``code`` and one line holding
    ``message``, below ``bound`` MiB of peak memory. Returns the line."""
    rc, err, rss = max_rss_mib(argv)
    lines = err.strip().splitlines()
    assert rc == code, (rc, err)
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert "LOAD REPORT" not in err
    assert message in lines[0], lines[0]
    assert rss < bound, (rss, lines[0])
    return lines[0]


# ------------------------------------------------------------ 1. no code from a directory runs
def test_auto_map_is_refused_by_file_and_nothing_reads_stdin(bert_dir, background_file, tmp_path):
    d = copy(bert_dir, tmp_path / "custom-code")
    marker = tmp_path / "the-directory's-code-ran"
    (d / "custom.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\nfrom transformers import *\n")
    edit(d / "tokenizer_config.json", auto_map={"AutoTokenizer": [None, "custom.Tok"]}, tokenizer_class="Tok")
    serve = [sys.executable, "-m", "seqshap.cli", "serve", "--model", str(d), "--port", "0", "--background", "2"]
    for command, argv in (("explain", explain_argv(d, background_file)), ("serve", serve)):
        r = subprocess.run(argv, input="y\n", capture_output=True, text=True, timeout=300)  # a script answering yes
        assert r.returncode == 1, r.stderr
        errors = [line for line in r.stderr.splitlines() if line.startswith(f"seqshap {command}: error: ")]
        assert len(errors) == 1, r.stderr
        assert f"{d / 'tokenizer_config.json'}: has 'auto_map'" in errors[0]
        assert "Traceback" not in r.stderr
        assert "[y/N]" not in r.stdout + r.stderr  # no prompt was shown
        assert not marker.exists()
        if command == "explain":
            assert r.stdout == ""  # --json: nothing that is not JSON
    cfg = copy(bert_dir, tmp_path / "custom-config")
    edit(cfg / "config.json", auto_map={"AutoConfig": "custom.Config"}, model_type="custombert")
    with pytest.raises(ModelLoadError, match=r"config\.json: has 'auto_map', which makes transformers run Python"):
        seqshap.load(cfg)


def test_every_transformers_load_passes_trust_remote_code_false():
    """A guard on the source: each from_pretrained call in the loader says trust_remote_code=False."""
    source = Path(seqshap.__file__).parent / "models" / "hf.py"
    calls = [
        node
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "from_pretrained"
    ]
    assert len(calls) == 2  # the tokenizer and the model
    for call in calls:
        flag = next((k.value for k in call.keywords if k.arg == "trust_remote_code"), None)
        assert isinstance(flag, ast.Constant), ast.unparse(call)
        assert flag.value is False


# ------------------------------------------------------------ 2. another model, explained silently
def test_a_config_with_fewer_layers_than_the_weights_is_refused(bert_dir, background_file, tmp_path):
    d = copy(bert_dir, tmp_path / "fewer-layers")
    edit(d / "config.json", num_hidden_layers=1)
    line = refused(
        explain_argv(d, background_file), "holds 16 tensor(s) the model of config.json does not have", bound=600
    )
    assert "bert.encoder.layer.1." in line
    assert "config.json says num_hidden_layers 1, the weights hold 2 layers" in line
    more = copy(bert_dir, tmp_path / "more-layers")
    edit(more / "config.json", num_hidden_layers=3)
    with pytest.raises(ModelLoadError, match=r"lacks 16 of the model's tensors .*bert\.encoder\.layer\.2\..*random"):
        seqshap.load(more)


# ------------------------------------------------------------ 3. sizes in config.json
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"num_hidden_layers": 1_000_000}, "config.json: 'num_hidden_layers' must be a whole number from 1 to 256"),
        (
            {"num_attention_heads": 0},
            "config.json: 'num_attention_heads' must be a whole number from 1 to 1,024, got 0",
        ),
    ],
    ids=["layers", "no heads"],
)
def test_config_sizes_are_bounded_and_named(bert_dir, background_file, tmp_path, changes, message):
    d = copy(bert_dir, tmp_path / "sizes")
    edit(d / "config.json", **changes)
    assert f"{d / 'config.json'}" in refused(explain_argv(d, background_file), message)


def test_sizes_are_compared_with_the_weights_on_the_meta_device(bert_dir, background_file, tmp_path):
    """vocab_size 30,000,000: one line from seqshap (no transformers load report), nothing allocated."""
    d = copy(bert_dir, tmp_path / "vocab")
    edit(d / "config.json", vocab_size=30_000_000)
    line = refused(
        explain_argv(d, background_file), "tensor 'bert.embeddings.word_embeddings.weight' has shape (", bound=600
    )
    assert "vocab_size=30000000" in line
    assert line.endswith("makes it (30000000, 32)")
    for changes, message in (
        ({"num_attention_heads": 3}, "'hidden_size' 32 is not a multiple of 'num_attention_heads' 3"),
        ({"intermediate_size": True}, "'intermediate_size' must be a whole number from 1 to 2,147,483,647, got True"),
    ):
        other = copy(bert_dir, tmp_path / next(iter(changes)))
        edit(other / "config.json", **changes)
        with pytest.raises(ModelLoadError, match=re.escape(f"{other / 'config.json'}: {message}")):
            seqshap.load(other)
    for field, value in (("intermediate_size", 10**9), ("max_position_embeddings", 2**31 - 1)):
        other = copy(bert_dir, tmp_path / f"{field}-huge")
        edit(other / "config.json", **{field: value})
        # a huge position count is refused by the position-id buffer it would build, before the weights
        says = "position_ids .*more than" if field == "max_position_embeddings" else f"{field}={value}"
        with pytest.raises(ModelLoadError, match=says):
            seqshap.load(other)


# ------------------------------------------------------------ 4. files that are not files
def hostile(path: Path, kind: str, target: Path | None = None) -> None:
    path.unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "zero":
        path.symlink_to("/dev/zero")
    elif kind == "sparse":
        with open(path, "wb") as f:
            f.truncate(3 * 2**30)  # 3 GB that take no disk
    elif kind == "outside":
        assert target is not None
        path.symlink_to(target)


@pytest.mark.parametrize(
    ("name", "kind", "message"),
    [
        ("config.json", "fifo", "config.json: a FIFO (named pipe), not a regular file"),
        ("vocab.json", "zero", "vocab.json: a link to /dev/zero, outside"),
        (
            "metrics.json",
            "sparse",
            "metrics.json: 3,221,225,472 bytes, more than the 1,048,576 a metrics.json may hold",
        ),
    ],
)
def test_native_model_files_are_regular_bounded_and_never_hang(tmp_path, background_file, name, kind, message):
    d = copy(DEFAULT_MODEL_DIR, tmp_path / "model")
    hostile(d / name, kind)
    if kind == "fifo":  # a plain open() would block on it forever: through the CLI, with a time limit
        refused(explain_argv(d, background_file), message)
    else:
        with pytest.raises(ModelLoadError, match=re.escape(f"{d}/{message}")):
            seqshap.load(d)


@pytest.mark.parametrize(
    ("name", "kind", "message"),
    [
        ("config.json", "sparse", "config.json: 3,221,225,472 bytes, more than the 1,048,576"),
        ("config.json", "outside", "config.json: a link to"),
        ("tokenizer_config.json", "fifo", "tokenizer_config.json: a FIFO (named pipe), not a regular file"),
        ("special_tokens_map.json", "zero", "special_tokens_map.json: a link to /dev/zero"),
        ("tokenizer.json", "sparse", "tokenizer.json: 3,221,225,472 bytes, more than the 4,194,304"),
    ],
)
def test_hf_directory_files_are_regular_bounded_and_inside(bert_dir, tmp_path, name, kind, message):
    d = copy(bert_dir, tmp_path / "hf")
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text((d / name).read_text() if (d / name).exists() else "{}")
    hostile(d / name, kind, elsewhere)
    with pytest.raises(ModelLoadError, match=message.replace("(", r"\(").replace(")", r"\)")):
        seqshap.load(d)


def test_a_link_inside_the_directory_is_followed(bert_dir, tmp_path, background_file):
    d = copy(bert_dir, tmp_path / "linked")
    (d / "config.json").rename(d / "real-config.json")
    (d / "config.json").symlink_to("real-config.json")
    assert seqshap.load(d).config["arch"] == "BertForSequenceClassification"


def test_json_nested_deeper_than_the_bound_is_named(tmp_path, background_file):
    d = copy(DEFAULT_MODEL_DIR, tmp_path / "deep")
    (d / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ModelLoadError, match=r"config\.json: JSON nested more than 64 levels deep"):
        seqshap.load(d)
    (d / "config.json").write_text((DEFAULT_MODEL_DIR / "config.json").read_text())
    (d / "background.json").write_text('{"texts": ' + "[" * 100_000 + "]" * 100_000 + "}")
    line = refused(
        [sys.executable, "-m", "seqshap.cli", "explain", "--model", str(d), "a film", "--json"],
        "background.json: JSON nested more than 64 levels deep",
    )
    assert line.startswith("seqshap explain: error: ")


# ------------------------------------------------------------ 5. sharded weights
def shard(d: Path, second: str) -> None:
    """Split d's weights in two shards, the second named ``second`` in the index."""
    state = load_file(str(d / "model.safetensors"))
    (d / "model.safetensors").unlink()
    names = sorted(state)
    half = set(names[: len(names) // 2])
    save_file({k: state[k] for k in half}, str(d / "model-00001-of-00002.safetensors"))
    rest = {k: state[k] for k in names if k not in half}
    if second.endswith(".safetensors"):
        save_file(rest, str(second if os.path.isabs(second) else d / second))
    weight_map = {k: "model-00001-of-00002.safetensors" if k in half else second for k in names}
    (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


def test_an_index_naming_a_pickle_is_refused(bert_dir, background_file, tmp_path):
    d = copy(bert_dir, tmp_path / "bin-shard")
    shard(d, "pytorch_model-00002-of-00002.bin")
    (d / "pytorch_model-00002-of-00002.bin").write_bytes(b"a pickle would run code when loaded")
    refused(explain_argv(d, background_file), "names 'pytorch_model-00002-of-00002.bin' (a pickle)")


def test_shards_load_only_from_inside_the_directory(bert_dir, tmp_path):
    ok = copy(bert_dir, tmp_path / "sharded")
    shard(ok, "model-00002-of-00002.safetensors")
    texts = ["a dull film", "a wonderful story"]
    assert seqshap.load(ok).predict(texts) == pytest.approx(seqshap.load(bert_dir).predict(texts), abs=1e-7)
    for name, second in (("dotdot", "../outside.safetensors"), ("absolute", str(tmp_path / "abs.safetensors"))):
        d = copy(bert_dir, tmp_path / name)
        shard(d, second)
        with pytest.raises(ModelLoadError, match="shards must be plain file names, no paths"):
            seqshap.load(d)
    linked = copy(bert_dir, tmp_path / "linked-weights")
    shutil.move(linked / "model.safetensors", tmp_path / "weights-elsewhere.safetensors")
    (linked / "model.safetensors").symlink_to(tmp_path / "weights-elsewhere.safetensors")
    with pytest.raises(ModelLoadError, match=r"model\.safetensors: a link to .*, outside"):
        seqshap.load(linked)
    header = copy(bert_dir, tmp_path / "big-header")
    raw = (header / "model.safetensors").read_bytes()
    (header / "model.safetensors").write_bytes((99_000_000).to_bytes(8, "little") + raw[8:])
    with pytest.raises(ModelLoadError, match="a safetensors header of 99,000,000 bytes"):
        seqshap.load(header)


# ------------------------------------------------------------ 6. --background-file memory
def test_a_60_mb_one_line_background_file_is_refused_fast(tmp_path):
    f = tmp_path / "one-line.txt"
    with open(f, "w", encoding="utf-8") as out:
        for _ in range(60):
            out.write("good bad movie " * 66_667)  # 1 MB at a time, no newline: one 60 MB text
    assert f.stat().st_size > 59_000_000
    argv = [sys.executable, "-m", "seqshap.cli", "explain", "a good film", "--json", "--background-file", str(f)]
    refused(argv, "one-line.txt, line 1: longer than 204,096 bytes; a background text may hold at most 50,000", 2)


def test_a_60_mb_background_file_is_read_only_up_to_the_texts_it_needs(bert_dir, tmp_path):
    """1,200 texts of 50,000 characters: 40 of them are read and tokenized, two at a time
    (a fast tokenizer holds ~600 bytes a token before truncating: 40 at once would take ~600 MB more)."""
    f = tmp_path / "long-texts.txt"
    with open(f, "w", encoding="utf-8") as out:
        for _ in range(1200):
            out.write("a " * 24_999 + "b\n")
    assert f.stat().st_size > 59_000_000
    argv = [sys.executable, "-m", "seqshap.cli", "explain", "--model", str(bert_dir), "a good film", "--json"]
    code, err, rss = max_rss_mib([*argv, "--background", "40", "--background-file", str(f)])
    assert code == 0, err
    assert f"background: the first 40 texts of {f}" in err
    assert rss < 550  # measured 474 MiB; tokenizing the 40 texts in one call: 623 MiB
    with pytest.raises(DataFileError, match=r"more than 10,000 texts \(--background 20,000\)"):
        read_background_file(tmp_path / "many.txt" if (tmp_path / "many.txt").write_text("a\n" * 10_001) else f, 20_000)


# ------------------------------------------------------------ 7. tokenizer.json size
def test_a_60_mb_tokenizer_json_is_refused_before_it_is_read(bert_dir, background_file, tmp_path):
    d = copy(bert_dir, tmp_path / "big-tokenizer")
    with open(d / "tokenizer.json", "w", encoding="utf-8") as f:  # a 3,000,000-word vocabulary
        f.write('{"model": {"type": "WordPiece", "vocab": {"w0": 0')
        for start in range(1, 3_000_000, 100_000):
            f.write("".join(f', "w{i}": {i}' for i in range(start, start + 100_000)))
        f.write('}}, "added_tokens": []}')
    size = (d / "tokenizer.json").stat().st_size
    assert size > 60_000_000
    line = refused(explain_argv(d, background_file), "bytes, more than the 4,194,304 tokenizer.json may hold")
    assert f"{d / 'tokenizer.json'}: {size:,} bytes" in line


# ------------------------------------------------------------ 8. errors that name the file
def test_a_malformed_tokenizer_json_names_the_file_and_the_problem(bert_dir, background_file, tmp_path):
    d = copy(bert_dir, tmp_path / "no-added-tokens")
    tokenizer = json.loads((d / "tokenizer.json").read_text(encoding="utf-8"))
    del tokenizer["added_tokens"]
    (d / "tokenizer.json").write_text(json.dumps(tokenizer), encoding="utf-8")
    line = refused(explain_argv(d, background_file), f"{d / 'tokenizer.json'}: no 'added_tokens' list")
    assert "tokenizer.save_pretrained" in line
    tokenizer["added_tokens"] = []
    tokenizer["model"] = {"type": "Nonsense", "vocab": {"a": 0}}
    (d / "tokenizer.json").write_text(json.dumps(tokenizer), encoding="utf-8")
    with pytest.raises(ModelLoadError, match=r"cannot load the tokenizer from tokenizer\.json"):
        seqshap.load(d)


def test_a_deeply_nested_background_file_is_a_usage_error(tmp_path):
    f = tmp_path / "deep.json"
    f.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    argv = [sys.executable, "-m", "seqshap.cli", "explain", "a good film", "--json", "--background-file", str(f)]
    refused(argv, "deep.json: JSON nested more than 64 levels deep", 2)
    fifo = tmp_path / "bg.fifo"
    os.mkfifo(fifo)
    with pytest.raises(DataFileError, match=r"bg\.fifo: a FIFO \(named pipe\), not a regular file"):
        read_background_file(fifo)


@pytest.mark.parametrize(
    ("id2label", "message"),
    [
        ({"0": "negative", "2": "positive"}, "'id2label' must number the labels 0 to 1 without gaps, got [0, 2]"),
        ({"0": "positive", "1": "positive"}, "'id2label' names 'positive' twice (labels 0 and 1)"),
    ],
    ids=["gap", "duplicate"],
)
def test_labels_with_gaps_or_duplicates_are_refused(bert_dir, background_file, tmp_path, id2label, message):
    d = copy(bert_dir, tmp_path / "labels")
    edit(d / "config.json", id2label=id2label, label2id={v: int(k) for k, v in id2label.items()})
    if "gap" in message:
        assert f"{d / 'config.json'}: " in refused(explain_argv(d, background_file), message)
    else:
        with pytest.raises(ModelLoadError, match=re.escape(f"{d / 'config.json'}: {message}")):
            seqshap.load(d)


def test_server_hides_paths_and_answers_the_connection_cap_in_json(tmp_path):
    """A model whose background.json names its training CSV by absolute path, as `seqshap train
    --data` writes it; a real server capped at 3 connections."""
    d = copy(DEFAULT_MODEL_DIR, tmp_path / "model")
    data = tmp_path / "private" / "folders" / "reviews.csv"
    texts = ("a fine film", "the plot was awful", "I loved it")
    save_background(d, Background(texts, f"the first 3 training texts: {data}"))
    served = Served(
        [
            sys.executable,
            "-m",
            "seqshap.cli",
            "serve",
            "--model",
            str(d),
            "--port",
            "0",
            "--max-connections",
            "3",
            "--log-level",
            "warning",
        ]
    )
    try:
        with httpx.Client(base_url=served.url, timeout=60) as client:
            info = client.get("/api/model").json()
            assert info["background"] == "the first 3 training texts: reviews.csv (model/background.json)"
            assert str(tmp_path) not in client.get("/api/model").text + client.get("/").text
        host, port = served.url.split("//")[1].rstrip("/").split(":")
        socks = []
        try:
            for _ in range(4):  # request heads that never end: each holds a connection
                s = socket.create_connection((host, int(port)))
                s.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")
                socks.append(s)
            deadline = time.monotonic() + 60
            while True:
                with httpx.Client(base_url=served.url, timeout=60) as fresh:
                    r = fresh.get("/api/health")
                if r.status_code == 503:
                    break
                assert time.monotonic() < deadline, "the connection cap never answered 503"
                time.sleep(0.05)
        finally:
            for s in socks:
                s.close()
        assert r.headers["content-type"] == "application/json"
        assert "too many open connections (3)" in r.json()["error"]
        assert r.headers["retry-after"] == "1"
        assert r.headers["connection"] == "close"
        for name, value in SECURITY_HEADERS.items():
            assert r.headers[name] == value
        assert "default-src 'none'" in r.headers["content-security-policy"]
    finally:
        assert served.stop() == 0


# ------------------------------------------------------------ safe_files itself
def test_json_depth_skips_strings_and_escapes_across_chunks(monkeypatch):
    cases = {
        b'{"a": [1, {"b": "[[[["}], "c": "\\"[["}': 3,
        b'["\\\\"]': 1,
        b'["\\\\\\"[", [[]]]': 3,
        b"[" * 1000 + b"]" * 1000: 1000,
        b'"[[[': 0,
    }
    for chunk in (1 << 18, 3):  # a tiny chunk puts quotes and backslash runs across chunk borders
        monkeypatch.setattr(safe_files, "_CHUNK", chunk)
        for text, depth in cases.items():
            assert safe_files.json_depth(text) == depth, (chunk, text)


def test_reading_a_fifo_returns_at_once(tmp_path):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    with pytest.raises(seqshap.SeqshapError, match="a FIFO"):
        safe_files.read_json(fifo, 1024, "a test file")
    assert safe_files.inside(tmp_path, tmp_path / "pipe.json")
    assert not safe_files.inside(tmp_path / "sub", tmp_path / "pipe.json")


def test_other_json_from_users_is_bounded_too(tmp_path):
    """--data JSON lines (train, evaluate) and --word-index (import-keras) go through the same checks."""
    from seqshap.data import read_labeled
    from seqshap.errors import KerasImportError
    from seqshap.keras_import.vocab import read_json_arg

    deep = tmp_path / "data.jsonl"
    deep.write_text('{"text": "fine", "label": 1}\n' + "[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=r"data\.jsonl, line 2: JSON nested more than 64 levels deep"):
        read_labeled(deep)
    fifo = tmp_path / "word_index.json"
    os.mkfifo(fifo)
    with pytest.raises(KerasImportError, match=r"word_index\.json: a FIFO"):
        read_json_arg(fifo, "word index")


def test_tokenizing_in_chunks_gives_the_ids_of_one_call(bert_dir):
    texts = ["", "a dull film", "great " * 20_000, "the plot was awful", "bad " * 30_000, "ok"]
    for model in (seqshap.load(), seqshap.load(bert_dir)):
        ids = model.encode(texts)
        assert ids.tolist() == [model.encode([t])[0].tolist() for t in texts]
        assert [e.ids for e in model.encodings(texts)] == [tuple(row) for row in ids.tolist()]
        assert tuple(model.encode([]).shape) == (0, model.maxlen)
