"""The tree shows the flow: data -> models -> train -> attribution -> viz -> cli/web.

Every import between seqshap's own modules (at module level or inside a function) points down
that flow, so there is no import circle. The one exception is the lazy ``_repr_html_`` hook:
an Explanation draws itself in Jupyter with the viz renderers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import seqshap

ROOT = Path(seqshap.__file__).resolve().parent

# Lower layers first; a module may import its own layer and the layers below it.
LAYERS = [
    ("atomic", "errors", "safe_files", "_validation"),
    ("data",),
    ("models",),
    ("store",),
    ("train", "keras_import", "torch_import", "background"),
    ("attribution",),
    ("importance", "faithfulness"),
    ("viz", "interop"),
    ("report", "distributed"),
    ("web",),
    ("commands", "cli", "__main__"),
]
ALLOWED_UPWARD = {("seqshap.attribution.explanation", "seqshap.viz.html")}  # the _repr_html_ hook


def module_name(path: Path) -> str:
    parts = ["seqshap", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def imports(name: str) -> set[str]:
    """seqshap modules that ``name`` imports, anywhere in its body."""
    path = MODULES[name]
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    # importing a package you live in (``from .. import atomic`` loads ``seqshap``) is not an edge
    return {m for m in found if m in MODULES and m != name and not name.startswith(m + ".")}


def layer(name: str) -> int:
    top = name.split(".")[1] if name != "seqshap" else ""
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"module {name} is in no layer of LAYERS; add it where it belongs in the flow")


def test_every_import_points_down_the_flow():
    upward = []
    for name in MODULES:
        if name == "seqshap":  # the package's front door re-exports the public API
            continue
        for target in imports(name):
            if layer(target) > layer(name) and (name, target) not in ALLOWED_UPWARD:
                upward.append(f"{name} -> {target}")
    assert not upward, "imports against the flow: " + "; ".join(sorted(upward))


def test_no_import_circle_but_the_repr_html_hook():
    graph = {name: imports(name) for name in MODULES if name != "seqshap"}
    for a, b in ALLOWED_UPWARD:
        assert b in graph[a], f"the allowed edge {a} -> {b} is gone: drop it from ALLOWED_UPWARD"
        graph[a] = graph[a] - {b}
    state: dict[str, int] = {}  # 1 on the DFS stack, 2 finished

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("import circle: " + " -> ".join([*path[path.index(nxt) :], nxt]))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
