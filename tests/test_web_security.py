"""The server defends itself (issue 15): security headers on every answer, the API key,
``/metrics``, offline ``/docs`` in Chromium, slow clients — against a real uvicorn server."""

from __future__ import annotations

import contextlib
import re
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers import REVIEW, LiveServer
from seqshap.web import create_app
from seqshap.web.security import SECURITY_HEADERS

pytestmark = pytest.mark.server

BACKGROUND = 10
KEY = "k3y-for-the-tests-only-0123456789"
HEADER_TIMEOUT = 3.0


@pytest.fixture(scope="module")
def server(tiny_model, imdb):
    app = create_app(
        tiny_model.path,
        max_chars=2000,
        max_batch=3,
        background_texts=imdb["train"].texts[:BACKGROUND],
        api_key=KEY,
        body_timeout_s=2.0,
    )
    with LiveServer(app, header_timeout_s=HEADER_TIMEOUT) as live:
        yield live


@pytest.fixture(scope="module")
def client(server):
    """A client that carries the key."""
    with httpx.Client(base_url=server.url, timeout=60, headers={"Authorization": f"Bearer {KEY}"}) as c:
        yield c


@pytest.fixture(scope="module")
def anonymous(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


# ------------------------------------------------------------------------------ headers
EVERY_KIND = [
    ("GET", "/", {}, 200),
    ("HEAD", "/", {}, 200),
    ("GET", "/static/app.js", {}, 200),
    ("GET", "/docs", {}, 200),
    ("GET", "/docs-assets/swagger-ui.css", {}, 200),
    ("GET", "/openapi.json", {}, 200),
    ("GET", "/api/health", {}, 200),
    ("GET", "/api/model", {}, 200),
    ("GET", "/metrics", {}, 200),
    ("POST", "/api/explain", {"json": {"text": REVIEW}}, 200),
    ("POST", "/api/explain", {"json": {"text": ""}}, 422),
    ("POST", "/api/explain", {"content": b"x" * 300_000}, 413),
    ("GET", "/api/explain", {}, 405),
    ("GET", "/nothing/here", {}, 404),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"), EVERY_KIND, ids=[f"{m} {p} {s}" for m, p, _, s in EVERY_KIND]
)
def test_every_answer_carries_the_security_headers(client, method, path, kwargs, status):
    r = client.request(method, path, **kwargs)
    assert r.status_code == status, r.text
    for name, value in SECURITY_HEADERS.items():
        assert r.headers[name] == value, (name, path)
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    if path not in ("/", "/docs"):  # data and assets: nothing may run if opened as a page
        assert csp.startswith("default-src 'none'")


def test_unauthorised_answers_carry_the_headers_too(anonymous):
    r = anonymous.get("/api/model")
    assert r.status_code == 401
    for name, value in SECURITY_HEADERS.items():
        assert r.headers[name] == value


def test_head_of_the_page_answers_like_get(client):
    get, head = client.get("/"), client.head("/")
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    for name in ("content-type", "content-length", "content-security-policy", "x-content-type-options"):
        assert head.headers[name] == get.headers[name]


# ------------------------------------------------------------------------------ the key
@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({}, "no API key"),
        ({"Authorization": "Bearer not-the-key-at-all-0123456789"}, "bearer token is not this server's API key"),
        ({"Authorization": f"Bearer {KEY[:-1]}"}, "bearer token is not this server's API key"),
        ({"Authorization": f"Basic {KEY}"}, "scheme 'Basic'; use Bearer"),
        ({"Cookie": "seqshap_key=forged"}, "a wrong or old page cookie"),
    ],
    ids=["none", "wrong", "one char short", "basic", "forged cookie"],
)
def test_without_the_key_every_route_answers_401(anonymous, headers, why):
    for method, path, body in (
        ("POST", "/api/explain", {"text": REVIEW}),
        ("POST", "/api/explain/batch", {"texts": [REVIEW]}),
        ("GET", "/api/model", None),
        ("GET", "/", None),
        ("GET", "/docs", None),
        ("GET", "/openapi.json", None),
        ("GET", "/metrics", None),
        ("GET", "/static/app.js", None),
    ):
        r = anonymous.request(method, path, json=body, headers=headers)
        assert r.status_code == 401, (path, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert why in r.json()["error"]
        assert "Authorization: Bearer <key>" in r.json()["error"]


def test_with_the_key_the_api_answers_and_health_is_open_to_all(client, anonymous, tiny_model):
    d = client.post("/api/explain", json={"text": REVIEW}).json()
    assert d["prediction"] == pytest.approx(float(tiny_model.predict([REVIEW])[0]), abs=1e-6)
    assert anonymous.get("/api/health").json()["status"] == "ok"  # a load balancer's probe has no key


def test_a_browser_signs_in_once_with_the_token_in_the_address(server, anonymous):
    r = anonymous.get("/?token=wrong-token-wrong-token-wrong", follow_redirects=False)
    assert r.status_code == 401
    r = anonymous.get(f"/docs?token={KEY}&x=1", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/docs?x=1"  # the key leaves the address bar
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert KEY not in cookie  # a cookie derived from the key, not the key
    with httpx.Client(base_url=server.url, timeout=60) as browser:
        browser.get(f"/?token={KEY}")  # follows to / with the cookie set
        assert browser.get("/").status_code == 200
        assert browser.post("/api/explain", json={"text": REVIEW}).status_code == 200
        # the cookie is no bearer token
        token = browser.cookies["seqshap_key"]
        r = anonymous.get("/api/model", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401
    host, port = urlsplit(server.url).netloc.split(":")
    with socket.create_connection((host, int(port))) as s:  # httpx would normalise the path away
        s.sendall(f"GET //evil.example/?token={KEY} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        head = s.recv(65536).split(b"\r\n\r\n")[0].decode()
    assert head.startswith("HTTP/1.1 303")
    assert "\r\nlocation: /evil.example/\r\n" in head.lower()  # never an address on another host


# ---------------------------------------------------------------------------- /metrics
def test_metrics_in_prometheus_format(client):
    client.post("/api/explain", json={"text": REVIEW})
    client.post("/api/explain", json={"text": ""})
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    ok = ("seqshap_http_requests_total", (("method", "POST"), ("route", "/api/explain"), ("status", "200")))
    bad = ("seqshap_http_requests_total", (("method", "POST"), ("route", "/api/explain"), ("status", "422")))
    assert samples[ok] >= 1
    assert samples[bad] >= 1
    assert families["seqshap_http_request_duration_seconds"].type == "histogram"
    assert samples[("seqshap_http_request_duration_seconds_count", (("route", "/api/explain"),))] >= 2
    assert samples[("seqshap_queue_depth", ())] == 0
    assert samples[("seqshap_queue_pending", ())] == 0
    assert samples[("seqshap_batch_size_texts_count", ())] >= 1
    assert samples[("seqshap_batch_size_requests_sum", ())] >= 1
    assert samples[("seqshap_explanations_total", ())] >= 1
    assert samples[("seqshap_explanations_per_second", ())] > 0
    # an unknown path is counted under one label, never under its own
    client.get("/no/such/path/12345")
    assert "/no/such/path" not in client.get("/metrics").text


# ------------------------------------------------------------------------ slow clients
def slow_socket(url: str) -> socket.socket:
    host, port = urlsplit(url).netloc.split(":")
    s = socket.create_connection((host, int(port)))
    s.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")  # a head that never ends
    return s


def closed_by_server(s: socket.socket) -> bool:
    """True once the server has closed the connection (reads return EOF or a reset)."""
    s.setblocking(False)
    try:
        return s.recv(1024) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


def test_slow_request_heads_are_cut_off(server, client):
    """50 clients sending their request heads byte by byte: the server closes every one of them
    once the header timeout has passed, and answers others all along."""
    socks = [slow_socket(server.url) for _ in range(50)]
    try:
        assert client.get("/api/health").status_code == 200
        deadline = time.monotonic() + 120  # a safety net: the server's limit is HEADER_TIMEOUT
        while not all(closed_by_server(s) for s in socks):
            assert time.monotonic() < deadline, "slow connections were never closed"
            for s in socks:
                with contextlib.suppress(OSError):
                    s.send(b"X")  # one more byte of a header line: the head is still arriving
            time.sleep(0.2)
    finally:
        for s in socks:
            s.close()
    assert client.get("/api/health").status_code == 200
    assert client.post("/api/explain", json={"text": REVIEW}).status_code == 200


def test_past_the_connection_cap_requests_get_503_at_once(tiny_model, imdb):
    app = create_app(tiny_model.path, background_texts=imdb["train"].texts[:3])
    with LiveServer(app, max_connections=20, header_timeout_s=600) as capped:
        socks = [slow_socket(capped.url) for _ in range(30)]
        try:
            # uvicorn counts a connection once it has accepted it; poll until it has them all.
            deadline = time.monotonic() + 120
            while True:
                with httpx.Client(base_url=capped.url, timeout=60) as fresh:
                    r = fresh.get("/api/health")
                if r.status_code == 503:
                    break
                assert r.status_code == 200
                assert time.monotonic() < deadline, "the connection cap never answered 503"
        finally:
            for s in socks:
                s.close()
        deadline = time.monotonic() + 120
        with httpx.Client(base_url=capped.url, timeout=60) as fresh:
            while fresh.get("/api/health").status_code != 200:  # the slots come back as they close
                assert time.monotonic() < deadline
                time.sleep(0.05)


def test_a_body_that_trickles_in_gets_408(server):
    host, port = urlsplit(server.url).netloc.split(":")
    with socket.create_connection((host, int(port))) as s:
        s.sendall(
            f"POST /api/explain HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
            'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"te'.encode()
        )
        s.settimeout(120)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]


# ----------------------------------------------------------------------- docs, offline
@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=chromium,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
        )
        yield b
        b.close()


@pytest.mark.browser
def test_docs_render_offline_in_chromium(browser, server, tmp_path):
    ctx = browser.new_context(viewport={"width": 1200, "height": 1000})
    page = ctx.new_page()
    problems: list[str] = []
    hosts: set[str] = set()
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda req: hosts.add(urlsplit(req.url).netloc or urlsplit(req.url).scheme))
    page.goto(f"{server.url}/docs?token={KEY}")  # signs in, lands on /docs
    assert urlsplit(page.url).path == "/docs"
    page.wait_for_selector(".opblock", timeout=60_000)
    paths = {p.strip() for p in page.locator(".opblock-summary-path").all_inner_texts()}
    assert {"/api/explain", "/api/explain/batch", "/api/health", "/api/model", "/metrics"} <= {
        re.sub(r"\s+", "", p) for p in paths
    }
    assert page.locator(".info .title").inner_text().startswith("seqshap")
    page.screenshot(path=str(tmp_path / "docs.png"), full_page=True)
    assert problems == []  # no CSP violation, no script error
    netloc = urlsplit(server.url).netloc
    assert netloc in hosts
    assert hosts <= {netloc, "data"}  # nothing from another host
    ctx.close()


@pytest.mark.browser
def test_page_works_in_chromium_after_signing_in(browser, server):
    ctx = browser.new_context()
    page = ctx.new_page()
    problems: list[str] = []
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    page.goto(f"{server.url}/?token={KEY}")
    assert urlsplit(page.url).query == ""
    page.fill("#review", REVIEW)
    page.click("#explain-button")
    page.wait_for_selector('#status[data-state="done"], #status[data-state="error"]', timeout=60_000)
    assert page.get_attribute("#status", "data-state") == "done"
    assert page.locator("#result .seqshap-highlight span.w").count() > 0
    assert problems == []
    ctx.close()
