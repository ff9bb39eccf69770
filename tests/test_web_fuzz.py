"""Schemathesis against the real server (issue 15): requests generated from ``/openapi.json``,
valid and invalid, for every operation. Each answer must have a status the schema documents,
the documented content type and shape, and never be a 5xx; afterwards the server still
explains a good request exactly as before."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from helpers import REVIEW, LiveServer
from seqshap.web import create_app

pytestmark = pytest.mark.server

EXAMPLES = 25  # per operation and mode: 2 x 2 x 25 for the POSTs, 3 x 25 (at most) for the GETs
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def server(tiny_model, imdb):
    app = create_app(tiny_model.path, max_chars=500, max_batch=4, background_texts=imdb["train"].texts[:10])
    with LiveServer(app) as live:
        yield live


def test_every_generated_request_gets_a_documented_answer_and_never_a_5xx(server):
    with httpx.Client(base_url=server.url, timeout=120) as c:
        before = c.post("/api/explain", json={"text": REVIEW}).json()
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} == {
        "POST /api/explain",
        "POST /api/explain/batch",
        "GET /api/health",
        "GET /api/model",
        "GET /metrics",
    }
    seen: dict[str, set[int]] = {}
    for op in operations:
        # An operation without inputs (the GETs) has no invalid request to generate.
        modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE] if op.method.upper() == "POST" else [None]
        for mode in modes:

            @given(case=op.as_strategy(generation_mode=mode) if mode else op.as_strategy())
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,  # the same requests every run
                suppress_health_check=list(HealthCheck),
            )
            def fuzz(case) -> None:
                response = case.call(base_url=server.url, timeout=120)
                case.validate_response(response, checks=CHECKS)
                seen.setdefault(f"{case.method} {case.path}", set()).add(response.status_code)

            fuzz()
    # The fuzzing reached past validation: explanations were made, and bad input was refused.
    assert 200 in seen["POST /api/explain"]
    assert seen["POST /api/explain"] & {400, 413, 422}
    assert 200 in seen["POST /api/explain/batch"]
    assert seen["POST /api/explain/batch"] & {400, 413, 422}
    with httpx.Client(base_url=server.url, timeout=120) as c:
        after = c.post("/api/explain", json={"text": REVIEW})
        assert after.status_code == 200
        assert after.json()["values"] == before["values"]
        assert c.get("/api/health").json()["pending"] == 0
