"""A Transformer model directory through the real entry points (issue 13): ``seqshap train
--arch transformer`` in a subprocess, then ``explain`` (JSON, HTML), ``importance``, ``report``,
``faithfulness`` and a real ``seqshap serve`` process, each on that directory."""

from __future__ import annotations

import csv
import json
import math
import re
import subprocess
import sys
import time

import httpx
import pytest

pytestmark = pytest.mark.slow

SEQSHAP = [sys.executable, "-m", "seqshap.cli"]
TEXT = "A wonderful, moving film with a weak ending."


def cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    r = subprocess.run([*SEQSHAP, *args], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-2000:]
    return r


@pytest.fixture(scope="module")
def tf_dir(imdb, tmp_path_factory):
    root = tmp_path_factory.mktemp("tfcli")
    data = root / "reviews.csv"
    with data.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for t, y in zip(imdb["train"].texts[:400], imdb["train"].labels[:400], strict=True):
            w.writerow([t, int(y)])
    out = root / "tf"
    cli("train", "--arch", "transformer", "--data", str(data), "--epochs", "1", "--maxlen", "40",
        "--num-words", "2000", "--hidden", "32", "--quiet", "--out", str(out))  # fmt: skip
    return out


def test_trained_directory_says_what_it_is(tf_dir):
    config = json.loads((tf_dir / "config.json").read_text())
    assert config["arch"] == "transformer"
    assert config["model"]["ff_dim"] == 32


def test_explain_json_and_html_add_up(tf_dir, tmp_path):
    html = tmp_path / "why.html"
    r = cli("explain", TEXT, "--model", str(tf_dir), "--background", "8", "--json", "--html", str(html))
    e = json.loads(r.stdout)
    e = e[0] if isinstance(e, list) else e
    assert e["method"] == "deepshap"
    assert abs(sum(e["values"]) - (e["prediction"] - e["base_value"])) < 1e-4
    assert e["completeness_error"] < 1e-4
    page = html.read_text(encoding="utf-8")
    assert "wonderful" in page
    assert "ending" in page


def test_report_on_a_transformer(tf_dir, tmp_path):
    out = tmp_path / "report"
    cli("report", "--model", str(tf_dir), "--n", "2", "--background", "6", "--importance-n", "6", "--out", str(out))
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "transformer" in index.lower()


def test_importance_on_a_transformer(tf_dir, tmp_path):
    out = tmp_path / "imp"
    r = cli("importance", "--model", str(tf_dir), "--n", "6", "--background", "4", "--min-count", "1",
            "--out", str(out), "--json", "--quiet")  # fmt: skip
    summary = json.loads(r.stdout)
    assert summary["n_explanations"] == 6
    assert summary["words"] > 0
    for kind in ("csv", "json", "png", "svg"):
        assert (out / f"word_importance.{kind}").stat().st_size > 0


def test_faithfulness_on_a_transformer(tf_dir, tmp_path):
    """The native Transformer has an output for a row of padding only (its head's bias), so the methods
    that explain a full row against it run on every review; --whole-reviews still keeps only the texts
    the model reads whole."""
    out = tmp_path / "faith"
    methods = ["deepshap", "deeplift", "ig", "occlusion", "sampling-shapley", "random"]
    args = ["faithfulness", "--model", str(tf_dir), "--n", "4", "--background", "4", "--short", "2",
            "--short-words", "4", "--planted", "2", "--ig-steps", "8", "--permutations", "2",
            "--methods", ",".join(methods), "--quiet"]  # fmt: skip
    r = cli(*args, "--out", str(out))
    result = json.loads((out / "faithfulness.json").read_text())
    assert result["meta"]["whole_reviews"] is None
    assert [row["method"] for row in result["rows"]] == methods
    for row in result["rows"]:
        assert all(v is not None and math.isfinite(v) for v in (row["aopc"], row["comp"], row["suff"])), row
    assert "| deepshap |" in r.stdout
    whole = tmp_path / "whole"
    r = cli(*args, "--out", str(whole), "--whole-reviews")
    assert re.search(r"--whole-reviews: \d+ of 25000 texts fit in 40 positions", r.stderr)
    kept = json.loads((whole / "faithfulness.json").read_text())["meta"]["whole_reviews"]
    assert 4 <= kept["kept"] < kept["of"] == 25000


@pytest.mark.server
def test_real_server_explains_a_transformer(tf_dir):
    proc = subprocess.Popen(
        [*SEQSHAP, "serve", "--model", str(tf_dir), "--port", "0", "--background", "6"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
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
        assert "wonderful" in [t.lower() for t in e["tokens"]]
    finally:
        proc.terminate()
        proc.wait(timeout=60)
