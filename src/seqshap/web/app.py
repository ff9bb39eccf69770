"""FastAPI app behind ``seqshap serve``: a page to paste a review and see why the model
decided, and a JSON API for the same explanations.

Concurrency model (one sentence for the README): the model and its explainers are
loaded once in :func:`create_app`; every explanation runs on **one worker thread**
under one lock, and at most ``queue_limit`` requests may be admitted (running plus
waiting) — the next one gets ``503`` with ``Retry-After`` at once instead of piling up.

Why one thread: the explainer rewrites the network's module tree while it works and the
probability and logit explainers share that one network, so explanations cannot overlap
anyway; a single thread also leaves torch's own intra-op threads the whole CPU.

Every error is JSON ``{"error": "<one sentence saying what is wrong>"}`` with a 4xx
status for bad requests (``errors`` lists each field problem for validation errors), and
500 when the model produces NaN or infinity for a text (never a 200 with nulls).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..attribution import OUTPUT_SPACES, DeepExplainer, Explanation, NonFiniteError, NoWordsError
from ..background import Background, resolve_background
from ..store import SeqshapModel, load

# The page explains a sigmoid model's probability or its logit; "raw" is for imported linear heads.
OUTPUTS = tuple(o for o in OUTPUT_SPACES if o != "raw")
OutputSpace = Literal[OUTPUTS]  # type: ignore[valid-type]  # Literal[("a", "b")] is Literal["a", "b"]
STATIC_DIR = Path(__file__).resolve().parent / "static"
# The page runs only our own script file: even if escaping ever failed, an injected inline
# handler (<img onerror=...>) or <script> would not run. Inline *styles* are needed by the
# server-rendered pictures.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'none'"
)
# Browsers honour frame-ancestors only from the header (and warn about it in a <meta>).
PAGE_CSP_HEADER = PAGE_CSP + "; frame-ancestors 'none'"
DEFAULT_QUEUE_LIMIT = 32
log = logging.getLogger("seqshap.web")


# ------------------------------------------------------------------------------ errors
class ApiError(Exception):
    """An error answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class Overloaded(ApiError):
    """Too many explanations admitted already: 503, try again shortly."""

    def __init__(self, limit: int):
        super().__init__(
            503,
            f"the server is busy ({limit} explanations already running or waiting); try again in a moment",
            {"Retry-After": "1"},
        )


def _error(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


def _json_type(v: Any) -> str:
    """The JSON name of a Python value parsed from JSON (for 'got a number' messages)."""
    if v is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
        bytes: "raw bytes",
    }.get(type(v), type(v).__name__)


def _field(loc: Sequence[Any]) -> str:
    """``("body", "texts", 2)`` -> ``texts[2]``."""
    out = ""
    for part in loc:
        if part == "body" and not out:
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def describe_validation(errors: Sequence[dict], fields: Sequence[str]) -> tuple[int, str, list[dict]]:
    """Turn pydantic's errors into (status, one clear sentence, per-field list)."""
    items: list[dict] = []
    for e in errors:
        kind, loc, value = e.get("type", ""), e.get("loc", ()), e.get("input")
        name = _field(loc)
        if kind == "json_invalid":
            why = (e.get("ctx") or {}).get("error", "")
            return 400, f"the request body is not valid JSON ({why})", []
        if not name:  # the body as a whole is wrong
            if kind == "missing":
                return (
                    400,
                    (
                        'the request body is empty; send a JSON object such as {"text": "..."} '
                        "with Content-Type: application/json"
                    ),
                    [],
                )
            if isinstance(value, (bytes, str)):
                return 400, ("the request body is not JSON; send a JSON object with Content-Type: application/json"), []
            return 400, f"the request body must be a JSON object, got {_json_type(value)}", []
        if kind == "missing":
            msg = f"missing field '{name}'"
        elif kind == "extra_forbidden":
            msg = f"unknown field '{name}' (allowed: {', '.join(fields)})"
        elif kind == "literal_error":
            shown = (
                json.dumps(value)[:60]
                if isinstance(value, (str, int, float, bool)) or value is None
                else _json_type(value)
            )
            msg = f"{name} must be one of {', '.join(repr(o) for o in OUTPUTS)}, got {shown}"
        elif kind == "string_type":
            msg = f"{name} must be a string, got {_json_type(value)}"
        elif kind == "bool_type":
            msg = f"{name} must be true or false, got {_json_type(value)}"
        elif kind == "list_type":
            msg = f"{name} must be a list of strings, got {_json_type(value)}"
        elif kind == "too_short" and name == "texts":
            msg = "texts is an empty list; give at least one text"
        else:
            msg = f"{name}: {e.get('msg', 'invalid value')}"
        items.append({"field": name, "message": msg})
    shown = "; ".join(i["message"] for i in items[:5])
    if len(items) > 5:
        shown += f"; and {len(items) - 5} more"
    return 422, shown or "invalid request", items


def check_text(text: str, max_chars: int, name: str) -> None:
    """Raise :class:`ApiError` when a text cannot be explained, saying why."""
    if not text.strip():
        raise ApiError(422, f"{name} is empty (or only whitespace); paste a review to explain")
    if len(text) > max_chars:
        raise ApiError(413, f"{name} is {len(text):,} characters long; the limit is {max_chars:,}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:  # JSON allows lone surrogates ("\ud800"); UTF-8 cannot carry them
        raise ApiError(422, f"{name} contains invalid Unicode (an unpaired surrogate at character {e.start})") from None


class BodyLimit:
    """Answer 413 to request bodies over ``max_bytes`` before they are read into memory."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_big = _error(413, f"the request body is over {self.max_bytes:,} bytes")
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await too_big(scope, receive, send)
            return
        seen, started, overflow = 0, False, False

        async def limited_receive() -> Message:
            nonlocal seen, overflow
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:  # chunked body without (or lying about) Content-Length
                    overflow = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if overflow:
                # FastAPI turns any error while reading the body into its own 400; answer
                # what really happened instead, and drop the app's reply.
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await too_big(scope, receive, send)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLarge:
            if not started:
                await too_big(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


# ----------------------------------------------------------------------------- service
class ExplainService:
    """The loaded model, one explainer per output space, one worker thread, a bounded queue."""

    def __init__(self, model: SeqshapModel, background_texts: Sequence[str], queue_limit: int = DEFAULT_QUEUE_LIMIT):
        if queue_limit < 1:
            raise ValueError(f"queue_limit must be at least 1, got {queue_limit}")
        background = list(background_texts)
        if not background:
            raise ValueError("the explainer needs at least one background text")
        self.model, self.queue_limit, self.background_size = model, int(queue_limit), len(background)
        self.explainers: dict[str, DeepExplainer] = {}
        self.unavailable: dict[str, str] = {}
        for output in OUTPUTS:
            try:
                self.explainers[output] = DeepExplainer(model, background, output=output)
            except ValueError as e:  # e.g. a model whose output is not a sigmoid has no logit space
                self.unavailable[output] = str(e)
        if not self.explainers:
            raise ValueError(f"this model cannot be explained: {self.unavailable}")
        self.lock = threading.Lock()  # held while anything runs the network
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seqshap-explain")
        self._count_lock = threading.Lock()
        self._admitted = 0

    @property
    def pending(self) -> int:
        """Requests admitted and not finished (running + waiting)."""
        return self._admitted

    def explain_now(self, texts: Sequence[str], output: str) -> list[Explanation]:
        """Explain in the calling thread (blocks while another explanation runs)."""
        with self.lock:
            return self.explainers[output].explain(list(texts))

    def _release(self, _future: Any = None) -> None:
        with self._count_lock:
            self._admitted -= 1

    async def explain(self, texts: Sequence[str], output: str) -> list[Explanation]:
        """Explain on the worker thread; :class:`Overloaded` when the queue is full."""
        if output not in self.explainers:
            raise ApiError(
                422,
                f"output {output!r} is not available for this model ({self.unavailable.get(output, 'unknown output')})",
            )
        with self._count_lock:
            if self._admitted >= self.queue_limit:
                raise Overloaded(self.queue_limit)
            self._admitted += 1
        try:
            future = self._executor.submit(self.explain_now, list(texts), output)
        except RuntimeError:  # executor already shut down
            self._release()
            raise ApiError(503, "the server is shutting down") from None
        # Released when the work really ends (also if the client went away and the
        # awaiting task was cancelled), so the bound holds for the worker, not just the handler.
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


# ---------------------------------------------------------------------------- schemas
class ExplainRequest(BaseModel):
    """One text to explain."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"text": "A moving, beautifully acted film.", "output": "probability"}]},
    )
    text: StrictStr = Field(description="the review to explain")
    output: OutputSpace = Field("probability", description="explain the positive-class probability or its logit")
    html: StrictBool = Field(False, description="also return the rendered pictures as an HTML fragment")


class BatchRequest(BaseModel):
    """Several texts to explain in one request."""

    model_config = ConfigDict(extra="forbid")
    texts: list[StrictStr] = Field(min_length=1, description="the reviews to explain")
    output: OutputSpace = "probability"
    html: StrictBool = False


class TopWord(BaseModel):
    """One of the words with the largest |attribution|."""

    pos: int = Field(description="its first token position")
    positions: list[int] = Field(description="every token position read from it")
    word: str = Field(description="the word as written in the text")
    value: float = Field(description="the summed attribution of its positions")


class ExplainResponse(BaseModel):
    """One explanation in its one JSON form, :meth:`seqshap.Explanation.to_dict` (``seqshap
    explain --json`` prints the same), plus ``html`` when asked for. ``values[i]`` is the
    attribution of ``tokens[i]``; they sum to ``prediction - base_value`` up to
    ``completeness_error``. ``visible`` marks tokens a person should see (not padding)."""

    model: str = Field(description="the model's name")
    method: str = Field(description='"deepshap" (or "deeplift" for a one-text background)')
    output: OutputSpace = Field(description="what is explained: the probability or the logit")
    output_index: int = Field(description="which model output is explained")
    output_name: str | None = Field(description='the class whose output is explained, e.g. "positive"')
    text: str | None = Field(description="the text explained")
    tokens: list[str] = Field(description="the tokens the model read, padding included")
    ids: list[int] = Field(description="their vocabulary ids")
    values: list[float] = Field(description="the attribution of each token")
    visible: list[bool] = Field(description="tokens read from the text (not padding or start tokens)")
    spans: list[tuple[int, int] | None] | None = Field(
        description="[start, end) character offsets of each token in text; null for padding"
    )
    word_ids: list[int | None] | None = Field(description="which word of the text each token belongs to")
    base_value: float = Field(description="the mean output over the background")
    prediction: float = Field(description="the model's output for this text")
    completeness_error: float = Field(description="|sum(values) - (prediction - base_value)|")
    label: str | None = Field(
        description='the predicted class, "positive" or "negative" for two-class models (null for raw-output models)'
    )
    true_label: str | None = Field(description="the true class when it was given (never by this API)")
    classes: list[str] | None = Field(description="the class names, in label order")
    top: list[TopWord] = Field(description="the 10 words with the largest |value|, largest first")
    meta: dict[str, Any] = Field(description="anything else the explainer recorded")
    html: str | None = Field(None, description='the rendered pictures, only when the request said "html": true')


class BatchResponse(BaseModel):
    explanations: list[ExplainResponse]


def explanation_json(exp: Explanation, include_html: bool = False) -> dict[str, Any]:
    """The API's view of one explanation: its one JSON form, plus the page's HTML fragment when asked."""
    d = exp.to_dict()
    if include_html:
        from ..viz.html import explanation_html

        d["html"] = explanation_html(exp)
    return d


# -------------------------------------------------------------------------------- page
def render_page(info: dict[str, Any]) -> str:
    """The page: a form, a status line, a result area filled by ``static/app.js``."""
    from ..viz.html import esc, standalone_page

    acc = info.get("test_accuracy")
    facts = [
        f"model <b>{esc(info['name'])}</b> ({esc(info['arch'])})",
        f"{info['vocab_size']:,} words",
        f"reads the last {info['maxlen']} words",
    ]
    if isinstance(acc, (int, float)):
        facts.append(f"test accuracy {acc:.1%}")
    facts.append(f"background: {esc(info['background'])}")
    options = "".join(f'<option value="{esc(o)}">{esc(o)}</option>' for o in info["outputs"])
    body = f"""
<h1>seqshap — why did the model decide?</h1>
<p class="muted" id="model-info">{" · ".join(facts)}</p>
<form id="explain-form" data-max-chars="{int(info["max_chars"])}" autocomplete="off">
  <label for="review" style="display:block;font-weight:600;margin:14px 0 6px">Paste a movie review</label>
  <textarea id="review" name="text" rows="7" maxlength="{int(info["max_chars"])}" required
    placeholder="e.g. The acting was wonderful, but the plot was a dull, predictable mess."
    style="width:100%;box-sizing:border-box;font-family:inherit;font-size:15px;line-height:1.5;padding:8px;
           border:1px solid #bbb;border-radius:6px"></textarea>
  <div style="display:flex;gap:12px;align-items:center;margin-top:8px;flex-wrap:wrap">
    <button id="explain-button" type="submit"
      style="font-size:15px;padding:7px 18px;border-radius:6px;border:1px solid #0b62c4;background:#0b62c4;
             color:#fff;cursor:pointer">Explain</button>
    <label class="muted">explain the <select id="output" name="output">{options}</select></label>
    <span class="muted" id="char-count">0 / {int(info["max_chars"]):,} characters</span>
    <span class="muted">Ctrl+Enter explains too</span>
  </div>
</form>
<div id="status" role="status" aria-live="polite" class="muted" style="margin:14px 0 4px;min-height:1.4em"></div>
<div id="result"></div>
<p class="muted" style="margin-top:40px">Exact DeepSHAP: the word values add up to the prediction minus the
base value (the mean prediction over the background). JSON API: <code>POST /api/explain</code>,
<code>POST /api/explain/batch</code>, <code>GET /api/model</code> — see <a href="/docs">/docs</a>.</p>
<script src="/static/app.js" defer></script>"""
    return standalone_page(f"seqshap — {info['name']}", body, csp=PAGE_CSP)


# --------------------------------------------------------------------------------- app
def create_app(
    model_dir: str | Path | None = None,
    max_chars: int = 20000,
    max_batch: int = 32,
    queue_limit: int = DEFAULT_QUEUE_LIMIT,
    background_texts: Sequence[str] | Background | None = None,
    background: int = 100,
    imdb: str | Path | None = None,
    model: SeqshapModel | None = None,
) -> FastAPI:
    """The FastAPI app; loads the model and builds the explainers now (once).

    ``background_texts`` defaults to :func:`seqshap.background.default_background` of
    ``background`` texts (the model's ``background.json``, or IMDB reviews from ``imdb``).
    ``model`` skips loading ``model_dir``.
    """
    if max_chars < 1 or max_batch < 1:
        raise ValueError(f"max_chars and max_batch must be at least 1, got {max_chars} and {max_batch}")
    model = model if model is not None else load(model_dir)  # first: a bad --model fails fast
    chosen = resolve_background(background_texts, background, imdb, model)
    service = ExplainService(model, chosen.texts, queue_limit=queue_limit)
    info = describe_model(model, service, chosen, max_chars, max_batch)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        service.close()  # queued work is dropped; the running explanation finishes on its own

    app = FastAPI(
        title="seqshap",
        version=__version__,
        lifespan=lifespan,
        description="Exact DeepSHAP explanations of a recurrent text classifier, word by word. "
        'Errors are JSON `{"error": "..."}` with a 4xx status; 503 means busy.',
    )
    app.state.service, app.state.info = service, info
    # JSON escapes make one character up to 6 bytes ("\u00e9"); anything bigger is refused unread.
    app.add_middleware(BodyLimit, max_bytes=6 * max_chars * max_batch + 64 * 1024)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _add_error_handlers(app)
    _add_routes(app, service, info)
    return app


def describe_model(
    model: SeqshapModel, service: ExplainService, background: Background, max_chars: int, max_batch: int
) -> dict[str, Any]:
    """What ``GET /api/model`` answers and the page shows: the model, its background, the limits."""
    cfg = model.config
    return {
        "name": model.name,
        "arch": cfg["arch"],
        "vocab_size": int((cfg.get("model") or {}).get("vocab_size") or model.vocab.num_words),
        "maxlen": model.maxlen,
        "test_accuracy": model.metrics.get("test_accuracy"),
        "background_size": service.background_size,
        "background": background.source,
        "outputs": list(service.explainers),
        "max_chars": max_chars,
        "max_batch": max_batch,
        "queue_limit": service.queue_limit,
        "version": __version__,
    }


def _add_error_handlers(app: FastAPI) -> None:
    """Every error as ``{"error": "<one sentence>"}``, never a traceback or FastAPI's own shape."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = list((BatchRequest if request.url.path.endswith("/batch") else ExplainRequest).model_fields)
        status, message, items = describe_validation(exc.errors(), fields)
        return _error(status, message, errors=items) if items else _error(status, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = {
            404: f"no such page: {request.url.path}",
            405: f"{request.method} is not allowed on {request.url.path}",
        }.get(exc.status_code, exc.detail)
        return _error(exc.status_code, str(message), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _crash(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return _error(500, f"internal error ({type(exc).__name__}); see the server log")


def _add_routes(app: FastAPI, service: ExplainService, info: dict[str, Any]) -> None:
    """The page, the explain endpoints, health and model info."""
    page = render_page(info)
    max_chars, max_batch = info["max_chars"], info["max_batch"]

    async def run(texts: list[str], output: str, include_html: bool, batch: bool = False) -> list[dict[str, Any]]:
        def field(i: int | None) -> str:
            return f"texts[{i}]" if batch and i is not None else "text"

        try:
            exps = await service.explain(texts, output)
        except NoWordsError as e:  # the explainer's one check of texts (the CLI and Python refuse them too)
            raise ApiError(
                422, f"{field(e.index)} has no words (only punctuation or symbols); nothing to explain"
            ) from None
        except ValueError as e:  # the explainer refused this input; say why
            raise ApiError(422, str(e)) from None
        except NonFiniteError as e:  # a broken model: never a 200 with nulls
            log.error("non-finite model output: %s", e)
            raise ApiError(
                500, f"the model produced NaN or infinity for {field(e.row)} ({e.reason}); nothing to explain"
            ) from None
        return [explanation_json(e, include_html) for e in exps]

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(
            page,
            headers={
                "Content-Security-Policy": PAGE_CSP_HEADER,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )

    # exclude_unset: "html" is left out unless asked for; the form's nulls (label, true_label) stay.
    @app.post(
        "/api/explain",
        response_model=ExplainResponse,
        response_model_exclude_unset=True,
        responses={
            400: {"description": "body is not a JSON object"},
            413: {"description": "text over the character limit"},
            422: {"description": "empty text, a text without words, wrong types, unknown output"},
            500: {"description": "the model produced NaN or infinity for this text (a broken model)"},
            503: {"description": "busy: too many explanations waiting"},
        },
    )
    async def explain(req: ExplainRequest) -> dict[str, Any]:
        """Explain one text word by word."""
        check_text(req.text, max_chars, "text")
        return (await run([req.text], req.output, req.html))[0]

    @app.post(
        "/api/explain/batch",
        response_model=BatchResponse,
        response_model_exclude_unset=True,
        responses={
            400: {"description": "body is not a JSON object"},
            413: {"description": "too many texts, or a text over the character limit"},
            422: {"description": "empty text, a text without words, wrong types, unknown output"},
            500: {"description": "the model produced NaN or infinity for one of the texts (a broken model)"},
            503: {"description": "busy: too many explanations waiting"},
        },
    )
    async def explain_batch(req: BatchRequest) -> dict[str, Any]:
        """Explain up to ``max_batch`` texts (one queue slot for the whole batch)."""
        if len(req.texts) > max_batch:
            raise ApiError(413, f"the batch has {len(req.texts)} texts; the limit is {max_batch} per request")
        for i, text in enumerate(req.texts):
            check_text(text, max_chars, f"texts[{i}]")
        return {"explanations": await run(req.texts, req.output, req.html, batch=True)}

    @app.get("/api/health")
    async def health() -> dict[str, Any]:
        """Liveness plus the queue: explanations admitted now and the limit."""
        return {
            "status": "ok",
            "model": info["name"],
            "version": __version__,
            "pending": service.pending,
            "queue_limit": service.queue_limit,
        }

    @app.get("/api/model")
    async def model_info() -> dict[str, Any]:
        """Architecture, vocabulary size, maxlen, test accuracy, background and the server's limits."""
        return dict(info)
