# temporal-siem: every target installs what it needs (virtual env, Python packages, Maven jars, Debian packages).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# The SigmaHQ corpus beside the repository, when present, feeds the whole-corpus compatibility and differential tests.
TSIEM_SIGMA_CORPUS ?= $(abspath $(wildcard ../shared/sigma))
export TSIEM_SIGMA_CORPUS

.PHONY: debian-packages demo test unit lint typecheck services-up services-down services-status bench clean docs

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

## The main job on the embedded default: replay samples/ through the shipped rules.
demo: $(BIN)/.installed
	$(BIN)/temporal-siem replay samples/ --alerts alerts.jsonl --dead-letter dead-letter.jsonl

## The whole test suite, with the real services started (what .ci/run calls).
test: $(BIN)/.installed debian-packages services-up
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Tests that need no service.
unit: $(BIN)/.installed
	$(BIN)/python -m pytest -m "not services" $(PYTEST_ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy

debian-packages:
	bash scripts/install-debian.sh

services-up:
	bash scripts/services.sh up

services-down:
	bash scripts/services.sh down

services-status:
	bash scripts/services.sh status

bench: $(BIN)/.installed
	$(BIN)/python bench/run.py

docs: $(BIN)/.installed
	$(BIN)/temporal-siem schema --format markdown > docs/schema.md
	$(BIN)/temporal-siem schema --format json-schema > docs/schema.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache alerts.jsonl dead-letter.jsonl
