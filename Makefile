# Thin wrappers; everything installs itself on a fresh machine (Python 3.11 + pip are enough).
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
PY := .venv/bin/python
PYTEST_ARGS ?=
BENCH_N ?= 20000

.PHONY: install promtool chromium run test test-unit lint bench bench-checks demo docs clean

install: .venv/.installed

.venv/.installed: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen
	@touch $@

run: install  ## the whole system on the embedded PostgreSQL and broker (Ctrl-C stops it)
	$(PY) -m devstack.stack

demo: install  ## publish a demo portfolio to the running stack (make run in another terminal)
	$(PY) -m devstack.demo --count 300

lint: install tools/asyncapi/node_modules/.installed
	$(PY) -m ruff check shared services devstack tests deploy simulator
	$(PY) -m mypy
	.venv/bin/lint-imports
	$(PY) -m shared.tools.catalog --check
	node tools/asyncapi/validate.cjs docs/asyncapi.yaml

tools/asyncapi/node_modules/.installed: tools/asyncapi/package.json tools/asyncapi/package-lock.json  ## AsyncAPI validator
	npm ci --prefix tools/asyncapi --ignore-scripts --no-audit --no-fund
	@touch $@

promtool:  ## Prometheus' promtool (Debian's prometheus package), for the alert-rule tests; skipped when present
	@command -v promtool >/dev/null 2>&1 || { \
	    sudo=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$sudo apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
	@promtool --version 2>&1 | head -1

chromium:  ## Debian's chromium (and a CJK font) for the portal's browser tests (tests/portal); skipped when present
	@{ [ -x /usr/bin/chromium ] && [ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ]; } || { \
	    sudo=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$sudo apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends chromium \
	        fonts-wqy-microhei >/dev/null; }
	@/usr/bin/chromium --version 2>/dev/null | head -1

# The alert-rule tests (tests/deploy) fail instead of skipping when promtool is missing.
test test-unit: export REQUIRE_PROMTOOL := 1
# The portal's browser tests (tests/portal) fail instead of skipping when chromium is missing.
test: export REQUIRE_CHROMIUM := 1

test: lint promtool chromium  ## lint, then unit, integration and end-to-end tests (starts its own PostgreSQL and broker)
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: install promtool
	$(PY) -m pytest -m "not integration and not e2e" $(PYTEST_ARGS)

bench: install  ## end-to-end throughput and latency vs. a bare relay on the same broker
	$(PY) tests/bench/pipeline.py --events $(BENCH_N)

bench-checks: install  ## compliance POST /v1/checks latency at 1,000 requests/s with a 1-million-attempt ledger
	$(PY) tests/bench/checks.py

docs: install  ## regenerate docs/events.md and docs/asyncapi.yaml from the contracts
	$(PY) -m shared.tools.catalog

clean:
	rm -rf .data .bench .bench-checks .pytest_cache .mypy_cache .ruff_cache
