# Privacy Hub. Quick start: `make run` (demo hub on 127.0.0.1:8000) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
export PRIVACY_HUB_INSTANCE_PATH ?= $(CURDIR)/instance

.PHONY: run test install lint typecheck layers system-deps bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

## make run: install, initialise an embedded SQLite instance with demo data, serve on :8000
run: install
	$(BIN)/privacy-hub init --demo
	@echo ""
	@echo "  API docs:  http://127.0.0.1:8000/api/docs"
	@echo "  Try it:    curl -H 'Authorization: Bearer <api_key above>' http://127.0.0.1:8000/api/v1/audit/verify"
	@echo ""
	$(BIN)/privacy-hub serve --host 127.0.0.1 --port 8000

## PostgreSQL server binaries for the test suite (the suite starts its own server)
system-deps:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then \
	  echo "installing PostgreSQL server binaries"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	fi

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

layers: install
	$(BIN)/lint-imports

## make test: everything the tests need, then lint, types, layering and the whole suite
test: install system-deps lint typecheck layers
	$(BIN)/python -m pytest -q -n 3

## make bench [BENCH_ARGS="--backend sqlite --duration 5"]: figures into bench/README.md
bench: install system-deps
	$(BIN)/python -m bench.run_all $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
