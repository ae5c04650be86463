# Tollgate: `make run` (local stack), `make test` (offline suite), `make bench`, `make deploy STAGE=dev`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
STAGE ?= dev

.PHONY: run test bench package deploy clean dashboard browser

$(INSTALLED): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip<26.3"  # chalice 1.34 requires pip<26.3
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(INSTALLED)

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --silent

dashboard: node_modules/.package-lock.json
	$(BIN)/python -m local.build_dashboard

browser:  # Debian's Chromium for the browser tests (never a downloaded browser build)
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	  || echo "chromium could not be installed: the browser tests will be skipped" >&2

run: $(INSTALLED) dashboard
	$(BIN)/python -m local.stack

test: $(INSTALLED) dashboard browser
	$(BIN)/python -m pytest

bench: $(INSTALLED)
	$(BIN)/python -m bench

package: $(INSTALLED)
	$(BIN)/python -m infra.package --stage $(STAGE)

deploy: $(INSTALLED)  # infra/deploy.sh checks the account, the stage and npm first, one line per missing piece
	STAGE=$(STAGE) PYTHON=$(BIN)/python infra/deploy.sh

clean:
	rm -rf $(VENV) .tollgate dist .pytest_cache .hypothesis node_modules
