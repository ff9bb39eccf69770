# Two front doors: `make demo` (set up + main job) and `make test` (set up + test suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast setup browser lint clean notebook notebooks dist docs docs-serve

setup: $(STAMP)

# torch==2.13.0 is pinned (pyproject + constraints.txt): an unpinned torch pulls a CUDA build.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(STAMP)

# Headless browser for the page/report tests: Debian's chromium, never a downloaded build.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# The main job: train the seed LSTM on IMDB with the same command that made the shipped model,
# explain the first 10 test reviews against the first 100 training reviews, write report/.
demo: $(STAMP)
	$(BIN)/seqshap train --arch lstm --seed 1 --lr-decay 0.2 --epochs 15 --out runs/demo
	$(BIN)/seqshap report --model runs/demo --n 10 --background 100 --importance-n 300 --out report/
	@echo "demo: open report/index.html"

# Style and types first (seconds), then the suite.
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

# tests/test_install.py builds the sdist and wheel too, installs the wheel into a fresh venv
# outside the checkout and runs seqshap there with no network: a packaging mistake fails here.
test: $(STAMP) browser lint
	$(BIN)/python -m pytest -q

# The in-memory tests only: no training past the shared tiny models, no server, no browser, no
# wheel (pytest markers in pyproject.toml); under 3 minutes on a 2-core laptop.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not server and not browser and not install"

# The sdist and the wheel (it carries the shipped model and its background): dist/.
# --no-isolation builds with the pinned setuptools of .venv, offline.
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --no-isolation --outdir dist .

# The documentation site (mkdocs.yml, docs/): site/index.html, built offline. --strict makes a broken
# link or anchor, a missing reference or an undocumented public name an error. tests/test_docs.py
# builds it the same way and runs every example on it. (The variable hides Material's banner.)
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict
	@echo "docs: open site/index.html"

# The site with live reload while writing (8001: seqshap serve takes 8000).
docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve -a 127.0.0.1:8001

# The notebooks' stored outputs: every notebook run top to bottom from a clean kernel, written in place.
notebooks: $(STAMP)
	$(BIN)/python notebooks/run.py

# JupyterLab on the seed notebook (the notebook extra: jupyterlab and shap); --allow-root only as root.
notebook: $(VENV)/.notebook
	$(BIN)/jupyter lab notebooks/imdb_lstm.ipynb $(if $(filter 0,$(shell id -u)),--allow-root)

$(VENV)/.notebook: $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test,notebook]'
	touch $@

clean:
	rm -rf $(VENV) runs/demo report dist build
