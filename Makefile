# The two commands a newcomer runs: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow bench check lint clean docs settings-docs

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("socialbot needs Python 3.11 or newer") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Run the whole pipeline against the local sandbox: no accounts, no network.
demo: $(STAMP)
	$(BIN)/socialbot demo

## The whole suite: ruff, mypy, pytest (what .ci/run runs).
test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src tests bench
	$(BIN)/pytest -q

## The long checks kept out of the default suite (long crash loop).
test-slow: $(STAMP)
	$(BIN)/pytest -q -m slow --timeout 1800

## The speed benchmark (docs/benchmark.md): a Markdown table of figures against targets.
## Options through BENCH_ARGS, e.g. make bench BENCH_ARGS="--databases sqlite --runs 3".
bench: $(STAMP)
	$(BIN)/python bench/drain.py --markdown $(BENCH_ARGS)

## The guide in docs/, built as a site into site/ (strict: a broken link or a page missing
## from the navigation fails the build).
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

## Rewrite docs/settings.md and .env.example from the settings model (src/socialbot/config.py).
settings-docs: $(STAMP)
	$(BIN)/python -m socialbot.settings_doc

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis site
