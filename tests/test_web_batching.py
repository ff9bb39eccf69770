"""Dynamic batching in ``seqshap serve`` (issue 15), through a real uvicorn server.

The explainer's lock is held while requests arrive, so which requests share a call is
decided by the test, not by timing: the first request runs (and waits on the lock), the
others queue up behind it and go together in the next call.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from safetensors.torch import load_file, save_file

import seqshap
from helpers import REVIEW, LiveServer
from seqshap.attribution import DeepExplainer
from seqshap.web import create_app

pytestmark = pytest.mark.server

BACKGROUND = 20
GOOD = [
    "a dull, lifeless and boring film",
    REVIEW,
    "The plot was thin but the actors were wonderful to watch.",
    "worst movie of the year, avoid it",
    "I laughed, I cried, a great story",
]


def wait_until(condition, what: str, timeout: float = 60.0) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` (a safety net, not a measurement)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def metrics(client: httpx.Client) -> dict[str, float]:
    """``/metrics`` as {"name{label=value,...}": value}."""
    out = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def calls(client: httpx.Client) -> float:
    return metrics(client)["seqshap_batch_size_requests_count"]


class Held:
    """Hold the explainer's lock: the first request runs and blocks, the next ones queue."""

    def __init__(self, server: LiveServer):
        self.server, self.service = server, server.app.state.service
        self.threads: list[threading.Thread] = []
        self.answers: dict[str, httpx.Response] = {}

    def __enter__(self) -> Held:
        self.service.lock.acquire()
        return self

    def send(self, name: str, path: str, body: dict) -> None:
        def go() -> None:
            with httpx.Client(base_url=self.server.url, timeout=120) as c:
                self.answers[name] = c.post(path, json=body)

        t = threading.Thread(target=go)
        t.start()
        self.threads.append(t)

    def __exit__(self, *exc) -> None:
        if self.service.lock.locked():
            self.service.lock.release()
        for t in self.threads:
            t.join(120)


def running_alone(held: Held) -> None:
    """Send the request that takes the explainer (and blocks on the lock) and wait until it does."""
    batcher = held.service.batcher
    held.send("first", "/api/explain", {"text": "an opening request, explained alone"})
    wait_until(lambda: batcher.pending == 1 and batcher.waiting == 0, "the first request to start running")


@pytest.fixture(scope="module")
def background(imdb) -> list[str]:
    return imdb["train"].texts[:BACKGROUND]


@pytest.fixture(scope="module")
def server(tiny_model, background):
    app = create_app(tiny_model.path, max_batch=8, queue_limit=16, background_texts=background)
    with LiveServer(app) as live:
        yield live


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def alone(tiny_model, background):
    """The explanation of one text on its own, by an explainer of the library (not the server)."""
    model = seqshap.load(tiny_model.path)
    explainers = {o: DeepExplainer(model, background, output=o) for o in ("probability", "logit")}
    return lambda text, output="probability": explainers[output].explain([text])[0]


def same_as_alone(answer: dict, exp) -> None:
    np.testing.assert_allclose(answer["values"], exp.values, rtol=0, atol=1e-7)
    assert answer["prediction"] == pytest.approx(exp.prediction, abs=1e-7)
    assert answer["base_value"] == pytest.approx(exp.base_value, abs=1e-7)
    assert answer["tokens"] == list(exp.tokens)
    assert answer["output"] == exp.output_space


def test_concurrent_requests_share_one_call_and_each_gets_its_own_explanation(server, client, alone):
    before = metrics(client)
    with Held(server) as held:
        running_alone(held)
        held.send("a", "/api/explain", {"text": GOOD[0]})
        held.send("b", "/api/explain", {"text": GOOD[1]})
        held.send("batch", "/api/explain/batch", {"texts": GOOD[2:4]})
        held.send("c", "/api/explain", {"text": GOOD[4]})
        held.send("logit", "/api/explain", {"text": GOOD[1], "output": "logit"})  # another key: its own call
        wait_until(lambda: held.service.batcher.waiting == 5, "five requests to queue")
    after = metrics(client)
    answers = {k: r.json() for k, r in held.answers.items()}
    assert {k: r.status_code for k, r in held.answers.items()} == dict.fromkeys(answers, 200)
    # Three calls: the first request alone, the four probability requests (5 texts), the logit one.
    assert after["seqshap_batch_size_requests_count"] - before["seqshap_batch_size_requests_count"] == 3
    assert after["seqshap_batch_size_requests_sum"] - before["seqshap_batch_size_requests_sum"] == 6
    assert after["seqshap_batch_size_texts_sum"] - before["seqshap_batch_size_texts_sum"] == 7
    assert after["seqshap_explanations_total"] - before["seqshap_explanations_total"] == 7
    assert after["seqshap_batch_size_texts_bucket{le=4.0}"] - before["seqshap_batch_size_texts_bucket{le=4.0}"] == 2
    for name, text in (("a", GOOD[0]), ("b", GOOD[1]), ("c", GOOD[4])):
        same_as_alone(answers[name], alone(text))
        assert answers[name]["text"] == text
    for got, text in zip(answers["batch"]["explanations"], GOOD[2:4], strict=True):
        same_as_alone(got, alone(text))
    same_as_alone(answers["logit"], alone(GOOD[1], "logit"))
    assert client.get("/api/health").json()["pending"] == 0


def test_a_batch_never_exceeds_max_batch_texts(server, client, alone):
    """max_batch 8: requests of 3 texts each go 2 to a call (6 texts), never 3 (9)."""
    before = metrics(client)
    texts = [f"{GOOD[i % 5]} ({i})" for i in range(12)]
    with Held(server) as held:
        running_alone(held)
        for i in range(4):
            held.send(f"r{i}", "/api/explain/batch", {"texts": texts[3 * i : 3 * i + 3]})
        wait_until(lambda: held.service.batcher.waiting == 4, "four requests to queue")
    after = metrics(client)
    assert [held.answers[f"r{i}"].status_code for i in range(4)] == [200] * 4
    assert after["seqshap_batch_size_requests_count"] - before["seqshap_batch_size_requests_count"] == 3
    assert after["seqshap_batch_size_texts_bucket{le=8.0}"] - before["seqshap_batch_size_texts_bucket{le=8.0}"] == 3
    for i in range(4):
        for got, text in zip(held.answers[f"r{i}"].json()["explanations"], texts[3 * i : 3 * i + 3], strict=True):
            same_as_alone(got, alone(text))


def hang_up_request(url: str, text: str) -> socket.socket:
    """A socket that has sent a whole POST /api/explain (and will hang up without reading)."""
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"text": text}).encode()
    s = socket.create_connection((host, int(port)))
    s.sendall(
        b"POST /api/explain HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    return s


def test_requests_of_clients_that_hung_up_are_dropped_before_their_turn(server, client):
    batcher = server.app.state.service.batcher
    before = metrics(client)
    with Held(server) as held:
        running_alone(held)
        socks = [hang_up_request(server.url, f"nobody waits for this one {i}") for i in range(6)]
        wait_until(lambda: batcher.waiting == 6, "six requests to queue")
        for s in socks:
            s.close()
        # Their queue slots come back while the explainer is still busy: nothing of theirs runs.
        wait_until(lambda: batcher.waiting == 0 and batcher.pending == 1, "the abandoned requests to leave the queue")
        assert held.service.lock.locked()
    after = metrics(client)
    assert held.answers["first"].status_code == 200
    assert after["seqshap_batch_size_requests_count"] - before["seqshap_batch_size_requests_count"] == 1  # the first
    assert after["seqshap_explanations_total"] - before["seqshap_explanations_total"] == 1
    gone = "seqshap_http_requests_total{method=POST,route=/api/explain,status=499}"
    assert after[gone] - before.get(gone, 0) == 6
    assert client.get("/api/health").json()["pending"] == 0
    assert client.post("/api/explain", json={"text": REVIEW}).status_code == 200


# ------------------------------------------------------------- errors stay with their request
def nan_word_for(tiny_model, texts: list[str]) -> str:
    """A frequent vocabulary word that none of ``texts`` holds."""
    seen = {t for text in texts for t in tiny_model.encodings([text])[0].tokens}
    vocab = tiny_model.vocab.word_to_id
    return min((w for w in vocab if w.isalpha() and w not in seen), key=vocab.get)


@pytest.fixture(scope="module")
def nan_setup(tiny_model, background, tmp_path_factory):
    import shutil

    word = nan_word_for(tiny_model, [*background, *GOOD, REVIEW, "an opening request, explained alone"])
    d = Path(tmp_path_factory.mktemp("broken")) / "nan-row"
    shutil.copytree(tiny_model.path, d, ignore=shutil.ignore_patterns("checkpoint"))
    state = load_file(str(d / "model.safetensors"))
    state["embedding.weight"][tiny_model.vocab.word_to_id[word]].fill_(float("nan"))
    save_file(state, str(d / "model.safetensors"))
    app = create_app(d, max_batch=8, queue_limit=16, background_texts=background)
    with LiveServer(app) as live:
        yield live, word, seqshap.load(d)


def test_a_nan_or_wordless_text_fails_only_its_own_request(nan_setup, background):
    server, word, model = nan_setup
    alone = DeepExplainer(model, background)
    bad = f"the acting was {word} but the plot was fine"
    with Held(server) as held:
        running_alone(held)
        held.send("good", "/api/explain", {"text": GOOD[0]})
        held.send("nan", "/api/explain", {"text": bad})
        held.send("good batch", "/api/explain/batch", {"texts": GOOD[1:3]})
        held.send("wordless", "/api/explain", {"text": "?! ... :-)"})
        held.send("nan batch", "/api/explain/batch", {"texts": [GOOD[3], bad]})
        held.send("good 2", "/api/explain", {"text": GOOD[4], "html": True})
        wait_until(lambda: held.service.batcher.waiting == 6, "six requests to queue")
    status = {k: r.status_code for k, r in held.answers.items()}
    assert status == {
        "first": 200,
        "good": 200,
        "nan": 500,
        "good batch": 200,
        "wordless": 422,
        "nan batch": 500,
        "good 2": 200,
    }
    assert held.answers["nan"].json() == {
        "error": "the model produced NaN or infinity for text (its output is nan); nothing to explain"
    }
    assert (
        held.answers["nan batch"]
        .json()["error"]
        .startswith("the model produced NaN or infinity for texts[1] (its output is")
    )
    assert held.answers["wordless"].json() == {
        "error": "text has no words (only punctuation or symbols); nothing to explain"
    }
    same_as_alone(held.answers["good"].json(), alone.explain([GOOD[0]])[0])
    for got, text in zip(held.answers["good batch"].json()["explanations"], GOOD[1:3], strict=True):
        same_as_alone(got, alone.explain([text])[0])
    good2 = held.answers["good 2"].json()
    same_as_alone(good2, alone.explain([GOOD[4]])[0])
    assert good2["html"].startswith('<div class="seqshap-explanation"')
    with httpx.Client(base_url=server.url, timeout=60) as c:
        assert c.get("/api/health").json()["pending"] == 0
