"""The background a run explains against: ``--background-file``, a model's ``background.json``
(written by training), the IMDB archive; and what a failed download says."""

from __future__ import annotations

import csv
import json
import socket
from pathlib import Path

import pytest

from seqshap import background as bgmod
from seqshap.background import choose_background, read_background_file
from seqshap.cli import main
from seqshap.data import DataFileError, read_labeled
from seqshap.data import imdb as imdb_mod
from seqshap.store import DEFAULT_MODEL_DIR, ModelLoadError, read_background

TEXT = "the acting was great but the plot was awful"
ARCHIVE = Path(imdb_mod.repo_data_dir()) / imdb_mod.SHIPPED_NAME


# ------------------------------------------------------------------ --background-file formats
def test_text_file_one_per_line_blank_lines_skipped(tmp_path):
    f = tmp_path / "bg.txt"
    f.write_bytes(b"a dull film\r\n\r\n  \nan excellent story\nit was fine")
    b = read_background_file(f)
    assert b.texts == ("a dull film", "an excellent story", "it was fine")
    assert b.source == f"the 3 texts of {f}"
    first = read_background_file(f, 2)
    assert first.texts == ("a dull film", "an excellent story")
    assert first.source == f"the first 2 texts of {f}"


def test_csv_with_a_text_column_and_quoted_newlines(tmp_path):
    f = tmp_path / "bg.csv"
    with open(f, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "text"])
        w.writerows([[1, "first review"], [2, "a review\nover two lines"], [3, "third"]])
    assert read_background_file(f).texts == ("first review", "a review\nover two lines", "third")


def test_jsonl_strings_or_objects_and_json_list_or_background_json(tmp_path):
    jl = tmp_path / "bg.jsonl"
    jl.write_text('{"text": "one"}\n\n"two"\n', encoding="utf-8")
    assert read_background_file(jl).texts == ("one", "two")
    js = tmp_path / "bg.json"
    js.write_text(json.dumps(["alpha", {"text": "beta"}]), encoding="utf-8")
    assert read_background_file(js).texts == ("alpha", "beta")
    shipped = read_background_file(DEFAULT_MODEL_DIR / "background.json", 5)  # a model's own file works too
    assert shipped.texts == tuple(read_background(DEFAULT_MODEL_DIR)[0][:5])


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bg.csv", "id,review\n1,good\n", "bg.csv: no column 'text' (columns: id, review)"),
        ("bg.csv", "text,label\ngood,1\n,0\n", "bg.csv, line 3: empty text"),
        ("bg.jsonl", '{"text": "ok"}\n{"text": "broken\n', "bg.jsonl, line 2: not valid JSON"),
        ("bg.jsonl", '{"text": "ok"}\n{"review": "x"}\n', "bg.jsonl, line 2: no field 'text' (fields: review)"),
        ("bg.jsonl", '{"text": 3}\n', "bg.jsonl, line 1: the text must be a string, got int"),
        ("bg.json", '["a", "b",\n', "bg.json, line 2: not valid JSON"),
        ("bg.json", '{"texts": 5}', 'bg.json: expected a JSON list of texts or an object with "texts"'),
        ("bg.txt", "\n \n", "bg.txt: no texts in it"),
    ],
)
def test_bad_files_name_the_file_and_line(tmp_path, name, content, message):
    f = tmp_path / name
    f.write_text(content, encoding="utf-8")
    with pytest.raises(DataFileError) as e:
        read_background_file(f)
    assert message in str(e.value)


def test_not_utf8_missing_and_oversized_files(tmp_path, monkeypatch):
    f = tmp_path / "bg.txt"
    f.write_bytes(b"fine\nalso fine\ncaf\xe9\n")
    with pytest.raises(DataFileError, match=r"bg\.txt, line 3: not UTF-8"):
        read_background_file(f)
    with pytest.raises(DataFileError, match=r"nope\.txt: no such file"):
        read_background_file(tmp_path / "nope.txt")
    monkeypatch.setattr(bgmod, "MAX_BACKGROUND_BYTES", 8)
    f.write_text("a text longer than eight bytes\n", encoding="utf-8")
    with pytest.raises(DataFileError, match="at most 8"):  # checked before the file is read
        read_background_file(f)


# ------------------------------------------------------------------ a model's background.json
def test_shipped_background_is_the_first_100_imdb_training_reviews(imdb):
    texts, source = read_background(DEFAULT_MODEL_DIR)
    assert texts == imdb["train"].texts[:100]
    assert source == "the first 100 IMDB training reviews"
    record = json.loads((DEFAULT_MODEL_DIR / "background.json").read_text(encoding="utf-8"))
    assert record["ids"] == imdb["train"].ids[:100]
    assert record["labels"] == imdb["train"].labels[:100].tolist()


def test_training_writes_background_json(tiny_model, imdb):
    texts, source = read_background(tiny_model.path)
    assert texts == imdb["train"].texts[:100]  # tiny_model trains on the first 2,000 training reviews
    assert source == "the first 100 training texts: texts given in Python"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "expected a JSON object, got a list"),
        ('{"texts": []}', "'texts' must be a non-empty list of strings"),
        ('{"texts": ["a", 2]}', "'texts' must be a non-empty list of strings"),
        ('{"texts": ["a"], "source": 3}', "'source' must be a string, got a number"),
    ],
)
def test_broken_background_json_is_a_load_error_naming_it(tmp_path, content, message):
    (tmp_path / "background.json").write_text(content, encoding="utf-8")
    with pytest.raises(ModelLoadError) as e:
        read_background(tmp_path)
    assert str(e.value).startswith(f"{tmp_path / 'background.json'}: ")
    assert message in str(e.value)


def test_oversized_background_json_is_refused_unread(tmp_path, monkeypatch):
    import seqshap.store as store

    (tmp_path / "background.json").write_text('{"texts": ["a long enough text"]}', encoding="utf-8")
    monkeypatch.setattr(store, "MAX_BACKGROUND_BYTES", 10)
    with pytest.raises(ModelLoadError, match="more than the 10 a background may hold"):
        read_background(tmp_path)


# ------------------------------------------------------------------ the order
def test_order_file_then_model_then_archive(tiny_model, imdb, tmp_path):
    f = tmp_path / "bg.txt"
    f.write_text("one\ntwo\n", encoding="utf-8")
    assert choose_background(5, file=f, model=tiny_model, imdb=ARCHIVE).source == f"the 2 texts of {f}"
    own = choose_background(5, model=tiny_model, imdb=ARCHIVE)  # an archive does not replace the model's own
    where = f"({tiny_model.path.name}/background.json)"
    assert own.source == f"the first 5 of the first 100 training texts: texts given in Python {where}"
    assert own.texts == tuple(imdb["train"].texts[:5])
    bare = tmp_path / "old-model"  # a directory from before background.json
    bare.mkdir()
    for archive in (None, ARCHIVE):
        fallback = choose_background(5, model=bare, imdb=archive)
        assert fallback.source == "the first 5 IMDB training reviews"
        assert fallback.texts == tuple(imdb["train"].texts[:5])


def test_a_model_with_fewer_texts_gives_all_of_them(tmp_path):
    (tmp_path / "background.json").write_text('{"source": "three texts", "texts": ["a", "b", "c"]}', encoding="utf-8")
    b = choose_background(100, model=tmp_path)
    assert b.texts == ("a", "b", "c")
    assert b.source == f"three texts ({tmp_path.name}/background.json)"


# ------------------------------------------------------------------ the commands
def csv_file(path: Path, rows) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        w.writerows(rows)
    return path


@pytest.mark.slow
def test_train_command_writes_background_json_and_explain_uses_it(capsys, imdb, tmp_path):
    data = csv_file(
        tmp_path / "mine.csv", zip(imdb["train"].texts[:60], imdb["train"].labels[:60].tolist(), strict=True)
    )
    out = tmp_path / "mine"
    argv = ["train", "--data", str(data), "--epochs", "1", "--maxlen", "20", "--num-words", "300", "--hidden", "8"]
    assert main([*argv, "--out", str(out), "--quiet"]) == 0
    texts, source = read_background(out)
    assert texts == read_labeled(data).texts[:60]  # the texts as training read them
    assert source == f"the first 60 training texts: {data.resolve()}"
    capsys.readouterr()
    assert main(["explain", TEXT, "--model", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    d = json.loads(captured.out)
    assert captured.err == f"background: {source} (mine/background.json)\n"
    assert sum(d["values"]) == pytest.approx(d["prediction"] - d["base_value"], abs=1e-5)


def test_explain_background_file_overrides_and_is_recorded(capsys, tiny_model, tmp_path):
    f = tmp_path / "bg.txt"
    f.write_text("a dull film\nan excellent story\n", encoding="utf-8")
    assert main(["explain", TEXT, "--model", str(tiny_model.path), "--json", "--background-file", str(f)]) == 0
    captured = capsys.readouterr()
    d = json.loads(captured.out)
    assert captured.err == f"background: the 2 texts of {f}\n"
    mean = float(tiny_model.predict(["a dull film", "an excellent story"]).mean())
    assert d["base_value"] == pytest.approx(mean, abs=1e-6)


def test_report_background_file_is_shown_in_the_data_table(capsys, tiny_model, imdb, tmp_path):
    f = tmp_path / "bg.txt"
    f.write_text("a dull film\nan excellent story\nit was fine\n", encoding="utf-8")
    out = tmp_path / "report"
    argv = ["report", "--model", str(tiny_model.path), "--n", "2", "--out", str(out), "--quiet"]
    assert main([*argv, "--background-file", str(f), "--min-count", "1"]) == 0
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "background (reference) for DeepSHAP</th><td>the 3 texts of" in page
    mean = float(tiny_model.predict(["a dull film", "an excellent story", "it was fine"]).mean())
    assert f"{mean:.4f}" in page  # the base value: the mean output over those 3 texts


@pytest.mark.parametrize("command", ["explain", "importance", "report", "serve", "faithfulness"])
def test_every_command_reads_background_file(capsys, tiny_model, tmp_path, command):
    missing = tmp_path / "missing.txt"
    extra = {"explain": [TEXT], "importance": ["--out", str(tmp_path / "o"), "--n", "1"]}.get(command, [])
    if command in ("report", "faithfulness"):
        extra = ["--out", str(tmp_path / "o"), "--n", "1"]
    argv = [command, *extra, "--model", str(tiny_model.path), "--background-file", str(missing)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # serve says "loading..." first
    assert err == f"seqshap {command}: error: --background-file {missing}: no such file"


# ------------------------------------------------------------------ network failures
def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return port


def test_download_failure_names_what_where_and_what_to_do(tmp_path, monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    url = f"http://127.0.0.1:{closed_port()}/aclImdb_v1.tar.gz"
    with pytest.raises(imdb_mod.DownloadError) as e:
        imdb_mod.download(url, tmp_path / "a.tar.gz", "0" * 64, progress=False, what="the thing", instead="Do X.")
    assert str(e.value).startswith(f"cannot download the thing from {url}: ")
    assert "Connection refused" in str(e.value)
    assert str(e.value).endswith(". Do X.")
    assert not (tmp_path / "a.tar.gz").exists()


def test_download_failure_through_a_proxy_names_the_proxy(tmp_path, monkeypatch):
    proxy = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("http_proxy", proxy)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    with pytest.raises(imdb_mod.DownloadError, match=f"through the proxy {proxy}"):
        imdb_mod.download("http://example.invalid/x.tar.gz", tmp_path / "x.tar.gz", "0" * 64, progress=False)


def test_imdb_download_failure_points_at_a_local_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQSHAP_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SEQSHAP_IMDB", raising=False)
    monkeypatch.setattr(imdb_mod, "repo_data_dir", lambda: tmp_path / "no-checkout" / "data")
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    url = f"http://127.0.0.1:{closed_port()}/aclImdb_v1.tar.gz"
    with pytest.raises(imdb_mod.DownloadError) as e:
        imdb_mod.find_archive(url=url)
    message = str(e.value)
    assert message.startswith("cannot download the IMDB reviews (aclImdb_v1.tar.gz, about 80 MB; not found in ")
    assert f"from {url}: " in message
    copy = "point $SEQSHAP_IMDB (or --imdb PATH) at a local copy of aclImdb_v1.tar.gz or aclImdb-labeled.tar.gz"
    assert f"To work offline, {copy}, or put one in {tmp_path / 'cache'}" in message
