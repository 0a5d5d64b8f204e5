# The two set-up commands the README promises: `make run` and `make test`.
# Each creates (or reuses) the project virtualenv in .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint fmt venv clean console-vendor

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/argus serve

test: lint
	@# The console's pure JS logic; skipped (with a note) where Node is not installed.
	@if command -v node >/dev/null 2>&1; then node --test tests/js/; \
	else echo "make test: node not found, skipping tests/js (the console's JS unit tests)"; fi
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

# Rebuild argus/console/vendor.js from the pinned npm packages (needs Node; Argus does not).
console-vendor:
	npm ci --no-audit --no-fund
	npm run build:vendor
