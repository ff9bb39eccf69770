"""``/docs``: Swagger UI served by the app itself, so it renders offline.

The assets (``swagger-ui-bundle.js``, ``swagger-ui.css``) come from the ``fastapi-offline``
package, which ships them; FastAPI's own page would load them from a CDN. The page's one
inline script (Swagger UI's start-up call) is allowed by its SHA-256 in the page's CSP, so
no other inline script could run there.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request
from starlette.responses import HTMLResponse

ASSETS_URL = "/docs-assets"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)


def assets_dir() -> Path:
    """Where ``fastapi-offline`` keeps Swagger UI's files."""
    return Path(str(files("fastapi_offline") / "static"))


def docs_csp(html: str) -> str:
    """The policy the Swagger page needs and no more: its own scripts plus its inline start-up
    script by hash, its stylesheet (Swagger UI also sets element styles), its images and
    ``data:`` icons, and requests to this server (the schema, "Try it out")."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in _INLINE_SCRIPT.findall(html)
    )
    return (
        f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def add_docs(app: FastAPI, docs_url: str = "/docs") -> None:
    """Serve Swagger UI at ``docs_url`` with its assets under :data:`ASSETS_URL`. Create the
    app with ``docs_url=None, redoc_url=None`` (FastAPI's pages use a CDN)."""
    app.mount(ASSETS_URL, StaticFiles(directory=assets_dir()), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.api_route(docs_url, methods=["GET", "HEAD"], include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} — API",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            # validatorUrl null: no badge fetched from swagger.io
            swagger_ui_parameters={"validatorUrl": None, "tryItOutEnabled": False},
        )
        html = bytes(page.body).decode()
        return HTMLResponse(html, headers={"Content-Security-Policy": docs_csp(html)})
