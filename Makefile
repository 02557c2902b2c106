# temporal-siem: every target installs what it needs (virtual env, Python packages, Maven jars, Debian packages).
# The interpreter the venv is built with: an optimised (PGO/LTO) distribution build when there is one (see the script).
PYTHON ?= $(shell scripts/pick-python.sh)
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# The SigmaHQ corpus beside the repository, when present, feeds the whole-corpus compatibility and differential tests.
TSIEM_SIGMA_CORPUS ?= $(abspath $(wildcard ../shared/sigma))
export TSIEM_SIGMA_CORPUS

.PHONY: venv debian-packages demo test unit lint typecheck services-up services-down services-status bench clean docs

# The installed package is one namespace over several folders (pyproject [tool.setuptools.package-dir]).
# Strict editable mode links each file into build/__editable__*, so mypy and import-linter see the tree that
# Python imports; a file added or removed needs a re-link, which the stamp below (a hash of the file list) triggers.
SOURCE_DIRS := app kernel ingest parsers detections sinks
LINK_STAMP := $(BIN)/.linked-$(shell find $(SOURCE_DIRS) -type f -not -path '*/__pycache__/*' 2>/dev/null | sort | cksum | cut -d' ' -f1)
EDITABLE := --config-settings editable_mode=strict

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' $(EDITABLE)
	touch $@

# Byte-compiled once here, as pip does for every package it installs: where PYTHONDONTWRITEBYTECODE is set (CI images,
# containers) Python never writes the cache itself, and every command compiled the whole package again at start
# (~0.25 s of each replay, worker and test subprocess). A changed file is recompiled in memory until the next link.
# The Makefile is a prerequisite so that a change of these steps reaches existing venvs too.
$(LINK_STAMP): $(BIN)/.installed Makefile
	rm -f $(BIN)/.linked-*
	$(BIN)/pip install --quiet --no-deps -e . $(EDITABLE)
	$(BIN)/python -m compileall -q -j 0 build/__editable__.* >/dev/null
	touch $@

venv: $(LINK_STAMP)

## The main job on the embedded default: replay samples/ through the shipped rules.
demo: venv
	$(BIN)/temporal-siem replay samples/ --alerts alerts.jsonl --dead-letter dead-letter.jsonl

## The whole test suite, with the real services started (what .ci/run calls).
test: venv debian-packages services-up
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Tests that need no service.
unit: venv
	$(BIN)/python -m pytest -m "not services" $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

debian-packages:
	bash scripts/install-debian.sh

services-up:
	bash scripts/services.sh up

services-down:
	bash scripts/services.sh down

services-status:
	bash scripts/services.sh status

bench: venv
	$(BIN)/python bench/run.py

docs: venv
	$(BIN)/temporal-siem schema --output-format markdown > docs/schema.md
	$(BIN)/temporal-siem schema --output-format json-schema > docs/schema.json
	$(BIN)/python -m temporal_siem.sinks.reference docs/sinks.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache alerts.jsonl dead-letter.jsonl
