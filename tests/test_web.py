"""``seqshap serve`` (issue 6): a real uvicorn server on 127.0.0.1, httpx, headless Chromium.

One server (in a thread of this process, on a free port) serves the ``tiny_model`` for
the whole module; the overload test holds its explainer lock to fill the queue for real.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest

from helpers import REVIEW, LiveServer, small_archive
from seqshap.cli import main
from seqshap.web import create_app

pytestmark = pytest.mark.server

BACKGROUND = 20  # fewer reviews than the default 100: the same code path, quicker tests
MAX_CHARS, MAX_BATCH, QUEUE_LIMIT = 2000, 3, 2


@pytest.fixture(scope="module")
def server(tiny_model, imdb):
    app = create_app(
        tiny_model.path,
        max_chars=MAX_CHARS,
        max_batch=MAX_BATCH,
        queue_limit=QUEUE_LIMIT,
        background_texts=imdb["train"].texts[:BACKGROUND],
    )
    with LiveServer(app) as live:
        yield live


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# ----------------------------------------------------------------------------- the API
def test_explain_returns_an_exact_explanation_of_the_models_prediction(client, tiny_model):
    r = client.post("/api/explain", json={"text": REVIEW})
    assert r.status_code == 200
    d = r.json()
    assert {"tokens", "values", "base_value", "prediction", "label", "completeness_error", "model"} <= set(d)
    assert "html" not in d  # only when asked for
    assert len(d["tokens"]) == len(d["values"]) == len(d["visible"]) == tiny_model.maxlen
    # The served prediction is the model's own, computed independently here.
    assert d["prediction"] == pytest.approx(float(tiny_model.predict([REVIEW])[0]), abs=1e-6)
    assert d["label"] == ("positive" if d["prediction"] > 0.5 else "negative")
    # DeepSHAP completeness: the word values add up to prediction - base value.
    assert abs(sum(d["values"]) - (d["prediction"] - d["base_value"])) <= d["completeness_error"] + 1e-9
    assert d["completeness_error"] < 1e-4
    assert d["model"] == tiny_model.name
    assert d["output"] == "probability"
    shown = [t for t, v in zip(d["tokens"], d["visible"], strict=True) if v]
    assert shown[-4:] == ["but", "i", "loved", "it"]  # the model reads the last maxlen words
    tops = [abs(w["value"]) for w in d["top"]]
    assert tops == sorted(tops, reverse=True)
    assert len(tops) == 10


def test_logit_output_explains_the_logit(client, tiny_model):
    d = client.post("/api/explain", json={"text": REVIEW, "output": "logit"}).json()
    assert d["output"] == "logit"
    assert sigmoid(d["prediction"]) == pytest.approx(float(tiny_model.predict([REVIEW])[0]), abs=1e-6)
    assert abs(sum(d["values"]) - (d["prediction"] - d["base_value"])) <= d["completeness_error"] + 1e-9


def test_batch_matches_single_explanations_in_order(client):
    texts = ["a dull, lifeless and boring film", REVIEW]
    r = client.post("/api/explain/batch", json={"texts": texts})
    assert r.status_code == 200
    batch = r.json()["explanations"]
    assert len(batch) == 2
    for text, got in zip(texts, batch, strict=True):
        single = client.post("/api/explain", json={"text": text}).json()
        np.testing.assert_allclose(got["values"], single["values"], atol=1e-9)
        assert got["prediction"] == pytest.approx(single["prediction"], abs=1e-9)


def test_html_fragment_is_the_shared_renderer_and_escapes_the_review(client):
    d = client.post("/api/explain", json={"text": "great <marquee>bold</marquee> & fun", "html": True}).json()
    assert d["html"].startswith('<div class="seqshap-explanation"')
    assert "<marquee" not in d["html"]
    assert "</marquee>" not in d["html"]
    # Read as a browser would (tags dropped, entities decoded), the markup is there as text.
    highlight = d["html"].split('class="seqshap-highlight"', 1)[1].split('class="legend"', 1)[0]
    assert "great <marquee>bold</marquee> & fun" in html.unescape(re.sub(r"<[^>]*>", "", highlight))
    assert 'class="seqshap-force"' in d["html"]
    assert 'class="seqshap-highlight"' in d["html"]


def test_health_and_model_info(client, tiny_model):
    h = client.get("/api/health").json()
    assert h == {
        "status": "ok",
        "model": tiny_model.name,
        "version": h["version"],
        "pending": 0,
        "queue_limit": QUEUE_LIMIT,
    }
    m = client.get("/api/model").json()
    assert m["arch"] == "lstm"
    assert m["maxlen"] == tiny_model.maxlen == 40
    assert m["vocab_size"] == tiny_model.config["model"]["vocab_size"] == 2000
    assert m["test_accuracy"] == tiny_model.metrics["test_accuracy"]
    assert (m["max_chars"], m["max_batch"], m["background_size"]) == (MAX_CHARS, MAX_BATCH, BACKGROUND)
    assert m["outputs"] == ["probability", "logit"]


def test_openapi_docs(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/api/explain", "/api/explain/batch", "/api/health", "/api/model"} <= set(spec["paths"])


def test_openapi_schema_describes_the_one_json_form(client):
    """The documented response is exactly Explanation.to_dict()'s keys, plus the optional html."""
    answer = client.post("/api/explain", json={"text": REVIEW}).json()
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    response = schema["ExplainResponse"]
    assert set(response["properties"]) == set(answer) | {"html"}
    assert set(response["required"]) == set(answer)  # every key of the form is always there
    assert set(schema["TopWord"]["properties"]) == set(answer["top"][0])
    label_types = {t.get("type") for t in response["properties"]["label"]["anyOf"]}
    assert label_types == {"string", "null"}  # null for raw-output models


def same_json(a, b, path="") -> None:
    """Equal structure and keys; numbers within 1e-9, everything else equal."""
    assert type(a) is type(b) or {type(a), type(b)} <= {int, float}, (path, a, b)
    if isinstance(a, dict):
        assert set(a) == set(b), (path, set(a) ^ set(b))
        for k in a:
            same_json(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same_json(x, y, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, abs=1e-9), (path, a, b)
    else:
        assert a == b, (path, a, b)


def test_cli_json_and_web_api_give_the_same_explanation(client, tiny_model):
    """`seqshap explain --json` (a real process) and POST /api/explain: one JSON form, same numbers."""
    exe = Path(sys.executable).with_name("seqshap")
    r = subprocess.run(
        [str(exe), "explain", REVIEW, "--model", str(tiny_model.path), "--json", "--background", str(BACKGROUND)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    cli = json.loads(r.stdout)
    web = client.post("/api/explain", json={"text": REVIEW}).json()
    same_json(cli, web)
    # the keys the README promised, with their meaning
    assert cli["label"] == ("positive" if cli["prediction"] > 0.5 else "negative") == web["label"]
    assert cli["output"] == "probability"
    assert cli["model"] == tiny_model.name
    assert [w["word"] for w in cli["top"]] == [w["word"] for w in web["top"]]
    assert len(cli["top"]) == 10
    for w in cli["top"]:
        assert cli["visible"][w["pos"]]
        assert w["pos"] == w["positions"][0]


JSON = {"content-type": "application/json"}
# (id, path, request kwargs, status, words the error message must contain)
BAD_REQUESTS = [
    ("empty text", "/api/explain", {"json": {"text": ""}}, 422, "text is empty"),
    ("whitespace text", "/api/explain", {"json": {"text": " \n\t "}}, 422, "text is empty"),
    ("too long", "/api/explain", {"json": {"text": "good " * 401}}, 413, "2,005 characters long; the limit is 2,000"),
    ("not JSON", "/api/explain", {"content": b"{text: good}", "headers": JSON}, 400, "not valid JSON"),
    (
        "text/plain body",
        "/api/explain",
        {"content": b"good film", "headers": {"content-type": "text/plain"}},
        400,
        "Content-Type: application/json",
    ),
    ("no body", "/api/explain", {"headers": JSON}, 400, "body is empty"),
    ("JSON list", "/api/explain", {"json": ["good"]}, 400, "must be a JSON object, got a list"),
    ("number text", "/api/explain", {"json": {"text": 42}}, 422, "text must be a string, got a number"),
    ("null text", "/api/explain", {"json": {"text": None}}, 422, "text must be a string, got null"),
    ("missing text", "/api/explain", {"json": {"output": "logit"}}, 422, "missing field 'text'"),
    ("misspelt field", "/api/explain", {"json": {"text": "ok", "txt": "ok"}}, 422, "unknown field 'txt'"),
    (
        "unknown output",
        "/api/explain",
        {"json": {"text": "good", "output": "softmax"}},
        422,
        "output must be one of 'probability', 'logit', got \"softmax\"",
    ),
    ("html not bool", "/api/explain", {"json": {"text": "good", "html": "yes"}}, 422, "html must be true or false"),
    (
        "lone surrogate",
        "/api/explain",
        {"content": b'{"text": "good \\ud800 film"}', "headers": JSON},
        422,
        "unpaired surrogate",
    ),
    ("no words", "/api/explain", {"json": {"text": "?!... :-)"}}, 422, "has no words"),
    (
        "batch over limit",
        "/api/explain/batch",
        {"json": {"texts": ["good"] * (MAX_BATCH + 1)}},
        413,
        "4 texts; the limit is 3",
    ),
    ("batch empty", "/api/explain/batch", {"json": {"texts": []}}, 422, "texts is an empty list"),
    ("batch not a list", "/api/explain/batch", {"json": {"texts": "good"}}, 422, "texts must be a list"),
    (
        "batch wrong item",
        "/api/explain/batch",
        {"json": {"texts": ["good", 7]}},
        422,
        "texts[1] must be a string, got a number",
    ),
    ("batch blank item", "/api/explain/batch", {"json": {"texts": ["good", "  "]}}, 422, "texts[1] is empty"),
    (
        "batch long item",
        "/api/explain/batch",
        {"json": {"texts": ["x" * (MAX_CHARS + 1)]}},
        413,
        "texts[0] is 2,001 characters",
    ),
    (
        "batch unknown output",
        "/api/explain/batch",
        {"json": {"texts": ["good"], "output": "raw"}},
        422,
        "output must be one of",
    ),
    (
        "body over the byte limit",
        "/api/explain",
        {"content": b'{"text": "' + b"a" * 500_000 + b'"}', "headers": JSON},
        413,
        "request body is over",
    ),
    ("GET on a POST route", "/api/explain", {"method": "GET"}, 405, "GET is not allowed on /api/explain"),
    ("unknown path", "/api/nothing", {"method": "GET"}, 404, "no such page: /api/nothing"),
]


def send(client: httpx.Client, path: str, kwargs: dict) -> httpx.Response:
    kwargs = dict(kwargs)
    return client.request(kwargs.pop("method", "POST"), path, **kwargs)


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "message"), [c[1:] for c in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS]
)
def test_bad_input_answers_4xx_with_a_clear_json_error(client, path, kwargs, status, message):
    r = send(client, path, kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert message in r.json()["error"], r.json()


def test_chunked_body_over_the_limit_is_refused_unread(client):
    def chunks():  # no Content-Length: the limit must count the bytes as they arrive
        yield b'{"text": "'
        for _ in range(100):
            yield b"a" * 10_000
        yield b'"}'

    r = client.post("/api/explain", content=chunks(), headers=JSON)
    assert r.status_code == 413
    assert "over" in r.json()["error"]


def test_server_still_answers_correctly_after_bad_input(client):
    before = client.post("/api/explain", json={"text": REVIEW}).json()
    for _, path, kwargs, status, _ in BAD_REQUESTS:
        assert send(client, path, kwargs).status_code == status
    after = client.post("/api/explain", json={"text": REVIEW})
    assert after.status_code == 200
    assert after.json()["values"] == before["values"]
    assert after.json()["prediction"] == before["prediction"]
    assert client.get("/api/health").json()["pending"] == 0


def test_overload_answers_503_at_once_and_recovers(server, client):
    service = server.app.state.service
    results: list[int] = []

    def explain() -> None:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            results.append(c.post("/api/explain", json={"text": REVIEW}).status_code)

    service.lock.acquire()  # the worker blocks: admitted requests stay in the queue
    try:
        waiting = [threading.Thread(target=explain) for _ in range(QUEUE_LIMIT)]
        for t in waiting:
            t.start()
        deadline = time.monotonic() + 20
        while client.get("/api/health").json()["pending"] < QUEUE_LIMIT:  # health does not queue
            assert time.monotonic() < deadline, "requests were not admitted"
            time.sleep(0.02)
        t0 = time.monotonic()
        r = client.post("/api/explain", json={"text": "one too many"})
        assert r.status_code == 503
        assert time.monotonic() - t0 < 5
        assert "busy" in r.json()["error"]
        assert r.headers["retry-after"] == "1"
        assert client.post("/api/explain/batch", json={"texts": ["also too many"]}).status_code == 503
    finally:
        service.lock.release()
    for t in waiting:
        t.join(60)
    assert results == [200] * QUEUE_LIMIT
    assert client.get("/api/health").json()["pending"] == 0
    assert client.post("/api/explain", json={"text": REVIEW}).status_code == 200


# ---------------------------------------------------------------------------- the page
def test_page_is_self_contained_with_a_strict_csp(client):
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    # Every src/href is on this server (or a data: icon): nothing from a CDN.
    refs = re.findall(r'(?:src|href)="([^"]*)"', r.text)
    assert refs
    assert all(u.startswith(("/", "data:")) for u in refs), refs
    js = client.get("/static/app.js")
    assert js.status_code == 200
    assert "javascript" in js.headers["content-type"]
    assert "innerHTML = data.html" in js.text  # only the server-escaped fragment goes in as HTML


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=chromium,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    """A fresh page that records console errors and every host it talks to."""
    ctx = browser.new_context(viewport={"width": 1100, "height": 900})
    pg = ctx.new_page()
    pg.problems, pg.hosts = [], set()
    pg.on("console", lambda m: m.type == "error" and pg.problems.append(m.text))
    pg.on("pageerror", lambda e: pg.problems.append(str(e)))
    pg.on("request", lambda req: pg.hosts.add(urlsplit(req.url).netloc or urlsplit(req.url).scheme))
    pg.goto(server.url + "/")
    yield pg
    ctx.close()


def explain_in_page(pg, text: str) -> str:
    pg.fill("#review", text)
    pg.click("#explain-button")
    pg.wait_for_selector('#status[data-state="done"], #status[data-state="error"]', timeout=30_000)
    return pg.get_attribute("#status", "data-state")


@pytest.mark.browser
def test_page_explains_a_review(page, client, server, tmp_path):
    expected = client.post("/api/explain", json={"text": REVIEW}).json()
    assert explain_in_page(page, REVIEW) == "done"
    assert page.inner_text("#status").startswith(f"Predicted {expected['label']}")
    prediction = page.inner_text("#result .prediction")
    assert f"({expected['label']})" in prediction
    assert f"{expected['prediction']:.4f}" in prediction
    # Highlighted words: the review's words, each coloured, carrying the API's exact value.
    words = page.locator("#result .seqshap-highlight span.w")
    assert words.count() == sum(expected["visible"])  # one coloured span per word the model read
    shown = {w.inner_text().lower(): float(w.get_attribute("data-value")) for w in words.all()}
    for word in ("wonderful", "superb", "loved"):
        assert word in shown
    pos = {t: v for t, v, vis in zip(expected["tokens"], expected["values"], expected["visible"], strict=True) if vis}
    assert shown["wonderful"] == pytest.approx(pos["wonderful"], abs=1e-12)
    assert page.locator("#result svg.seqshap-force g.seg").count() > 0
    assert page.locator("#result table.seqshap-top tbody tr").count() == 10
    assert page.locator("#model-info").inner_text().startswith("model tiny-lstm (lstm)")
    shot = tmp_path / "page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000
    assert page.problems == []
    netloc = urlsplit(server.url).netloc
    assert netloc in page.hosts
    assert page.hosts <= {netloc, "data"}


@pytest.mark.browser
def test_page_shows_markup_in_a_review_as_text_and_runs_nothing(page):
    review = (
        'Loved it <img src=x onerror="window.pwned=1"> and <script>window.pwned=2</script> '
        '<svg onload="window.pwned=3"></svg> a great film'
    )
    assert explain_in_page(page, review) == "done"
    assert page.evaluate("typeof window.pwned") == "undefined"
    assert page.locator("#result img, #result script, #result .seqshap-highlight svg").count() == 0
    text = page.inner_text("#result .seqshap-highlight .text")
    assert '<img src=x onerror="window.pwned=1">' in text
    assert "<script>window.pwned=2</script>" in text
    assert page.problems == []


@pytest.mark.browser
def test_page_shows_the_servers_error_message(page):
    assert explain_in_page(page, "?! ... !!") == "error"
    assert page.inner_text("#status") == ("Error: text has no words (only punctuation or symbols); nothing to explain")
    assert page.inner_text("#result") == ""
    assert explain_in_page(page, REVIEW) == "done"  # and the page still works afterwards


# ------------------------------------------------------------------------------- the CLI
def test_serve_command_fails_fast_on_a_bad_model_dir(tmp_path, capsys):
    t0 = time.monotonic()
    assert main(["serve", "--model", str(tmp_path / "missing"), "--port", "0"]) == 1
    assert "not a model directory" in capsys.readouterr().err
    assert time.monotonic() - t0 < 5  # before the IMDB background is read
    assert main(["serve", "--max-chars", "0"]) == 2


def test_serve_command_serves_and_stops_on_ctrl_c(tiny_model, imdb, tmp_path):
    exe = Path(sys.executable).with_name("seqshap")
    archive = small_archive(tmp_path / "small-imdb.tar.gz", imdb)
    proc = subprocess.Popen(
        [
            str(exe),
            "serve",
            "--model",
            str(tiny_model.path),
            "--port",
            "0",
            "--background",
            "5",
            "--imdb",
            str(archive),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = proc.stdout.readline()  # printed once the port is open
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert url, (line, proc.stderr.read() if proc.poll() is not None else "")
        with httpx.Client(base_url=url.group(0), timeout=60) as c:
            assert c.get("/api/health").json()["model"] == tiny_model.name
            assert c.get("/api/model").json()["background_size"] == 5
            d = c.post("/api/explain", json={"text": REVIEW}).json()
            assert d["prediction"] == pytest.approx(float(tiny_model.predict([REVIEW])[0]), abs=1e-6)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
