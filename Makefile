# The two set-up commands the README promises: `make run` and `make test`.
# Each creates (or reuses) the project virtualenv in .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint fmt venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/argus serve

test: lint
	$(BIN)/pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check argus tests bench
	$(BIN)/ruff format --check argus tests bench
	$(BIN)/lint-imports

fmt: $(STAMP)
	$(BIN)/ruff format argus tests bench
	$(BIN)/ruff check --fix argus tests bench

clean:
	rm -rf $(VENV) .pytest_cache
