"""The documentation site (issue 31): every example on it runs, it builds with ``mkdocs build
--strict``, every public name has a reference entry, and it works in headless Chromium with no
request leaving the machine.

Examples: each page of ``docs/`` runs in a fresh folder, in a subprocess with the checkout's
seqshap and no network, block by block in page order. ```` ```python ```` blocks run;
```` ```bash ```` blocks run when ``<!-- test: run -->`` stands before them;
``<!-- test: hidden ... -->`` is Python the reader does not see (setup, checks);
``<!-- test: skip REASON -->`` leaves the next block out and must say why.
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import seqshap
import seqshap.attribution
import seqshap.errors

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MARKER = re.compile(r"^<!-- test: (run|skip|hidden)\b(.*?)(-->)?\s*$")
FENCE = re.compile(r"^(\s*)```(\w*)")
RUN_LANGS = {"python", "bash"}
# `seqshap ...` in a shell example is this checkout's seqshap, as `python -m seqshap`.
BASH_PRELUDE = 'seqshap() { "$PYTHON" -m seqshap "$@"; }\nexport -f seqshap\n'


# ------------------------------------------------------------------------------ examples
@dataclass
class Block:
    page: str
    line: int  # 1-based line of the first code line in the page
    lang: str
    code: str
    marker: str | None = None  # run / skip / hidden
    reason: str = ""

    @property
    def runs(self) -> bool:
        if self.marker == "skip":
            return False
        return self.lang == "python" or (self.lang == "bash" and self.marker == "run")


def parse_page(path: Path) -> list[Block]:
    """The page's code blocks and hidden blocks, in order, with their markers."""
    page = str(path.relative_to(ROOT))
    lines = path.read_text(encoding="utf-8").split("\n")
    blocks: list[Block] = []
    pending: tuple[str, str, int] | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = MARKER.match(line)
        if m and m.group(1) == "hidden":
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "-->")
            blocks.append(Block(page, i + 2, "python", "\n".join(lines[i + 1 : end]), "hidden"))
            i = end + 1
            continue
        if m:
            if pending is not None:
                raise AssertionError(f"{page}:{pending[2]}: a test marker with no code block after it")
            pending = (m.group(1), m.group(2).strip(), i + 1)
            i += 1
            continue
        f = FENCE.match(line)
        if f:
            indent, lang = f.group(1), f.group(2)
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
            code = "\n".join(ln[len(indent) :] for ln in lines[i + 1 : end])
            marker, reason = (pending[0], pending[1]) if pending else (None, "")
            blocks.append(Block(page, i + 2, lang, code, marker, reason))
            pending = None
            i = end + 1
            continue
        if pending is not None and line.strip():
            raise AssertionError(f"{page}:{pending[2]}: a test marker must stand right before its code block")
        i += 1
    if pending is not None:
        raise AssertionError(f"{page}:{pending[2]}: a test marker with no code block after it")
    return blocks


def doc_pages() -> list[Path]:
    """The site's pages, and the README (its five lines are the site's home page's)."""
    return [ROOT / "README.md", *sorted(p for p in DOCS.rglob("*.md") if "hooks" not in p.parts)]


PAGES_WITH_EXAMPLES = [p for p in doc_pages() if any(b.runs for b in parse_page(p))]

DRIVER = r"""
import json, subprocess, sys

steps = json.load(open(sys.argv[1]))
namespace = {"__name__": "__main__"}
for s in steps:
    print(f"--- {s['page']}:{s['line']} ({s['lang']})", flush=True)
    if s["lang"] == "python":
        # padded so that a traceback gives the line in the Markdown page
        exec(compile("\n" * (s["line"] - 1) + s["code"], s["page"], "exec"), namespace)
    else:
        subprocess.run(["bash", "-eo", "pipefail", "-c", s["prelude"] + s["code"]], check=True)
"""


def example_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(ROOT / "src"),
        PYTHON=sys.executable,
        MPLBACKEND="Agg",
        SEQSHAP_CACHE=str(tmp / "cache"),  # no download lands in (or is read from) the user's cache
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        KERAS_BACKEND="torch",
        OMP_NUM_THREADS="1",  # two pages run at once on two cores
        TQDM_DISABLE="1",
        # Nothing on these pages may need the network: a proxy at a closed port makes any try fail.
        http_proxy="http://127.0.0.1:9",
        https_proxy="http://127.0.0.1:9",
        HTTP_PROXY="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
        no_proxy="127.0.0.1,localhost",
        NO_PROXY="127.0.0.1,localhost",
    )
    return env


def run_page(page: Path, tmp: Path) -> tuple[subprocess.CompletedProcess, int]:
    """Run the page's examples in order in ``tmp/work`` (one process; shell blocks in bash)."""
    steps = [
        {"page": b.page, "line": b.line, "lang": b.lang, "code": b.code, "prelude": BASH_PRELUDE}
        for b in parse_page(page)
        if b.runs
    ]
    tmp.mkdir(parents=True)
    (tmp / "steps.json").write_text(json.dumps(steps))
    (tmp / "driver.py").write_text(DRIVER)
    (tmp / "work").mkdir()
    r = subprocess.run(
        [sys.executable, str(tmp / "driver.py"), str(tmp / "steps.json")],
        cwd=tmp / "work",
        env=example_env(tmp),
        capture_output=True,
        text=True,
        timeout=900,
    )
    return r, len(steps)


@pytest.fixture(scope="module")
def example_runs(tmp_path_factory) -> dict[Path, tuple[subprocess.CompletedProcess, int]]:
    """Every page's examples, two pages at a time (one torch thread each: the machine has two
    cores), the pages with the most shell commands first."""
    root = tmp_path_factory.mktemp("examples")
    order = sorted(PAGES_WITH_EXAMPLES, key=lambda p: -sum(b.lang == "bash" and b.runs for b in parse_page(p)))
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {p: pool.submit(run_page, p, root / str(p.relative_to(ROOT)).replace("/", "_")) for p in order}
    return {p: f.result() for p, f in futures.items()}


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES_WITH_EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_pages_examples_run(page, example_runs):
    r, steps = example_runs[page]
    assert r.returncode == 0, f"an example on {page.name} failed:\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}"
    ran = re.findall(r"^--- (\S+) \((\w+)\)$", r.stdout, re.M)
    assert len(ran) == steps


def test_every_skipped_example_says_why():
    skipped = [b for p in doc_pages() for b in parse_page(p) if b.marker == "skip"]
    assert skipped, "the pages skip some examples (training on all of IMDB, servers); the parser must see them"
    for b in skipped:
        assert len(b.reason) >= 15, f"{b.page}:{b.line}: '<!-- test: skip REASON -->' needs a real reason"


def test_the_guides_run_python_and_shell_examples():
    """The runner is not vacuous: the guides' Python and `seqshap` commands are among what runs."""
    blocks = [b for p in doc_pages() for b in parse_page(p) if b.runs]
    assert sum(b.lang == "bash" for b in blocks) >= 8
    assert sum(b.lang == "python" and b.marker != "hidden" for b in blocks) >= 12
    pages = {b.page for b in blocks}
    for page in ("README.md", "docs/getting-started.md", "docs/concepts.md", "docs/guides/own-model.md"):
        assert page in pages


def test_the_site_and_the_readme_agree_on_the_wheel_size():
    """tests/test_install.py checks the README's figure against the built wheel; the site repeats it."""
    size = re.compile(r"the wheel is ([\d.]+) MB")
    readme = size.search((ROOT / "README.md").read_text())
    site = size.search((DOCS / "getting-started.md").read_text())
    assert readme
    assert site
    assert readme.group(1) == site.group(1)


def test_a_marker_without_a_block_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    bad = tmp_path / "bad.md"
    bad.write_text("<!-- test: skip a good long reason here -->\n\nsome prose\n")
    with pytest.raises(AssertionError, match="right before its code block"):
        parse_page(bad)
    good = tmp_path / "good.md"
    good.write_text("<!-- test: run -->\n```bash\necho hi\n```\n<!-- test: hidden\nx = 1\n-->\n```python\nx\n```\n")
    blocks = parse_page(good)
    assert [(b.lang, b.marker, b.line, b.runs) for b in blocks] == [
        ("bash", "run", 3, True),
        ("python", "hidden", 6, True),
        ("python", None, 9, True),
    ]


# --------------------------------------------------------------------------------- the site
def load_hooks():
    spec = importlib.util.spec_from_file_location("seqshap_docs_hooks", DOCS / "hooks" / "site.py")
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """``mkdocs build --strict`` of this checkout into a temporary folder (as ``make docs`` builds site/)."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_MKDOCS_2_WARNING": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, f"mkdocs build --strict failed:\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}"
    return out


def reference_ids(site: Path) -> set[str]:
    return {i for f in (site / "reference").glob("*.html") for i in re.findall(r'\bid="([^"]+)"', f.read_text())}


def test_strict_build_writes_every_page(site):
    for page in (
        "index.html",
        "getting-started.html",
        "concepts.html",
        "guides/keras.html",
        "guides/own-model.html",
        "bad-inputs.html",
        "benchmarks.html",
        "reference/seqshap.html",
        "reference/cli.html",
        "reference/http.html",
        "search/search_index.js",
    ):
        assert (site / page).is_file(), page


def test_every_public_name_has_a_reference_entry(site):
    ids = reference_ids(site)
    documented = []
    for anchor in ids:
        mod, _, name = anchor.rpartition(".")
        if mod in sys.modules and hasattr(sys.modules[mod], name):
            documented.append(getattr(sys.modules[mod], name))
    for module in (seqshap, seqshap.attribution):
        for name in module.__all__:
            obj = getattr(module, name)
            same = any(obj is d for d in documented) and not isinstance(obj, (str, tuple, dict))
            assert f"{module.__name__}.{name}" in ids or same, f"{module.__name__}.{name} has no reference entry"
    errors = [n for n, c in vars(seqshap.errors).items() if isinstance(c, type) and issubclass(c, Exception)]
    assert len(errors) >= 15
    for name in errors:
        assert f"seqshap.errors.{name}" in ids, name
    for method in ("top", "word_list", "to_dict", "from_dict", "is_finite"):
        assert f"seqshap.Explanation.{method}" in ids


def test_an_undocumented_public_name_fails_the_strict_build(site):
    """The hook that makes --strict fail: drop one entry and it names exactly that name."""
    hooks = load_hooks()
    ids = reference_ids(site)
    assert hooks.undocumented(ids) == []
    assert hooks.undocumented(ids - {"seqshap.to_shap"}) == ["seqshap.to_shap"]
    assert hooks.undocumented(ids - {"seqshap.Explanation.top"}) == ["seqshap.Explanation.top"]
    assert "seqshap.errors.DownloadError" in hooks.undocumented(ids - {"seqshap.errors.DownloadError"})


def test_cli_reference_is_generated_from_the_parsers(site):
    from seqshap.cli import build_parser
    from seqshap.commands import COMMANDS

    page = (site / "reference" / "cli.html").read_text()
    for name in COMMANDS:
        assert f'id="seqshap-{name}"' in page, name
    parsers = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction").choices
    for name, sub in parsers.items():
        for action in sub._actions:
            for flag in action.option_strings:
                assert flag in page, f"seqshap {name} {flag}"
    assert "--api-key-file FILE" in page
    assert "&lt;key&gt;" in page


def test_http_reference_is_generated_from_the_openapi_schema(site):
    page = (site / "reference" / "http.html").read_text()
    for route in ("POST /api/explain", "POST /api/explain/batch", "GET /api/health", "GET /api/model", "GET /metrics"):
        assert route in page, route
    for field in ("completeness_error", "base_value", "output_name", "texts"):
        assert f"<code>{field}</code>" in page, field
    assert 'href="#schema-explainresponse"' in page
    assert 'id="schema-explainresponse"' in page


EXTERNAL = re.compile(r"""(?:src|href|action)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//""", re.I)


def test_nothing_in_the_site_is_fetched_from_the_network(site):
    """No page, stylesheet or script loads from another host (links to read are fine: <a href>)."""
    for f in site.rglob("*.html"):
        html = re.sub(r"<a\s[^>]*>", "<a>", f.read_text())  # an <a href> is a link, not a fetch
        assert not EXTERNAL.search(html), f"{f.relative_to(site)}: {EXTERNAL.search(html)}"
    for f in site.rglob("*.css"):
        assert not re.search(r"url\(\s*[\"']?(?:https?:)?//", f.read_text()), f.relative_to(site)
    assert 'var __index = {"config"' in (site / "search" / "search_index.js").read_text()[:40]


# ------------------------------------------------------------------------------ the browser
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def served(site):
    """The built site over HTTP on 127.0.0.1 (as a web server would host it)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a: None  # type: ignore[method-assign]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class Visit:
    """A page opened with every request that is not file:// or this machine's server aborted and recorded."""

    def __init__(self, browser, url: str, local_prefix: str):
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.external: list[str] = []
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)

        def route(r):
            u = r.request.url
            if u.startswith(("file://", "data:", "blob:", local_prefix)):
                r.continue_()
            else:
                self.external.append(u)
                r.abort()

        self.page.route("**/*", route)
        self.page.goto(url, wait_until="load")

    def close(self) -> None:
        assert self.external == [], f"requests left the machine: {self.external}"
        self.page.close()


@pytest.fixture(params=["file", "http"])
def open_page(request, browser, site):
    """Open a site page from the file system (file://) or from a local HTTP server."""
    visits = []
    base = site.as_uri() if request.param == "file" else request.getfixturevalue("served")

    def go(path: str) -> Visit:
        v = Visit(browser, f"{base}/{path}", base if request.param == "http" else "file://")
        visits.append(v)
        return v

    yield go
    for v in visits:
        v.close()


@pytest.mark.browser
def test_the_browser_check_sees_a_request_leaving_the_machine(browser, tmp_path):
    """The check is not vacuous: a page that loads a font from elsewhere is caught (and aborted)."""
    page = tmp_path / "leaky.html"
    page.write_text('<link rel="stylesheet" href="https://fonts.example.invalid/css?family=Roboto"><p>hi</p>')
    v = Visit(browser, page.as_uri(), "file://")
    assert v.external == ["https://fonts.example.invalid/css?family=Roboto"]
    v.page.close()


@pytest.mark.browser
def test_deepexplainer_reference_shows_its_parameters(open_page):
    v = open_page("reference/seqshap.html")
    heading = v.page.locator('[id="seqshap.DeepExplainer"]')
    assert heading.is_visible()
    signature = heading.locator("xpath=following-sibling::div[contains(@class, 'doc-signature')][1]").inner_text()
    block = heading.locator("xpath=following-sibling::div[contains(@class, 'doc-contents')][1]")
    for name in ("model", "background", "output", "product_rule", "dtype", "summarize", "batch_pairs"):
        assert name in signature, name
    table = block.locator("table").first
    assert "Parameters" in block.inner_text()
    rows = table.locator("tbody tr").all_inner_texts()
    names = [r.split()[0] for r in rows]
    assert names[:3] == ["model", "background", "output"], rows
    assert any("k-means" in r for r in rows)  # the descriptions are there, not only the names
    assert v.errors == []
    assert v.external == []


@pytest.mark.browser
def test_search_finds_background(open_page):
    v = open_page("index.html")
    v.page.locator("label.md-search__icon, .md-search__input").first.click()
    # The index is built in a web worker (from file://: in an iframe); until it is ready the
    # results line says "Initializing search" and queries are not answered.
    meta = v.page.locator(".md-search-result__meta")
    meta.filter(has_text="Type to start searching").wait_for(timeout=30000)
    v.page.keyboard.type("background")
    results = v.page.locator(".md-search-result__item")
    results.first.wait_for(timeout=20000)
    assert results.count() >= 3
    links = [a.get_attribute("href") or "" for a in v.page.locator(".md-search-result__item a").all()]
    assert any("concepts.html" in h for h in links), links
    assert v.errors == []
    assert v.external == []


@pytest.mark.browser
@pytest.mark.parametrize("path", ["index.html", "concepts.html", "guides/explain-one-text.html", "benchmarks.html"])
def test_pictures_load(open_page, path):
    v = open_page(path)
    images = v.page.locator("article img")
    assert images.count() >= 1
    for img in images.all():
        img.scroll_into_view_if_needed()
        ok = img.evaluate("i => i.complete && i.naturalWidth > 100 && i.naturalHeight > 50")
        assert ok, img.get_attribute("src")
    assert v.errors == []
    assert v.external == []


def test_pages_link_to_each_other_without_leaving_the_site(site):
    hosts = set()
    for f in site.rglob("*.html"):
        for href in re.findall(r'<a\s[^>]*href="([^"]+)"', f.read_text()):
            if urlsplit(href).scheme in ("http", "https"):
                hosts.add(urlsplit(href).netloc)
    # the theme's credit in the footer, and the addresses the pages name for people to visit
    assert hosts <= {"squidfunk.github.io", "download.pytorch.org", "ai.stanford.edu", "keras.io"}, hosts
