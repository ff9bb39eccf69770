"""``seqshap explain`` / ``importance`` / ``report`` from the command line (in-process via
``cli.main`` for speed, plus one real subprocess for exit codes and the one-line error)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seqshap.cli import main

TEXT = "the acting was great but the plot was awful"
BG = ["--background", "10"]  # a small background keeps each run fast; exactness does not depend on it


@pytest.fixture(scope="module")
def model_dir(tiny_model) -> str:
    return str(tiny_model.path)


def run_json(capsys, *argv) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_explain_json_is_complete_and_adds_up(capsys, model_dir, tiny_model):
    d = run_json(capsys, "explain", TEXT, "--model", model_dir, "--json", *BG)
    assert {"tokens", "values", "base_value", "prediction", "completeness_error"} <= set(d)
    assert len(d["tokens"]) == len(d["values"]) == tiny_model.maxlen
    assert [t for t in d["tokens"] if t not in ("<pad>", "<start>")] == TEXT.split()
    assert d["prediction"] == pytest.approx(float(tiny_model.predict([TEXT])[0]), abs=1e-6)
    assert sum(d["values"]) == pytest.approx(d["prediction"] - d["base_value"], abs=1e-5)
    assert d["completeness_error"] < 1e-5


def test_explain_json_is_the_explanations_one_json_form(capsys, model_dir, tiny_model):
    from seqshap import Explanation

    d = run_json(capsys, "explain", TEXT, "--model", model_dir, "--json", "--top", "3", *BG)
    # the keys the README promises, with their meaning
    assert d["label"] == ("positive" if d["prediction"] > 0.5 else "negative")
    assert d["model"] == tiny_model.name
    assert d["output"] == "probability"
    assert d["text"] == TEXT
    assert [w["word"] for w in d["top"]] == [
        w
        for w, _ in sorted(
            ((w, v) for w, v in zip(d["tokens"], d["values"], strict=True) if w in TEXT.split()),
            key=lambda wv: -abs(wv[1]),
        )
    ][:3]
    assert [t for t, v in zip(d["tokens"], d["visible"], strict=True) if v] == TEXT.split()
    # it is Explanation.to_dict(): read back, it gives the same JSON
    assert Explanation.from_dict(d).to_dict(top=3) == d


def test_explain_terminal_output_plain_when_not_a_tty(capsys, model_dir):
    assert main(["explain", TEXT, "--model", model_dir, "--top", "4", *BG]) == 0
    out = capsys.readouterr().out
    assert "\x1b[" not in out  # capsys is not a TTY: no colour codes
    assert out.startswith("prediction ")
    assert "top 4 words" in out
    assert "great" in out
    assert "awful" in out
    assert main(["explain", TEXT, "--model", model_dir, "--color", "always", *BG]) == 0
    assert "\x1b[48;2;" in capsys.readouterr().out


def test_explain_reads_stdin_and_file(capsys, model_dir, tmp_path, monkeypatch):
    ref = run_json(capsys, "explain", TEXT, "--model", model_dir, "--json", *BG)
    monkeypatch.setattr(sys, "stdin", io.StringIO(TEXT + "\n"))
    assert run_json(capsys, "explain", "-", "--model", model_dir, "--json", *BG)["values"] == ref["values"]
    f = tmp_path / "review.txt"
    f.write_text(TEXT, encoding="utf-8")
    assert run_json(capsys, "explain", "--file", str(f), "--model", model_dir, "--json", *BG)["values"] == ref["values"]


def test_explain_writes_pictures(capsys, model_dir, tmp_path):
    html, png, svg, wf = (tmp_path / n for n in ("out.html", "out.png", "force.svg", "wf.svg"))
    argv = [
        "explain",
        "a <b>bold</b> film, great fun",
        "--model",
        model_dir,
        "--html",
        str(html),
        "--png",
        str(png),
        "--svg",
        str(svg),
        "--waterfall",
        str(wf),
        *BG,
    ]
    assert main(argv) == 0
    err = capsys.readouterr().err
    for p in (html, png, svg, wf):
        assert p.is_file()
        assert f"wrote {p}" in err
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "<b>bold</b>" not in page
    assert "&lt;" in page
    assert 'class="seqshap-force"' in page
    assert "great" in page
    with Image.open(png) as im:
        assert im.format == "PNG"
    assert "<svg" in svg.read_text()
    assert "great" in wf.read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["explain"], "no text"),
        (["explain", "x", "--file", "f.txt"], "not both"),
        (["explain", "   "], "empty"),
        (["explain", "--file", "/nonexistent/review.txt"], "no such file"),
        (["explain", "good", "--png", "out.jpg"], "--png"),
        (["explain", "good", "--html", "out.txt"], "--html"),
        (["importance", "--n", "0", "--out", "x"], "at least 1"),
        (["report", "--n", "0"], "at least 1"),
    ],
)
def test_bad_usage_exits_2_with_one_line(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1
    assert err.startswith(f"seqshap {argv[0]}: error:")


def test_real_process_error_is_one_line_exit_1(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "seqshap.cli", "explain", "good film", "--model", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "not a model directory" in r.stderr


@pytest.mark.parametrize("cmd", ["explain", "importance", "report"])
def test_help_shows_an_example(capsys, cmd):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    assert f"seqshap {cmd} " in out.split("example:")[1]


def test_importance_command_writes_table_and_plot(capsys, model_dir, tmp_path):
    out = tmp_path / "imp"
    assert (
        main(
            [
                "importance",
                "--n",
                "12",
                "--min-count",
                "2",
                "--top",
                "5",
                "--model",
                model_dir,
                "--out",
                str(out),
                "--background",
                "20",
            ]
        )
        == 0
    )
    cap = capsys.readouterr()
    assert "explaining test reviews" in cap.err  # the progress bar goes to stderr
    assert "top positive" in cap.out
    assert "top negative" in cap.out
    for name in ("word_importance.csv", "word_importance.json", "word_importance.png", "word_importance.svg"):
        assert (out / name).is_file()
    with open(out / "word_importance.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows
    assert all(int(r["count"]) >= 2 for r in rows)
    means = [float(r["mean"]) for r in rows]
    assert means == sorted(means, reverse=True)
    data = json.loads((out / "word_importance.json").read_text())
    assert data["n_explanations"] == 12
    assert len(data["top_positive"]) <= 5
    assert not {"<pad>", "<start>", "<oov>"} & {r["word"] for r in rows}


def test_report_command(capsys, model_dir, tmp_path):
    out = tmp_path / "rep"
    d = run_json(
        capsys, "report", "--model", model_dir, "--n", "2", "--background", "10", "--out", str(out), "--quiet", "--json"
    )
    assert Path(d["index"]) == out / "index.html"
    assert (out / "index.html").is_file()
    assert {"force_01.svg", "force_02.png", "word_importance.csv"} <= set(d["files"])
    assert np.isfinite(json.loads((out / "explanations.json").read_text())[0]["base_value"])
