"""Griffe extension for the API reference: seqshap's docstrings, written for people reading the
source, rendered as Markdown.

- Sphinx roles (``:class:`Explanation```, ``:func:`~seqshap.background.choose_background```)
  become code spans (`Explanation`, `choose_background`); rendered as they are they would show
  their colons and backticks.
- A ``Parameters`` section written ``name: description`` becomes numpydoc's ``name`` /
  indented description, so each parameter gets its row in the rendered table (numpydoc reads
  ``name: description`` as a name with a type and drops the description).

Only the text handed to the renderer changes; the source is untouched.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):`(~?)\.?([^`]+)`")
UNDERLINE = re.compile(r"^\s*-{3,}\s*$")
ITEM = re.compile(r"^(\w+)\s*:\s+(.*)$")


def _role(m: re.Match) -> str:
    target = m.group(2)
    return f"`{target.rsplit('.', 1)[-1] if m.group(1) else target}`"


def _parameters(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    in_section = False
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if UNDERLINE.match(nxt) and line.strip():
            in_section = line.strip() in {"Parameters", "Other Parameters"}
            out.append(line)
            continue
        m = ITEM.match(line) if in_section else None
        if m:
            out += [m.group(1), "    " + m.group(2)]
        else:
            out.append(line)
    return "\n".join(out)


def roles_to_code(text: str) -> str:
    """``:class:`x.Y``` -> `x.Y`; ``:func:`~x.y``` -> `y`."""
    return ROLE.sub(_role, text)


def markdown_docstring(text: str) -> str:
    """The docstring as the renderer should read it."""
    return _parameters(roles_to_code(text))


class SeqshapDocstrings(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown_docstring(obj.docstring.value)
