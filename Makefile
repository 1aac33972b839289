# The executable documentation of feedsvc: `make run` and `make test` are the quick start.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= config.yaml

.PHONY: run test lint check build golden bench clean

$(BIN)/feedsvc: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

run: $(BIN)/feedsvc  ## serve articles/ with config.yaml on http://127.0.0.1:8080/
	$(BIN)/feedsvc serve --config $(CONFIG)

test: $(BIN)/feedsvc  ## the whole suite
	$(BIN)/python -m pytest

lint: $(BIN)/feedsvc  ## ruff and mypy --strict
	$(BIN)/ruff check feedsvc tests
	$(BIN)/mypy

golden: $(BIN)/feedsvc  ## rewrite the golden expectations under tests/data; review the diff
	UPDATE_GOLDEN=1 $(BIN)/python -m pytest -q tests/test_sources_post.py tests/test_golden.py

bench: $(BIN)/feedsvc  ## serving vs nginx, reloads vs Hugo (needs wrk, nginx, hugo; root installs them)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[bench]'
	$(BIN)/python bench/run.py

check: $(BIN)/feedsvc  ## validate config.yaml and every source
	$(BIN)/feedsvc check --config $(CONFIG)

build: $(BIN)/feedsvc  ## write every document into site/
	$(BIN)/feedsvc build --config $(CONFIG) --out site

clean:
	rm -rf $(VENV) site .pytest_cache .mypy_cache .ruff_cache
