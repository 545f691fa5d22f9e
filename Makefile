# SynthRead: `make demo` serves a ready demo; `make test` runs every test. Each target sets up
# .venv from requirements.txt when it is missing or older than the requirements.
VENV := .venv
PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

# The tests run against the real services (PostgreSQL, Redis); override on the command line.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_BROKER_URL ?= redis://127.0.0.1:6379/14

.PHONY: demo test test-fast bench lint format screenshots install clean chromium

# Browser-side test tools from npm (axe-core for the accessibility scan), locked in package-lock.json.
NODE_TOOLS := node_modules/.installed
$(NODE_TOOLS): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $(NODE_TOOLS)

install: $(INSTALLED)

$(INSTALLED): requirements.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -r requirements.txt
	touch $(INSTALLED)

demo: $(INSTALLED)
	$(PYTHON) manage.py demo

# The browser tests drive Debian's Chromium (Playwright's own browser download does not work here).
CHROMIUM := /usr/bin/chromium
chromium:
	@test -x $(CHROMIUM) || { echo "Installing Debian's chromium for the browser tests ..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || { echo "Could not install chromium: run 'apt-get install -y chromium' as root."; exit 1; }

TEST_ENV := DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL)

# Every test, both tiers (what CI runs). The import contracts (pyproject.toml) first: a broken
# architecture fails before the tests run.
test: $(INSTALLED) $(NODE_TOOLS) chromium
	$(VENV)/bin/lint-imports
	$(TEST_ENV) $(PYTHON) -m pytest

# The fast tier only: no worker, browser, subprocess or real training (tests/system holds those).
test-fast: $(INSTALLED)
	$(TEST_ENV) $(PYTHON) -m pytest -m "not system"

# Refresh the README's pictures: the demo's end-to-end test, writing into docs/screenshots.
screenshots: $(INSTALLED) $(NODE_TOOLS) chromium
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
