"""MkDocs hooks (mkdocs.yml ``hooks:``): the pages written at build time and the checks that make
``mkdocs build --strict`` fail when the site falls behind the code.

- ``reference/cli.md`` from ``seqshap.cli``'s argparse parsers (:mod:`cli_reference`);
- ``reference/http.md`` from the web app's OpenAPI schema (:mod:`http_reference`);
- ``<!-- include FILE -->`` on a page is replaced by FILE from the repository root, its relative
  links rewritten for the page (``benchmarks.md`` shows BENCHMARKS.md this way);
- every public name of seqshap's public modules must have an entry in the API reference, else a
  warning (an error under ``--strict``) names it.

The checkout's ``src/`` comes first on ``sys.path``, as mkdocstrings reads the same sources.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
import sys
from pathlib import Path, PurePosixPath
from typing import Any

from mkdocs.structure.files import File, Files

HOOKS = Path(__file__).resolve().parent
ROOT = HOOKS.parents[1]
for _p in (HOOKS, ROOT / "src"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import cli_reference  # noqa: E402
import http_reference  # noqa: E402

log = logging.getLogger("mkdocs.hooks.seqshap")

# Modules whose public names the API reference must cover (``__all__``, else what they define).
PUBLIC_MODULES = ("seqshap", "seqshap.attribution", "seqshap.errors", "seqshap.importance", "seqshap.faithfulness")
INCLUDE = re.compile(r"^<!-- include (\S+) -->$", re.M)
LINK = re.compile(r"(\]\()([^)\s#]+)([^)]*\))")
ID = re.compile(r'\bid="([^"]+)"')
PLAIN_BRACKETS = re.compile(r"(?<![!\\])\[([^\]]*)\](?![(\[])")

_reference_ids: set[str] = set()


# ------------------------------------------------------------------------ generated pages
def cli_page() -> str:
    from seqshap.cli import build_parser

    return cli_reference.render(build_parser())


def http_page() -> str:
    from seqshap.web import create_app

    app = create_app()  # the shipped model and its background.json: offline, about two seconds
    try:
        return http_reference.render(app.openapi())
    finally:
        app.state.service.close()


def on_files(files: Files, config) -> Files:
    files.append(File.generated(config, "reference/cli.md", content=cli_page()))
    files.append(File.generated(config, "reference/http.md", content=http_page()))
    return files


# --------------------------------------------------------------------------------- include
def include(name: str, page_src: str) -> str:
    """FILE (relative to the repository root) with its relative links pointing from the page."""
    text = (ROOT / name).read_text(encoding="utf-8")
    page_dir = PurePosixPath(page_src).parent

    def relink(m: re.Match) -> str:
        target = m.group(2)
        if re.match(r"^[a-z]+:", target) or target.startswith("/"):
            return m.group(0)
        in_docs = PurePosixPath(*(PurePosixPath(name).parent / target).parts)
        if in_docs.parts[:1] != ("docs",):
            return m.group(0)  # outside the site: left as is, so the link check names it
        rel = PurePosixPath(*in_docs.parts[1:])
        up = [".."] * len(page_dir.parts) if str(page_dir) != "." else []
        return m.group(1) + str(PurePosixPath(*up, rel)) + m.group(3)

    return _literal_brackets(LINK.sub(relink, text))


def _literal_brackets(text: str) -> str:
    """Square brackets that are not a link stay text: ``[CLS] [SEP]`` in prose would otherwise be
    read as a reference link (and reported as a missing cross-reference). Code is left alone."""
    out, fenced = [], False
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if not fenced:
            parts = re.split(r"(`+[^`]*`+)", line)
            line = "".join(p if p.startswith("`") else PLAIN_BRACKETS.sub(r"\\[\1\\]", p) for p in parts)
        out.append(line)
    return "\n".join(out)


def on_page_markdown(markdown: str, page, config, files) -> str:
    return INCLUDE.sub(lambda m: include(m.group(1), page.file.src_uri), markdown)


# ------------------------------------------------------------------- every name documented
def public_names(module_name: str) -> list[str]:
    """``module.__all__``, or the classes and functions the module itself defines."""
    mod = importlib.import_module(module_name)
    if hasattr(mod, "__all__"):
        return list(mod.__all__)
    return [
        n
        for n, obj in vars(mod).items()
        if not n.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__ == module_name
    ]


def _documented_objects(ids: set[str]) -> list[Any]:
    found = []
    for anchor in ids:
        mod_name, _, attr = anchor.rpartition(".")
        if not mod_name.startswith("seqshap"):
            continue
        try:
            found.append(getattr(importlib.import_module(mod_name), attr))
        except (ImportError, AttributeError):
            continue
    return found


def undocumented(ids: set[str], modules: tuple[str, ...] = PUBLIC_MODULES) -> list[str]:
    """Public names without an entry: no anchor ``module.name`` in the reference, and not the
    very object documented under another name (``seqshap.attribution.DeepExplainer`` is
    ``seqshap.DeepExplainer``). Public methods of the classes ``seqshap`` exports count too."""
    objects = _documented_objects(ids)
    missing = []
    for module_name in modules:
        mod = importlib.import_module(module_name)
        for name in public_names(module_name):
            obj = getattr(mod, name)
            if f"{module_name}.{name}" in ids:
                continue
            if not isinstance(obj, (str, int, float, tuple, dict, list)) and any(obj is o for o in objects):
                continue
            missing.append(f"{module_name}.{name}")
    seqshap = importlib.import_module("seqshap")
    for name in seqshap.__all__:
        cls = getattr(seqshap, name)
        if not inspect.isclass(cls) or issubclass(cls, BaseException):
            continue
        for member in vars(cls):
            if not member.startswith("_") and f"seqshap.{name}.{member}" not in ids:
                missing.append(f"seqshap.{name}.{member}")
    return missing


def on_page_content(html: str, page, config, files) -> str:
    if page.file.src_uri.startswith("reference/"):
        _reference_ids.update(ID.findall(html))
    return html


def on_post_build(config) -> None:
    for name in undocumented(_reference_ids):
        log.warning("%s is public but has no entry in the API reference (docs/reference/)", name)
    _reference_ids.clear()
