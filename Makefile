# The two commands a newcomer needs: `make run` and `make test`. Each installs what it needs
# into .venv first (pinned: pyproject.toml for direct dependencies, constraints.txt for the rest).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck unit bench-ingest bench-dashboard bench-map bench-store bench-streams chromium promtool clean

$(STAMP): pyproject.toml constraints.txt
	@echo "Installing the pinned dependencies into $(VENV)/ (the first time takes a few minutes)..."
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[embedded,dev]'
	touch $@

# Options for `dronetrack run`, e.g. make run ARGS="--drones 50" (see `dronetrack run --help`).
ARGS ?=
run: $(STAMP)
	$(BIN)/dronetrack run $(ARGS)

test: lint typecheck chromium promtool
	$(BIN)/pytest

# The browser tests drive Debian's chromium (Playwright never downloads a browser here).
chromium:
	@test -x /usr/bin/chromium || { \
	  test "$$(id -u)" = 0 || { echo "chromium is missing: run 'make chromium' as root" >&2; exit 1; }; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

# tests/deploy checks the Prometheus config and alert rules, and runs their unit tests, with
# promtool from Debian's prometheus package.
promtool:
	@command -v promtool >/dev/null || { \
	  test "$$(id -u)" = 0 || { echo "promtool is missing: run 'make promtool' as root" >&2; exit 1; }; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus; }

bench-dashboard: $(STAMP)
	$(BIN)/python -m bench.dashboard

# The map page in chromium: 5,000 live drones and a 10-minute replay of 1,000.
bench-map: $(STAMP) chromium
	$(BIN)/python -m bench.map

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

# Figures, not tests: one ingest process against the embedded broker, driven by wrk, whose C
# client leaves the cores to the service (docs/ingest.md).
bench-ingest: $(STAMP)
	@command -v wrk >/dev/null || { \
	  test "$$(id -u)" = 0 || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk; }
	$(BIN)/python -m bench.ingest --wrk

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

bench-store: $(STAMP)
	$(BIN)/python -m bench.store

bench-streams: $(STAMP)
	$(BIN)/python -m bench.streams
