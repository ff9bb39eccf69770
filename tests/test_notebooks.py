"""The notebooks: each runs top to bottom from a clean kernel (nbclient + ipykernel, through
``notebooks/run.py``, the command ``make notebooks`` runs) and fails the test on any error; the
executed seed notebook, converted to HTML, shows its force plot and highlighted words in
Chromium with nothing fetched and no console errors; the stored notebooks carry their outputs."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def load_runner():
    spec = importlib.util.spec_from_file_location("notebooks_run", NB_DIR / "run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run = load_runner()


def small(name: str, tmp: Path) -> dict:
    """Parameters that keep each notebook's run short; the code path is the stored notebook's."""
    if name == "imdb_lstm.ipynb":
        return {"TRAIN": False, "N_IMPORTANCE": 50}
    if name == "your_own_data.ipynb":
        return {"OUT": str(tmp / "own"), "N_TRAIN": 400, "N_TEST": 100, "EPOCHS": 1}
    return {}


def outputs(nb) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def html_outputs(nb) -> str:
    return "\n".join(o["data"]["text/html"] for o in outputs(nb) if "text/html" in o.get("data", {}))


def text_outputs(nb) -> str:
    return "\n".join(o.get("text", "") for o in outputs(nb) if o["output_type"] == "stream")


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> dict[str, tuple[nbformat.NotebookNode, Path]]:
    """Every notebook, run by ``python notebooks/run.py NAME -p ... --out ... --html ...``."""
    tmp = tmp_path_factory.mktemp("notebooks")
    done = {}
    for path in run.NOTEBOOKS:
        out, html = tmp / path.name, tmp / (path.stem + ".html")
        params = [a for k, v in small(path.name, tmp).items() for a in ("-p", f"{k}={v!r}")]
        cmd = [sys.executable, str(NB_DIR / "run.py"), path.name, *params, "--out", str(out), "--html", str(html)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        assert proc.returncode == 0, f"{path.name} failed:\n{proc.stdout}\n{proc.stderr[-6000:]}"
        done[path.name] = (nbformat.read(out, as_version=4), html)
    return done


def test_the_two_notebooks_are_there():
    assert {p.name for p in run.NOTEBOOKS} == {"imdb_lstm.ipynb", "your_own_data.ipynb"}


@pytest.mark.parametrize("name", ["imdb_lstm.ipynb", "your_own_data.ipynb"])
def test_notebook_runs_top_to_bottom_without_errors(executed, name):
    nb, _ = executed[name]
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))  # every cell ran, in order
    assert not [o for o in outputs(nb) if o["output_type"] == "error"]
    injected = [c for c in code if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1


def test_seed_notebook_shows_every_step(executed):
    nb, _ = executed["imdb_lstm.ipynb"]
    html, text = html_outputs(nb), text_outputs(nb)
    assert "25,000 training and 25,000 test reviews" in text
    assert "test accuracy 0.8338" in text  # the shipped model (TRAIN = False)
    assert "review 9: p(positive)" in text  # ten reviews explained
    assert 'class="seqshap-force"' in html  # the first review's force plot ...
    assert 'class="seqshap-highlight"' in html  # ... and its highlighted text
    assert "largest completeness error" in text
    assert "words seen at least 5 times in 50 reviews" in text
    assert "Top negative words" in html  # the importance table
    assert "_tp_" in html  # shap.plots.text of the first review
    pngs = [o for o in outputs(nb) if "image/png" in o.get("data", {})]
    assert len(pngs) == 3  # the importance plot, shap's waterfall and shap's bar plot


def test_own_data_notebook_trains_explains_and_reports(executed, tmp_path_factory):
    nb, _ = executed["your_own_data.ipynb"]
    text = text_outputs(nb)
    assert "400 training rows" in text  # written to the CSV and read back
    assert "100 test rows" in text
    assert 'class="seqshap-force"' in html_outputs(nb)
    report = next(line for line in text.splitlines() if line.startswith("report: "))[len("report: ") :]
    assert Path(report).is_file()
    assert Path(report).read_text().startswith("<!DOCTYPE html>")


def test_stored_notebooks_carry_their_outputs():
    """What the repository holds is what ``make notebooks`` wrote: every cell run in order from a
    clean kernel, no errors, no injected parameters, no local paths."""
    for path in run.NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), path.name
        assert all(c.outputs for c in code[1:]), path.name  # the parameters cell prints nothing
        assert not [o for o in outputs(nb) if o["output_type"] == "error"], path.name
        assert not [c for c in code if "injected-parameters" in c.metadata.get("tags", [])], path.name
        assert str(ROOT) not in json.dumps([c.outputs for c in code]), path.name
    seed = nbformat.read(NB_DIR / "imdb_lstm.ipynb", as_version=4)
    assert 'class="seqshap-force"' in html_outputs(seed)
    assert "TRAIN = False" in seed.cells[1].source


def test_parameters_are_checked():
    nb = nbformat.read(NB_DIR / "imdb_lstm.ipynb", as_version=4)
    with pytest.raises(ValueError, match="not parameters of this notebook: EPOCHS"):
        run.inject(nb, {"EPOCHS": 1})
    own = run.inject(nbformat.read(NB_DIR / "your_own_data.ipynb", as_version=4), {"N_TEST": 5})  # A, B = 1, 2
    assert "N_TEST = 5" in own.cells[2].source
    nb = run.inject(nb, {"N_IMPORTANCE": 7})
    assert nb.cells[2].source.endswith("N_IMPORTANCE = 7")
    assert run.parse_param("OUT='x'") == ("OUT", "x")
    with pytest.raises(Exception, match="not a Python literal"):
        run.parse_param("OUT=x")


# ------------------------------------------------------------------------------ browser
@pytest.fixture(scope="module")
def seed_page(chromium, executed, tmp_path_factory):
    """The executed seed notebook as HTML (run.py --html: the offline template) in Chromium,
    with every request that is not a local file recorded and refused."""
    from playwright.sync_api import sync_playwright

    _, html = executed["imdb_lstm.ipynb"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        errors: list[str] = []
        external: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))

        def route(r):
            if r.request.url.startswith(("file://", "data:")):
                r.continue_()
            else:
                external.append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.goto(html.as_uri(), wait_until="load")
        page.screenshot(path=str(tmp_path_factory.mktemp("shots") / "imdb_lstm.png"), full_page=True)
        yield page, errors, external
        browser.close()


@pytest.mark.browser
def test_html_fetches_nothing_and_logs_no_errors(seed_page):
    page, errors, external = seed_page
    assert external == []
    assert errors == []
    assert page.locator("script[src]").count() == 0  # no require.js / MathJax from a CDN
    broken = page.evaluate("[...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).length")
    assert broken == 0
    assert page.locator("img").count() == 3


@pytest.mark.browser
def test_html_shows_the_force_plot_and_the_highlighted_words(seed_page, executed):
    page, _, _ = seed_page
    force = page.locator("svg.seqshap-force")
    assert force.count() == 1
    force.scroll_into_view_if_needed()
    assert force.is_visible()
    box = force.bounding_box()
    assert box is not None
    assert box["width"] > 600
    assert page.locator("svg.seqshap-force g.label text.word").count() >= 5
    words = page.locator(".seqshap-highlight span.w")
    assert words.count() == 80  # the first review fills all 80 positions the model reads
    assert words.first.is_visible()
    # the strongest word is drawn on a coloured (not white, not transparent) background
    strongest = page.evaluate(
        "[...document.querySelectorAll('.seqshap-highlight span.w')]"
        ".sort((a, b) => Math.abs(b.dataset.value) - Math.abs(a.dataset.value))[0].textContent"
    )
    assert strongest == "failed"
    colour = page.evaluate(
        "getComputedStyle([...document.querySelectorAll('.seqshap-highlight span.w')]"
        ".find(s => s.textContent === 'failed')).backgroundColor"
    )
    assert colour not in ("rgba(0, 0, 0, 0)", "rgb(255, 255, 255)")
    # shap's text plot: its words carry real colours too (see the notebook's NumPy print note)
    shap_colours = page.evaluate(
        "[...document.querySelectorAll(\"div[id^='_tp_']\")].map(d => getComputedStyle(d).backgroundColor)"
    )
    assert len(shap_colours) == 80
    assert len({c for c in shap_colours if c != "rgba(0, 0, 0, 0)"}) > 10
