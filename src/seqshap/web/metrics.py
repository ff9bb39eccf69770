"""``GET /metrics`` in Prometheus text format (``prometheus-client``): requests by route and
status, request latency, the explainer's queue, batch sizes and explanations per second.

Each app has its own registry, so several apps in one process (tests) do not collide.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

RATE_WINDOW_S = 60.0
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    """The server's metrics. ``pending``/``waiting`` read the explainer queue when scraped."""

    def __init__(self, pending: Callable[[], int], waiting: Callable[[], int]):
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "seqshap_http_requests",
            "HTTP requests answered, by route, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "seqshap_http_request_duration_seconds",
            "time from a request's arrival to the end of its answer, by route",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.pending = Gauge(
            "seqshap_queue_pending", "explain requests admitted and not finished (running + waiting)", registry=r
        )
        self.pending.set_function(lambda: float(pending()))
        self.waiting = Gauge(
            "seqshap_queue_depth", "explain requests waiting for their turn at the explainer", registry=r
        )
        self.waiting.set_function(lambda: float(waiting()))
        self.batch_texts = Histogram(
            "seqshap_batch_size_texts",
            "texts per explainer call",
            buckets=(1, 2, 4, 8, 12, 16, 24, 32, 64, 128),
            registry=r,
        )
        self.batch_requests = Histogram(
            "seqshap_batch_size_requests",
            "requests served by one explainer call",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=r,
        )
        self.call_seconds = Histogram(
            "seqshap_explainer_call_seconds",
            "time of one explainer call (a batch)",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.explanations = Counter(
            "seqshap_explanations", "texts explained (one per explanation answered)", registry=r
        )
        self.failed_calls = Counter(
            "seqshap_explainer_errors", "explainer calls that raised (e.g. a NaN output)", registry=r
        )
        self.rate = Gauge(
            "seqshap_explanations_per_second", f"explanations per second over the last {RATE_WINDOW_S:g} s", registry=r
        )
        self._recent: deque[tuple[float, int]] = deque()
        self._started = time.monotonic()
        self.rate.set_function(self._rate)

    def observe_batch(self, texts: int, requests: int, seconds: float, ok: bool) -> None:
        """One explainer call of ``texts`` texts for ``requests`` requests (the batcher's observer)."""
        self.batch_texts.observe(texts)
        self.batch_requests.observe(requests)
        self.call_seconds.observe(seconds)
        if ok:
            self.explanations.inc(texts)
            self._recent.append((time.monotonic(), texts))
        else:
            self.failed_calls.inc()

    def _rate(self) -> float:
        now = time.monotonic()
        while self._recent and self._recent[0][0] < now - RATE_WINDOW_S:
            self._recent.popleft()
        span = min(RATE_WINDOW_S, max(now - self._started, 1.0))
        return sum(n for _, n in self._recent) / span

    def render(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Count every HTTP request by its route (the path template, never the raw path: a scan of
    random URLs must not grow the label set) and time it."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", None) or "other"
            method = scope["method"] if scope["method"] in METHODS else "other"
            self.metrics.requests.labels(name, method, str(status)).inc()
            self.metrics.latency.labels(name).observe(time.perf_counter() - t0)
