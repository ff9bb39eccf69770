"""Run the notebooks from a clean kernel and store them with their outputs (``make notebooks``).

    python notebooks/run.py                                  # every notebook here, outputs written in place
    python notebooks/run.py imdb_lstm.ipynb -p N_IMPORTANCE=50 --out /tmp/imdb_lstm.ipynb
    python notebooks/run.py imdb_lstm.ipynb --html /tmp/imdb_lstm.html

Each notebook runs top to bottom in a new ipykernel (nbclient) with this repository's
``src/`` first on the path, in the notebook's own folder, and stops at the first cell that
raises. ``-p NAME=VALUE`` (a Python literal) overrides a value of the cell tagged
``parameters``: a cell tagged ``injected-parameters`` is added after it, as papermill does.
``--html`` also writes the executed notebook as one HTML page with the ``offline`` template
(``templates/offline``: JupyterLab's look without the require.js/MathJax/mermaid scripts the
stock templates load from CDNs), so the page works without a network.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import nbformat

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
NOTEBOOKS = sorted(HERE.glob("*.ipynb"))
TEMPLATES = HERE / "templates"
TIMEOUT = 900  # seconds per cell; training the seed model (TRAIN = True) is one cell


def inject(nb: nbformat.NotebookNode, params: dict[str, Any]) -> nbformat.NotebookNode:
    """Add a cell setting ``params`` right after the cell tagged ``parameters``."""
    if not params:
        return nb
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not tagged:
        raise ValueError("the notebook has no cell tagged 'parameters' to override")
    names: set[str] = set()
    for node in ast.walk(ast.parse(nb.cells[tagged[0]].source)):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))  # A = 1 and A, B = 1, 2
    unknown = sorted(set(params) - names)
    if unknown:
        raise ValueError(f"not parameters of this notebook: {', '.join(unknown)} (it has {', '.join(sorted(names))})")
    source = "# injected by notebooks/run.py\n" + "\n".join(f"{k} = {v!r}" for k, v in params.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(tagged[0] + 1, cell)
    return nb


def kernel_env() -> dict[str, str]:
    """The kernel's environment: this checkout's seqshap first, matplotlib drawing inline."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH", "")) if p)
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # a caller's Agg would hide the plots
    return env


def execute(path: Path, params: dict[str, Any] | None = None, cwd: Path | None = None) -> nbformat.NotebookNode:
    """Run ``path`` top to bottom in a new kernel; raises ``nbclient.exceptions.CellExecutionError``
    (with the failing cell's traceback) on the first error."""
    from nbclient import NotebookClient
    from traitlets.config import Config

    nb = inject(nbformat.read(path, as_version=4), params or {})
    with tempfile.TemporaryDirectory() as sockets:
        # Local sockets rather than TCP on localhost: nothing listens on a port (and the kernel
        # does not warn that its TCP traffic is unencrypted).
        config = Config({"KernelManager": {"transport": "ipc", "ip": str(Path(sockets) / "kernel")}})
        client = NotebookClient(
            nb,
            timeout=TIMEOUT,
            kernel_name="python3",
            record_timing=False,  # no timestamps: a rerun changes only what the code prints
            resources={"metadata": {"path": str(cwd or path.parent)}},
            config=config,
        )
        client.execute(env=kernel_env())
    return nb


def to_html(nb: nbformat.NotebookNode) -> str:
    """The executed notebook as one self-contained HTML page (``templates/offline``)."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="offline", extra_template_basedirs=[str(TEMPLATES)])
    body, _ = exporter.from_notebook_node(nb)
    return body


def parse_param(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        raise argparse.ArgumentTypeError(f"{name}: {value!r} is not a Python literal (quote strings)") from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook in notebooks/")
    ap.add_argument("-p", "--param", action="append", type=parse_param, default=[], metavar="NAME=VALUE")
    ap.add_argument("--out", type=Path, help="write the executed notebook here instead of in place (one notebook)")
    ap.add_argument("--html", type=Path, help="also write it as an offline HTML page here (one notebook)")
    args = ap.parse_args(argv)
    paths = [p if p.exists() else HERE / p for p in args.notebooks] or NOTEBOOKS
    if (args.out or args.html) and len(paths) != 1:
        ap.error("--out and --html take one notebook")
    for path in paths:
        if not path.is_file():
            ap.error(f"no notebook {path}")
        print(f"running {path.name} ...", flush=True)
        nb = execute(path, dict(args.param))
        out = args.out or path
        tmp = out.with_name(f".{out.name}.part")  # replaced in one step: never a half-written notebook
        nbformat.write(nb, tmp)
        os.replace(tmp, out)
        print(f"  wrote {out}", flush=True)
        if args.html:
            args.html.write_text(to_html(nb), encoding="utf-8")
            print(f"  wrote {args.html}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
