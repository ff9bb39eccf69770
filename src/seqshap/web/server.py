"""uvicorn, set up to hold under load: slow clients time out, open connections are capped,
and a stop signal drains the explainer before the process exits.

- Header timeout: uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but
  waits forever for a request head that arrives byte by byte. :func:`guarded_protocol`
  adds a deadline for each request head, from the connection's start or the previous
  answer: a client that has not sent a whole head by then is disconnected.
- ``limit_concurrency``: past that many open connections or running requests, a request gets
  503 at once: the app's ``{"error": ...}`` JSON with its security headers (uvicorn's own answer
  is plain text without them), and the connection is closed.
- SIGTERM/SIGINT: :class:`DrainingServer` first stops admitting explanations (503, and
  ``/api/health`` says ``draining``) while it keeps listening, waits for the admitted ones
  to finish, then shuts uvicorn down as usual and the process exits 0. A second signal is
  uvicorn's own: close now (SIGINT twice forces it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from .security import SecurityHeaders, error_response

DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_MAX_CONNECTIONS = 100
DEFAULT_KEEP_ALIVE_S = 5
DEFAULT_DRAIN_TIMEOUT_S = 120.0
log = logging.getLogger("seqshap.web")


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for every request head, and the connection
    cap answered in the app's own error shape."""

    header_timeout_s = DEFAULT_HEADER_TIMEOUT_S
    _header_timer: asyncio.TimerHandle | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn checks the cap itself when a request head arrives and answers plain text; the
        # same check happens here instead, as the request starts (its own task is counted then).
        self.cap, self.limit_concurrency = self.limit_concurrency, None
        self.app = self._capped(self.app)

    def _capped(self, app: Any) -> Any:
        if self.cap is None:
            return app
        cap = self.cap

        async def capped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and (len(self.connections) >= cap or len(self.tasks) > cap):
                log.warning("connection cap (%d) reached: 503", cap)
                busy = error_response(
                    503,
                    f"the server has too many open connections ({cap}); try again in a moment",
                    {"Retry-After": "1", "Connection": "close"},
                )
                await SecurityHeaders(busy)(scope, receive, send)
                return
            await app(scope, receive, send)

        return capped

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        super().data_received(data)
        if self.cycle is not before:  # a whole request head arrived: its request runs
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self._arm()  # the next request's head must come in time too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._timed_out)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _timed_out(self) -> None:
        self._header_timer = None
        if (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(header_timeout_s: float) -> type[HeaderTimeoutProtocol]:
    """:class:`HeaderTimeoutProtocol` with its deadline (uvicorn builds protocols from a class)."""
    if header_timeout_s <= 0:
        raise ValueError(f"the header timeout must be positive, got {header_timeout_s}")
    return type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout_s": float(header_timeout_s)})


class DrainingServer(uvicorn.Server):
    """uvicorn's server; the first stop signal drains the explainer before shutting down."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S):
        super().__init__(config)
        self.service = app.state.service
        self.drain_timeout_s = drain_timeout_s
        self.drain_deadline: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.drain_deadline is None and not self.should_exit:
            # Not recorded as a captured signal: uvicorn would raise it again on the way out
            # and SIGTERM's default action would end the process with 143 instead of 0.
            self.drain_deadline = time.monotonic() + self.drain_timeout_s
            self.service.drain()
            log.warning("stop signal: finishing %d admitted explanation(s), refusing new ones", self.service.pending)
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        deadline = self.drain_deadline
        if deadline is not None and not self.should_exit and (self.service.pending == 0 or time.monotonic() > deadline):
            self.should_exit = True
        return await super().on_tick(counter)


def make_server(
    app: FastAPI,
    *,
    log_level: str = "info",
    access_log: bool = False,
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    keep_alive_s: int = DEFAULT_KEEP_ALIVE_S,
    drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S,
    **config: Any,
) -> DrainingServer:
    """The uvicorn server ``seqshap serve`` runs (``config``: more ``uvicorn.Config`` options)."""
    cfg = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=access_log,
        http=guarded_protocol(header_timeout_s),
        limit_concurrency=max_connections,
        timeout_keep_alive=keep_alive_s,
        timeout_graceful_shutdown=int(drain_timeout_s),
        **config,
    )
    return DrainingServer(cfg, app, drain_timeout_s)
