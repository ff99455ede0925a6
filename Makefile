# ticktape developer commands. Two of them are all a new machine needs:
#   make demo   - install (into .venv) and run the demo on the embedded default
#   make test   - install everything the tests need (system packages too, the QuestDB and
#                 Apache Kafka jars from Maven Central) and run lint, type checks and every
#                 test tier except benchmarks
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test lint typecheck imports unit bench install install-dev system-deps server-jars clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert (3, 11) <= sys.version_info[:2] < (3, 13), "ticktape needs Python 3.11 or 3.12 (bytewax 0.21.1 wheels)"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

# The runtime (ticktape) and the developer tools (ticktape-devtools, infra/pyproject.toml).
$(VENV)/.installed-dev: pyproject.toml infra/pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]' -e ./infra
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(BIN)/ticktape demo

system-deps:
	bash infra/install-system-deps.sh

# QuestDB and Apache Kafka from Maven Central (infra/devstack/maven/*/pom.xml) into
# ~/.cache/ticktape/jars (TICKTAPE_JARS_DIR); fetched once, then only checked.
server-jars: $(VENV)/.installed-dev
	$(BIN)/ticktape dev fetch

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy resolves modules by path: .typecheck/ticktape is a link to this folder, so the
# folders install-mapped under the `ticktape` namespace have a path mypy can follow.
typecheck: $(VENV)/.installed-dev
	mkdir -p .typecheck && ln -sfn .. .typecheck/ticktape
	$(BIN)/mypy

# The layers of docs/architecture.md as import contracts (.importlinter).
imports: $(VENV)/.installed-dev
	$(BIN)/lint-imports

test: system-deps $(VENV)/.installed-dev server-jars lint typecheck imports
	HYPOTHESIS_PROFILE=ci $(BIN)/pytest -q $(PYTEST_ARGS)

unit: $(VENV)/.installed-dev
	$(BIN)/pytest -q tests/unit tests/flows $(PYTEST_ARGS)

bench: $(VENV)/.installed-dev
	$(BIN)/ticktape bench --json bench-results/latest.json

clean:
	rm -rf $(VENV) ticktape-data .mypy_cache .ruff_cache .typecheck
