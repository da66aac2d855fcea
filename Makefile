# Privacy Hub. Quick start: `make run` (demo hub on 127.0.0.1:8000) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
export PRIVACY_HUB_INSTANCE_PATH ?= $(CURDIR)/instance

.PHONY: run test install lint typecheck layers system-deps browser-deps translations bench clean

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
	@echo "  Privacy Hub is starting on http://127.0.0.1:8000/"
	@echo ""
	@echo "  Front door:      http://127.0.0.1:8000/"
	@echo "  Privacy portal:  http://127.0.0.1:8000/portal/"
	@echo "                   sign in as a demo customer: mila.weber@example.com (German) or"
	@echo "                   liam.oconnor@example.com; the sign-in mail is written to"
	@echo "                   $(PRIVACY_HUB_INSTANCE_PATH)/outbox/ -- print it with its link:"
	@echo "                   $(BIN)/privacy-hub mail show latest"
	@echo "  DPO console:     http://127.0.0.1:8000/console/"
	@echo "                   sign in as the demo DPO printed above (demo DPO: email, password)"
	@echo "                   with a code from the printed totp_secret: add it to an"
	@echo "                   authenticator app, or print the current code with"
	@echo "                   $(BIN)/privacy-hub staff code <totp_secret>"
	@echo "  Demo shop:       http://127.0.0.1:8000/demo/shop  (the cookie banner)"
	@echo "  API docs:        http://127.0.0.1:8000/api/docs"
	@echo "                   with the api_key printed above: curl -H 'Authorization: Bearer <api_key>' \\"
	@echo "                     http://127.0.0.1:8000/api/v1/audit/verify"
	@echo ""
	$(BIN)/privacy-hub serve --host 127.0.0.1 --port 8000

## PostgreSQL server binaries for the test suite (the suite starts its own server)
system-deps:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then \
	  echo "installing PostgreSQL server binaries"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	fi

## Chromium (Debian's; Playwright downloads no browser here) and axe-core for the browser tests
NPM_DIR := .cache/npm
browser-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
	  echo "installing chromium"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi
	@test -f $(NPM_DIR)/node_modules/axe-core/axe.min.js || \
	  npm install --silent --no-audit --no-fund --prefix $(NPM_DIR) axe-core@4

## make translations: extract the strings, merge them into each catalogue, compile
translations: install
	$(BIN)/pybabel extract -F babel.cfg -k _l -k N_ -o privacy_hub/translations/messages.pot .
	$(BIN)/pybabel update --no-fuzzy-matching -i privacy_hub/translations/messages.pot -d privacy_hub/translations
	$(BIN)/pybabel compile -d privacy_hub/translations

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

layers: install
	$(BIN)/lint-imports

## make test: everything the tests need, then the pre-commit checks (lint, types,
## layering) and the whole suite
test: install system-deps browser-deps
	$(BIN)/pre-commit run --all-files --show-diff-on-failure
	$(BIN)/python -m pytest -q -n 3

## make bench [BENCH_ARGS="--backend sqlite --duration 5"]: figures into bench/README.md
## (with the `bench` extra: gunicorn, which bench/server_compare.py runs beside granian)
bench: install system-deps
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m bench.run_all $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
