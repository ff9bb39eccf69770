"""FastAPI app behind ``seqshap serve``: a page to paste a review and see why the model
decided, and a JSON API for the same explanations.

Concurrency model (one sentence for the README): the model and its explainers are
loaded once in :func:`create_app`; concurrent requests are gathered into explainer calls
(:mod:`.batching`: up to ``max_batch`` texts of the same output, waiting at most
``batch_wait_ms`` for companions) that run one at a time on **one worker thread**, and at
most ``queue_limit`` requests may be admitted (running plus waiting) — the next one gets
``503`` with ``Retry-After`` at once instead of piling up.

Why one thread: the explainer rewrites the network's module tree while it works and the
probability and logit explainers share that one network, so explanations cannot overlap
anyway; a single thread also leaves torch's own intra-op threads the whole CPU. Batching
is where the speed comes from: 8 reviews in one call cost a few times one review, not 8x.

Every error is JSON ``{"error": "<one sentence saying what is wrong>"}`` with a 4xx status
for bad requests (``errors`` lists each field problem for validation errors), 401 without
the API key when one is set, 503 when busy or shutting down, and 500 when the model
produces NaN or infinity for a text (never a 200 with nulls). The other defences (security
headers, body limits, the API key) are in :mod:`.security`; ``/metrics`` in :mod:`.metrics`;
the offline ``/docs`` in :mod:`.docs`; uvicorn's settings in :mod:`.server`.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import AsyncIterator, Hashable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.types import Receive

from .. import __version__
from ..attribution import OUTPUT_SPACES, DeepExplainer, Explanation, NonFiniteError, NoWordsError
from ..background import Background, resolve_background
from ..data.pairs import pair
from ..store import SeqshapModel, load
from .batching import Batcher, BatchObserver, Finisher, QueueFull, ShuttingDown
from .docs import add_docs
from .metrics import Metrics, MetricsMiddleware
from .security import DEFAULT_CSP, SECURITY_HEADERS, ApiKeyAuth, BodyLimit, SecurityHeaders, check_key

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
DEFAULT_MAX_BATCH = 32
# Long enough for the clients one call answered to send their next requests in time for the
# next call on a busy machine (10 ms was not: they settled into two half batches taking
# turns), short next to one call (~0.2-1 s for the shipped model). A lone request after a
# lone request does not wait at all.
DEFAULT_BATCH_WAIT_MS = 50.0
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
        if name.startswith("target."):  # one message for the str | int union, not one per member
            name, msg = "target", f"target must be a class name or index, got {_json_type(value)}"
            if any(i["field"] == name for i in items):
                continue
        elif kind == "missing":
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


# ----------------------------------------------------------------------------- service
class ExplainService:
    """The loaded model, one explainer per output space, and the batcher that feeds them."""

    def __init__(
        self,
        model: SeqshapModel,
        background_texts: Sequence[str],
        queue_limit: int = DEFAULT_QUEUE_LIMIT,
        max_batch: int = DEFAULT_MAX_BATCH,
        batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS,
        observer: BatchObserver | None = None,
    ):
        if queue_limit < 1:
            raise ValueError(f"queue_limit must be at least 1, got {queue_limit}")
        background = list(background_texts)
        if not background:
            raise ValueError("the explainer needs at least one background text")
        self.model, self.background_size = model, len(background)
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
        self.batcher = Batcher(
            self.explain_now,
            max_batch=max_batch,
            wait_s=batch_wait_ms / 1000,
            queue_limit=queue_limit,
            observer=observer,
        )

    @property
    def queue_limit(self) -> int:
        return self.batcher.queue_limit

    @property
    def pending(self) -> int:
        """Requests admitted and not finished (running + waiting)."""
        return self.batcher.pending

    @property
    def draining(self) -> bool:
        """True once a stop signal came: new explanations get 503."""
        return self.batcher.draining

    @property
    def targets(self) -> list[str]:
        """The classes a request may name as its ``target`` (a sigmoid model's output is its last class)."""
        explainer = next(iter(self.explainers.values()))
        classes = list(explainer.output_classes(explainer.n_outputs) or ())
        return classes[-1:] if explainer.n_outputs == 1 else classes

    def explain_now(self, key: Hashable, texts: Sequence[str]) -> list[Explanation]:
        """Explain in the calling thread (blocks while another explanation runs). ``key`` is
        the batch key ``(output, target)``: ``target`` ``None`` explains the default output."""
        output, target = key if isinstance(key, tuple) else (key, None)
        with self.lock:
            return self.explainers[output].explain(list(texts), target=target)

    async def explain(
        self,
        texts: Sequence[str],
        output: str,
        target: Any = None,
        receive: Receive | None = None,
        finish: Finisher | None = None,
    ) -> Any:
        """Explain through the batcher, grouped with other requests of the same output and
        target: the explanations (passed through ``finish`` on the worker thread), or ``None``
        when the client (``receive``) hung up before its turn came. :class:`Overloaded` when
        the queue is full."""

        if output not in self.explainers:
            raise ApiError(
                422,
                f"output {output!r} is not available for this model ({self.unavailable.get(output, 'unknown output')})",
            )
        try:
            return await self.batcher.explain(list(texts), (output, target), receive, finish)
        except QueueFull:
            raise Overloaded(self.queue_limit) from None
        except ShuttingDown:
            raise ApiError(503, "the server is shutting down; try again in a moment", {"Retry-After": "5"}) from None

    def drain(self) -> None:
        """Refuse new explanations from now on (503); admitted ones finish."""
        self.batcher.drain()

    def close(self) -> None:
        self.batcher.close()


# ---------------------------------------------------------------------------- schemas
class ExplainRequest(BaseModel):
    """One text to explain."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"text": "A moving, beautifully acted film.", "output": "probability"}]},
    )
    text: StrictStr = Field(description="the review to explain")
    pair: StrictStr | None = Field(
        None,
        description="the second text of a sentence pair, for a Hugging Face model trained on pairs (NLI, "
        "paraphrase); the words of both texts are explained",
    )
    output: OutputSpace = Field("probability", description="explain the positive-class probability or its logit")
    target: StrictStr | StrictInt | None = Field(
        None,
        description="the class to explain, by name or index (GET /api/model lists them); default: the "
        "positive class of a two-class model, the predicted class for more",
    )
    html: StrictBool = Field(False, description="also return the rendered pictures as an HTML fragment")


class BatchRequest(BaseModel):
    """Several texts to explain in one request."""

    model_config = ConfigDict(extra="forbid")
    texts: list[StrictStr] = Field(min_length=1, description="the reviews to explain")
    output: OutputSpace = "probability"
    target: StrictStr | StrictInt | None = None
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
        description='the predicted class, "positive" or "negative" for two-class models (null for raw-output '
        "models); for a multi-label model the labels it gives the text, comma-separated"
    )
    true_label: str | None = Field(description="the true class when it was given (never by this API)")
    classes: list[str] | None = Field(description="the class names, in label order")
    multi_label: bool = Field(
        description="whether each class is a label of its own (a sigmoid each, any number of them on at once)"
    )
    top: list[TopWord] = Field(description="the 10 words with the largest |value|, largest first")
    meta: dict[str, Any] = Field(description="anything else the explainer recorded")
    html: str | None = Field(None, description='the rendered pictures, only when the request said "html": true')


class BatchResponse(BaseModel):
    explanations: list[ExplainResponse]


class FieldProblem(BaseModel):
    field: str = Field(description='the field, e.g. "texts[2]"')
    message: str = Field(description="what is wrong with it")


class ErrorResponse(BaseModel):
    """Every error: one sentence saying what is wrong (and, for invalid fields, each one)."""

    error: str = Field(description="what is wrong, in one sentence")
    errors: list[FieldProblem] | None = Field(None, description="each invalid field (validation errors only)")


def documented(errors: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """FastAPI ``responses`` for error statuses, each with the one error shape."""
    return {status: {"model": ErrorResponse, "description": why} for status, why in errors.items()}


UNAUTHORISED = "the server has an API key and the request did not carry it (Authorization: Bearer <key>)"


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
    targets = info.get("targets") or []
    choose = ""
    if len(targets) > 1:  # a model with one output per class: pick the class to explain
        first = '<option value="" selected>the predicted class</option>' if len(targets) > 2 else ""
        last = len(targets) - 1 if len(targets) == 2 else -1  # two classes: the positive one, as the API
        choose = (
            '<label class="muted">why <select id="target" name="target">'
            + first
            + "".join(
                f'<option value="{esc(c)}"{" selected" if i == last else ""}>{esc(c)}</option>'
                for i, c in enumerate(targets)
            )
            + "</select></label>"
        )
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
    {choose}
    <span class="muted" id="char-count">0 / {int(info["max_chars"]):,} characters</span>
    <span class="muted">Ctrl+Enter explains too</span>
  </div>
</form>
<div id="status" role="status" aria-live="polite" class="muted" style="margin:14px 0 4px;min-height:1.4em"></div>
<div id="result"></div>
<p class="muted" style="margin-top:40px">Exact DeepSHAP: the word values and the padding/start share add up
to the prediction minus the base value (the mean prediction over the background).
JSON API: <code>POST /api/explain</code>, <code>POST /api/explain/batch</code>,
<code>GET /api/model</code> — see <a href="/docs">/docs</a>.</p>
<script src="/static/app.js" defer></script>"""
    return standalone_page(f"seqshap — {info['name']}", body, csp=PAGE_CSP)


# --------------------------------------------------------------------------------- app
def create_app(
    model_dir: str | Path | None = None,
    max_chars: int = 20000,
    max_batch: int = DEFAULT_MAX_BATCH,
    queue_limit: int = DEFAULT_QUEUE_LIMIT,
    background_texts: Sequence[str] | Background | None = None,
    background: int = 100,
    imdb: str | Path | None = None,
    model: SeqshapModel | None = None,
    batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS,
    api_key: str | None = None,
    body_timeout_s: float = 30.0,
) -> FastAPI:
    """The FastAPI app; loads the model and builds the explainers now (once).

    ``background_texts`` defaults to :func:`seqshap.background.default_background` of
    ``background`` texts (the model's ``background.json``, or IMDB reviews from ``imdb``).
    ``model`` skips loading ``model_dir``. ``max_batch`` bounds both a batch request and one
    explainer call; ``batch_wait_ms`` is how long a lone request waits for others to share its
    call. ``api_key``: every route but ``/api/health`` then needs it (see :mod:`.security`).
    """
    if max_chars < 1 or max_batch < 1:
        raise ValueError(f"max_chars and max_batch must be at least 1, got {max_chars} and {max_batch}")
    if batch_wait_ms < 0 or body_timeout_s <= 0:
        raise ValueError(f"batch_wait_ms must be >= 0 and body_timeout_s > 0, got {batch_wait_ms}, {body_timeout_s}")
    if api_key is not None:
        check_key(api_key, "api_key")
    model = model if model is not None else load(model_dir)  # first: a bad --model fails fast
    chosen = resolve_background(background_texts, background, imdb, model)
    metrics: Metrics | None = None
    service = ExplainService(
        model,
        chosen.texts,
        queue_limit=queue_limit,
        max_batch=max_batch,
        batch_wait_ms=batch_wait_ms,
        observer=lambda *call: metrics.observe_batch(*call) if metrics is not None else None,
    )
    metrics = Metrics(pending=lambda: service.pending, waiting=lambda: service.batcher.waiting)
    info = describe_model(model, service, chosen, max_chars, max_batch)
    info["batch_wait_ms"] = batch_wait_ms

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        service.close()  # waiting work is told the server stops; the running call finishes on its own

    app = FastAPI(
        title="seqshap",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load their assets from a CDN; .docs serves them itself
        redoc_url=None,
        description="Exact DeepSHAP explanations of a text classifier, word by word. "
        'Errors are JSON `{"error": "..."}` with a 4xx status; 401 without the API key (when the server has '
        "one: `Authorization: Bearer <key>`); 503 means busy or shutting down (see `Retry-After`).",
    )
    app.state.service, app.state.info, app.state.metrics = service, info, metrics
    # Outermost last: headers on every answer (401s and 413s too), each answer counted,
    # then the key, then the body limits.
    # JSON escapes make one character up to 6 bytes ("\u00e9"); anything bigger is refused unread.
    app.add_middleware(BodyLimit, max_bytes=6 * max_chars * max_batch + 64 * 1024, timeout_s=body_timeout_s)
    app.add_middleware(ApiKeyAuth, key=api_key)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    add_docs(app)
    _add_error_handlers(app)
    _add_routes(app, service, info, metrics)
    return app


# An absolute path (POSIX, or Windows with a drive letter): its folders say where the server's files
# live, which is nobody's business without a shell on the host. Only the file name is kept.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/\\])(?:[A-Za-z]:)?[/\\](?:[^\s/\\()'\",;]+[/\\])*([^\s/\\()'\",;]*)")


def without_paths(text: str) -> str:
    """``text`` with every absolute path cut to its file name (``/home/me/data/train.csv`` ->
    ``train.csv``): what ``/api/model`` and the page say about the training data and background."""
    return _ABSOLUTE_PATH.sub(lambda m: m.group(1), text)


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
        "background": without_paths(background.source),
        "outputs": list(service.explainers),
        "classes": list(model.classes),
        "targets": service.targets,
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
        # Answered outside the middleware (by Starlette's outermost error handler): headers added here.
        headers = {**SECURITY_HEADERS, "Content-Security-Policy": DEFAULT_CSP}
        return _error(500, f"internal error ({type(exc).__name__}); see the server log", headers)


def _add_routes(app: FastAPI, service: ExplainService, info: dict[str, Any], metrics: Metrics) -> None:
    """The page, the explain endpoints, health, model info and metrics."""
    page = render_page(info)
    max_chars, max_batch = info["max_chars"], info["max_batch"]

    async def run(
        texts: list[str], output: str, include_html: bool, request: Request, batch: bool = False, target: Any = None
    ) -> list[dict[str, Any]] | None:
        """The explanations' JSON, or ``None`` when the client went away before its turn.
        Requests share explainer calls by (``output``, ``target``)."""

        def field(i: int | None) -> str:
            return f"texts[{i}]" if batch and i is not None else "text"

        try:
            # The JSON (and pictures) are made on the worker thread, off the event loop.
            answers = await service.explain(
                texts,
                output,
                target=target,
                receive=request.receive,
                finish=lambda exps: [explanation_json(e, include_html) for e in exps],
            )
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
        return answers

    @app.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_CSP_HEADER})

    # Answered to nobody: the client hung up before its turn, so its work was dropped
    # (nginx's "client closed request"; it shows in /metrics).
    gone = Response(status_code=499)

    # exclude_unset: "html" is left out unless asked for; the form's nulls (label, true_label) stay.
    @app.post(
        "/api/explain",
        response_model=ExplainResponse,
        response_model_exclude_unset=True,
        responses=documented(
            {
                400: "body is not a JSON object",
                401: UNAUTHORISED,
                408: "the request body did not arrive in time",
                413: "text over the character limit",
                422: "empty text, a text without words, wrong types, unknown output",
                500: "the model produced NaN or infinity for this text (a broken model)",
                503: "busy (too many explanations waiting) or shutting down; see Retry-After",
            }
        ),
    )
    async def explain(req: ExplainRequest, request: Request) -> Any:
        """Explain one text word by word."""
        check_text(req.text, max_chars, "text")
        text = req.text
        if req.pair is not None:
            if not getattr(service.model.vocab, "reads_pairs", False):
                raise ApiError(
                    422, "pair: this model reads one text (pairs are for Hugging Face models trained on them)"
                )
            check_text(req.pair, max_chars, "pair")
            try:
                text = pair(req.text, req.pair)
            except ValueError as e:
                raise ApiError(422, str(e)) from None
        out = await run([text], req.output, req.html, request, target=req.target)
        return gone if out is None else out[0]

    @app.post(
        "/api/explain/batch",
        response_model=BatchResponse,
        response_model_exclude_unset=True,
        responses=documented(
            {
                400: "body is not a JSON object",
                401: UNAUTHORISED,
                408: "the request body did not arrive in time",
                413: "too many texts, or a text over the character limit",
                422: "empty text, a text without words, wrong types, unknown output",
                500: "the model produced NaN or infinity for one of the texts (a broken model)",
                503: "busy (too many explanations waiting) or shutting down; see Retry-After",
            }
        ),
    )
    async def explain_batch(req: BatchRequest, request: Request) -> Any:
        """Explain up to ``max_batch`` texts (one queue slot for the whole batch)."""
        if len(req.texts) > max_batch:
            raise ApiError(413, f"the batch has {len(req.texts)} texts; the limit is {max_batch} per request")
        for i, text in enumerate(req.texts):
            check_text(text, max_chars, f"texts[{i}]")
        out = await run(req.texts, req.output, req.html, request, batch=True, target=req.target)
        return gone if out is None else {"explanations": out}

    @app.get("/api/health", responses={503: {"description": "shutting down: finishing admitted explanations"}})
    async def health() -> Any:
        """Liveness plus the queue: explanations admitted now and the limit (503 while shutting down)."""
        body = {
            "status": "draining" if service.draining else "ok",
            "model": info["name"],
            "version": __version__,
            "pending": service.pending,
            "queue_limit": service.queue_limit,
        }
        return JSONResponse(body, status_code=503) if service.draining else body

    @app.get("/api/model", responses=documented({401: UNAUTHORISED}))
    async def model_info() -> dict[str, Any]:
        """Architecture, vocabulary size, maxlen, test accuracy, the classes (``targets``: those a request
        may name as its ``target``), background and the server's limits."""
        return dict(info)

    @app.get("/metrics", response_class=PlainTextResponse, responses=documented({401: UNAUTHORISED}))
    async def metrics_text() -> Response:
        """Prometheus metrics: requests by route and status, latency, queue depth, batch sizes,
        explanations per second."""
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)
