"""``seqshap serve`` as a real process (issue 15): the port and the key are checked before the
model loads, the key protects the API, and SIGTERM drains before the process exits 0."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest

from helpers import REVIEW, small_archive
from seqshap.cli import main

pytestmark = pytest.mark.server

KEY = "a-key-for-these-tests-0123456789"


@pytest.fixture(scope="module")
def archive(imdb, tmp_path_factory) -> Path:
    return small_archive(tmp_path_factory.mktemp("imdb") / "small-imdb.tar.gz", imdb)


def serve_cmd(tiny_model, archive, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "seqshap.cli",
        "serve",
        "--model",
        str(tiny_model.path),
        "--background",
        "5",
        "--imdb",
        str(archive),
        "--log-level",
        "warning",
        *extra,
    ]


def environment(**extra: str) -> dict[str, str]:
    """This process's environment without a key of its own, plus ``extra``."""
    return {**{k: v for k, v in os.environ.items() if k != "SEQSHAP_API_KEY"}, "PYTHONUNBUFFERED": "1", **extra}


def run_cli(cmd: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=environment(**(env or {})))


class Served:
    """A ``seqshap serve`` process and the URL it printed once listening."""

    def __init__(self, cmd: list[str], env: dict | None = None):
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(**(env or {})),
        )
        line = self.proc.stdout.readline()  # printed once the port is open
        match = re.search(r"http://127\.0\.0\.1:\d+/", line)
        if not match:
            self.proc.kill()
            raise AssertionError((line, self.proc.stderr.read()))
        self.url = match.group(0)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(120)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ------------------------------------------------------------------- checked before loading
def test_a_taken_port_is_one_line_before_the_model_loads(tiny_model, archive):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        r = run_cli(serve_cmd(tiny_model, archive, "--port", str(port)))
    assert r.returncode == 1
    assert r.stderr.strip() == f"seqshap serve: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    assert "loading" not in r.stderr  # said before any loading


@pytest.mark.parametrize(
    ("extra", "env", "message"),
    [
        (["--host", "0.0.0.0"], {}, "--host 0.0.0.0 opens the server to the network without authentication"),
        (["--api-key-file", "KEYFILE", "--no-auth"], {}, "--no-auth contradicts the API key given"),
        (["--api-key-file", "KEYFILE"], {"SEQSHAP_API_KEY": KEY}, "give the API key once"),
        ([], {"SEQSHAP_API_KEY": "short"}, "$SEQSHAP_API_KEY: the key is 5 characters; use at least 16"),
        (["--api-key-file", "MISSING"], {}, "cannot read it"),
        (["--api-key-file", "SPACED"], {}, "the key must be one word"),
        (["--batch-wait-ms", "-1"], {}, "argument --batch-wait-ms: must be a number of 0 or more, got '-1'"),
        (["--header-timeout", "0"], {}, "argument --header-timeout: must be a positive number, got '0'"),
    ],
    ids=["open without a key", "key and no-auth", "key twice", "short key", "missing file", "two words", "wait", "hdr"],
)
def test_bad_serving_options_are_refused_before_loading(
    tiny_model, archive, tmp_path, monkeypatch, capsys, extra, env, message
):
    (tmp_path / "key.txt").write_text(KEY + "\n")
    (tmp_path / "spaced.txt").write_text("two words in the key file here\n")
    names = {"KEYFILE": tmp_path / "key.txt", "MISSING": tmp_path / "none.txt", "SPACED": tmp_path / "spaced.txt"}
    extra = [str(names.get(a, a)) for a in extra]
    monkeypatch.delenv("SEQSHAP_API_KEY", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(serve_cmd(tiny_model, archive, "--port", "0", *extra)[3:]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "loading" not in err


def test_the_key_from_the_environment_protects_the_served_api(tiny_model, archive):
    served = Served(serve_cmd(tiny_model, archive, "--port", "0"), {"SEQSHAP_API_KEY": KEY})
    try:
        with httpx.Client(base_url=served.url, timeout=60) as c:
            assert c.post("/api/explain", json={"text": REVIEW}).status_code == 401
            r = c.post("/api/explain", json={"text": REVIEW}, headers={"Authorization": "Bearer wrong-key-0123456789"})
            assert r.status_code == 401
            assert "not this server's API key" in r.json()["error"]
            r = c.post("/api/explain", json={"text": REVIEW}, headers={"Authorization": f"Bearer {KEY}"})
            assert r.status_code == 200
            assert r.json()["prediction"] == pytest.approx(float(tiny_model.predict([REVIEW])[0]), abs=1e-6)
            assert c.get("/api/health").status_code == 200
        assert served.stop() == 0
    finally:
        served.kill()
    assert "the API key is required" in served.proc.stderr.read()


# ----------------------------------------------------------------------------- SIGTERM
# The real command, in a real process, with one change: each explainer call waits until
# the test creates a file, so "in flight" is decided by the test, not by timing.
GATED_SERVE = textwrap.dedent(
    """
    import os, sys, time
    from seqshap.web import app as web_app

    gate = sys.argv[1]
    explain_now = web_app.ExplainService.explain_now

    def gated(self, key, texts):
        while not os.path.exists(gate):
            time.sleep(0.02)
        return explain_now(self, key, texts)

    web_app.ExplainService.explain_now = gated
    from seqshap.cli import main
    sys.exit(main(sys.argv[2:]))
    """
)


def test_sigterm_finishes_in_flight_explanations_refuses_new_ones_and_exits_0(tiny_model, archive, tmp_path):
    gate = tmp_path / "go"
    cmd = serve_cmd(tiny_model, archive, "--port", "0")
    served = Served([sys.executable, "-c", GATED_SERVE, str(gate), *cmd[3:]])
    try:
        answers: list[httpx.Response] = []

        def in_flight() -> None:
            with httpx.Client(base_url=served.url, timeout=120) as c:
                answers.append(c.post("/api/explain/batch", json={"texts": [REVIEW, "a dull film"]}))

        t = threading.Thread(target=in_flight)
        t.start()
        with httpx.Client(base_url=served.url, timeout=60) as c:
            while c.get("/api/health").json()["pending"] != 1:
                assert t.is_alive()
                time.sleep(0.02)
            served.proc.send_signal(signal.SIGTERM)
            while (h := c.get("/api/health")).status_code == 200:  # until the signal arrives
                assert served.proc.poll() is None
                time.sleep(0.02)
            assert h.status_code == 503
            assert h.json()["status"] == "draining"
            assert h.json()["pending"] == 1
            r = c.post("/api/explain", json={"text": REVIEW})
            assert r.status_code == 503
            assert r.json() == {"error": "the server is shutting down; try again in a moment"}
            assert r.headers["retry-after"] == "5"
        assert served.proc.poll() is None  # still draining: the explanation in flight holds it
        gate.touch()
        t.join(120)
        assert [a.status_code for a in answers] == [200]
        assert len(answers[0].json()["explanations"]) == 2
        assert served.proc.wait(120) == 0
    finally:
        gate.touch()
        served.kill()
    err = served.proc.stderr.read()
    assert "finishing 1 admitted explanation(s)" in err
    assert "Traceback" not in err
