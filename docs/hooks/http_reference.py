"""The HTTP API reference page, written from the server's own OpenAPI schema at build time
(the app ``seqshap serve`` runs, built with its defaults, asked for ``app.openapi()``): every
route with its request body, its answers and every field of every JSON object, as tables.
Nothing is loaded from a CDN (no Swagger UI or ReDoc on the site; the server's ``/docs`` page
serves its own copy of Swagger UI)."""

from __future__ import annotations

import html
import json
import re
from typing import Any

from griffe_roles import roles_to_code  # the docstrings' Sphinx roles, as code (a sibling in docs/hooks)

INTRO = """# HTTP API

The JSON API of [`seqshap serve`](../guides/serving.md). This page is generated from the server's
OpenAPI schema (`GET /openapi.json` of a running server) when the site is built, for a server
started with the default limits (`--max-chars 20000`, `--max-batch 32`); a running server also
shows the same schema as a page at `/docs` (Swagger UI, served by the server itself, offline).

{description}

Routes that are not part of the JSON API: `GET /` (the web page), `GET /docs` and
`GET /openapi.json` (this schema), `/static/...` (the page's script) and `/docs-assets/...`
(Swagger UI's files).
"""

Schema = dict[str, Any]


def _inline(text: str) -> str:
    """Text for an HTML table cell: escaped, with `code` (and Sphinx roles) as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(roles_to_code(text)))


def _anchor(name: str) -> str:
    return "schema-" + name.lower()


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def type_of(schema: Schema) -> str:
    """A schema's type in words, as HTML (object schemas link to their table)."""
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        return f'<a href="#{_anchor(name)}">{html.escape(name)}</a>'
    if "anyOf" in schema:
        kinds = [type_of(s) for s in schema["anyOf"]]
        return " or ".join(dict.fromkeys(kinds))
    if "enum" in schema:
        return " | ".join(f"<code>{html.escape(json.dumps(v))}</code>" for v in schema["enum"])
    if "const" in schema:
        return f"<code>{html.escape(json.dumps(schema['const']))}</code>"
    kind = schema.get("type")
    if kind == "array":
        if "prefixItems" in schema:
            return "[" + ", ".join(type_of(s) for s in schema["prefixItems"]) + "]"
        return "list of " + type_of(schema.get("items", {}))
    if kind == "object" or "additionalProperties" in schema:
        return "object"
    if isinstance(kind, list):
        return " or ".join(html.escape(str(k)) for k in kind)
    return html.escape(str(kind)) if kind else "any JSON value"


def _limits(schema: Schema) -> str:
    words = {
        "minItems": "at least {} items",
        "maxItems": "at most {} items",
        "minLength": "at least {} characters",
        "maxLength": "at most {} characters",
        "minimum": "at least {}",
        "maximum": "at most {}",
    }
    found = [words[k].format(schema[k]) for k in words if k in schema and "prefixItems" not in schema]
    return "; ".join(found)


def _fields_table(schema: Schema) -> str:
    required = set(schema.get("required", []))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        default = json.dumps(prop["default"]) if "default" in prop else ""
        notes = [_inline(prop.get("description", ""))]
        if _limits(prop):
            notes.append(html.escape(_limits(prop)))
        rows.append(
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
                html.escape(name),
                type_of(prop),
                "yes" if name in required else "",
                f"<code>{html.escape(default)}</code>" if default else "",
                "; ".join(n for n in notes if n),
            )
        )
    head = "<tr><th>field</th><th>type</th><th>required</th><th>default</th><th>meaning</th></tr>"
    table = "<table>\n<thead>" + head + "</thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>"
    if schema.get("additionalProperties") is False:
        table += "\n\nAny other field is refused (422).\n"
    return table


def _body_schema(content: dict[str, Any] | None) -> str:
    if not content:
        return "(no body)"
    parts = []
    for media, spec in content.items():
        schema = spec.get("schema", {})
        typed = any(k in schema for k in ("$ref", "type", "anyOf", "enum", "const"))
        parts.append(f"<code>{html.escape(media)}</code>" + (f": {type_of(schema)}" if typed else ""))
    return "<br>".join(parts)


def _responses_table(responses: dict[str, Any]) -> str:
    rows = [
        "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>".format(
            html.escape(status), _inline(spec.get("description", "")), _body_schema(spec.get("content"))
        )
        for status, spec in responses.items()
    ]
    head = "<tr><th>status</th><th>when</th><th>body</th></tr>"
    return "<table>\n<thead>" + head + "</thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>"


def render(spec: dict[str, Any]) -> str:
    """Markdown for the whole API, from an OpenAPI 3 document."""
    info = spec.get("info", {})
    parts = [INTRO.format(description=info.get("description", "")), f"Version {info.get('version', '?')}.\n"]
    for path, methods in spec.get("paths", {}).items():
        for method, op in methods.items():
            parts.append(f"## `{method.upper()} {path}`\n")
            if op.get("description"):
                parts.append(roles_to_code(op["description"].strip()) + "\n")
            body = op.get("requestBody")
            if body:
                parts.append("**Request body** " + ("(required)" if body.get("required") else "(optional)") + ": ")
                parts.append(_body_schema(body.get("content")) + "\n")
            parts.append("**Answers**\n")
            parts.append(_responses_table(op.get("responses", {})) + "\n")
    parts.append("## JSON objects\n")
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        parts.append(f"### {name} {{ #{_anchor(name)} }}\n")
        if schema.get("description"):
            parts.append(roles_to_code(schema["description"].strip()) + "\n")
        if "properties" in schema:
            parts.append(_fields_table(schema) + "\n")
        else:
            parts.append(f"A {type_of(schema)}.\n")
        for example in schema.get("examples", []):
            parts.append("Example:\n\n```json\n" + json.dumps(example, indent=2) + "\n```\n")
    return "\n".join(parts)
