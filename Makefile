# SynthRead: `make demo` serves a ready demo; `make test` runs every test. Each target sets up
# .venv from requirements-dev.lock (every package, pinned, with its hashes) when it is missing or
# older than the lock; `make lock` regenerates the locks from the requirements*.txt inputs.
VENV := .venv
PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

# The tests run against the real services (PostgreSQL, Redis); override on the command line.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_BROKER_URL ?= redis://127.0.0.1:6379/14

.PHONY: demo test test-fast bench lint format screenshots install lock clean debian-tools

# Browser-side test tools from npm (axe-core for the accessibility scan), locked in package-lock.json.
NODE_TOOLS := node_modules/.installed
$(NODE_TOOLS): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $(NODE_TOOLS)

install: $(INSTALLED)

# The locks are for CPython 3.11 on Linux x86_64, as the images.
$(INSTALLED): requirements-dev.lock
	test -x $(PYTHON) || python3 -m venv $(VENV)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || \
	  { echo "The locks are for Python 3.11: remove $(VENV) and make it with python3.11 -m venv $(VENV)"; exit 1; }
	$(PYTHON) -m pip install --require-hashes -r requirements-dev.lock
	touch $(INSTALLED)

# Compile the inputs (requirements.txt: server and workers; requirements-gpu.txt: the same with
# CUDA TensorFlow; requirements-dev.txt: plus tests and tools) into hash-locked files. The
# runtime lock comes first and constrains the other two, so a package common to them has one
# version everywhere. A version already locked is kept; `make lock LOCK_UPGRADE=--upgrade` moves
# every package to its newest release the pins allow.
LOCK_UPGRADE ?=
UV_COMPILE := $(VENV)/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 \
  --python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock" $(LOCK_UPGRADE)
lock: $(INSTALLED)
	$(UV_COMPILE) requirements.txt -o requirements.lock
	$(UV_COMPILE) requirements-gpu.txt -c requirements.lock -o requirements-gpu.lock
	$(UV_COMPILE) requirements-dev.txt -c requirements.lock -o requirements-dev.lock

demo: $(INSTALLED)
	$(PYTHON) manage.py demo

# Debian's packages the system tests drive: Chromium for the browser tests (Playwright's own
# browser download does not work here) and Caddy, the production proxy (tests/system/test_proxy.py).
DEBIAN_TOOLS := chromium caddy
debian-tools:
	@missing=""; for tool in $(DEBIAN_TOOLS); do test -x /usr/bin/$$tool || missing="$$missing $$tool"; done; \
	  [ -z "$$missing" ] || { echo "Installing Debian's$$missing for the system tests ..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; } \
	  || { echo "Could not install$$missing: run 'apt-get install -y$$missing' as root."; exit 1; }

TEST_ENV := DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL)

# Every test, both tiers (what CI runs). The import contracts (pyproject.toml) first: a broken
# architecture fails before the tests run.
test: $(INSTALLED) $(NODE_TOOLS) debian-tools
	$(VENV)/bin/lint-imports
	$(TEST_ENV) $(PYTHON) -m pytest

# The fast tier only: no worker, browser, subprocess or real training (tests/system holds those).
test-fast: $(INSTALLED)
	$(TEST_ENV) $(PYTHON) -m pytest -m "not system"

# Refresh the README's pictures: the demo's end-to-end test, writing into docs/screenshots.
screenshots: $(INSTALLED) $(NODE_TOOLS) debian-tools
	SYNTHREAD_SCREENSHOTS=$(CURDIR)/docs/screenshots $(TEST_ENV) $(PYTHON) -m pytest tests/system/test_demo.py

bench: $(INSTALLED)
	$(TEST_ENV) $(PYTHON) benchmarks/run.py

lint: $(INSTALLED)
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(VENV)/bin/lint-imports

format: $(INSTALLED)
	$(PYTHON) -m ruff check --fix .
	$(PYTHON) -m ruff format .

clean:
	rm -rf var
