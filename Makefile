# objstore — the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test soak check lint typecheck bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade "pip>=25.1"

# core only: what the walkthrough needs
$(VENV)/.demo-installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -e .
	touch $@

# every extra plus the dev tools
$(VENV)/.test-installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -e ".[all]" --group dev
	touch $@

# the Azure emulator (Azurite, from npm) the tests start
AZURITE := tests/node/node_modules/.bin/azurite-blob
$(AZURITE): tests/node/package.json tests/node/package-lock.json
	npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
	touch $@

$(VENV)/.bench-installed: $(VENV)/.test-installed
	$(PIP) install --group bench
	touch $@

demo: $(VENV)/.demo-installed
	$(PY) examples/quickstart.py

test: $(VENV)/.test-installed $(AZURITE)
	$(PY) -m pytest -q

# the reliability tests at RELIABILITY.md's nightly size (over an hour; not part of `make test`)
SOAK_TESTS := tests/test_chaos.py tests/test_killed_writers.py tests/test_conditional_races.py \
	tests/test_resource_hygiene.py tests/test_local_safety.py tests/test_paths.py \
	tests/test_differential.py tests/test_differential_adapters.py
soak: $(VENV)/.test-installed $(AZURITE)
	OBJSTORE_SOAK=nightly $(PY) -m pytest -q -s -o timeout=3600 $(SOAK_TESTS)

lint: $(VENV)/.test-installed
	$(PY) -m ruff check objstore objstore_sync tests benchmarks examples docs
	$(PY) -m ruff format --check objstore objstore_sync tests benchmarks examples docs

typecheck: $(VENV)/.test-installed
	$(PY) -m mypy

check: lint typecheck test

bench: $(VENV)/.bench-installed $(AZURITE)
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) tests/node/node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis
