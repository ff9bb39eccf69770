"""What the app does to defend itself, as ASGI middleware: security headers on every
response, an API key, and bounded request bodies (size and time).

The API key is a bearer token (``Authorization: Bearer KEY``), compared in constant time.
A browser cannot send that header when it navigates, so ``GET /?token=KEY`` once sets an
``HttpOnly; SameSite=Strict`` cookie (derived from the key, not the key itself) and
redirects to the same page without the token, the way Jupyter does it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import stat
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# JSON, scripts, stylesheets, metrics: nothing there may run or load anything if opened as
# a page. The page and the docs set their own, narrower-than-needed-no-more policies.
DEFAULT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
COOKIE = "seqshap_key"
MIN_KEY_CHARS = 16
MAX_KEY_FILE_BYTES = 4096
# Paths anyone may call with a key set: a load balancer's liveness probe carries no token.
OPEN_PATHS = frozenset({"/api/health"})


class SecurityHeaders:
    """Add :data:`SECURITY_HEADERS` to every response, and :data:`DEFAULT_CSP` where the
    response does not set its own Content-Security-Policy."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                headers.setdefault("Content-Security-Policy", DEFAULT_CSP)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The app's one error shape, ``{"error": message}``."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)


# ------------------------------------------------------------------------------- API key
def read_key_file(path: str | Path) -> str:
    """The key in ``path`` (surrounding whitespace dropped); ``ValueError`` saying what is wrong."""
    p = Path(path)
    try:
        info = p.stat()
    except OSError as e:
        raise ValueError(f"--api-key-file {p}: cannot read it ({e.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"--api-key-file {p}: not a regular file")
    if info.st_size > MAX_KEY_FILE_BYTES:
        raise ValueError(f"--api-key-file {p}: {info.st_size:,} bytes; a key file holds one line (at most 4 KiB)")
    try:
        key = p.read_bytes()[:MAX_KEY_FILE_BYTES].decode("utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"--api-key-file {p}: cannot read it as UTF-8 text ({e})") from None
    return check_key(key, f"--api-key-file {p}")


def check_key(key: str, source: str) -> str:
    """``key`` if it is one line of at least :data:`MIN_KEY_CHARS` printable characters."""
    if not key:
        raise ValueError(f"{source}: the key is empty")
    if any(c.isspace() or not c.isprintable() for c in key):
        raise ValueError(f"{source}: the key must be one word of printable characters (no spaces or newlines)")
    if len(key) < MIN_KEY_CHARS:
        raise ValueError(
            f"{source}: the key is {len(key)} characters; use at least {MIN_KEY_CHARS}, e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return key


def key_file_is_private(path: str | Path) -> bool:
    """False when others than the owner may read the key file."""
    return os.name != "posix" or not (Path(path).stat().st_mode & 0o077)


class ApiKeyAuth:
    """401 unless the request carries the key (bearer token or the cookie ``?token=`` set).

    ``key=None`` lets everything through (the server listens on loopback only, or was told
    ``--no-auth``)."""

    def __init__(self, app: ASGIApp, key: str | None):
        self.app = app
        self.key = key
        # Digests of equal length: compare_digest then takes the same time for any guess.
        self._digest = hashlib.sha256(key.encode()).digest() if key else b""
        self._cookie = hmac.new(key.encode(), b"seqshap page cookie", hashlib.sha256).hexdigest() if key else ""

    def _matches(self, token: str) -> bool:
        return hmac.compare_digest(hashlib.sha256(token.encode("utf-8", "replace")).digest(), self._digest)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.key is None or scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        token = next((v for k, v in query if k == "token"), None)
        if token is not None and scope["method"] in ("GET", "HEAD"):
            if not self._matches(token):
                await self._refuse(scope, receive, send, "the token in the address is not this server's API key")
                return
            # Set the cookie and drop the token from the address bar (and from any later Referer).
            rest = urlencode([(k, v) for k, v in query if k != "token"])
            path = "/" + (scope.get("root_path", "") + scope["path"]).lstrip("/")  # never "//host": no open redirect
            secure = "; Secure" if scope.get("scheme") == "https" else ""
            response = RedirectResponse(path + (f"?{rest}" if rest else ""), status_code=303)
            response.headers["Set-Cookie"] = f"{COOKIE}={self._cookie}; Path=/; HttpOnly; SameSite=Strict{secure}"
            await response(scope, receive, send)
            return
        auth = headers.get("authorization", "")
        scheme, _, credentials = auth.partition(" ")
        if auth and scheme.lower() == "bearer":
            if self._matches(credentials.strip()):
                await self.app(scope, receive, send)
                return
            await self._refuse(scope, receive, send, "the bearer token is not this server's API key")
            return
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header is no key
            cookie = SimpleCookie()
        morsel = cookie.get(COOKIE)
        if morsel is not None and hmac.compare_digest(morsel.value.encode(), self._cookie.encode()):
            await self.app(scope, receive, send)
            return
        why = "a wrong or old page cookie" if morsel is not None else "no API key"
        if auth and scheme.lower() != "bearer":
            why = f"an Authorization header of scheme {scheme[:20]!r}; use Bearer"
        await self._refuse(scope, receive, send, f"this server needs its API key, and the request had {why}")

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, why: str) -> None:
        response = error_response(
            401,
            f"{why}: send Authorization: Bearer <key> (in a browser, open /?token=<key> once)",
            {"WWW-Authenticate": 'Bearer realm="seqshap"'},
        )
        await response(scope, receive, send)


# --------------------------------------------------------------------------- body limits
class _BodyRefused(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


class BodyLimit:
    """Answer 413 to request bodies over ``max_bytes`` before they are read into memory, and
    408 to a body that has not all arrived ``timeout_s`` after the app first asked for it
    (a client trickling a body byte by byte holds a request slot no longer than that)."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float = 30.0):
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await error_response(413, f"the request body is over {self.max_bytes:,} bytes")(scope, receive, send)
            return
        seen, started, complete = 0, False, False
        refused: _BodyRefused | None = None
        loop = asyncio.get_running_loop()
        deadline: float | None = None

        async def limited_receive() -> Message:
            nonlocal seen, complete, refused, deadline
            if complete:  # the body is in; what follows is a disconnect, whenever it comes
                return await receive()
            deadline = deadline if deadline is not None else loop.time() + self.timeout_s
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                refused = _BodyRefused(408, f"the request body did not arrive within {self.timeout_s:g} s")
                raise refused from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if seen > self.max_bytes:  # chunked body without (or lying about) Content-Length
                    refused = _BodyRefused(413, f"the request body is over {self.max_bytes:,} bytes")
                    raise refused
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused is not None:
                # FastAPI turns any error while reading the body into its own 400; answer
                # what really happened instead, and drop the app's reply.
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await error_response(refused.status, refused.message)(scope, receive, send)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyRefused as e:
            if not started:
                await error_response(e.status, e.message)(scope, receive, send)
