"""The HTML report: files on disk, numbers equal to the explanations, and a real browser
(Debian's chromium via Playwright, network blocked) showing it without errors."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seqshap.attribution.explanation import Explanation
from seqshap.data import Split
from seqshap.report import write_report

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
EVIL = (
    "Loved it. <script>window.pwned = 1</script> Truly great acting "
    '<img src=x onerror="window.pwned2 = 1"> and an excellent plot.'
)


@pytest.fixture(scope="module")
def report(tiny_model, imdb, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    write_report(tiny_model, out, n_explain=10, n_background=100, importance_n=10, min_count=2, data=imdb)
    return out


@pytest.fixture(scope="module")
def evil_report(tiny_model, imdb, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("evil")
    reviews = Split([EVIL, "A dull film."], np.array([1, 0]), np.array([9, 2]), ["evil/1", "evil/2"])
    write_report(
        tiny_model, out, n_explain=2, n_background=20, min_count=1, reviews=reviews, background=imdb["train"].head(20)
    )
    return out


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs, self.spans, self.preds = [], [], []
        self._pred = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for k in ("src", "href"):
            if a.get(k):
                self.refs.append(a[k])
        if tag == "span" and "w" in (a.get("class") or "").split():
            self.spans.append(a)
        if tag == "div" and a.get("class") == "prediction":
            self._pred = ""

    def handle_endtag(self, tag):
        if tag == "div" and self._pred is not None:
            self.preds.append(self._pred)
            self._pred = None

    def handle_data(self, data):
        if self._pred is not None:
            self._pred += data


def test_report_writes_every_picture_beside_index(report, imdb):
    names = {p.name for p in report.iterdir()}
    assert "index.html" in names
    assert {"training_curves.png", "training_curves.svg"} <= names
    for i in range(1, 11):
        for f in (
            f"force_{i:02d}.svg",
            f"force_{i:02d}.png",
            f"waterfall_{i:02d}.png",
            f"highlight_{i:02d}.html",
            f"explanation_{i:02d}.html",
        ):
            assert f in names, f
            assert (report / f).stat().st_size > 200, f
    assert {
        "word_importance.csv",
        "word_importance.json",
        "word_importance.png",
        "word_importance.svg",
        "explanations.json",
    } <= names
    for png in report.glob("*.png"):
        with Image.open(png) as im:
            assert im.format == "PNG"
            assert im.size[0] > 300
    assert not [n for n in names if n.startswith(".")]  # atomic writes leave no temp files


def test_index_is_self_contained_and_links_resolve(report):
    html = (report / "index.html").read_text()
    p = Links()
    p.feed(html)
    assert p.refs, "no images or links at all?"
    for ref in p.refs:
        if ref.startswith("#") or ref.startswith("data:"):
            continue
        assert not re.match(r"^([a-z]+:)?//", ref), f"external reference {ref}"
        assert (report / ref).is_file(), f"broken relative link {ref}"
    assert set(re.findall(r"https?://[^\s\"')]+", html)) <= {"http://www.w3.org/2000/svg"}
    assert "<script" not in html


def test_report_numbers_equal_the_explanations(report, tiny_model, imdb):
    html = (report / "index.html").read_text()
    exps = json.loads((report / "explanations.json").read_text())
    assert len(exps) == 10
    p = Links()
    p.feed(html)
    # every coloured word in the page carries exactly its explanation's value
    by_review = [dict(zip(range(len(e["values"])), e["values"], strict=True)) for e in exps]
    starts = [m.start() for m in re.finditer(r'<section class="review"', html)]
    assert len(starts) == 10
    for i, (a, b) in enumerate(zip(starts, [*starts[1:], len(html)], strict=True)):
        sec = Links()
        sec.feed(html[a:b])
        assert sec.spans
        for s in sec.spans:
            assert float(s["data-value"]) == by_review[i][int(s["data-pos"])]
        want = "positive" if imdb["test"].labels[i] == 1 else "negative"
        assert f"true label {want}" in sec.preds[0]
        assert f"prediction {exps[i]['prediction']:.4f}" in sec.preds[0]
        # values add up to f(x) - base value, and f(x) is the model's own prediction
        assert sum(exps[i]["values"]) == pytest.approx(exps[i]["prediction"] - exps[i]["base_value"], abs=1e-4)
    assert exps[0]["prediction"] == pytest.approx(float(tiny_model.predict(imdb["test"].texts[:1])[0]), abs=1e-6)
    assert f"{tiny_model.metrics['test_accuracy']:.4f}" in html
    imp = json.loads((report / "word_importance.json").read_text())
    assert imp["n_explanations"] == 10
    assert imp["words"]


def test_explanations_json_is_the_explanations_one_json_form(report, imdb):
    """``explanations.json`` is ``[e.to_dict() for e in exps]``: it rebuilds each Explanation exactly."""
    exps = json.loads((report / "explanations.json").read_text())
    for i, d in enumerate(exps):
        e = Explanation.from_dict(d)
        assert e.to_dict() == d
        assert e.text == imdb["test"].texts[i]
        assert e.spans is not None
        assert e.class_name(e.label) == ("positive" if imdb["test"].labels[i] == 1 else "negative")


def test_injected_script_is_escaped_on_disk(evil_report):
    html = (evil_report / "index.html").read_text()
    assert "<script" not in html
    assert "<img src=x" not in html
    assert "&lt;script&gt;" in html or "&lt;" in html
    for f in evil_report.glob("*.html"):
        assert "<script" not in f.read_text(), f.name
    for f in evil_report.glob("*.svg"):
        assert "<script" not in f.read_text(), f.name


# ------------------------------------------------------------------------------ browser
@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=ARGS)
        yield b
        b.close()


def open_page(browser, path: Path):
    """Open a local file with all non-file requests blocked; returns (page, errors, external)."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors, external = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def route(r):
        if r.request.url.startswith("file://"):
            r.continue_()
        else:
            external.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(path.as_uri(), wait_until="load")
    return page, errors, external


def assert_png(path: Path, min_w: int, min_h: int) -> None:
    assert path.stat().st_size > 5000
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size[0] >= min_w
        assert im.size[1] >= min_h


@pytest.mark.browser
def test_browser_shows_report_without_errors(browser, report, tmp_path):
    page, errors, external = open_page(browser, report / "index.html")
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert_png(shot, 1000, 2000)
    text = page.inner_text("body")
    exps = json.loads((report / "explanations.json").read_text())
    assert "seqshap report" in text
    assert "Global word importance" in text
    for e in exps[:3]:  # the biggest words of the first reviews are on the page, as text
        vis = [(t, v) for t, v in zip(e["tokens"], e["values"], strict=True) if t not in ("<pad>", "<start>", "<oov>")]
        for tok, _ in sorted(vis, key=lambda tv: -abs(tv[1]))[:3]:
            assert tok in text.lower()
    # every image loaded (relative files beside the page)
    broken = page.evaluate("[...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).length")
    assert broken == 0
    assert page.locator("svg.seqshap-force").count() == 10
    assert errors == []
    assert external == []
    page.close()


@pytest.mark.browser
def test_browser_shows_injected_script_as_text_and_never_runs_it(browser, evil_report, tmp_path):
    page, errors, external = open_page(browser, evil_report / "index.html")
    page.screenshot(path=str(tmp_path / "evil.png"), full_page=True)
    assert_png(tmp_path / "evil.png", 1000, 500)
    assert page.evaluate("typeof window.pwned") == "undefined"
    assert page.evaluate("typeof window.pwned2") == "undefined"
    assert page.locator("section.review script").count() == 0
    text = page.inner_text("section#review-1")
    assert "<script>window.pwned = 1</script>" in text
    assert '<img src=x onerror="window.pwned2 = 1">' in text
    assert errors == []
    assert external == []
    page.close()


@pytest.mark.browser
def test_browser_opens_a_force_plot_file(browser, report, tmp_path):
    page, errors, external = open_page(browser, report / "force_01.svg")
    shot = tmp_path / "force.png"
    page.screenshot(path=str(shot))
    assert_png(shot, 900, 150)
    labels = page.evaluate("[...document.querySelectorAll('g.label text.word')].map(t => t.textContent)")
    assert labels
    e = json.loads((report / "explanations.json").read_text())[0]
    assert page.evaluate("document.documentElement.getAttribute('data-output-value')") == repr(e["prediction"])
    assert "f(x) = " + f"{e['prediction']:.4f}" in page.evaluate("document.documentElement.textContent")
    assert errors == []
    assert external == []
    page.close()
    # and the standalone highlight page of the same review
    page, errors, external = open_page(browser, report / "highlight_01.html")
    n = page.locator("span.w").count()
    assert n == sum(t not in ("<pad>", "<start>") for t in e["tokens"])
    assert errors == []
    assert external == []
    page.close()


@pytest.mark.browser
def test_chromium_is_debians(chromium):
    assert chromium == shutil.which("chromium")


def test_report_command_explains_against_the_models_own_background(tiny_model, tmp_path):
    """``seqshap report`` chooses its background as every command does: the model directory's
    background.json (here three texts that are not the IMDB training reviews)."""
    import subprocess
    import sys

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model.path, model_dir)
    own = ["A plain film.", "Nothing special, nothing bad.", "It was a film."]
    (model_dir / "background.json").write_text(json.dumps({"source": "three plain texts", "texts": own}))
    out = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, "-m", "seqshap.cli", "report", "--model", str(model_dir), "--n", "1", "--out", str(out),
         "--quiet"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "three plain texts (model/background.json)" in index
    (e,) = json.loads((out / "explanations.json").read_text(encoding="utf-8"))
    assert e["base_value"] == pytest.approx(float(tiny_model.predict(own).mean()), abs=1e-6)
